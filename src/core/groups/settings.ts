/**
 * SMP Settings management group (group 3), as Zephyr implements it
 * (subsys/mgmt/mcumgr/grp/settings_mgmt):
 *
 *   id 0  read   {name: tstr, ? max_size: uint}  -> {val: bstr, ? max_size: uint}
 *   id 0  write  {name: tstr, val: bstr}         -> {}    (settings_runtime_set: RAM only)
 *   id 1  write  {name: tstr}                    -> {}    (settings_delete: persisted value)
 *   id 2  write  {}                              -> {}    (settings_commit: handlers apply)
 *   id 3  read   {}                              -> {}    (settings_load: storage -> RAM, commit)
 *   id 3  write  {}                              -> {}    (settings_save: RAM -> storage)
 *
 * Group errors (v2 err.rc): 1 unknown, 2 key too long, 3 key not found, 4 read
 * not supported, 5 root key not found, 6 write not supported, 7 delete not
 * supported, 8 save not supported (Zephyr 4.x: settings_save failed). A name must be shorter than CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN
 * (default 32); a read returns at most CONFIG_MCUMGR_GRP_SETTINGS_VALUE_LEN
 * bytes (default 32) and then reports that limit as max_size.
 */
import type { RequestOptions, SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';

export const SETTINGS_GROUP = 3;
export const SETTINGS_GROUP_NAME = 'settings mgmt';

export const SETTINGS = { ReadWrite: 0, Delete: 1, Commit: 2, LoadSave: 3 } as const;

export const SETTINGS_ERR = {
  Unknown: 1,
  KeyTooLong: 2,
  KeyNotFound: 3,
  ReadNotSupported: 4,
  RootKeyNotFound: 5,
  WriteNotSupported: 6,
  DeleteNotSupported: 7,
  /** Zephyr 4.x: settings_save failed (seen on the native_sim smp_server fixture). */
  SaveNotSupported: 8,
} as const;

export const SETTINGS_ERR_TEXT: Record<number, string> = {
  1: 'unknown settings error',
  2: 'setting name too long for the device',
  3: 'no such setting',
  4: 'the setting cannot be read',
  5: 'no settings handler for this name (unknown subtree)',
  6: 'the setting cannot be written',
  7: 'the setting cannot be deleted',
  8: 'the device could not save its settings (no writable settings storage)',
};

/** A readable sentence for a settings group failure. */
export function describeSettingsError(e: unknown, name?: string): string {
  const what = name ? ` (${name})` : '';
  if (e instanceof SmpError) {
    if (e.kind === 'group' && e.group === SETTINGS_GROUP && e.rc !== undefined && SETTINGS_ERR_TEXT[e.rc]) return SETTINGS_ERR_TEXT[e.rc] + what;
    if (e.notSupported) return 'the device has no settings management group';
    if (e.kind === 'rc' && e.rc === 11) return 'access denied by the device' + what;
  }
  return (e instanceof Error ? e.message : String(e)) + what;
}

export interface SettingRead {
  value: Uint8Array;
  /** Set when the device capped the read at its value limit (the value may be longer). */
  maxSize?: number;
}

export async function readSetting(c: SmpClient, name: string, opts?: RequestOptions & { maxSize?: number }): Promise<SettingRead> {
  const body: Record<string, unknown> = { name };
  if (opts?.maxSize !== undefined) body.max_size = opts.maxSize;
  const r = await c.read(SETTINGS_GROUP, SETTINGS.ReadWrite, body, opts);
  if (!(r.val instanceof Uint8Array)) throw new SmpError('decode', `settings read reply for ${name} lacks "val"`);
  const out: SettingRead = { value: r.val };
  if (typeof r.max_size === 'number') out.maxSize = r.max_size;
  return out;
}

/** Set a value in RAM (the settings handler's h_set); it is not persisted until saveSettings. */
export async function writeSetting(c: SmpClient, name: string, value: Uint8Array, opts?: RequestOptions): Promise<void> {
  await c.write(SETTINGS_GROUP, SETTINGS.ReadWrite, { name, val: value }, opts);
}

/** Delete a setting from persistent storage. */
export async function deleteSetting(c: SmpClient, name: string, opts?: RequestOptions): Promise<void> {
  await c.write(SETTINGS_GROUP, SETTINGS.Delete, { name }, opts);
}

/** Let the handlers apply the values set so far (settings_commit). */
export async function commitSettings(c: SmpClient, opts?: RequestOptions): Promise<void> {
  await c.write(SETTINGS_GROUP, SETTINGS.Commit, {}, opts);
}

/** Reload persisted values into RAM and commit them (settings_load). */
export async function loadSettings(c: SmpClient, opts?: RequestOptions): Promise<void> {
  await c.read(SETTINGS_GROUP, SETTINGS.LoadSave, {}, opts);
}

/** Persist the RAM values (settings_save). */
export async function saveSettings(c: SmpClient, opts?: RequestOptions): Promise<void> {
  await c.write(SETTINGS_GROUP, SETTINGS.LoadSave, {}, opts);
}

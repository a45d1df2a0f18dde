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

import { SETTINGS, SETTINGS_GROUP, SETTINGS_GROUP_DEF } from '../protocol/settings.ts';
import { MGMT_RC } from '../protocol/mgmt.ts';

export { SETTINGS, SETTINGS_ERR, SETTINGS_GROUP, SETTINGS_GROUP_DEF, SETTINGS_GROUP_NAME } from '../protocol/settings.ts';

/** A readable sentence for a settings group failure. */
export function describeSettingsError(e: unknown, name?: string): string {
  const what = name ? ` (${name})` : '';
  if (e instanceof SmpError) {
    const text = e.kind === 'group' && e.group === SETTINGS_GROUP && e.rc !== undefined ? SETTINGS_GROUP_DEF.errorText(e.rc) : undefined;
    if (text) return text + what;
    if (e.notSupported) return 'the device has no settings management group';
    if (e.kind === 'rc' && e.rc === MGMT_RC.EACCESSDENIED) return 'access denied by the device' + what;
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

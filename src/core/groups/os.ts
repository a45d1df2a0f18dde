/** SMP OS management group (group 0), as Zephyr implements it (os_mgmt). */
import type { RequestOptions, SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import { Group } from '../smp/header.ts';

import { OS } from '../protocol/os.ts';

export { OS, OS_GROUP } from '../protocol/os.ts';

export async function echo(c: SmpClient, text: string, opts?: RequestOptions): Promise<string> {
  // echo changes nothing on the device: safe to send again after a lost line, like a read
  const r = await c.write(Group.OS, OS.Echo, { d: text }, { retries: c.readRetries, ...opts });
  if (typeof r.r !== 'string') throw new SmpError('decode', 'echo reply lacks "r"');
  return r.r;
}

export async function readParams(c: SmpClient, opts?: RequestOptions): Promise<{ bufSize: number; bufCount: number }> {
  const r = await c.read(Group.OS, OS.Params, {}, opts);
  const bufSize = r.buf_size;
  const bufCount = r.buf_count;
  if (typeof bufSize !== 'number' || typeof bufCount !== 'number' || bufSize < 64 || bufCount < 1) {
    throw new SmpError('decode', 'MCUmgr params reply lacks buf_size/buf_count');
  }
  return { bufSize, bufCount };
}

/** Format letters of the OS info command (uname-like). */
export const INFO_FIELDS = {
  s: 'kernel',
  n: 'node',
  r: 'release',
  v: 'version',
  b: 'build',
  m: 'machine',
  p: 'processor',
  i: 'platform',
  o: 'os',
} as const;
export type OsInfoField = (typeof INFO_FIELDS)[keyof typeof INFO_FIELDS];

export async function osInfo(c: SmpClient, format: string, opts?: RequestOptions): Promise<string> {
  const r = await c.read(Group.OS, OS.Info, { format }, opts);
  if (typeof r.output !== 'string') throw new SmpError('decode', 'OS info reply lacks "output"');
  return r.output;
}

/**
 * Every info field, one request each (in parallel within the client's window).
 * Fields that could not be read are listed in `missing` with the reason.
 */
export async function osInfoAll(
  c: SmpClient,
  opts?: RequestOptions,
): Promise<{ fields: Partial<Record<OsInfoField, string>>; missing: { field: OsInfoField; reason: string }[] }> {
  const entries = Object.entries(INFO_FIELDS) as [keyof typeof INFO_FIELDS, OsInfoField][];
  const results = await Promise.allSettled(entries.map(([letter]) => osInfo(c, letter, opts)));
  const fields: Partial<Record<OsInfoField, string>> = {};
  const missing: { field: OsInfoField; reason: string }[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') fields[entries[i][1]] = r.value;
    else missing.push({ field: entries[i][1], reason: (r.reason as Error)?.message ?? String(r.reason) });
  });
  const firstErr = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (Object.keys(fields).length === 0 && firstErr) throw firstErr.reason;
  return { fields, missing };
}

export interface BootloaderInfo {
  name: string;
  /** MCUboot mode (boot/bootutil: 0 single, 1 swap scratch, 2 overwrite-only, 3 swap-move, 4 direct-xip, 5 direct-xip revert, 6 RAM load, 7 firmware loader, 8 RAM load with network core, 9 swap using offset) */
  mode?: number;
  modeName?: string;
  noDowngrade?: boolean;
}

export const MCUBOOT_MODES: Record<number, string> = {
  [-1]: 'unknown',
  0: 'single application',
  1: 'swap using scratch',
  2: 'overwrite only',
  3: 'swap using move',
  4: 'direct XIP',
  5: 'direct XIP with revert',
  6: 'RAM load',
  7: 'firmware loader',
  8: 'RAM load with network core',
  9: 'swap using offset',
};

/** True when the bootloader mode supports test-then-confirm (swap modes and direct-XIP with revert). */
export function modeHasTestConfirm(mode: number | undefined): boolean {
  return mode === 1 || mode === 3 || mode === 5 || mode === 9;
}

export async function bootloaderInfo(c: SmpClient, opts?: RequestOptions): Promise<BootloaderInfo> {
  const r = await c.read(Group.OS, OS.BootloaderInfo, {}, opts);
  const name = typeof r.bootloader === 'string' ? r.bootloader : 'unknown';
  const info: BootloaderInfo = { name };
  if (name === 'MCUboot') {
    try {
      const m = await c.read(Group.OS, OS.BootloaderInfo, { query: 'mode' }, opts);
      if (typeof m.mode === 'number') {
        info.mode = m.mode;
        info.modeName = MCUBOOT_MODES[m.mode] ?? `mode ${m.mode}`;
      }
      if (typeof m['no-downgrade'] === 'boolean') info.noDowngrade = m['no-downgrade'];
    } catch (e) {
      if (!(e instanceof SmpError)) throw e;
    }
  }
  return info;
}

export async function readDateTime(c: SmpClient, opts?: RequestOptions): Promise<string> {
  const r = await c.read(Group.OS, OS.DateTime, {}, opts);
  if (typeof r.datetime !== 'string') throw new SmpError('decode', 'datetime reply lacks "datetime"');
  return r.datetime;
}

/** Set the device clock; `iso` like 2026-11-21T10:00:00 (Zephyr takes no zone, or a numeric offset). */
export async function writeDateTime(c: SmpClient, iso: string, opts?: RequestOptions): Promise<void> {
  await c.write(Group.OS, OS.DateTime, { datetime: iso }, opts);
}

export async function reset(c: SmpClient, opts: RequestOptions & { force?: boolean; bootMode?: number } = {}): Promise<void> {
  const body: Record<string, unknown> = {};
  if (opts.force) body.force = true;
  if (opts.bootMode !== undefined) body.boot_mode = opts.bootMode;
  await c.write(Group.OS, OS.Reset, body, opts);
}

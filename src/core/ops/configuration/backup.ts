/** Configuration backups: the snapshot format, its validator, and storing it in the library before a change. */
import { decodeCbor, encodeDeterministic } from '../../base/cbor.ts';
import { type SettingValue, decodeConfigUnverified } from '../../trust/signed-config.ts';
import { addBackup } from '../../store/artifacts.ts';
import type { BackupRecord, FieldbenchDB } from '../../store/db.ts';
import type { DeviceIdentifiersInput } from '../../store/ids.ts';
import type { CurrentConfig } from './read.ts';

// ---------------------------------------------------------------- backups

const SNAPSHOT_FORMAT = 'fieldbench-config-snapshot';

export interface ConfigSnapshot {
  source: CurrentConfig['source'];
  sequence: number;
  digest?: Uint8Array;
  settings: Record<string, SettingValue>;
  secretsSealed: boolean;
  taken: number;
}

/**
 * The bytes a backup keeps: the signed configuration itself when the library
 * has it (so it can be re-applied), else a snapshot of what was read (secret
 * fields never included: signed devices do not reveal them, stock devices are
 * not asked).
 */
export function configBackupBytes(current: CurrentConfig, taken = Date.now()): Uint8Array {
  if (current.signed) return current.signed;
  return encodeDeterministic(
    new Map<string, unknown>([
      ['format', SNAPSHOT_FORMAT],
      ['v', 1],
      ['source', current.source],
      ['seq', current.sequence],
      ['digest', current.digest],
      ['settings', current.settings],
      ['sealed', current.secretsSealed],
      ['taken', Math.floor(taken)],
    ]),
  );
}

export function decodeSnapshot(bytes: Uint8Array): ConfigSnapshot | null {
  let v: unknown;
  try {
    v = decodeCbor(bytes);
  } catch {
    return null;
  }
  if (!(v instanceof Map) || v.get('format') !== SNAPSHOT_FORMAT || v.get('v') !== 1) return null;
  const toObj = (x: unknown): unknown => (x instanceof Map ? Object.fromEntries([...x].map(([k, y]) => [k, toObj(y)])) : Array.isArray(x) ? x.map(toObj) : x);
  const source = v.get('source');
  return {
    source: source === 'signed' || source === 'settings' ? source : 'none',
    sequence: typeof v.get('seq') === 'number' ? (v.get('seq') as number) : 0,
    digest: v.get('digest') instanceof Uint8Array ? (v.get('digest') as Uint8Array) : undefined,
    settings: (toObj(v.get('settings')) ?? {}) as Record<string, SettingValue>,
    secretsSealed: v.get('sealed') === true,
    taken: typeof v.get('taken') === 'number' ? (v.get('taken') as number) : 0,
  };
}

/** Validator for addBackup (src/core/store/artifacts.ts): a signed configuration or a snapshot. */
export function backupValidator(bytes: Uint8Array): { ok: true; meta: Record<string, unknown> } | { ok: false; reason: string } {
  const snap = decodeSnapshot(bytes);
  if (snap) return { ok: true, meta: { backup: 'snapshot', sequence: snap.sequence } };
  try {
    const c = decodeConfigUnverified(bytes);
    return { ok: true, meta: { backup: 'signed', sequence: c.sequence } };
  } catch (e) {
    return { ok: false, reason: `not a configuration backup: ${(e as Error).message}` };
  }
}

/** Keep a backup of what the device holds in the local store (artifact + backup record, one transaction). */
export function storeConfigBackup(
  db: FieldbenchDB,
  who: { deviceId: number; device: DeviceIdentifiersInput },
  current: CurrentConfig,
  reason = 'before configure',
): Promise<BackupRecord> {
  return addBackup(db, { ...who, reason, configSeq: current.sequence, config: configBackupBytes(current) }, backupValidator);
}

/**
 * Content-addressed artifacts (firmware, configurations, trust bundles,
 * credentials, identity certificates), configuration backups taken before a
 * change, and the technician key store's records.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import {
  storeWrite,
  type ArtifactKind,
  type ArtifactRecord,
  type BackupRecord,
  type FieldbenchDB,
  type KeyRecord,
} from './db.ts';
import { normaliseIds, type DeviceIdentifiersInput } from './ids.ts';
import { FieldbenchError } from '../base/errors.ts';
import { toHex } from '../base/bytes.ts';

/** Largest accepted artifact of each kind, in bytes. */
export const ARTIFACT_LIMITS: Readonly<Record<ArtifactKind, number>> = {
  firmware: 16 * 1024 * 1024,
  config: 256 * 1024,
  bundle: 2 * 1024 * 1024,
  credential: 64 * 1024,
  identity: 16 * 1024,
};

export type ArtifactValidation = { ok: true; meta?: Record<string, unknown> } | { ok: false; reason: string; code?: string };

/**
 * Checks an artifact before it is stored (e.g. wraps verifyBundle /
 * verifyFirmwareImage). TrustResult values fit: {ok:true,...} or {ok:false, code, reason}.
 */
export type ArtifactValidator = (bytes: Uint8Array, kind: ArtifactKind) => Promise<ArtifactValidation> | ArtifactValidation;

export type ArtifactFailure = 'unknown-kind' | 'empty' | 'too-large' | 'invalid' | 'kind-mismatch' | 'referenced';

export class ArtifactStoreError extends FieldbenchError<ArtifactFailure> {
  constructor(
    code: ArtifactFailure,
    message: string,
  ) {
    super(code, message);
    this.name = 'ArtifactStoreError';
  }
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = (globalThis.crypto as Crypto | undefined)?.subtle;
  if (subtle && bytes.length > 4096) {
    try {
      return toHex(new Uint8Array(await subtle.digest('SHA-256', bytes as BufferSource)));
    } catch {
      /* fall through */
    }
  }
  return toHex(sha256(bytes));
}

/** "the firmware was rejected: why", said once (a reason that already says it was rejected is not wrapped again; issue 14, defect 8). */
function rejected(kind: ArtifactKind, reason: string): string {
  return /\bwas rejected\b/.test(reason) ? reason : `the ${kind} was rejected: ${reason}`;
}

async function checkArtifact(
  kind: ArtifactKind,
  bytes: Uint8Array,
  validator: ArtifactValidator,
): Promise<{ sha: string; meta?: Record<string, unknown> }> {
  if (!Object.hasOwn(ARTIFACT_LIMITS, kind)) throw new ArtifactStoreError('unknown-kind', `unknown artifact kind ${JSON.stringify(kind)}`);
  if (!(bytes instanceof Uint8Array)) throw new ArtifactStoreError('invalid', 'artifact must be bytes');
  if (bytes.length === 0) throw new ArtifactStoreError('empty', `the ${kind} is empty`);
  const max = ARTIFACT_LIMITS[kind];
  if (bytes.length > max) throw new ArtifactStoreError('too-large', `the ${kind} is ${bytes.length} bytes; at most ${max} are accepted`);
  if (typeof validator !== 'function') throw new ArtifactStoreError('invalid', 'a validator is required to store an artifact');
  let v: ArtifactValidation;
  try {
    v = await validator(bytes, kind);
  } catch (e) {
    throw new ArtifactStoreError('invalid', rejected(kind, (e as Error)?.message ?? String(e)));
  }
  if (!v || v.ok !== true) {
    const r = v as { reason?: string; code?: string } | undefined;
    throw new ArtifactStoreError('invalid', rejected(kind, r?.reason ?? 'its check failed'));
  }
  return { sha: await sha256Hex(bytes), meta: v.meta };
}

async function storeInTx(db: FieldbenchDB, rec: ArtifactRecord): Promise<{ record: ArtifactRecord; created: boolean }> {
  const existing = await db.artifacts.get(rec.sha256);
  if (existing) {
    if (existing.kind !== rec.kind) {
      throw new ArtifactStoreError('kind-mismatch', `these bytes are already stored as a ${existing.kind}, not a ${rec.kind}`);
    }
    return { record: existing, created: false };
  }
  await db.artifacts.add(rec);
  return { record: rec, created: true };
}

/**
 * Validate and store an artifact under its SHA-256. The same bytes are
 * stored once; storing them again returns the existing record (created: false).
 */
export async function putArtifact(
  db: FieldbenchDB,
  kind: ArtifactKind,
  bytes: Uint8Array,
  validator: ArtifactValidator,
  opts: { name?: string; now?: number } = {},
): Promise<{ record: ArtifactRecord; created: boolean }> {
  const { sha, meta } = await checkArtifact(kind, bytes, validator);
  const rec: ArtifactRecord = { sha256: sha, kind, size: bytes.length, bytes: bytes.slice(), added: opts.now ?? Date.now() };
  if (opts.name !== undefined) rec.name = opts.name;
  if (meta !== undefined) rec.meta = meta;
  return storeWrite(`${kind} artifact`, () => db.transaction('rw', db.artifacts, () => storeInTx(db, rec)));
}

export async function getArtifact(db: FieldbenchDB, sha256Hex: string): Promise<ArtifactRecord | undefined> {
  return db.artifacts.get(sha256Hex.toLowerCase());
}

export async function listArtifacts(db: FieldbenchDB, kind?: ArtifactKind): Promise<ArtifactRecord[]> {
  return kind ? db.artifacts.where('kind').equals(kind).toArray() : db.artifacts.orderBy('added').toArray();
}

/** Remove an artifact; refused while a configuration backup refers to it. */
export async function deleteArtifact(db: FieldbenchDB, sha256Hex: string): Promise<boolean> {
  return db.transaction('rw', db.artifacts, db.backups, async () => {
    const sha = sha256Hex.toLowerCase();
    const users = await db.backups.filter((b) => b.artifact === sha).count();
    if (users) throw new ArtifactStoreError('referenced', `${users} configuration backup(s) still refer to ${sha}`);
    const had = (await db.artifacts.get(sha)) !== undefined;
    await db.artifacts.delete(sha);
    return had;
  });
}

// ---------------------------------------------------------------- backups

/**
 * Keep the configuration read from a device before changing it: the bytes
 * become a 'config' artifact and the backup record points at it; both are
 * written in one transaction.
 */
export async function addBackup(
  db: FieldbenchDB,
  b: { deviceId: number; device: DeviceIdentifiersInput; reason: string; configSeq?: number; config: Uint8Array; taken?: number },
  validator: ArtifactValidator,
): Promise<BackupRecord> {
  const { sha, meta } = await checkArtifact('config', b.config, validator);
  const taken = b.taken ?? Date.now();
  const art: ArtifactRecord = { sha256: sha, kind: 'config', size: b.config.length, bytes: b.config.slice(), added: taken, name: `backup ${b.reason}` };
  if (meta !== undefined) art.meta = meta;
  const rec: BackupRecord = { deviceId: b.deviceId, device: normaliseIds(b.device), taken, reason: b.reason, artifact: sha };
  if (b.configSeq !== undefined) rec.configSeq = b.configSeq;
  return storeWrite('configuration backup', () =>
    db.transaction('rw', db.artifacts, db.backups, async () => {
      await storeInTx(db, art);
      rec.id = await db.backups.add(rec);
      return rec;
    }),
  );
}

/** Backups of one device record, newest first. */
export async function listBackups(db: FieldbenchDB, deviceId: number): Promise<BackupRecord[]> {
  const list = await db.backups.where('deviceId').equals(deviceId).toArray();
  return list.sort((a, b) => b.taken - a.taken || b.id! - a.id!);
}

/** The newest backup of a device and its configuration bytes. */
export async function latestBackup(db: FieldbenchDB, deviceId: number): Promise<{ backup: BackupRecord; config: Uint8Array } | undefined> {
  const [backup] = await listBackups(db, deviceId);
  if (!backup) return undefined;
  const art = await db.artifacts.get(backup.artifact);
  if (!art) return undefined;
  return { backup, config: art.bytes };
}

// ---------------------------------------------------------------- key store records

export async function putKeyRecord(db: FieldbenchDB, rec: KeyRecord): Promise<void> {
  if (typeof rec.id !== 'string' || !rec.id) throw new TypeError('key record needs a string id');
  if (!Number.isSafeInteger(rec.created)) throw new TypeError('key record needs created (ms since epoch)');
  await storeWrite('key record', () => db.keys.put(rec));
}

export async function getKeyRecord(db: FieldbenchDB, id: string): Promise<KeyRecord | undefined> {
  return db.keys.get(id);
}

export async function listKeyRecords(db: FieldbenchDB): Promise<KeyRecord[]> {
  return db.keys.toArray();
}

export async function deleteKeyRecord(db: FieldbenchDB, id: string): Promise<void> {
  await db.keys.delete(id);
}

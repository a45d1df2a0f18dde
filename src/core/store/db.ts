/**
 * The local records database ('fieldbench', Dexie 4 over IndexedDB).
 *
 * Schema history (every version stays declared: Dexie needs the chain to
 * upgrade old installs):
 *   v1  devices indexed by each identifier field, identifiers stored as typed;
 *       attestation verdict nested as {verdict, time}.
 *   v2  devices gain the multiEntry `ids` index ("find by any identifier") and
 *       a `verdict` index; identifiers are normalised (lowercase hex, MAC and
 *       DevEUI without separators), the nested verdict is flattened, and
 *       audit entries gain a multiEntry `deviceIds` index (not part of the
 *       signed entry body).
 *
 * Browser and Node alike: src/core never imports node:*; in Node a global
 * `indexedDB` (fake-indexeddb) must be installed before opening, or passed in
 * the options.
 */
import Dexie, { type Table } from 'dexie';
import { idKeys, normaliseId, ID_KINDS, type DeviceIdentifiers, type IdKind } from './ids.ts';
import { FieldbenchError } from '../base/errors.ts';
import type { AuditExportEntry } from './audit.ts';

export const DB_NAME = 'fieldbench';
export const SCHEMA_VERSION = 4;

// ---------------------------------------------------------------- records

/** What the inventory knows about a device besides its identifiers (a record holds them; an update may set them). */
export interface DeviceFacts {
  model?: string;
  /** Firmware version as the device reports it (e.g. "1.4.2+7"). */
  firmware?: string;
  /** Sequence number of the last applied signed configuration. */
  configSeq?: number;
  /** Last attestation verdict (e.g. 'verified', 'failed', 'unverified'). */
  verdict?: string;
  verdictTime?: number;
  label?: string;
}

export interface DeviceRecord extends DeviceIdentifiers, DeviceFacts {
  id?: number;
  firstSeen: number;
  lastSeen: number;
  /** Typed identifier keys, e.g. 'serial:SN1', 'key:ab..', 'mac:0011..'; multiEntry index. */
  ids: string[];
  /** Identifier values a migration could not normalise, kept verbatim. */
  invalid?: Partial<Record<IdKind, unknown>>;
}

export type ArtifactKind = 'firmware' | 'config' | 'bundle' | 'credential' | 'identity';

export interface ArtifactRecord {
  /** Lowercase hex SHA-256 of `bytes`: the primary key (content addressing). */
  sha256: string;
  kind: ArtifactKind;
  size: number;
  bytes: Uint8Array;
  added: number;
  name?: string;
  /** What the validator reported (e.g. version, model, signer key id). */
  meta?: Record<string, unknown>;
}

/** The fleet hub sync state (one row, id 'hub'; its shape is src/core/sync/engine.ts SyncSaved). */
export interface SyncRecord {
  id: string;
  state: Record<string, unknown>;
}

/** One entry of a Bench control log (src/core/factory/station-log.ts), as the CLI's records log line holds it. */
export interface StationLogRecord {
  /** "<station key id hex>/<seq, 10 digits>": the log's order. */
  id: string;
  /** The station key id (hex). */
  station: string;
  entry: AuditExportEntry;
}

/** One line of a Bench identifier journal (src/core/factory/identifiers.ts JournalStore). */
export interface JournalLineRecord {
  id?: number;
  name: string;
  line: string;
}

/** One entry of the audit chain as stored; the export form (AuditExportEntry) has the byte fields in hex. */
export interface AuditRecord {
  seq: number;
  time: number;
  technician: { id: string; keyId: string };
  op: string;
  device: DeviceIdentifiers;
  outcome: string;
  details?: Record<string, unknown>;
  /** SHA-256 of the previous entry body (32 zero bytes for the first entry). */
  prev: Uint8Array;
  /** SHA-256 of this entry body (everything above, deterministic CBOR). */
  hash: Uint8Array;
  /** Ed25519 signature over `hash`. */
  sig: Uint8Array;
  /** The technician's Ed25519 public key (keyId = first 8 bytes of its SHA-256). */
  signer: Uint8Array;
  /** Typed identifier keys of `device`, for the per-device history index; not signed. */
  deviceIds: string[];
}

export interface BackupRecord {
  id?: number;
  /** devices.id of the device the configuration was read from. */
  deviceId: number;
  device: DeviceIdentifiers;
  taken: number;
  /** Why it was taken, e.g. 'before configure', 'before update'. */
  reason: string;
  /** Configuration sequence number the device reported, if any. */
  configSeq?: number;
  /** The configuration as read, stored as a 'config' artifact (sha256 hex). */
  artifact: string;
}

/** Technician key store record; `record` is owned by src/core/trust/keystore.ts. */
export interface KeyRecord {
  id: string;
  created: number;
  record: unknown;
}

// ---------------------------------------------------------------- errors

/** A write was refused because the browser's storage quota (or the disk) is full. */
export class StoreFullError extends FieldbenchError<'store-full'> {
  constructor(
    readonly operation: string,
    readonly cause?: unknown,
  ) {
    super('store-full', 
      `local storage is full: ${operation} was not saved (nothing was half-written). ` +
        'Free space by exporting and removing old artifacts or backups, or allow the app more storage.',
    );
    this.name = 'StoreFullError';
  }
}

/** Attempt to change or remove an audit entry. */
export class AppendOnlyError extends FieldbenchError<'append-only'> {
  constructor(message = 'the audit trail is append-only') {
    super('append-only', message);
    this.name = 'AppendOnlyError';
  }
}

/** True for QuotaExceededError in any of the forms browsers and Dexie produce. */
export function isQuotaError(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== 'object' || depth > 6) return false;
  const err = e as { name?: unknown; code?: unknown; inner?: unknown; cause?: unknown; failures?: unknown; message?: unknown };
  if (err.name === 'QuotaExceededError' || err.name === 'NS_ERROR_DOM_QUOTA_REACHED') return true;
  if (err.name === 'DOMException' || typeof DOMException !== 'undefined' && e instanceof DOMException) {
    if (err.code === 22 || err.code === 1014) return true;
  }
  if (isQuotaError(err.inner, depth + 1) || isQuotaError(err.cause, depth + 1)) return true;
  const f = err.failures;
  if (Array.isArray(f)) return f.some((x) => isQuotaError(x, depth + 1));
  if (f && typeof f === 'object') return Object.values(f).some((x) => isQuotaError(x, depth + 1));
  return false;
}

/** Run a write (one Dexie transaction) and turn quota failures into StoreFullError. */
export async function storeWrite<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StoreFullError) throw e;
    if (isQuotaError(e)) throw new StoreFullError(operation, e);
    throw e;
  }
}

// ---------------------------------------------------------------- schema

const V1 = {
  devices: '++id, serial, devicePublicKey, ueid, mac, devEui, model, firmware, lastSeen',
  artifacts: 'sha256, kind, added',
  audit: 'seq, time',
  backups: '++id, deviceId, taken',
  keys: 'id',
};

const V2 = {
  devices: '++id, serial, devicePublicKey, ueid, mac, devEui, model, firmware, verdict, lastSeen, *ids',
  artifacts: 'sha256, kind, added',
  audit: 'seq, time, op, *deviceIds',
  backups: '++id, deviceId, taken',
  keys: 'id',
};

/** v3 adds the fleet hub sync state (src/core/sync/store.ts). */
const V3 = { ...V2, sync: 'id' };

/**
 * v4 adds the Bench page's control logs (src/core/factory/station-log.ts: one
 * chain per station key, id = "<station key id>/<seq, 10 digits>") and its
 * identifier journals (one line per record, in order, per journal name).
 */
const V4 = { ...V3, stationLog: 'id, station', journal: '++id, name' };

/** v1 -> v2 data migration of one device record (exported for tests). */
export function migrateDeviceV1(rec: Record<string, unknown>): void {
  const ids: DeviceIdentifiers = {};
  const invalid: Partial<Record<IdKind, unknown>> = {};
  for (const k of ID_KINDS) {
    const v = rec[k];
    if (v === undefined || v === null || v === '') {
      delete rec[k];
      continue;
    }
    try {
      ids[k] = normaliseId(k, v as string | Uint8Array);
      rec[k] = ids[k];
    } catch {
      invalid[k] = v;
      delete rec[k];
    }
  }
  if (Object.keys(invalid).length) rec.invalid = invalid;
  const att = rec.attestation as { verdict?: unknown; time?: unknown } | undefined;
  if (att && typeof att === 'object') {
    if (typeof att.verdict === 'string') rec.verdict = att.verdict;
    if (typeof att.time === 'number') rec.verdictTime = att.time;
  }
  delete rec.attestation;
  if (typeof rec.lastSeen !== 'number') rec.lastSeen = 0;
  if (typeof rec.firstSeen !== 'number') rec.firstSeen = rec.lastSeen;
  rec.ids = idKeys(ids);
}

export interface OpenOptions {
  name?: string;
  /** Declare the schema only up to this version (tests of the migration use 1). */
  version?: 1 | 2 | 3 | 4;
  indexedDB?: { open: Function };
  IDBKeyRange?: { bound: Function; lowerBound: Function; upperBound: Function };
}

export class FieldbenchDB extends Dexie {
  devices!: Table<DeviceRecord, number>;
  artifacts!: Table<ArtifactRecord, string>;
  audit!: Table<AuditRecord, number>;
  backups!: Table<BackupRecord, number>;
  keys!: Table<KeyRecord, string>;
  sync!: Table<SyncRecord, string>;
  stationLog!: Table<StationLogRecord, string>;
  journal!: Table<JournalLineRecord, number>;

  constructor(opts: OpenOptions = {}) {
    const g = globalThis as { indexedDB?: { open: Function }; IDBKeyRange?: OpenOptions['IDBKeyRange'] };
    super(opts.name ?? DB_NAME, {
      indexedDB: opts.indexedDB ?? g.indexedDB,
      IDBKeyRange: opts.IDBKeyRange ?? g.IDBKeyRange,
    });
    const upTo = opts.version ?? SCHEMA_VERSION;
    this.version(1).stores(V1);
    if (upTo >= 2) {
      this.version(2)
        .stores(V2)
        .upgrade(async (tx) => {
          await tx
            .table('devices')
            .toCollection()
            .modify((rec: Record<string, unknown>) => migrateDeviceV1(rec));
          await tx
            .table('audit')
            .toCollection()
            .modify((rec: Record<string, unknown>) => {
              const dev = (rec.device ?? {}) as DeviceIdentifiers;
              const ids: DeviceIdentifiers = {};
              for (const k of ID_KINDS) {
                try {
                  if (dev[k]) ids[k] = normaliseId(k, dev[k]);
                } catch {
                  /* signed body keeps its text; only the index skips it */
                }
              }
              rec.deviceIds = idKeys(ids);
            });
        });
    }
    if (upTo >= 3) this.version(3).stores(V3);
    if (upTo >= 4) this.version(4).stores(V4);
    // Append-only: refuse changes to audit entries made through this
    // connection (the upgrade above may only add the unsigned index field).
    this.audit.hook('updating', (mods) => {
      const keys = Object.keys(mods as object);
      if (keys.length === 0 || keys.every((k) => k === 'deviceIds')) return undefined;
      throw new AppendOnlyError();
    });
    this.audit.hook('deleting', () => {
      throw new AppendOnlyError();
    });
    // the control logs and identifier journals are append-only too
    for (const t of (upTo >= 4 ? [this.stationLog, this.journal] : []) as Table[]) {
      t.hook('updating', () => {
        throw new AppendOnlyError();
      });
      t.hook('deleting', () => {
        throw new AppendOnlyError();
      });
    }
  }
}

/** Open (and upgrade if needed) the local records database. */
export async function openStore(opts: OpenOptions = {}): Promise<FieldbenchDB> {
  const db = new FieldbenchDB(opts);
  await db.open();
  return db;
}

/**
 * Device inventory: upsert, lookup by any identifier, search, duplicate
 * detection, CSV and JSON export.
 *
 * A device record is merged with an existing one only when no identifier
 * conflicts (same kind, different value). So a second device key under a
 * known serial, or a known MAC under a new serial, makes a new record, and
 * `duplicates()` reports the pair for a technician to look at: a cloned or
 * re-flashed device must not silently inherit another device's history.
 */
import { storeWrite, type DeviceFacts, type DeviceRecord, type FieldbenchDB } from './db.ts';
import {
  candidateKeys,
  idKeys,
  ID_KINDS,
  ID_PREFIX,
  IdentifierError,
  normaliseId,
  normaliseIds,
  type DeviceIdentifiers,
  type DeviceIdentifiersInput,
  type IdKind,
} from './ids.ts';
import { FieldbenchError } from '../base/errors.ts';

export interface DeviceUpdate extends DeviceIdentifiersInput, DeviceFacts {
  /** Update this record (its identifiers are replaced by the given ones). */
  id?: number;
  /** When the device was seen (ms since epoch); default now. */
  seen?: number;
  /**
   * Identifiers the device has rotated (a new DevEUI): they replace the matched
   * record's and are not used to find it (the old value would conflict).
   */
  rotated?: DeviceIdentifiersInput;
}

export class InventoryError extends FieldbenchError<'inventory'> {
  constructor(message: string) {
    super('inventory', message);
    this.name = 'InventoryError';
  }
}

function conflicts(rec: DeviceIdentifiers, ids: DeviceIdentifiers): boolean {
  for (const k of ID_KINDS) {
    if (rec[k] !== undefined && ids[k] !== undefined && rec[k] !== ids[k]) return true;
  }
  return false;
}

function matches(rec: DeviceIdentifiers, ids: DeviceIdentifiers): number {
  let n = 0;
  for (const k of ID_KINDS) if (rec[k] !== undefined && rec[k] === ids[k]) n++;
  return n;
}

function applyFields(rec: DeviceRecord, u: DeviceUpdate, seen: number): void {
  if (u.model !== undefined) rec.model = u.model;
  if (u.firmware !== undefined) rec.firmware = u.firmware;
  if (u.configSeq !== undefined) {
    if (!Number.isSafeInteger(u.configSeq) || u.configSeq < 0) throw new InventoryError('configSeq must be a non-negative integer');
    rec.configSeq = u.configSeq;
  }
  if (u.verdict !== undefined) {
    rec.verdict = u.verdict;
    rec.verdictTime = u.verdictTime ?? seen;
  }
  if (u.label !== undefined) rec.label = u.label;
  if (seen > rec.lastSeen) rec.lastSeen = seen;
}

/** Build a new record from an update (no database access). */
export function newDeviceRecord(u: DeviceUpdate): DeviceRecord {
  const ids = { ...normaliseIds(u), ...normaliseIds(u.rotated ?? {}) };
  const keys = idKeys(ids);
  if (keys.length === 0) throw new InventoryError('a device needs at least one identifier (serial, device key, UEID, MAC or DevEUI)');
  const seen = u.seen ?? Date.now();
  const rec: DeviceRecord = { ...ids, firstSeen: seen, lastSeen: seen, ids: keys };
  applyFields(rec, u, seen);
  return rec;
}

/**
 * Insert or merge one device. Runs in its own transaction, or inside the
 * caller's when called from one that includes `devices` (recordOperation does).
 */
export async function upsertDevice(db: FieldbenchDB, u: DeviceUpdate): Promise<DeviceRecord> {
  const ids = normaliseIds(u);
  const seen = u.seen ?? Date.now();
  return storeWrite('device record', () =>
    db.transaction('rw', db.devices, async () => {
      if (u.id !== undefined) {
        const rec = await db.devices.get(u.id);
        if (!rec) throw new InventoryError(`no device record ${u.id}`);
        for (const k of ID_KINDS) if (ids[k] !== undefined) rec[k] = ids[k];
        Object.assign(rec, normaliseIds(u.rotated ?? {}));
        rec.ids = idKeys(rec);
        applyFields(rec, u, seen);
        await db.devices.put(rec);
        return rec;
      }
      const keys = idKeys(ids);
      if (keys.length === 0) throw new InventoryError('a device needs at least one identifier (serial, device key, UEID, MAC or DevEUI)');
      const found = await byKeys(db, keys);
      let best: DeviceRecord | undefined;
      let bestScore = 0;
      const seenIds = new Set<number>();
      for (const c of found) {
        if (seenIds.has(c.id!)) continue;
        seenIds.add(c.id!);
        if (conflicts(c, ids)) continue;
        const s = matches(c, ids);
        if (s > bestScore || (s === bestScore && best && c.lastSeen > best.lastSeen)) {
          best = c;
          bestScore = s;
        }
      }
      if (!best) {
        const rec = newDeviceRecord({ ...u, ...ids, seen });
        rec.id = await db.devices.add(rec);
        return rec;
      }
      for (const k of ID_KINDS) if (ids[k] !== undefined) best[k] = ids[k];
      Object.assign(best, normaliseIds(u.rotated ?? {}));
      best.ids = idKeys(best);
      applyFields(best, u, seen);
      await db.devices.put(best);
      return best;
    }),
  );
}

/**
 * Add many new device records in one transaction (import, benchmarks). No
 * merging: use upsertDevice for devices that may already be known.
 * All or nothing: a failure (e.g. StoreFullError) leaves none of them stored.
 */
export async function addDevices(db: FieldbenchDB, updates: DeviceUpdate[]): Promise<number[]> {
  const recs = updates.map(newDeviceRecord);
  return storeWrite('device import', () =>
    db.transaction('rw', db.devices, () => db.devices.bulkAdd(recs, { allKeys: true }) as Promise<number[]>),
  );
}

/**
 * Every record carrying this identifier, most recently seen first. `id` is
 * either typed ({kind, value}) or raw text, which is tried as each kind whose
 * shape fits (a serial, a 32-byte key, a UEID, a MAC, a DevEUI).
 */
export async function findByIdentifier(
  db: FieldbenchDB,
  id: string | { kind: IdKind; value: string | Uint8Array },
): Promise<DeviceRecord[]> {
  let keys: string[];
  if (typeof id === 'string') {
    keys = candidateKeys(id);
  } else {
    try {
      keys = [ID_PREFIX[id.kind] + normaliseId(id.kind, id.value)];
    } catch (e) {
      if (e instanceof IdentifierError) return [];
      throw e;
    }
  }
  if (keys.length === 0) return [];
  return dedupeSorted(await byKeys(db, keys));
}

/**
 * Records under any of the typed keys. One equality lookup per key: a
 * handful of index seeks beats anyOf()'s cursor walk on some backends
 * (fake-indexeddb walks the index for anyOf).
 */
async function byKeys(db: FieldbenchDB, keys: string[]): Promise<DeviceRecord[]> {
  if (keys.length === 1) return db.devices.where('ids').equals(keys[0]).toArray();
  const lists = await Promise.all(keys.map((k) => db.devices.where('ids').equals(k).toArray()));
  return lists.flat();
}

function dedupeSorted(recs: DeviceRecord[]): DeviceRecord[] {
  if (recs.length > 1) {
    const byId = new Map<number, DeviceRecord>();
    for (const r of recs) byId.set(r.id!, r);
    recs = [...byId.values()];
    recs.sort((a, b) => b.lastSeen - a.lastSeen || a.id! - b.id!);
  }
  return recs;
}

export interface SearchFilters {
  verdict?: string | string[];
  model?: string;
  firmware?: string;
  /** Inclusive lastSeen range (ms since epoch). */
  lastSeenFrom?: number;
  lastSeenTo?: number;
  /** Default 200. */
  limit?: number;
}

/**
 * Case-insensitive text search over identifiers, model, firmware and label,
 * narrowed by filters; most recently seen first.
 */
export async function search(db: FieldbenchDB, query: string, filters: SearchFilters = {}): Promise<DeviceRecord[]> {
  const limit = filters.limit ?? 200;
  const q = query.trim().toLowerCase();
  const qHex = q.replace(/[:\-.\s]/g, '').replace(/^0x/, '');
  const verdicts = filters.verdict === undefined ? undefined : new Set(Array.isArray(filters.verdict) ? filters.verdict : [filters.verdict]);
  const from = filters.lastSeenFrom ?? -Infinity;
  const to = filters.lastSeenTo ?? Infinity;
  const pred = (r: DeviceRecord): boolean => {
    if (verdicts && (r.verdict === undefined || !verdicts.has(r.verdict))) return false;
    if (filters.model !== undefined && r.model !== filters.model) return false;
    if (filters.firmware !== undefined && r.firmware !== filters.firmware) return false;
    if (r.lastSeen < from || r.lastSeen > to) return false;
    if (!q) return true;
    if (r.serial?.toLowerCase().includes(q)) return true;
    if (r.model?.toLowerCase().includes(q) || r.firmware?.toLowerCase().includes(q) || r.label?.toLowerCase().includes(q)) return true;
    if (qHex && /^[0-9a-f]+$/.test(qHex)) {
      for (const k of ['devicePublicKey', 'ueid', 'mac', 'devEui'] as const) if (r[k]?.includes(qHex)) return true;
    }
    return false;
  };
  // Narrow with the most selective index available, then filter.
  let coll;
  if (filters.model !== undefined) coll = db.devices.where('model').equals(filters.model);
  else if (filters.firmware !== undefined) coll = db.devices.where('firmware').equals(filters.firmware);
  else if (verdicts) coll = db.devices.where('verdict').anyOf([...verdicts]);
  else if (filters.lastSeenFrom !== undefined || filters.lastSeenTo !== undefined) {
    coll = db.devices.where('lastSeen').between(filters.lastSeenFrom ?? -Infinity, filters.lastSeenTo ?? Infinity, true, true);
  } else {
    // Already in lastSeen order: stop after `limit` hits.
    return db.devices.orderBy('lastSeen').reverse().filter(pred).limit(limit).toArray();
  }
  const recs = await coll.filter(pred).toArray();
  recs.sort((a, b) => b.lastSeen - a.lastSeen || a.id! - b.id!);
  return recs.slice(0, limit);
}

export type Duplicate =
  | {
      kind: 'identifier-under-two-serials';
      idKind: Exclude<IdKind, 'serial'>;
      value: string;
      serials: string[];
      deviceIds: number[];
    }
  | { kind: 'serial-with-two-keys'; serial: string; keys: string[]; deviceIds: number[] };

const LOGICAL: Exclude<IdKind, 'serial'>[] = ['devicePublicKey', 'ueid', 'mac', 'devEui'];

/**
 * Identity conflicts in the inventory: the same device key / UEID / MAC /
 * DevEUI recorded under two different serials, or the same serial recorded
 * with two different device keys (cloning, board swaps, re-provisioning).
 */
export async function duplicates(db: FieldbenchDB): Promise<Duplicate[]> {
  const byLogical = new Map<string, Map<string, number[]>>(); // 'kind:value' -> serial -> record ids
  const bySerial = new Map<string, Map<string, number[]>>(); // serial -> key -> record ids
  const add = (m: Map<string, Map<string, number[]>>, a: string, b: string, id: number) => {
    let inner = m.get(a);
    if (!inner) m.set(a, (inner = new Map()));
    const list = inner.get(b);
    if (list) list.push(id);
    else inner.set(b, [id]);
  };
  await db.devices.each((r) => {
    if (r.serial === undefined) return;
    for (const k of LOGICAL) {
      const v = r[k];
      if (v !== undefined) add(byLogical, `${k}:${v}`, r.serial, r.id!);
    }
    if (r.devicePublicKey !== undefined) add(bySerial, r.serial, r.devicePublicKey, r.id!);
  });
  const out: Duplicate[] = [];
  for (const [key, serials] of byLogical) {
    if (serials.size < 2) continue;
    const i = key.indexOf(':');
    out.push({
      kind: 'identifier-under-two-serials',
      idKind: key.slice(0, i) as Exclude<IdKind, 'serial'>,
      value: key.slice(i + 1),
      serials: [...serials.keys()].sort(),
      deviceIds: [...serials.values()].flat().sort((a, b) => a - b),
    });
  }
  for (const [serial, keys] of bySerial) {
    if (keys.size < 2) continue;
    out.push({
      kind: 'serial-with-two-keys',
      serial,
      keys: [...keys.keys()].sort(),
      deviceIds: [...keys.values()].flat().sort((a, b) => a - b),
    });
  }
  return out;
}

// ---------------------------------------------------------------- export

export const CSV_COLUMNS = [
  'id',
  'serial',
  'devicePublicKey',
  'ueid',
  'mac',
  'devEui',
  'model',
  'firmware',
  'configSeq',
  'verdict',
  'verdictTime',
  'firstSeen',
  'lastSeen',
  'label',
] as const;

/**
 * One CSV cell: RFC 4180 quoting (fields with comma, quote, CR or LF are
 * quoted, quotes doubled) after neutralising spreadsheet formulas: a cell
 * starting with = + - @ (or tab / CR, which some spreadsheets skip) is
 * prefixed with a single quote.
 */
export function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  let s = typeof v === 'string' ? v : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  if (/[",\r\n]/.test(s)) s = '"' + s.replace(/"/g, '""') + '"';
  return s;
}

const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());

/** RFC 4180 CSV (CRLF line ends, header row) of the given records. */
export function devicesToCsv(recs: Iterable<DeviceRecord>): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of recs) {
    const row: unknown[] = [
      r.id,
      r.serial,
      r.devicePublicKey,
      r.ueid,
      r.mac,
      r.devEui,
      r.model,
      r.firmware,
      r.configSeq,
      r.verdict,
      iso(r.verdictTime),
      iso(r.firstSeen),
      iso(r.lastSeen),
      r.label,
    ];
    lines.push(row.map(csvCell).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

export async function exportInventoryCsv(db: FieldbenchDB): Promise<string> {
  return devicesToCsv(await db.devices.orderBy('id').toArray());
}

export interface InventoryExport {
  format: 'fieldbench-inventory';
  version: 1;
  exported: string;
  devices: Omit<DeviceRecord, 'ids'>[];
}

export async function exportInventoryJson(db: FieldbenchDB, now = Date.now()): Promise<string> {
  const recs = await db.devices.orderBy('id').toArray();
  const out: InventoryExport = {
    format: 'fieldbench-inventory',
    version: 1,
    exported: new Date(now).toISOString(),
    devices: recs.map(({ ids: _ids, ...rest }) => rest),
  };
  return JSON.stringify(out, null, 1);
}

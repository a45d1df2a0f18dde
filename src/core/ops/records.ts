/**
 * Read models for the records pages (inventory, history, audit): filter
 * parsing, distinct values for the filter menus, and plain-text descriptions
 * of audit entries. Framework-free; the Svelte pages only render these.
 */
import type { AuditRecord, DeviceRecord, FieldbenchDB } from '../store/db.ts';
import { ID_KINDS, type IdKind } from '../store/ids.ts';
import { duplicates, findByIdentifier, search, type Duplicate, type SearchFilters } from '../store/inventory.ts';
import { deviceHistory } from '../store/audit.ts';

export const ID_LABELS: Record<IdKind, string> = {
  serial: 'Serial',
  devicePublicKey: 'Device key',
  ueid: 'UEID',
  mac: 'MAC',
  devEui: 'DevEUI',
};

/** The filter form as the page holds it (all text; empty = no filter). */
export interface InventoryQuery {
  text: string;
  verdict: string;
  model: string;
  firmware: string;
  /** 'any' | '1d' | '7d' | '30d' | 'older30d' */
  lastSeen: string;
}

export const LAST_SEEN_CHOICES: { value: string; label: string }[] = [
  { value: 'any', label: 'any time' },
  { value: '1d', label: 'in the last 24 hours' },
  { value: '7d', label: 'in the last 7 days' },
  { value: '30d', label: 'in the last 30 days' },
  { value: 'older30d', label: 'more than 30 days ago' },
];

const DAY = 86_400_000;

export function toFilters(q: InventoryQuery, now = Date.now(), limit = 500): SearchFilters {
  const f: SearchFilters = { limit };
  if (q.verdict) f.verdict = q.verdict;
  if (q.model) f.model = q.model;
  if (q.firmware) f.firmware = q.firmware;
  switch (q.lastSeen) {
    case '1d':
      f.lastSeenFrom = now - DAY;
      break;
    case '7d':
      f.lastSeenFrom = now - 7 * DAY;
      break;
    case '30d':
      f.lastSeenFrom = now - 30 * DAY;
      break;
    case 'older30d':
      f.lastSeenTo = now - 30 * DAY;
      break;
  }
  return f;
}

/**
 * Exact identifier matches first (a scanned serial, key, MAC...), then the
 * text search over identifiers, model, firmware and label, narrowed by the
 * filters; no record twice.
 */
export async function queryInventory(db: FieldbenchDB, q: InventoryQuery, now = Date.now()): Promise<DeviceRecord[]> {
  const f = toFilters(q, now);
  const text = q.text.trim();
  const found = await search(db, text, f);
  if (!text) return found;
  const exact = (await findByIdentifier(db, text)).filter((r) => {
    if (f.verdict !== undefined && r.verdict !== f.verdict) return false;
    if (f.model !== undefined && r.model !== f.model) return false;
    if (f.firmware !== undefined && r.firmware !== f.firmware) return false;
    if (f.lastSeenFrom !== undefined && r.lastSeen < f.lastSeenFrom) return false;
    if (f.lastSeenTo !== undefined && r.lastSeen > f.lastSeenTo) return false;
    return true;
  });
  const ids = new Set(exact.map((r) => r.id));
  return [...exact, ...found.filter((r) => !ids.has(r.id))];
}

/** Distinct values of an indexed field, for the filter menus. */
export async function distinctValues(db: FieldbenchDB, field: 'model' | 'firmware' | 'verdict'): Promise<string[]> {
  const keys = await db.devices.orderBy(field).uniqueKeys();
  return keys.filter((k): k is string => typeof k === 'string' && k !== '').sort((a, b) => a.localeCompare(b));
}

/** The identifiers a record carries, labelled, in a fixed order. */
export function identifiersOf(r: Partial<Record<IdKind, string>>): { kind: IdKind; label: string; value: string }[] {
  const out: { kind: IdKind; label: string; value: string }[] = [];
  for (const k of ID_KINDS) {
    const v = r[k];
    if (v) out.push({ kind: k, label: ID_LABELS[k], value: v });
  }
  return out;
}

export function describeDuplicate(d: Duplicate): string {
  if (d.kind === 'serial-with-two-keys') {
    return `Serial ${d.serial} was recorded with ${d.keys.length} different device keys (cloned device, board swap or re-provisioning?)`;
  }
  return `${ID_LABELS[d.idKind]} ${d.value} was recorded under ${d.serials.length} serials: ${d.serials.join(', ')}`;
}

export async function duplicateReport(db: FieldbenchDB): Promise<{ duplicate: Duplicate; text: string; devices: DeviceRecord[] }[]> {
  const list = await duplicates(db);
  const out = [];
  for (const d of list) {
    const devices = (await db.devices.bulkGet(d.deviceIds)).filter((r): r is DeviceRecord => r !== undefined);
    out.push({ duplicate: d, text: describeDuplicate(d), devices });
  }
  return out;
}

export interface HistoryLine {
  seq: number;
  time: string;
  op: string;
  outcome: string;
  technician: string;
  details: string;
}

/** One audit entry as a line of text (details as compact JSON, never secrets: audit details are redacted at write time). */
export function historyLine(e: AuditRecord): HistoryLine {
  return {
    seq: e.seq,
    time: new Date(e.time).toISOString(),
    op: e.op,
    outcome: e.outcome,
    technician: `${e.technician.id} (${e.technician.keyId})`,
    details: e.details ? JSON.stringify(e.details) : '',
  };
}

/** A device's history from the audit trail (any of its identifiers), oldest first. */
export async function deviceHistoryLines(db: FieldbenchDB, r: DeviceRecord): Promise<HistoryLine[]> {
  return (await deviceHistory(db, r)).map(historyLine);
}

/** The newest entries of the trail, newest first. */
export async function recentAudit(db: FieldbenchDB, limit = 200): Promise<{ total: number; lines: HistoryLine[] }> {
  const total = await db.audit.count();
  const recs = await db.audit.orderBy('seq').reverse().limit(limit).toArray();
  return { total, lines: recs.map(historyLine) };
}

/** Name of an export file with the date, e.g. fieldbench-audit-2026-11-21.json */
export function exportFileName(what: 'audit' | 'inventory', ext: 'json' | 'csv', now = Date.now()): string {
  return `fieldbench-${what}-${new Date(now).toISOString().slice(0, 10)}.${ext}`;
}

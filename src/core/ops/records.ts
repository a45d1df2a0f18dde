/**
 * Read models for the records pages (inventory, history, audit): filter
 * parsing, distinct values for the filter menus, and plain-text descriptions
 * of audit entries. Framework-free; the Svelte pages only render these.
 */
import { JOB_OP, jobEntryWords } from './job/record.ts';
import type { AuditRecord, DeviceRecord, FieldbenchDB } from '../store/db.ts';
import { ID_KINDS, type IdKind } from '../store/ids.ts';
import { keyIdHex } from '../store/sig.ts';
import { duplicates, findByIdentifier, search, type Duplicate, type SearchFilters } from '../store/inventory.ts';
import { deviceHistory } from '../store/audit.ts';
import { fromHex } from '../base/bytes.ts';

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

/** A device's history as the pages show it (a sentence per entry, local time, the recorded details behind a disclosure), oldest first. */
export async function deviceHistoryViews(db: FieldbenchDB, r: DeviceRecord): Promise<AuditEntryView[]> {
  return (await deviceHistory(db, r)).map(describeAuditEntry);
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

// ---------------------------------------------------------------- audit page view

/** Outcomes the operations record, in the order the filter menu lists them. */
export const AUDIT_OUTCOMES = ['ok', 'attention', 'rejected', 'failed', 'cancelled', 'reverted', 'not-supported'] as const;

/** Badge colour of an outcome: ok (green), warn (amber), bad (red), neutral (grey; cancelled, not supported, unknown). */
export type AuditTone = 'ok' | 'warn' | 'bad' | 'neutral';

const OUTCOME_TONE: Record<string, AuditTone> = {
  ok: 'ok',
  attention: 'warn',
  rejected: 'bad',
  failed: 'bad',
  reverted: 'bad',
  cancelled: 'neutral',
  'not-supported': 'neutral',
};

const OUTCOME_MEANING: Record<string, string> = {
  ok: 'done as asked',
  attention: 'done, but something needs a look',
  rejected: 'refused: a check did not pass',
  failed: 'did not complete (error)',
  cancelled: 'stopped by the technician',
  reverted: 'the device went back to its previous state',
  'not-supported': 'the device does not offer this',
};

export interface AuditEntryView {
  seq: number;
  /** Serial, else "key <key id>" (first 8 bytes of SHA-256 of the device key, hex), else another identifier; '—' when none. */
  device: string;
  /** Every identifier of the device, labelled (for a tooltip). */
  deviceTitle: string;
  op: string;
  outcome: string;
  tone: AuditTone;
  /** What the outcome means, in words (for a tooltip). */
  outcomeMeaning: string;
  /** Technician id. */
  who: string;
  /** Technician key id. */
  whoKey: string;
  /** Local time, "YYYY-MM-DD HH:MM:SS". */
  when: string;
  /** UTC, ISO 8601. */
  whenIso: string;
  /** One short sentence about what happened. */
  summary: string;
  /** The recorded details as indented JSON ('' when none). Never secrets: details are checked at write time. */
  raw: string;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** ms since the epoch as local "YYYY-MM-DD HH:MM:SS". */
export function localTime(ms: number): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return String(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function deviceKeyId(hex: string): string {
  try {
    return keyIdHex(fromHex(hex));
  } catch {
    return hex.slice(0, 16);
  }
}

const short = (s: string, n = 16) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** The device column: serial, else a short device key id, else another identifier. */
export function auditDeviceLabel(ids: Partial<Record<IdKind, string>>): string {
  if (ids.serial) return ids.serial;
  if (ids.devicePublicKey) return `key ${deviceKeyId(ids.devicePublicKey)}`;
  if (ids.ueid) return `UEID ${short(ids.ueid)}`;
  if (ids.mac) return `MAC ${ids.mac}`;
  if (ids.devEui) return `DevEUI ${ids.devEui}`;
  return '—';
}

const MAX_SUMMARY = 200;

function clip(s: string, n = MAX_SUMMARY): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : typeof v === 'number' ? String(v) : undefined);
const digestText = (v: unknown): string => (typeof v === 'string' && v ? ` (sha256 ${v.slice(0, 8)}…)` : '');
const withReason = (head: string, reason: string | undefined) => (reason ? `${head}: ${reason}` : head);

interface CheckLike {
  check?: unknown;
  result?: unknown;
  detail?: unknown;
}

function notPassing(list: unknown): CheckLike[] {
  if (!Array.isArray(list)) return [];
  const bad = list.filter((c): c is CheckLike => !!c && typeof c === 'object' && (c as CheckLike).result !== 'pass' && (c as CheckLike).result !== undefined);
  // failures before warnings
  return [...bad.filter((c) => c.result === 'fail'), ...bad.filter((c) => c.result !== 'fail')];
}

function firstCheck(list: CheckLike[]): string {
  if (!list.length) return '';
  const c = list[0];
  const name = text(c.check) ?? 'check';
  const detail = text(c.detail);
  return `${name}${detail ? ` (${detail})` : ''}${list.length > 1 ? `; ${list.length - 1} more` : ''}`;
}

function identifySummary(outcome: string, d: Record<string, unknown>): string {
  const badges = Array.isArray(d.badges) ? d.badges.filter((b): b is string => typeof b === 'string' && b !== 'verified' && b !== 'unverified') : [];
  const bad = notPassing(d.checks);
  const model = text(d.model);
  if (outcome === 'ok') return `identity verified${model ? ` (${model})` : ''}`;
  if (outcome === 'attention') return withReason(`identity verified${badges.length ? `, but ${badges.join(', ')}` : ', with warnings'}`, firstCheck(bad));
  if (outcome === 'rejected') return withReason('identity NOT verified', firstCheck(bad));
  return withReason(`identification ${outcome}`, text(d.reason) ?? firstCheck(bad));
}

function attestSummary(outcome: string, d: Record<string, unknown>): string {
  const verdict = text(d.verdict);
  const bad = notPassing(d.reasons);
  if (!verdict) return withReason(`attestation ${outcome}`, text(d.reason) ?? firstCheck(bad));
  const sw = (d.claims as { software?: { version?: unknown }[] } | undefined)?.software;
  const fw = Array.isArray(sw) ? text(sw[0]?.version) : undefined;
  if (!bad.length) return `verdict ${verdict}${fw ? `, firmware ${fw}` : ''}`;
  return `verdict ${verdict}: ${firstCheck(bad)}`;
}

function configureSummary(outcome: string, d: Record<string, unknown>): string {
  const action = text(d.action);
  const seq = text(d.sequence);
  const what = seq ? `configuration #${seq}` : 'configuration';
  const reason = text(d.reason);
  if (outcome === 'ok') {
    const verb = action === 'restore' ? 'restored' : action === 'write' ? 'written' : 'applied';
    const from = action === 'restore' && text(d.source) ? ` from ${text(d.source)}` : '';
    return `${what} ${verb}${from}${digestText(d.digest)}`;
  }
  if (d.signed === false || action === 'write') {
    const keys = Array.isArray(d.keys) ? d.keys.filter((k): k is string => typeof k === 'string') : [];
    if (outcome === 'attention') return `unsigned settings written${keys.length ? `: ${keys.join(', ')}` : ''}`;
    return withReason(`unsigned settings ${outcome}`, reason);
  }
  const label = action === 'restore' ? `restore of ${what}` : what;
  if (outcome === 'rejected') {
    const by = d.by === 'device' ? 'the device' : 'this tool';
    return withReason(`${label} refused by ${by}`, reason ?? text(d.code));
  }
  return withReason(`${label} ${outcome}`, reason ?? text(d.code));
}

/** "1.1.0+0" as people write it: "1.1.0". */
const plain = (v: string | undefined) => v?.replace(/\+0$/, '');

function updateSummary(outcome: string, d: Record<string, unknown>): string {
  const version = plain(text(d.version) ?? text(d.imageVersion));
  const reason = text(d.reason) ?? text(d.preflight);
  if (outcome === 'ok') return `firmware ${version ?? '?'} confirmed`;
  if (outcome === 'attention') return `firmware ${version ?? '?'} running as a test, not confirmed`;
  const target = text(d.imageVersion) ? ` to ${plain(text(d.imageVersion))}` : text(d.image) ? ` (${text(d.image)})` : '';
  if (outcome === 'cancelled') {
    const sent = typeof d.sent === 'number' ? ` after ${d.sent} bytes` : '';
    return withReason(`firmware update${target} cancelled${sent}`, reason);
  }
  return withReason(`firmware update${target} ${outcome}`, reason);
}

function eventsSummary(outcome: string, d: Record<string, unknown>): string {
  if (typeof d.count !== 'number') return withReason(`event log read ${outcome}`, text(d.reason));
  const n = d.count;
  return `${n} event${n === 1 ? '' : 's'} read${typeof d.last === 'number' ? `, newest counter ${d.last}` : ''}${d.truncated === true ? ' (more on the device)' : ''}`;
}

const colonHex = (v: string) => (v.match(/../g) ?? []).join(':').toUpperCase();

function rotateSummary(outcome: string, d: Record<string, unknown>): string {
  const old = text(d.old);
  const now = text(d.new);
  if (outcome !== 'ok' || !now) return withReason(`rotation ${outcome}`, text(d.reason));
  if (d.what === 'dev-eui') return `DevEUI replaced: ${old ? colonHex(old) : 'none'} → ${colonHex(now)}; receipt signed by the device`;
  return `network key replaced: key id ${old ?? 'none'} → ${now}; receipt signed by the device`;
}

function wipeSummary(outcome: string, d: Record<string, unknown>): string {
  if (outcome !== 'ok') return withReason(`wipe ${outcome}`, text(d.reason));
  const seq = typeof d.erasedSequence === 'number' && d.erasedSequence > 0 ? `configuration #${d.erasedSequence}` : 'configuration';
  return `wiped: ${seq} and secrets erased; identity kept`;
}

function interfaceSummary(outcome: string, d: Record<string, unknown>): string {
  if (outcome !== 'ok') return withReason(`interface change ${outcome}`, text(d.reason));
  const changed = text(d.changed);
  return changed ? `interfaces: ${changed.replace(/ -> /g, ' → ')}` : 'interfaces unchanged';
}

function genericSummary(op: string, outcome: string, d: Record<string, unknown>): string {
  const reason = text(d.reason);
  const scalars = Object.entries(d)
    .filter(([k, v]) => k !== 'reason' && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'))
    .slice(0, 4)
    .map(([k, v]) => `${k} ${typeof v === 'string' ? short(v, 40) : String(v)}`);
  const head = outcome === 'ok' ? `${op} done` : `${op} ${outcome}`;
  return withReason(scalars.length ? `${head} (${scalars.join(', ')})` : head, reason);
}

/** One short sentence about an audit entry, by operation type. */
export function auditSummary(e: Pick<AuditRecord, 'op' | 'outcome' | 'details'>): string {
  const d = e.details ?? {};
  let s: string;
  if (e.outcome === 'not-supported') s = withReason(`${e.op}: not supported by the device`, text(d.reason));
  else
    switch (e.op) {
      case 'identify':
        s = identifySummary(e.outcome, d);
        break;
      case 'attest':
        s = attestSummary(e.outcome, d);
        break;
      case 'configure':
        s = configureSummary(e.outcome, d);
        break;
      case 'update':
        s = updateSummary(e.outcome, d);
        break;
      case 'events':
        s = eventsSummary(e.outcome, d);
        break;
      case JOB_OP:
        s = jobEntryWords(d);
        break;
      case 'rotate':
        s = rotateSummary(e.outcome, d);
        break;
      case 'wipe':
        s = wipeSummary(e.outcome, d);
        break;
      case 'interface':
        s = interfaceSummary(e.outcome, d);
        break;
      default:
        s = genericSummary(e.op, e.outcome, d);
    }
  return clip(s);
}

/** An audit entry as the audit page shows it (framework-free; the page only renders this). */
export function describeAuditEntry(e: Pick<AuditRecord, 'seq' | 'time' | 'technician' | 'op' | 'device' | 'outcome' | 'details'>): AuditEntryView {
  const ids = identifiersOf(e.device ?? {});
  return {
    seq: e.seq,
    device: auditDeviceLabel(e.device ?? {}),
    deviceTitle: ids.map((i) => `${i.label} ${i.value}`).join(' · ') || 'no device identifiers recorded',
    op: e.op,
    outcome: e.outcome,
    tone: OUTCOME_TONE[e.outcome] ?? 'neutral',
    outcomeMeaning: OUTCOME_MEANING[e.outcome] ?? e.outcome,
    who: e.technician.id,
    whoKey: e.technician.keyId,
    when: localTime(e.time),
    whenIso: Number.isFinite(e.time) ? new Date(e.time).toISOString() : String(e.time),
    summary: auditSummary(e),
    raw: e.details ? JSON.stringify(e.details, null, 1) : '',
  };
}

/** The audit page's filters (empty = any). `device` matches any identifier, the key id or the device label, case-insensitively; separators in hex are ignored. */
export interface AuditFilter {
  op?: string;
  outcome?: string;
  device?: string;
}

const HEX_KINDS: IdKind[] = ['devicePublicKey', 'ueid', 'mac', 'devEui'];

/** Does an entry pass the filter? */
export function auditMatches(e: Pick<AuditRecord, 'op' | 'outcome' | 'device'>, f: AuditFilter): boolean {
  if (f.op && e.op !== f.op) return false;
  if (f.outcome && e.outcome !== f.outcome) return false;
  const q = (f.device ?? '').trim().toLowerCase();
  if (!q) return true;
  const ids = e.device ?? {};
  if (ids.serial?.toLowerCase().includes(q)) return true;
  const hex = q.replace(/^(key|mac|ueid|deveui)\s+/, '').replace(/[\s:.-]/g, '');
  if (!hex || !/^[0-9a-f]+$/.test(hex)) return false;
  for (const k of HEX_KINDS) if (ids[k]?.includes(hex)) return true;
  return !!ids.devicePublicKey && deviceKeyId(ids.devicePublicKey).includes(hex);
}

const filtered = (f: AuditFilter) => !!(f.op || f.outcome || (f.device ?? '').trim());

/**
 * The newest entries of the whole trail that pass the filter, newest first,
 * as views; `total` = entries in the trail, `matched` = entries that pass.
 */
export async function queryAudit(db: FieldbenchDB, f: AuditFilter = {}, limit = 200): Promise<{ total: number; matched: number; entries: AuditEntryView[] }> {
  const total = await db.audit.count();
  if (!filtered(f)) {
    const recs = await db.audit.orderBy('seq').reverse().limit(limit).toArray();
    return { total, matched: total, entries: recs.map(describeAuditEntry) };
  }
  const base = f.op ? db.audit.where('op').equals(f.op) : db.audit.toCollection();
  const recs = (await base.filter((r) => auditMatches(r, f)).toArray()).sort((a, b) => b.seq - a.seq);
  return { total, matched: recs.length, entries: recs.slice(0, limit).map(describeAuditEntry) };
}

/** Operations present in the trail (for the filter menu). */
export async function auditOps(db: FieldbenchDB): Promise<string[]> {
  const keys = await db.audit.orderBy('op').uniqueKeys();
  return keys.filter((k): k is string => typeof k === 'string').sort((a, b) => a.localeCompare(b));
}

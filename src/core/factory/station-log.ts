/**
 * The Bench page's control log and identifier journal, kept in the app's
 * store (docs/FACTORY.md, "What the app keeps").
 *
 * Control log: one chain per station key (table stationLog). Each unit's
 * entry is chained and signed with the station key by chainEntries, the same
 * body, hash and signature as the CLI's records log (cli/records.ts), under
 * the same technician id (`station:<key id>`), so its export verifies with
 * `fieldbench audit verify` and its records-log form imports on the Audit
 * page. The entry is stored first (its own transaction: a unit is recorded
 * once this resolves), then taken into the app's audit trail and inventory
 * through the records import (ops/records-import.ts: countersigned, naming
 * where it came from, inventoryOfEntry), so the inventory lists the unit with
 * its identifiers and duplicate detection covers it. The import is
 * idempotent; syncStationLog verifies a whole stored log and takes in what a
 * page closed between the two writes left out.
 *
 * Identifier journal: a JournalStore (factory/identifiers.ts) over the
 * journal table, so identifiers issued before a reload are never reissued.
 */
import { auditRecordToExport, chainEntries, type AuditExport, type AuditExportEntry, type AuditInput } from '../store/audit.ts';
import type { FieldbenchDB, StationLogRecord } from '../store/db.ts';
import { storeWrite } from '../store/db.ts';
import { RECORDS_HEADER, logAsExport } from '../store/records-log.ts';
import type { AuditSigner } from '../store/sig.ts';
import { keyIdHex } from '../store/sig.ts';
import { fromHex } from '../base/bytes.ts';
import { importEntries, importRecordsLog, type ImportResult } from '../ops/records-import.ts';
import { controlLogCsv } from './control-log.ts';
import type { JournalStore } from './identifiers.ts';
import type { Signer } from '../trust/signer.ts';

/** The station key as the control log's signer: technician id `station:<key id>`, as `bench run` writes it. */
export function stationAuditSigner(signer: Pick<Signer, 'publicKey' | 'sign'>): AuditSigner {
  return { id: `station:${keyIdHex(signer.publicKey)}`, publicKey: signer.publicKey, sign: (m) => signer.sign(m) };
}

const SEQ_DIGITS = 10;
const rowId = (station: string, seq: number) => `${station}/${String(seq).padStart(SEQ_DIGITS, '0')}`;

function rowsOf(db: FieldbenchDB, station: string) {
  return db.stationLog.where('id').between(`${station}/`, `${station}/\uffff`);
}

// one append at a time per database connection; another tab is caught by the row id (add fails, retried)
const queues = new WeakMap<FieldbenchDB, Promise<unknown>>();

function serialised<T>(db: FieldbenchDB, fn: () => Promise<T>): Promise<T> {
  const run = (queues.get(db) ?? Promise.resolve()).then(fn, fn);
  queues.set(
    db,
    run.catch(() => undefined),
  );
  return run;
}

export interface AppendedEntry {
  entry: AuditExportEntry;
  /** Taken into the audit trail and inventory (false: the trail write failed; syncStationLog retries it). */
  inTrail: boolean;
  trailError?: string;
}

/**
 * Append one entry to the station's control log (signed by `station`), durably,
 * then take it into the app's audit trail and inventory, countersigned by
 * `countersigner` (default: the station). Throws when the control log entry
 * could not be stored: the unit is then not recorded.
 */
export async function appendStationEntry(db: FieldbenchDB, station: AuditSigner, input: AuditInput, countersigner: AuditSigner = station): Promise<AppendedEntry> {
  const kid = keyIdHex(station.publicKey);
  // the control log write and its trail import run in one queue with syncStationLog: no entry is taken in twice
  return serialised(db, async () => {
    let entry: AuditExportEntry | undefined;
    for (let attempt = 0; attempt < 5 && !entry; attempt++) {
      const last = await rowsOf(db, kid).last();
      const head = last ? { seq: last.entry.seq, hash: fromHex(last.entry.hash) } : null;
      const [rec] = await chainEntries([input], station, head);
      const e = auditRecordToExport(rec);
      try {
        await storeWrite('control log entry', () => db.stationLog.add({ id: rowId(kid, e.seq), station: kid, entry: e }));
        entry = e;
      } catch (err) {
        if ((err as { name?: string })?.name === 'ConstraintError' || (err as { inner?: { name?: string } })?.inner?.name === 'ConstraintError') continue; // another tab appended this seq
        throw err;
      }
    }
    if (!entry) throw new Error('the control log head kept moving (another tab appending?)');
    try {
      await importEntries(db, countersigner, [entry]);
      return { entry, inTrail: true };
    } catch (err) {
      return { entry, inTrail: false, trailError: (err as Error).message };
    }
  });
}

/** A station's control log, oldest first. */
export async function stationLogEntries(db: FieldbenchDB, station: string): Promise<AuditExportEntry[]> {
  return (await rowsOf(db, station).toArray()).map((r: StationLogRecord) => r.entry);
}

export interface StationLogSummary {
  /** Station key id (hex). */
  station: string;
  /** The signer's technician id (`station:<key id>`). */
  signerId: string;
  entries: number;
  provisioned: number;
  failed: number;
  first: number;
  last: number;
  head: { seq: number; hash: string };
}

/** Every control log the app holds, the most recently written first. */
export async function stationLogs(db: FieldbenchDB): Promise<StationLogSummary[]> {
  const by = new Map<string, StationLogSummary>();
  await db.stationLog.orderBy('id').each((r: StationLogRecord) => {
    const e = r.entry;
    let s = by.get(r.station);
    if (!s) by.set(r.station, (s = { station: r.station, signerId: e.technician.id, entries: 0, provisioned: 0, failed: 0, first: e.time, last: e.time, head: { seq: e.seq, hash: e.hash } }));
    s.entries++;
    if (e.outcome === 'provisioned') s.provisioned++;
    else if (e.outcome === 'failed') s.failed++;
    s.first = Math.min(s.first, e.time);
    s.last = Math.max(s.last, e.time);
    s.head = { seq: e.seq, hash: e.hash };
  });
  return [...by.values()].sort((a, b) => b.last - a.last);
}

/** The log as the CLI's records log file (records.jsonl): what the Audit page's "Import CLI records…" reads. */
export function stationRecordsLog(entries: AuditExportEntry[]): string {
  return [RECORDS_HEADER, ...entries.map((e) => JSON.stringify(e))].join('\n') + '\n';
}

/** The files the Bench page offers for a station's log. */
export interface ControlLogDownload {
  name: string;
  mime: string;
  text: string;
}

/**
 * A stored control log as a file: `json`, an audit export of the station's chain
 * (`fieldbench audit verify FILE [--key station.pub.pem]` checks it); `csv`, one
 * row per unit as `bench run`'s export (controlLogCsv); `jsonl`, the records log.
 */
export async function controlLogDownload(db: FieldbenchDB, station: string, kind: 'json' | 'csv' | 'jsonl', now = Date.now()): Promise<ControlLogDownload> {
  const entries = await stationLogEntries(db, station);
  const base = `fieldbench-control-log-${station}-${new Date(now).toISOString().slice(0, 10)}`;
  if (kind === 'csv') return { name: `${base}.csv`, mime: 'text/csv', text: controlLogCsv(entries) };
  if (kind === 'jsonl') return { name: `${base}.jsonl`, mime: 'application/jsonl', text: stationRecordsLog(entries) };
  const doc: AuditExport = logAsExport(entries, now);
  return { name: `${base}.json`, mime: 'application/json', text: JSON.stringify(doc, null, 1) };
}

/**
 * Verify a station's whole stored log (chain, sequence, signatures, signed by
 * the station key) and take into the audit trail whatever is not there yet.
 */
export async function syncStationLog(db: FieldbenchDB, station: string, countersigner: AuditSigner, stationKey?: Uint8Array): Promise<ImportResult> {
  return serialised(db, async () => {
    const entries = await stationLogEntries(db, station);
    if (!entries.length) return { ok: true, imported: 0, skipped: 0, authenticated: false };
    return importRecordsLog(db, countersigner, stationRecordsLog(entries), stationKey ? { trustedKeys: [stationKey] } : {});
  });
}

/** An identifier journal (factory/identifiers.ts) in the app's store, under `name`. */
export function dbJournal(db: FieldbenchDB, name: string): JournalStore {
  return {
    async open() {
      const rows = await db.journal.where('name').equals(name).sortBy('id');
      // each line is one row, written whole: nothing is ever torn
      return { lines: rows.map((r) => r.line), torn: false };
    },
    async append(line: string) {
      await storeWrite('identifier journal', () => db.journal.add({ name, line }));
    },
    async close() {},
  };
}

/**
 * The records log: the CLI's audit trail on disk, readable by the app.
 *
 * A text file of JSON lines (`records.jsonl`):
 *   line 1   {"format":"fieldbench-records","version":1}
 *   line 2.. one audit entry per line, EXACTLY the entry format of the app's
 *            audit export (AuditExportEntry: seq, time, technician, op,
 *            device, outcome, details, prev, hash, sig, signer), chained and
 *            signed as the app chains and signs (audit.ts).
 * Every line ends in "\n"; an append writes one whole line and fsyncs. A last
 * line without its "\n" is a TORN append (the process or the machine died
 * mid-write): it is reported (code `torn`), never silently dropped; the
 * writer moves such bytes aside and records that it did (src/cli/records.ts).
 *
 * Verification reuses verifyAuditExport on the entries, so a log and an
 * export are checked by the same rules (chain, seq, signatures, named breaks).
 */
import { type AuditExport, type AuditExportEntry, type AuditFailure, verifyAuditExport } from './audit.ts';

export const RECORDS_FORMAT = 'fieldbench-records';
export const RECORDS_HEADER = JSON.stringify({ format: RECORDS_FORMAT, version: 1 });
export const RECORDS_FILE = 'records.jsonl';

export type RecordsFailure = AuditFailure | 'torn' | 'not-records';

export interface ParsedLog {
  entries: AuditExportEntry[];
  /** A last line without its newline: the append that did not finish. */
  torn?: { line: number; bytes: number; text: string };
  /** Byte length of the complete part (header and whole lines). */
  completeBytes: number;
}

export type ParseResult = ({ ok: true } & ParsedLog) | { ok: false; code: 'not-records' | 'malformed'; line: number; reason: string };

const utf8Length = (s: string) => new TextEncoder().encode(s).length;

/** Split a log into entries; never throws. */
export function parseRecordsLog(text: string): ParseResult {
  if (text.length === 0) return { ok: false, code: 'not-records', line: 1, reason: 'the file is empty (no records header)' };
  const parts = text.split('\n');
  const tail = parts.pop()!; // after the last "\n": '' when the file ends cleanly
  let torn: ParsedLog['torn'];
  if (tail !== '') {
    if (parts.length === 0) {
      // Not even the header is complete.
      if (!RECORDS_HEADER.startsWith(tail) && !tail.startsWith('{"format":"fieldbench-records"')) {
        return { ok: false, code: 'not-records', line: 1, reason: 'not a fieldbench records log (no records header)' };
      }
      return { ok: true, entries: [], torn: { line: 1, bytes: utf8Length(tail), text: tail }, completeBytes: 0 };
    }
    torn = { line: parts.length + 1, bytes: utf8Length(tail), text: tail };
  }
  let header: unknown;
  try {
    header = JSON.parse(parts[0]);
  } catch {
    return { ok: false, code: 'not-records', line: 1, reason: 'not a fieldbench records log (the first line is not its header)' };
  }
  const h = header as { format?: unknown; version?: unknown } | null;
  if (!h || typeof h !== 'object' || h.format !== RECORDS_FORMAT) return { ok: false, code: 'not-records', line: 1, reason: 'not a fieldbench records log (format)' };
  if (h.version !== 1) return { ok: false, code: 'malformed', line: 1, reason: `unsupported records log version ${String(h.version)}` };
  const entries: AuditExportEntry[] = [];
  for (let i = 1; i < parts.length; i++) {
    try {
      entries.push(JSON.parse(parts[i]) as AuditExportEntry);
    } catch (e) {
      return { ok: false, code: 'malformed', line: i + 1, reason: `line ${i + 1} is not JSON (${(e as Error).message}); only the last line can be an unfinished append` };
    }
  }
  const completeBytes = utf8Length(text) - (torn?.bytes ?? 0);
  return torn ? { ok: true, entries, torn, completeBytes } : { ok: true, entries, completeBytes };
}

/** The entries as an audit export (what verifyAuditExport and the app's audit import read). */
export function logAsExport(entries: AuditExportEntry[], now = Date.now()): AuditExport {
  const last = entries.at(-1);
  return { format: 'fieldbench-audit', version: 1, exported: new Date(now).toISOString(), entries, head: last ? { seq: last.seq, hash: last.hash } : null };
}

export type LogVerdict =
  | { ok: true; count: number; head: { seq: number; hash: string } | null; authenticated: boolean; signers: string[]; technicians: string[] }
  /** line: 1-based line of the file (the header is line 1, entry i is line i + 2). */
  | { ok: false; code: RecordsFailure; line: number; seq?: number; reason: string; count?: number };

/**
 * Verify a records log: header, every line, then the chain and signatures
 * (with `trustedKeys`, every entry must be signed by one of them). A torn
 * last line fails with code `torn` when everything before it verifies (and
 * says how many entries are intact); other breaks come first. Never throws.
 */
export async function verifyRecordsLog(text: string, trustedKeys?: Uint8Array[], opts: { expectedHead?: { seq: number; hash: string } } = {}): Promise<LogVerdict> {
  const p = parseRecordsLog(text);
  if (!p.ok) return { ok: false, code: p.code, line: p.line, reason: p.reason };
  const v = await verifyAuditExport(logAsExport(p.entries), trustedKeys, opts);
  if (!v.ok) return { ok: false, code: v.code, line: v.index < 0 ? 1 : v.index + 2, seq: v.seq, reason: v.reason };
  if (p.torn) {
    return {
      ok: false,
      code: 'torn',
      line: p.torn.line,
      count: v.count,
      reason: `the last line (line ${p.torn.line}, ${p.torn.bytes} bytes) is an append that did not finish; the ${v.count} entr${v.count === 1 ? 'y' : 'ies'} before it verify`,
    };
  }
  return { ok: true, count: v.count, head: v.head, authenticated: v.authenticated, signers: v.signers, technicians: [...new Set(p.entries.map((e) => e.technician.id))] };
}

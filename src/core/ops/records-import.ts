/**
 * Import a CLI records log (src/core/store/records-log.ts, written by the
 * CLI's device verbs) into the app: every entry is verified first (chain,
 * sequence, signatures, and with trusted keys, who signed), then each one the
 * app does not hold yet is appended to the app's own audit trail as an entry
 * of the same op and outcome, countersigned by the app's technician, naming
 * where it came from (the log's signer, the entry's seq and hash: the
 * original stays checkable against the log file), and the inventory is
 * updated from it by one rule (inventoryOfEntry). Importing the same log
 * again adds nothing. A log that does not verify imports nothing.
 */
import { type AuditExportEntry, recordOperation } from '../store/audit.ts';
import type { FieldbenchDB } from '../store/db.ts';
import type { DeviceUpdate } from '../store/inventory.ts';
import type { AuditSigner } from '../store/sig.ts';
import { CONTROL_OP } from '../factory/control-log.ts';
import { type RecordsFailure, parseRecordsLog, verifyRecordsLog } from '../store/records-log.ts';

export interface ImportedFrom {
  /** The log's signer key id and the entry's seq and hash in that log. */
  signer: string;
  seq: number;
  hash: string;
  technician: string;
  time: number;
}

export type ImportResult =
  | { ok: true; imported: number; skipped: number; authenticated: boolean }
  | { ok: false; code: RecordsFailure; reason: string; line?: number };

/**
 * What an imported entry tells the inventory: the device was seen, and, for
 * a successful op, what it now runs or holds. Nothing for an entry that names
 * no device, or that failed before the device answered for itself.
 */
export function inventoryOfEntry(e: AuditExportEntry): DeviceUpdate | null {
  const d = e.device ?? {};
  if (!d.serial && !d.devicePublicKey) return null;
  const u: DeviceUpdate = { ...d, seen: e.time };
  const det = (e.details ?? {}) as Record<string, unknown>;
  const ok = e.outcome === 'ok' || e.outcome === 'attention';
  // as the app's own identify record: an identity that did not verify leaves the inventory as it is
  if (e.op === 'identify' && e.outcome === 'rejected') return null;
  if (e.op === 'identify' && typeof det.model === 'string') u.model = det.model;
  if (e.op === 'identify' && e.outcome === 'ok') {
    u.verdict = 'verified';
    u.verdictTime = e.time;
  }
  if (e.op === 'update' && ok && typeof det.version === 'string') u.firmware = det.version;
  if (e.op === 'configure' && e.outcome === 'ok' && typeof det.sequence === 'number') u.configSeq = det.sequence;
  if (e.op === 'rotate' && e.outcome === 'ok' && det.what === 'dev-eui' && typeof det.new === 'string') {
    delete u.devEui;
    u.rotated = { devEui: det.new };
  }
  // a unit the factory station provisioned (factory/control-log.ts): its model, configuration and attestation verdict
  if (e.op === CONTROL_OP) {
    if (typeof det.model === 'string') u.model = det.model;
    if (e.outcome === 'provisioned') {
      if (typeof det.configSequence === 'number') u.configSeq = det.configSequence;
      if (typeof det.attestation === 'string') {
        u.verdict = det.attestation;
        u.verdictTime = e.time;
      }
    }
  }
  if (e.op === 'attest' && typeof det.verdict === 'string') {
    u.verdict = det.verdict;
    u.verdictTime = e.time;
  }
  return u;
}

/** The keys of the entries already imported (signer, seq, hash). */
async function importedKeys(db: FieldbenchDB): Promise<Set<string>> {
  const keys = new Set<string>();
  await db.audit.each((r) => {
    const f = (r.details as { importedFrom?: ImportedFrom } | undefined)?.importedFrom;
    if (f) keys.add(`${f.signer}/${f.seq}/${f.hash}`);
  });
  return keys;
}

export async function importRecordsLog(db: FieldbenchDB, signer: AuditSigner, text: string, opts: { trustedKeys?: Uint8Array[] } = {}): Promise<ImportResult> {
  const v = await verifyRecordsLog(text, opts.trustedKeys);
  if (!v.ok) return { ok: false, code: v.code, reason: v.reason, line: v.line };
  const p = parseRecordsLog(text);
  if (!p.ok) return { ok: false, code: p.code, reason: p.reason, line: p.line };
  const r = await importEntries(db, signer, p.entries, await importedKeys(db));
  return { ok: true, ...r, authenticated: v.authenticated };
}

/**
 * Take entries of a verified log into the trail (countersigned by `signer`) and
 * the inventory; those in `held` (signer/seq/hash) are skipped. The caller has
 * checked the entries: importRecordsLog verifies the whole log, the Bench page
 * (factory/station-log.ts) passes the entry it has just chained and signed.
 */
export async function importEntries(db: FieldbenchDB, signer: AuditSigner, entries: AuditExportEntry[], held: Set<string> = new Set()): Promise<{ imported: number; skipped: number }> {
  let imported = 0;
  let skipped = 0;
  for (const e of entries) {
    const from: ImportedFrom = { signer: e.signer, seq: e.seq, hash: e.hash, technician: e.technician.id, time: e.time };
    if (held.has(`${from.signer}/${from.seq}/${from.hash}`)) {
      skipped++;
      continue;
    }
    await recordOperation(db, { technician: signer, op: e.op, device: e.device, outcome: e.outcome, details: { ...(e.details ?? {}), importedFrom: from }, time: e.time }, inventoryOfEntry(e));
    imported++;
  }
  return { imported, skipped };
}

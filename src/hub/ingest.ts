/**
 * Ingest of hash-chained, signed records (the app's audit export and the
 * station control log share the format of src/core/store/audit.ts).
 *
 * Verification of a pushed batch (docs/HUB.md has the argument):
 *  1. every entry parses, and its recomputed body hash equals its `hash`;
 *  2. every entry links to the one before it (seq + 1, prev = previous hash),
 *     and the first links to what the hub holds for that chain;
 *  3. every signer key id has an owner-signed credential (given with the push
 *     or held from an earlier one) that verifies under the held bundle, is not
 *     revoked, whose key is the entry's signer, and whose validity window
 *     covers the entry's time;
 *  4. signatures: mode 'chain' (default) verifies, for each signer key, the
 *     signature on its LAST entry in the batch: that signature covers a hash
 *     that (through the links checked in 2) commits to every earlier entry of
 *     the batch. Mode 'every' verifies every entry's signature.
 *
 * Storage is idempotent: entries the hub already holds (same seq, same hash)
 * are counted as duplicates; a different entry at a held seq is a fork
 * (refused, nothing stored); a batch starting after the held head is a gap
 * (refused, recorded on the source, reported by status).
 */
import { exportEntryHash, type AuditExportEntry } from '../core/store/audit.ts';
import { keyIdHex } from '../core/store/sig.ts';
import { fromHex, toHex } from '../core/base/bytes.ts';
import { verifyEd25519 } from '../core/store/sig.ts';
import type { TechnicianCredential } from '../core/trust/credential.ts';
import type { HubDb, Sql } from './db.ts';
import { HubError } from './errors.ts';
import { updateRegistry } from './registry.ts';
import type { HubTrust } from './trust.ts';

export const MAX_BATCH = 20000;
const ZERO = '00'.repeat(32);
const SKEW_MS = 300_000;

export interface PushBody {
  /** An audit export (or control log) object, or just its entries. */
  format?: string;
  version?: number;
  entries: unknown[];
  /** Owner-signed credentials (base64) of the keys that signed the entries. */
  credentials?: string[];
  /** Genesis hash (hex) of the chain, when the batch does not start at seq 1: lets the hub report a gap. */
  source?: string;
}

export interface PushResult {
  source: string;
  label: string;
  accepted: number;
  duplicates: number;
  head: { seq: number; hash: string };
}

export interface IngestOptions {
  verify?: 'chain' | 'every';
  /** Key id (hex) of the caller, recorded on the source. */
  pusher: string;
}

interface Checked {
  e: AuditExportEntry;
  hashBytes: Uint8Array;
}

function b64(s: string): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) throw new HubError('bad-request', 'credentials must be base64 strings');
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/** Steps 1-4 above, without the database: throws HubError naming the first bad entry. */
export async function verifyBatch(body: PushBody, trust: HubTrust, verify: 'chain' | 'every' = 'chain'): Promise<Checked[]> {
  if (!body || typeof body !== 'object' || !Array.isArray(body.entries)) throw new HubError('bad-request', 'the body must be an audit export or control log: {format, version, entries: [...]}');
  if (body.format !== undefined && body.format !== 'fieldbench-audit') throw new HubError('bad-request', `unsupported record format ${JSON.stringify(body.format)} (expected fieldbench-audit)`);
  if (body.version !== undefined && body.version !== 1) throw new HubError('bad-request', `unsupported record format version ${String(body.version)}`);
  const n = body.entries.length;
  if (n === 0) throw new HubError('bad-request', 'the push has no entries');
  if (n > MAX_BATCH) throw new HubError('too-large', `at most ${MAX_BATCH} entries per push; split the file (the hub resumes where it stopped)`, 413);

  const out: Checked[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = body.entries[i] as AuditExportEntry;
    let h: string;
    try {
      h = exportEntryHash(e);
    } catch (err) {
      throw new HubError('malformed', `entry ${i}: ${(err as Error).message}`, 422, { index: i });
    }
    if (typeof e.hash !== 'string' || e.hash !== h) {
      throw new HubError('modified', `entry ${i} (seq ${e.seq}) was changed after it was recorded: its content does not match its hash`, 422, { index: i, seq: e.seq });
    }
    if (i > 0) {
      const p = out[i - 1].e;
      if (e.seq !== p.seq + 1 || e.prev !== p.hash) {
        throw new HubError('broken-chain', `entry ${i} (seq ${e.seq}) does not follow entry ${i - 1} (seq ${p.seq}): entries were removed, moved or added`, 422, { index: i, seq: e.seq });
      }
    } else if (e.seq === 1 && e.prev !== ZERO) {
      throw new HubError('broken-chain', 'entry 0 carries seq 1 but does not start a chain', 422, { index: 0, seq: 1 });
    }
    out[i] = { e, hashBytes: fromHex(h) };
  }

  // Credentials by technician key id.
  const creds = new Map<string, TechnicianCredential>();
  for (const c of body.credentials ?? []) {
    const cred = await trust.credential(b64(c), { anyTime: true });
    creds.set(keyIdHex(cred.publicKey), cred);
  }
  const lastBySigner = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const e = out[i].e;
    const cred = creds.get(e.technician.keyId);
    if (!cred) {
      throw new HubError('unknown-signer', `entry ${i} (seq ${e.seq}) is signed by key ${e.technician.keyId}, and the push carries no credential for it: add the technician's credential`, 403, { index: i, seq: e.seq });
    }
    if (e.signer !== toHex(cred.publicKey)) {
      throw new HubError('signer-mismatch', `entry ${i} (seq ${e.seq}) names a signer key that is not the credential's key`, 422, { index: i, seq: e.seq });
    }
    if (e.time + SKEW_MS < cred.notBefore * 1000 || e.time - SKEW_MS >= cred.notAfter * 1000) {
      throw new HubError('expired-credential', `entry ${i} (seq ${e.seq}) was recorded outside the validity of technician ${cred.technicianId}'s credential`, 403, { index: i, seq: e.seq });
    }
    lastBySigner.set(e.technician.keyId, i);
  }
  const toCheck = verify === 'every' ? out.map((_, i) => i) : [...lastBySigner.values()];
  const BATCH = 256;
  for (let s = 0; s < toCheck.length; s += BATCH) {
    const part = toCheck.slice(s, s + BATCH);
    const ok = await Promise.all(part.map((i) => verifyEd25519(fromHex(out[i].e.sig), out[i].hashBytes, creds.get(out[i].e.technician.keyId)!.publicKey)));
    const bad = ok.indexOf(false);
    if (bad >= 0) {
      const i = part[bad];
      throw new HubError('bad-signature', `entry ${i} (seq ${out[i].e.seq}): the signature does not verify under technician ${creds.get(out[i].e.technician.keyId)!.technicianId}'s key`, 422, { index: i, seq: out[i].e.seq });
    }
  }
  return out;
}

interface SourceRow {
  id: string;
  genesis: Uint8Array;
  head_seq: string | number;
  head_hash: Uint8Array;
  label: string;
}

const hexOf = (b: Uint8Array) => toHex(new Uint8Array(b));

/** Verify and store one push. */
export async function ingest(db: HubDb, trust: HubTrust, body: PushBody, opts: IngestOptions): Promise<PushResult> {
  const checked = await verifyBatch(body, trust, opts.verify);
  try {
    return await store(db, checked, body, opts);
  } catch (e) {
    const p = e instanceof HubError ? problems.get(e) : undefined;
    if (p) await db.query('UPDATE sources SET gap = $2::jsonb WHERE id = $1', [p.id, JSON.stringify(p.problem)]);
    throw e;
  }
}

function forkError(seq: number): HubError {
  return new HubError('fork', `entry seq ${seq} differs from the one the hub holds for this chain: the trail was rewritten after it was pushed`, 409, { seq });
}

async function store(db: HubDb, checked: Checked[], body: PushBody, opts: IngestOptions): Promise<PushResult> {
  const first = checked[0].e;
  const last = checked[checked.length - 1].e;
  return db.transaction(async (tx) => {
    const src = await findSource(tx, checked, body.source);
    const headSeq = Number(src.head_seq);
    const headHash = hexOf(src.head_hash);
    // Overlap with what is held: must be identical.
    let dup = 0;
    if (first.seq <= headSeq) {
      const upto = Math.min(last.seq, headSeq);
      const held = await tx.query<{ seq: string | number; hash: Uint8Array }>('SELECT seq, hash FROM entries WHERE source_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq', [src.id, first.seq, upto]);
      const bySeq = new Map(held.map((r) => [Number(r.seq), hexOf(r.hash)]));
      for (const c of checked) {
        if (c.e.seq > upto) break;
        if (bySeq.get(c.e.seq) !== c.e.hash) {
          throw noteProblem(src.id, { kind: 'fork', seq: c.e.seq, time: Date.now() }, forkError(c.e.seq));
        }
        dup++;
      }
    } else if (first.seq === headSeq + 1 && first.prev !== headHash) {
      throw noteProblem(src.id, { kind: 'fork', seq: first.seq, time: Date.now() }, forkError(first.seq));
    } else if (first.seq !== headSeq + 1) {
      throw noteProblem(src.id, { kind: 'gap', from: headSeq + 1, to: first.seq - 1, time: Date.now() }, new HubError('gap', `entries seq ${headSeq + 1}..${first.seq - 1} are missing: push from seq ${headSeq + 1}`, 409, { from: headSeq + 1, to: first.seq - 1, head: { seq: headSeq, hash: headHash } }));
    }
    const fresh = checked.slice(dup);
    if (fresh.length) {
      await insertEntries(tx, src.id, fresh.map((c) => c.e));
      await tx.query('UPDATE sources SET head_seq = $2, head_hash = $3, last_push = now(), last_pusher = $4, gap = NULL WHERE id = $1', [src.id, last.seq, checked[checked.length - 1].hashBytes, opts.pusher]);
      await updateRegistry(tx, src.id, fresh.map((c) => c.e));
    } else {
      await tx.query('UPDATE sources SET last_push = now(), last_pusher = $2 WHERE id = $1', [src.id, opts.pusher]);
    }
    const newHead = fresh.length ? { seq: last.seq, hash: last.hash } : { seq: headSeq, hash: headHash };
    return { source: hexOf(src.genesis), label: src.label, accepted: fresh.length, duplicates: dup, head: newHead };
  });
}

/** Gaps and forks are refused (the push's transaction rolls back) and then recorded on the source. */
const problems = new WeakMap<HubError, { id: string; problem: Record<string, unknown> }>();

function noteProblem(id: string, problem: Record<string, unknown>, err: HubError): HubError {
  problems.set(err, { id, problem });
  return err;
}

async function findSource(tx: Sql, checked: Checked[], hint: string | undefined): Promise<SourceRow> {
  const first = checked[0];
  const cols = 'id, genesis, head_seq, head_hash, label';
  const lock = async (id: string) => (await tx.query<SourceRow>(`SELECT ${cols} FROM sources WHERE id = $1 FOR UPDATE`, [id]))[0];
  // The batch starts inside a held chain (a retry, or an overlapping push)...
  const at = await tx.query<{ source_id: string }>('SELECT source_id FROM entries WHERE hash = $1', [first.hashBytes]);
  if (at.length) return lock(at[0].source_id);
  // ...or right after an entry of it...
  if (first.e.seq > 1) {
    const before = await tx.query<{ source_id: string; seq: string | number }>('SELECT source_id, seq FROM entries WHERE hash = $1', [fromHex(first.e.prev)]);
    if (before.length) {
      const src = await lock(before[0].source_id);
      if (Number(before[0].seq) !== Number(src.head_seq)) {
        // chains to a held entry that already has a successor
        throw noteProblem(src.id, { kind: 'fork', seq: first.e.seq, time: Date.now() }, forkError(first.e.seq));
      }
      return src;
    }
    // ...or later: a gap. Name it on the source when the pusher told which.
    if (hint && /^[0-9a-f]{64}$/.test(hint)) {
      const s = await tx.query<SourceRow>(`SELECT ${cols} FROM sources WHERE genesis = $1 FOR UPDATE`, [fromHex(hint)]);
      if (s.length) return s[0];
    }
    throw new HubError('gap', `the hub holds nothing this push follows: push the trail from seq 1${hint ? '' : ' (or name the chain with "source")'}`, 409, { from: 1, to: first.e.seq - 1 });
  }
  // A new chain.
  const ins = await tx.query<SourceRow>(
    `INSERT INTO sources (genesis, head_seq, head_hash, label, last_pusher) VALUES ($1, 0, $2, $3, '') ON CONFLICT (genesis) DO NOTHING RETURNING ${cols}`,
    [first.hashBytes, fromHex(ZERO), first.e.technician.id],
  );
  if (ins.length) return ins[0];
  const s = await tx.query<SourceRow>(`SELECT ${cols} FROM sources WHERE genesis = $1 FOR UPDATE`, [first.hashBytes]);
  return s[0];
}

export async function insertEntries(tx: Sql, sourceId: string, es: AuditExportEntry[]): Promise<void> {
  const rows = es.map((e) => ({
    seq: e.seq,
    hash: e.hash,
    prev: e.prev,
    time: e.time,
    tid: e.technician.id,
    kid: e.technician.keyId,
    op: e.op,
    outcome: e.outcome,
    device: e.device,
    details: e.details ?? null,
    sig: e.sig,
    signer: e.signer,
  }));
  const CHUNK = 5000;
  for (let i = 0; i < rows.length; i += CHUNK) {
    await tx.query(
      `INSERT INTO entries (source_id, seq, hash, prev, time, technician_id, key_id, op, outcome, device, details, sig, signer)
       SELECT $1, r.seq, decode(r.hash, 'hex'), decode(r.prev, 'hex'), r.time, r.tid, r.kid, r.op, r.outcome, r.device, r.details, decode(r.sig, 'hex'), decode(r.signer, 'hex')
       FROM jsonb_to_recordset($2::jsonb) AS r(seq bigint, hash text, prev text, time bigint, tid text, kid text, op text, outcome text, device jsonb, details jsonb, sig text, signer text)`,
      [sourceId, JSON.stringify(rows.slice(i, i + CHUNK))],
    );
  }
}

/** Where a chain stands on the hub (by its genesis hash), for resuming. */
export async function sourceHead(db: Sql, genesis: string): Promise<{ seq: number; hash: string } | null> {
  if (!/^[0-9a-f]{64}$/.test(genesis)) throw new HubError('bad-request', 'source must be the 64-hex-digit hash of the chain\'s first entry');
  const r = await db.query<SourceRow>('SELECT head_seq, head_hash FROM sources WHERE genesis = $1', [fromHex(genesis)]);
  return r.length ? { seq: Number(r[0].head_seq), hash: hexOf(r[0].head_hash) } : null;
}

export interface SourceStatus {
  source: string;
  label: string;
  head: { seq: number; hash: string };
  lastPush: string;
  lastPusher: string;
  problem: Record<string, unknown> | null;
}

export async function listSources(db: Sql): Promise<SourceStatus[]> {
  const r = await db.query<SourceRow & { last_push: Date | string; last_pusher: string; gap: Record<string, unknown> | null }>(
    'SELECT genesis, head_seq, head_hash, label, last_push, last_pusher, gap FROM sources ORDER BY id',
  );
  return r.map((s) => ({
    source: hexOf(s.genesis),
    label: s.label,
    head: { seq: Number(s.head_seq), hash: hexOf(s.head_hash) },
    lastPush: new Date(s.last_push).toISOString(),
    lastPusher: s.last_pusher,
    problem: s.gap ?? null,
  }));
}

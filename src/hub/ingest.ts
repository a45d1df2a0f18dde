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
import type { AuditExportEntry } from '../core/store/audit.ts';
import { keyIdHex } from '../core/store/sig.ts';
import { fromHex, toHex } from '../core/base/bytes.ts';
import type { TechnicianCredential } from '../core/trust/credential.ts';
import { MAX_BATCH, prepareBatch, type PreparedBatch } from './batch.ts';
import type { HubDb, Sql } from './db.ts';
import { HubError } from './errors.ts';
import { applyToRegistry, recheckCollisions } from './registry.ts';
import type { HubTrust } from './trust.ts';
import type { VerifyPool } from './verify-pool.ts';
import type { ChainTurn } from './chain-order.ts';

export { MAX_BATCH };
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
  /** Worker threads for steps 1 and 4 (src/hub/verify-pool.ts); without, they run in this thread. */
  pool?: VerifyPool;
  /** Steps 1 and 4 already started on this body (by the route, while it recorded the request's nonce). */
  prepared?: Promise<PreparedBatch>;
  /**
   * A pipelined push (src/hub/chain-order.ts): where it declared it sits in
   * its chain, checked against the verified batch, and its place among the
   * caller's pushes in flight.
   */
  position?: { after: string; last: string; turn: ChainTurn };
}

/**
 * Step 3 (the held bundle: credentials, revocation, signer, validity window),
 * then step 4's outcome: throws HubError naming the first bad entry.
 */
async function checkSigners(p: PreparedBatch, trust: HubTrust): Promise<void> {
  const creds = new Map<string, TechnicianCredential>();
  for (const c of p.credentials) {
    const cred = await trust.credential(new Uint8Array(Buffer.from(c, 'base64')), { anyTime: true });
    creds.set(keyIdHex(cred.publicKey), cred);
  }
  const byKey = p.keyIds.map((k) => creds.get(k));
  const keyHex = byKey.map((c) => (c ? toHex(c.publicKey) : ''));
  for (let i = 0; i < p.n; i++) {
    const k = p.keyOf[i];
    const cred = byKey[k];
    const seq = p.seqs[i];
    if (!cred) {
      throw new HubError('unknown-signer', `entry ${i} (seq ${seq}) is signed by key ${p.keyIds[k]}, and the push carries no credential for it: add the technician's credential`, 403, { index: i, seq });
    }
    if (p.signers[p.signerOf[i]] !== keyHex[k]) {
      throw new HubError('signer-mismatch', `entry ${i} (seq ${seq}) names a signer key that is not the credential's key`, 422, { index: i, seq });
    }
    const t = p.times[i];
    if (t + SKEW_MS < cred.notBefore * 1000 || t - SKEW_MS >= cred.notAfter * 1000) {
      throw new HubError('expired-credential', `entry ${i} (seq ${seq}) was recorded outside the validity of technician ${cred.technicianId}'s credential`, 403, { index: i, seq });
    }
  }
  if (p.badSignature) {
    const { index: i, seq } = p.badSignature;
    throw new HubError('bad-signature', `entry ${i} (seq ${seq}): the signature does not verify under technician ${byKey[p.keyOf[i]]!.technicianId}'s key`, 422, { index: i, seq });
  }
}

/** Steps 1-4 above, without the database, in this thread: throws HubError naming the first bad entry. */
export async function verifyBatch(body: PushBody | Uint8Array, trust: HubTrust, verify: 'chain' | 'every' = 'chain'): Promise<PreparedBatch> {
  const p = await prepareBatch(body, verify);
  await checkSigners(p, trust);
  return p;
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
export async function ingest(db: HubDb, trust: HubTrust, body: PushBody | Uint8Array, opts: IngestOptions): Promise<PushResult> {
  const verify = opts.verify ?? 'chain';
  const p = opts.prepared ? await opts.prepared : opts.pool ? await opts.pool.run(body, verify) : await prepareBatch(body, verify);
  await checkSigners(p, trust);
  const pos = opts.position;
  if (pos && (pos.after !== p.first.prev || pos.last !== p.hashes[p.n - 1])) {
    throw new HubError('bad-request', 'the push\'s declared position (?after, ?last) is not that of its entries: after = the first entry\'s prev, last = the last entry\'s hash', 400);
  }
  // the text PostgreSQL reads the entries from: the verified body itself
  const json = body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8') : JSON.stringify(body);
  try {
    let stored: Awaited<ReturnType<typeof store>> | undefined;
    // On a PostgreSQL server, a pipelined push whose predecessor is still being stored is stored
    // beside it, and commits after it (storeBeside); anything unexpected there falls back to the
    // one-after-another path below.
    if (pos && db.kind === 'postgres' && pos.turn.behind && p.source) {
      await pos.turn.predecessorBegan();
      stored = await retryDeadlock(() => storeBeside(db, p, json, opts, pos));
      pipelineCounters[stored ? 'beside' : 'fellBack']++;
    }
    if (!stored) {
      await pos?.turn.turn();
      // Two pushes creating and updating the same devices can, rarely, deadlock in PostgreSQL
      // (it aborts one of them): that push's transaction rolled back whole, so it runs again.
      stored = (await retryDeadlock(() => store(db, p, json, opts)))!;
    }
    pos?.turn.done('stored');
    if (stored.probe) {
      await retryDeadlock(() => recheckCollisions(db, stored.probe!));
      if (stored.recheck) await db.query('DELETE FROM pending_rechecks WHERE id = $1', [stored.recheck]);
    }
    return stored.result;
  } catch (e) {
    const p = e instanceof HubError ? problems.get(e) : undefined;
    if (p) await db.query('UPDATE sources SET gap = $2::jsonb WHERE id = $1', [p.id, JSON.stringify(p.problem)]);
    throw e;
  }
}

async function retryDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= 3 || (e as { code?: unknown })?.code !== '40P01') throw e;
    }
  }
}

/** The advisory lock a pipelined push holds for its whole storage transaction, keyed by its last entry's hash (a successor's `after`). */
function chainLock(hash: string): string {
  return BigInt.asIntN(64, BigInt('0x' + hash.slice(0, 16))).toString();
}

/** A pipelined push's own chain lock, taken first in its transaction, so that its successor can wait for its end inside PostgreSQL. */
async function holdChainLock(db: HubDb, tx: Sql, opts: IngestOptions, lastHash: string): Promise<void> {
  const pos = opts.position;
  if (!pos) return;
  if (db.kind === 'postgres') await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [chainLock(lastHash)]);
  pos.turn.began();
}

interface Stored {
  result: PushResult;
  /** The collision probe's input, to run again after the commit (PostgreSQL). */
  probe?: string;
  /** Its pending_rechecks row, deleted once the probe ran again. */
  recheck?: string;
}

/**
 * On PostgreSQL, the push's transaction records that its collision probe is
 * still to run again after the commit (pending_rechecks: the chain and seq
 * range, a few bytes). A hub killed before it ran finds the row at its next
 * start and runs the probe then (recoverRechecks in src/hub/registry.ts).
 */
async function noteRecheck(db: HubDb, tx: Sql, probe: string | undefined, sourceId: string, from: number, to: number): Promise<string | undefined> {
  if (!probe || db.kind !== 'postgres') return undefined;
  const [r] = await tx.query<{ id: string }>('INSERT INTO pending_rechecks (source_id, from_seq, to_seq) VALUES ($1, $2, $3) RETURNING id', [sourceId, from, to]);
  return String(r.id);
}

/** How pipelined pushes were stored since the process started (docs/HUB.md; tests read them). */
export const pipelineCounters = { beside: 0, fellBack: 0 };

/** storeBeside found that it cannot go on beside its predecessor: roll back, and store one after another. */
class NotBeside extends Error {}

/**
 * A pipelined push stored while its predecessor (the push ending at this
 * one's `after`) is still being stored, on another connection of a
 * PostgreSQL server: this push's entries, head and registry are written
 * meanwhile, and it commits after its predecessor did. The order is kept
 * inside PostgreSQL, where its deadlock detector sees every wait: the
 * predecessor holds its chain lock from the start of its transaction
 * (holdChainLock; this push began only after that, predecessorBegan), and
 * this push takes that lock (shared) before it locks its source row and
 * checks the head. Device rows and sightings the two share are serialised by
 * their row locks, so this push folds its entries over what the predecessor
 * committed (READ COMMITTED re-reads a row after waiting for it). This push's
 * entries cannot be the predecessor's: its first links to the predecessor's
 * last, and a hash chain has no cycles. Whatever else (the predecessor was
 * refused or is retrying, the source is new, another pusher stored these
 * entries meanwhile) rolls this back and falls back to the one-after-another
 * path, whose checks decide.
 */
async function storeBeside(db: HubDb, p: PreparedBatch, json: string, opts: IngestOptions, pos: NonNullable<IngestOptions['position']>): Promise<Stored | undefined> {
  const last = { seq: p.seqs[p.n - 1], hash: p.hashes[p.n - 1] };
  try {
    return await db.transaction(async (tx) => {
      await holdChainLock(db, tx, opts, last.hash);
      const [src] = await tx.query<{ id: string; genesis: Uint8Array; label: string }>('SELECT id, genesis, label FROM sources WHERE genesis = $1', [fromHex(p.source!)]);
      if (!src) throw new NotBeside();
      await insertJson(tx, src.id, json, p.first.seq - 1);
      // the registry only once the predecessor holds every registry row it writes: rows the two
      // share are then always locked by the predecessor first (the other order deadlocks). That
      // wait is outside PostgreSQL, so it is bounded: a predecessor that never gets there (it
      // waits, in PostgreSQL, for something this push holds) sends this push the other way.
      if (!(await pos.turn.predecessorRegistered(2000))) throw new NotBeside();
      const probe = await applyToRegistry(tx, src.id, p.reg);
      pos.turn.registered();
      const recheck = await noteRecheck(db, tx, probe, src.id, p.first.seq, last.seq);
      // the predecessor's end: its commit (or rollback) releases its chain lock
      await tx.query('SELECT pg_advisory_xact_lock_shared($1::bigint)', [chainLock(pos.after)]);
      const [h] = await tx.query<SourceRow>('SELECT id, genesis, head_seq, head_hash, label FROM sources WHERE id = $1 FOR UPDATE', [src.id]);
      if (Number(h.head_seq) !== p.first.seq - 1 || hexOf(h.head_hash) !== p.first.prev) throw new NotBeside();
      await tx.query('UPDATE sources SET head_seq = $2, head_hash = $3, last_push = now(), last_pusher = $4, gap = NULL WHERE id = $1', [src.id, last.seq, fromHex(last.hash), opts.pusher]);
      return { result: { source: hexOf(src.genesis), label: src.label, accepted: p.n, duplicates: 0, head: last }, probe, recheck };
    });
  } catch (e) {
    // NotBeside, or 23505: another pusher stored some of these entries meanwhile (the same trail from elsewhere)
    if (e instanceof NotBeside || (e as { code?: unknown })?.code === '23505') return undefined;
    throw e;
  }
}

function forkError(seq: number): HubError {
  return new HubError('fork', `entry seq ${seq} differs from the one the hub holds for this chain: the trail was rewritten after it was pushed`, 409, { seq });
}

async function store(db: HubDb, p: PreparedBatch, json: string, opts: IngestOptions): Promise<Stored> {
  const first = p.first;
  const last = { seq: p.seqs[p.n - 1], hash: p.hashes[p.n - 1] };
  return db.transaction(async (tx) => {
    await holdChainLock(db, tx, opts, last.hash);
    const src = await findSource(tx, p);
    const headSeq = Number(src.head_seq);
    const headHash = hexOf(src.head_hash);
    // Overlap with what is held: must be identical.
    let dup = 0;
    if (first.seq <= headSeq) {
      const upto = Math.min(last.seq, headSeq);
      const held = await tx.query<{ seq: string | number; hash: Uint8Array }>('SELECT seq, hash FROM entries WHERE source_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq', [src.id, first.seq, upto]);
      const bySeq = new Map(held.map((r) => [Number(r.seq), hexOf(r.hash)]));
      for (let i = 0; i < p.n && p.seqs[i] <= upto; i++) {
        if (bySeq.get(p.seqs[i]) !== p.hashes[i]) {
          throw noteProblem(src.id, { kind: 'fork', seq: p.seqs[i], time: Date.now() }, forkError(p.seqs[i]));
        }
        dup++;
      }
    } else if (first.seq === headSeq + 1 && first.prev !== headHash) {
      throw noteProblem(src.id, { kind: 'fork', seq: first.seq, time: Date.now() }, forkError(first.seq));
    } else if (first.seq !== headSeq + 1) {
      throw noteProblem(src.id, { kind: 'gap', from: headSeq + 1, to: first.seq - 1, time: Date.now() }, new HubError('gap', `entries seq ${headSeq + 1}..${first.seq - 1} are missing: push from seq ${headSeq + 1}`, 409, { from: headSeq + 1, to: first.seq - 1, head: { seq: headSeq, hash: headHash } }));
    }
    const fresh = p.n - dup;
    let probe: string | undefined;
    let recheck: string | undefined;
    if (fresh) {
      await insertJson(tx, src.id, json, headSeq);
      await tx.query('UPDATE sources SET head_seq = $2, head_hash = $3, last_push = now(), last_pusher = $4, gap = NULL WHERE id = $1', [src.id, last.seq, fromHex(last.hash), opts.pusher]);
      probe = await applyToRegistry(tx, src.id, dup ? p.reg.slice(dup) : p.reg);
      opts.position?.turn.registered();
      recheck = await noteRecheck(db, tx, probe, src.id, p.seqs[dup], last.seq);
    } else {
      await tx.query('UPDATE sources SET last_push = now(), last_pusher = $2 WHERE id = $1', [src.id, opts.pusher]);
    }
    const newHead = fresh ? last : { seq: headSeq, hash: headHash };
    return { result: { source: hexOf(src.genesis), label: src.label, accepted: fresh, duplicates: dup, head: newHead }, probe, recheck };
  });
}

/** Gaps and forks are refused (the push's transaction rolls back) and then recorded on the source. */
const problems = new WeakMap<HubError, { id: string; problem: Record<string, unknown> }>();

function noteProblem(id: string, problem: Record<string, unknown>, err: HubError): HubError {
  problems.set(err, { id, problem });
  return err;
}

async function findSource(tx: Sql, p: PreparedBatch): Promise<SourceRow> {
  const first = { hashBytes: fromHex(p.first.hash), e: p.first };
  const hint = p.source;
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
    [first.hashBytes, fromHex(ZERO), p.first.label],
  );
  if (ins.length) return ins[0];
  const s = await tx.query<SourceRow>(`SELECT ${cols} FROM sources WHERE genesis = $1 FOR UPDATE`, [first.hashBytes]);
  return s[0];
}

/** Store entries with the hub's insert (the bench's raw-INSERT baseline uses this). */
export async function insertEntries(tx: Sql, sourceId: string, es: AuditExportEntry[]): Promise<void> {
  await insertJson(tx, sourceId, JSON.stringify({ entries: es }), 0);
}

/**
 * The entries of a push body (JSON text with an `entries` array) after seq
 * `after`, in one INSERT: PostgreSQL reads the rows from the very text the
 * verification worker parsed and checked (JSON.parse and PostgreSQL's json
 * agree on it: the last of duplicate keys wins, numbers are read as numbers,
 * and parseEntry refused any field it does not know), so the main thread
 * neither rebuilds rows nor serialises them, and there is one round trip.
 */
export async function insertJson(tx: Sql, sourceId: string, json: string, after: number): Promise<void> {
  await tx.query(
    `INSERT INTO entries (source_id, seq, hash, prev, time, technician_id, key_id, op, outcome, device, details, sig, signer)
     SELECT $1, r.seq::bigint, decode(r.hash, 'hex'), decode(r.prev, 'hex'), r.time::bigint, r.technician->>'id', r.technician->>'keyId', r.op, r.outcome, r.device, r.details, decode(r.sig, 'hex'), decode(r.signer, 'hex')
     FROM jsonb_to_recordset(($2::jsonb)->'entries') AS r(seq numeric, hash text, prev text, time numeric, technician jsonb, op text, outcome text, device jsonb, details jsonb, sig text, signer text)
     WHERE r.seq > $3`,
    [sourceId, json, after],
  );
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

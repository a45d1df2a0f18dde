/**
 * The database-free half of verifying a pushed batch (steps 1 and 4 of
 * src/hub/ingest.ts): parse, recompute every entry's hash, check the links,
 * and verify the signatures that chain or every mode asks for. It needs
 * neither the trust bundle nor the database, so it runs on a worker thread
 * (src/hub/verify-pool.ts) while the main thread talks to PostgreSQL; with no
 * worker it runs in the thread that asked.
 *
 * Signatures are verified under the key each entry names (`signer`). The main
 * thread then checks (step 3, it holds the bundle) that every entry's signer
 * IS its credential's key, so "verifies under the named key" and "verifies
 * under the credential's key" are the same statement by the time anything is
 * stored. The outcome of step 4 is carried back, not thrown, so that a step-3
 * refusal is still reported first, as when everything ran in one place.
 *
 * What goes back is what the main thread needs and no more: per entry its
 * signer key id, signer and time (typed arrays and small tables) and the
 * registry view of each entry (canonical identifiers, anchor, op, outcome, the
 * details the registry reads, time, hash). The entries' rows are not rebuilt:
 * PostgreSQL reads them from the pushed JSON itself (src/hub/ingest.ts,
 * insertJson), the same text this worker parsed and verified.
 */
import { entryHashHex, type AuditExportEntry } from '../core/store/audit.ts';
import { normaliseId, type IdKind } from '../core/store/ids.ts';
import { fromHex } from '../core/base/bytes.ts';
import { verifyEd25519 } from '../core/store/sig.ts';
import { createHash, hash as oneShotHash } from 'node:crypto';
import { HubError, type HubErrorCode } from './errors.ts';

export const MAX_BATCH = 20000;
const ZERO = '00'.repeat(32);
/**
 * node:crypto's SHA-256 in hex (native; the same digest as @noble's, which the browser uses), in
 * one call where node:crypto has its one-shot (Node 20.12+): no Hash object per entry.
 */
const nativeSha256Hex: (b: Uint8Array) => string =
  typeof oneShotHash === 'function' ? (b) => oneShotHash('sha256', b, 'hex') : (b) => createHash('sha256').update(b).digest('hex');

/** The registry's view of one entry (src/hub/registry.ts). */
export interface RegEntry {
  anchor: string;
  time: number;
  technician: { id: string; keyId: string };
  op: string;
  outcome: string;
  device: AuditExportEntry['device'];
  details?: Record<string, unknown>;
  hash: string;
}

export interface PreparedBatch {
  n: number;
  first: { seq: number; prev: string; hash: string; label: string };
  /** Hash (hex) of every entry, in order. */
  hashes: string[];
  seqs: Float64Array;
  /** The push's credentials (base64 strings, not yet verified) and chain hint. */
  credentials: string[];
  source?: string;
  /** Distinct technician key ids and signer keys (hex), and which one each entry carries. */
  keyIds: string[];
  keyOf: Uint32Array;
  signers: string[];
  signerOf: Uint32Array;
  times: Float64Array;
  /** The first signature (in check order) that does not verify under the key the entry names. */
  badSignature?: { index: number; seq: number };
  /** Registry view per entry; null when the entry names no device the registry can key. */
  reg: (RegEntry | null)[];
}

export interface BatchFailure {
  code: HubErrorCode;
  message: string;
  status: number;
  extra?: Record<string, unknown>;
}

export function failureOf(e: unknown): BatchFailure | undefined {
  return e instanceof HubError ? { code: e.code, message: e.message, status: e.status, extra: e.extra } : undefined;
}

export function errorOf(f: BatchFailure): HubError {
  return new HubError(f.code, f.message, f.status, f.extra);
}

const ID_KINDS = ['serial', 'devicePublicKey', 'ueid', 'mac', 'devEui'] as const;

export function anchorOf(d: Partial<Record<(typeof ID_KINDS)[number], string>>): string | undefined {
  if (d.devicePublicKey) return `key:${d.devicePublicKey}`;
  if (d.ueid) return `ueid:${d.ueid}`;
  if (d.serial) return `serial:${d.serial}`;
  return undefined;
}

/** Identifiers in canonical form (entries from older tools may differ in case or separators); malformed ones are left out. */
export function canonicalIds(d: AuditExportEntry['device']): AuditExportEntry['device'] {
  const out: Record<string, string> = {};
  for (const k of ID_KINDS) {
    const v = d[k];
    if (!v) continue;
    try {
      out[k] = normaliseId(k as IdKind, v);
    } catch {
      /* not an identifier the registry can use */
    }
  }
  return out;
}

/** The ops whose details the registry reads (src/hub/registry.ts applyEntry, campaign results); identify only for its model. */
const DETAILED_OPS = new Set(['update', 'configure', 'attest']);

export function regEntry(e: Pick<AuditExportEntry, 'time' | 'technician' | 'op' | 'outcome' | 'device' | 'details' | 'hash'>): RegEntry | null {
  const device = canonicalIds(e.device);
  const anchor = anchorOf(device);
  if (!anchor) return null;
  // only what the registry reads travels back from the verification worker
  const details = e.details === undefined ? undefined : DETAILED_OPS.has(e.op) ? e.details : e.op === 'identify' && e.details.model !== undefined ? { model: e.details.model } : undefined;
  return { anchor, time: e.time, technician: { id: e.technician.id, keyId: e.technician.keyId }, op: e.op, outcome: e.outcome, device, ...(details !== undefined ? { details } : {}), hash: e.hash };
}

/**
 * Steps 1 and 4 on a push body (the parsed object, or its JSON bytes).
 * Throws HubError naming the first bad entry for step 1; step 4's outcome is
 * returned in `badSignature`.
 */
export async function prepareBatch(input: unknown, verify: 'chain' | 'every' = 'chain'): Promise<PreparedBatch> {
  let body = input as { format?: unknown; version?: unknown; entries?: unknown; credentials?: unknown; source?: unknown };
  if (input instanceof Uint8Array) {
    if (!input.length) throw new HubError('bad-request', 'this request needs a JSON body');
    try {
      body = JSON.parse(Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8'));
    } catch {
      throw new HubError('bad-request', 'the body is not JSON');
    }
  }
  if (!body || typeof body !== 'object' || !Array.isArray(body.entries)) throw new HubError('bad-request', 'the body must be an audit export or control log: {format, version, entries: [...]}');
  if (body.format !== undefined && body.format !== 'fieldbench-audit') throw new HubError('bad-request', `unsupported record format ${JSON.stringify(body.format)} (expected fieldbench-audit)`);
  if (body.version !== undefined && body.version !== 1) throw new HubError('bad-request', `unsupported record format version ${String(body.version)}`);
  const entries = body.entries as AuditExportEntry[];
  const n = entries.length;
  if (n === 0) throw new HubError('bad-request', 'the push has no entries');
  if (n > MAX_BATCH) throw new HubError('too-large', `at most ${MAX_BATCH} entries per push; split the file (the hub resumes where it stopped)`, 413);

  // Step 1: every entry's hash, and the links between them.
  const hashes: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    let h: string;
    try {
      h = entryHashHex(e, nativeSha256Hex);
    } catch (err) {
      throw new HubError('malformed', `entry ${i}: ${(err as Error).message}`, 422, { index: i });
    }
    if (typeof e.hash !== 'string' || e.hash !== h) {
      throw new HubError('modified', `entry ${i} (seq ${e.seq}) was changed after it was recorded: its content does not match its hash`, 422, { index: i, seq: e.seq });
    }
    if (i > 0) {
      const p = entries[i - 1];
      if (e.seq !== p.seq + 1 || e.prev !== p.hash) {
        throw new HubError('broken-chain', `entry ${i} (seq ${e.seq}) does not follow entry ${i - 1} (seq ${p.seq}): entries were removed, moved or added`, 422, { index: i, seq: e.seq });
      }
    } else if (e.seq === 1 && e.prev !== ZERO) {
      throw new HubError('broken-chain', 'entry 0 carries seq 1 but does not start a chain', 422, { index: 0, seq: 1 });
    }
    hashes[i] = h;
  }

  const credentials = body.credentials ?? [];
  if (!Array.isArray(credentials)) throw new HubError('bad-request', 'credentials must be a list of base64 strings');
  for (const c of credentials) if (typeof c !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(c)) throw new HubError('bad-request', 'credentials must be base64 strings');

  // Who signed what, compactly, for step 3 on the main thread.
  const keyIds: string[] = [];
  const signers: string[] = [];
  const keyIdx = new Map<string, number>();
  const signerIdx = new Map<string, number>();
  const keyOf = new Uint32Array(n);
  const signerOf = new Uint32Array(n);
  const times = new Float64Array(n);
  const seqs = new Float64Array(n);
  const lastByKey = new Map<string, number>();
  const reg: (RegEntry | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    let k = keyIdx.get(e.technician.keyId);
    if (k === undefined) keyIdx.set(e.technician.keyId, (k = keyIds.push(e.technician.keyId) - 1));
    let s = signerIdx.get(e.signer);
    if (s === undefined) signerIdx.set(e.signer, (s = signers.push(e.signer) - 1));
    keyOf[i] = k;
    signerOf[i] = s;
    times[i] = e.time;
    seqs[i] = e.seq;
    lastByKey.set(e.technician.keyId, i);
    reg[i] = regEntry(e);
  }

  // Step 4: signatures, under the key each entry names.
  const toCheck = verify === 'every' ? entries.map((_, i) => i) : [...lastByKey.values()];
  const pubs = signers.map((s) => fromHex(s));
  let badSignature: PreparedBatch['badSignature'];
  const PART = 256;
  for (let s = 0; s < toCheck.length && !badSignature; s += PART) {
    const part = toCheck.slice(s, s + PART);
    const ok = await Promise.all(part.map((i) => verifyEd25519(fromHex(entries[i].sig), fromHex(hashes[i]), pubs[signerOf[i]])));
    const bad = ok.indexOf(false);
    if (bad >= 0) badSignature = { index: part[bad], seq: entries[part[bad]].seq };
  }
  const e0 = entries[0];
  return {
    n, first: { seq: e0.seq, prev: e0.prev, hash: hashes[0], label: e0.technician.id }, hashes, seqs,
    credentials: credentials as string[], source: typeof body.source === 'string' ? body.source : undefined,
    keyIds, keyOf, signers, signerOf, times, badSignature, reg,
  };
}

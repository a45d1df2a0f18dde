/**
 * Append-only, hash-chained, signed audit trail.
 *
 * Entry body (what is hashed) = {seq, time, technician: {id, keyId}, op,
 * device, outcome, details?, prev}; hash = SHA-256(encodeDeterministic(body));
 * prev = the previous entry's hash (32 zero bytes for seq 1); sig = Ed25519
 * over hash by the technician key whose id is keyId (first 8 bytes of
 * SHA-256 of the public key, hex).
 *
 * With seq numbers, the chain and the signatures, an export can be checked
 * offline and a break is named: entry removed (deleted), moved (reordered),
 * added (inserted), changed (modified), signed by an unknown key or with a
 * broken signature (bad-signature), or unparseable (malformed).
 *
 * Limits: without trusted technician keys, verification proves the file is
 * internally consistent, not who wrote it (anyone can build a fresh valid
 * chain). Cutting entries off the end AND rewriting `head` is only caught by
 * comparing with a head recorded elsewhere (opts.expectedHead).
 *
 * One file (over 500 lines): append, export and verify share the one entry
 * body and hash; kept together, the hashed form is defined once.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeDeterministic } from '../base/cbor.ts';
import { storeWrite, type AuditRecord, type DeviceRecord, type FieldbenchDB } from './db.ts';
import { ID_KINDS, idKeys, normaliseIds, type DeviceIdentifiers, type DeviceIdentifiersInput } from './ids.ts';
import { upsertDevice, type DeviceUpdate } from './inventory.ts';
import { keyIdHex, verifyEd25519, type AuditSigner } from './sig.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalBytes, fromHex, toHex } from '../base/bytes.ts';

export type AuditOp =
  | 'identify'
  | 'attest'
  | 'configure'
  | 'update'
  | 'interface'
  | 'wipe'
  | 'import'
  | 'export'
  | 'backup'
  | 'restore'
  | 'provision'
  | 'credential'
  | 'key'
  | (string & {});

export interface AuditInput {
  op: AuditOp;
  /** Identifiers of the device concerned (defaults to the inventory update's). */
  device?: DeviceIdentifiersInput;
  /** e.g. 'ok', 'rejected', 'failed', 'cancelled'. */
  outcome: string;
  /** Redacted, JSON-like details (no secrets; see checkDetails). */
  details?: Record<string, unknown>;
  /** ms since epoch; default now. */
  time?: number;
}

export class AuditDetailsError extends FieldbenchError<'audit-details'> {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super('audit-details', `audit details ${path}: ${reason}`);
    this.name = 'AuditDetailsError';
  }
}

export class AuditBusyError extends FieldbenchError<'audit-busy'> {
  constructor() {
    super('audit-busy', 'the audit trail kept changing under this append (another tab writing?); try again');
    this.name = 'AuditBusyError';
  }
}

const SECRET_NAME = /secret|passphrase|password|passwd|token|psk|private_?key|privkey/i;
const MAX_DETAILS_BYTES = 16 * 1024;

/**
 * Reject details that may carry secrets (a field named like secret,
 * passphrase, password, token, psk, privateKey at any depth) or values that
 * do not survive JSON and deterministic CBOR unchanged (only strings, safe
 * integers, booleans, null, arrays and plain objects).
 */
export function checkDetails(details: unknown, path = 'details', depth = 0): void {
  if (depth > 8) throw new AuditDetailsError(path, 'nested too deeply');
  if (details === null || typeof details === 'string' || typeof details === 'boolean') return;
  if (typeof details === 'number') {
    if (!Number.isSafeInteger(details) || Object.is(details, -0)) throw new AuditDetailsError(path, 'numbers must be safe integers');
    return;
  }
  if (Array.isArray(details)) {
    details.forEach((v, i) => checkDetails(v, `${path}[${i}]`, depth + 1));
    return;
  }
  if (typeof details === 'object' && Object.getPrototypeOf(details) === Object.prototype) {
    for (const [k, v] of Object.entries(details as object)) {
      if (SECRET_NAME.test(k)) throw new AuditDetailsError(`${path}.${k}`, 'looks like a secret; redact it before auditing');
      if (v === undefined) continue;
      checkDetails(v, `${path}.${k}`, depth + 1);
    }
    return;
  }
  throw new AuditDetailsError(path, `unsupported value (${details instanceof Uint8Array ? 'bytes: hex-encode them' : typeof details})`);
}

const ZERO32 = new Uint8Array(32);

/** The signed part of an entry: everything the hash covers. */
type Body = Pick<AuditRecord, 'seq' | 'time' | 'technician' | 'op' | 'device' | 'outcome' | 'details' | 'prev'>;

/** A SHA-256 implementation (the hub passes node:crypto's; the default is @noble's, for browsers too). */
export type Sha256 = (bytes: Uint8Array) => Uint8Array;

function bodyHash(b: Body, digest: Sha256 = sha256): Uint8Array {
  return digest(encodeBody(b));
}

function encodeBody(b: Body): Uint8Array {
  return encodeDeterministic({
    seq: b.seq,
    time: b.time,
    technician: { id: b.technician.id, keyId: b.technician.keyId },
    op: b.op,
    device: b.device,
    outcome: b.outcome,
    details: b.details,
    prev: b.prev,
  });
}

async function readHead(db: FieldbenchDB): Promise<{ seq: number; hash: Uint8Array }> {
  const last = await db.audit.orderBy('seq').last();
  return last ? { seq: last.seq, hash: last.hash } : { seq: 0, hash: ZERO32 };
}

async function prepare(inputs: AuditInput[], signer: AuditSigner, head: { seq: number; hash: Uint8Array }, fallback: DeviceIdentifiers[]): Promise<AuditRecord[]> {
  const keyId = keyIdHex(signer.publicKey);
  let prev = head.hash;
  const recs: AuditRecord[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const inp = inputs[i];
    const device = inp.device ? normaliseIds(inp.device) : (fallback[i] ?? {});
    const body: Body = {
      seq: head.seq + 1 + i,
      time: inp.time ?? Date.now(),
      technician: { id: signer.id, keyId },
      op: inp.op,
      device,
      outcome: inp.outcome,
      details: inp.details,
      prev,
    };
    const hash = bodyHash(body);
    recs.push({ ...body, hash, sig: new Uint8Array(0), signer: signer.publicKey, deviceIds: idKeys(device) });
    prev = hash;
  }
  const sigs = await Promise.all(recs.map((r) => signer.sign(r.hash)));
  sigs.forEach((s, i) => {
    if (!(s instanceof Uint8Array) || s.length !== 64) throw new Error('the signer returned something other than a 64-byte Ed25519 signature');
    recs[i].sig = s;
  });
  if (recs.length && !(await verifyEd25519(recs[0].sig, recs[0].hash, signer.publicKey))) {
    throw new Error("the signer's signature does not verify under its public key");
  }
  for (const r of recs) if (r.details === undefined) delete r.details;
  return recs;
}

function validateInput(inp: AuditInput, signer: AuditSigner): void {
  if (typeof inp.op !== 'string' || !inp.op) throw new AuditDetailsError('op', 'must be a non-empty string');
  if (typeof inp.outcome !== 'string' || !inp.outcome) throw new AuditDetailsError('outcome', 'must be a non-empty string');
  if (inp.time !== undefined && (!Number.isSafeInteger(inp.time) || inp.time < 0)) throw new AuditDetailsError('time', 'must be ms since epoch');
  if (typeof signer.id !== 'string' || !signer.id) throw new AuditDetailsError('technician', 'needs an id');
  if (!(signer.publicKey instanceof Uint8Array) || signer.publicKey.length !== 32) throw new AuditDetailsError('technician', 'needs a 32-byte Ed25519 public key');
  if (inp.details !== undefined) {
    checkDetails(inp.details);
    if (encodeDeterministic(inp.details).length > MAX_DETAILS_BYTES) throw new AuditDetailsError('details', `larger than ${MAX_DETAILS_BYTES} bytes`);
  }
}

/**
 * Chain and sign entries after `head` without a database (the CLI's records
 * log, src/cli/records.ts): the same body, hash and signature as appendAudit.
 */
export async function chainEntries(inputs: AuditInput[], signer: AuditSigner, head: { seq: number; hash: Uint8Array } | null): Promise<AuditRecord[]> {
  for (const inp of inputs) validateInput(inp, signer);
  return prepare(inputs, signer, head ?? { seq: 0, hash: ZERO32 }, []);
}

class HeadMoved extends FieldbenchError<'head-moved'> {
  constructor() {
    super('head-moved', 'the audit head moved during the append');
  }
}

// One append at a time per database connection; another tab is handled by
// the head check inside the transaction (optimistic, retried).
const queues = new WeakMap<FieldbenchDB, Promise<unknown>>();

function serialised<T>(db: FieldbenchDB, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(db) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  queues.set(
    db,
    run.catch(() => undefined),
  );
  return run;
}

/**
 * Append entries (signed by `signer`) and apply inventory updates in ONE
 * transaction: either all of it is stored or none of it. Signing happens
 * before the transaction (IndexedDB transactions cannot wait for crypto);
 * inside it the chain head is re-checked, and the whole thing is redone if
 * another writer appended meanwhile.
 */
export async function appendAudit(
  db: FieldbenchDB,
  inputs: AuditInput[],
  signer: AuditSigner,
  inventoryUpdates: DeviceUpdate[] = [],
): Promise<{ entries: AuditRecord[]; devices: DeviceRecord[] }> {
  for (const inp of inputs) validateInput(inp, signer);
  const fallback = inventoryUpdates.map((u) => normaliseIds(u));
  return serialised(db, async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const head = await readHead(db);
      const recs = await prepare(inputs, signer, head, fallback);
      try {
        return await storeWrite('audit entry', () =>
          db.transaction('rw', db.audit, db.devices, async () => {
            const cur = await db.audit.orderBy('seq').last();
            if ((cur?.seq ?? 0) !== head.seq || !equalBytes(cur?.hash ?? ZERO32, head.hash)) throw new HeadMoved();
            await db.audit.bulkAdd(recs);
            const devices: DeviceRecord[] = [];
            for (const u of inventoryUpdates) devices.push(await upsertDevice(db, u));
            return { entries: recs, devices };
          }),
        );
      } catch (e) {
        if (e instanceof HeadMoved || (e as { inner?: unknown })?.inner instanceof HeadMoved) continue;
        throw e;
      }
    }
    throw new AuditBusyError();
  });
}

/**
 * Record one operation: the audit entry and the inventory update are written
 * in one transaction (a failed inventory write leaves no audit entry and
 * vice versa).
 */
export async function recordOperation(
  db: FieldbenchDB,
  entry: AuditInput & { technician: AuditSigner },
  inventoryUpdate?: DeviceUpdate | null,
): Promise<{ entry: AuditRecord; device?: DeviceRecord }> {
  const { technician, ...input } = entry;
  const r = await appendAudit(db, [input], technician, inventoryUpdate ? [inventoryUpdate] : []);
  return { entry: r.entries[0], device: r.devices[0] };
}

/** Entries about one device (any of its identifiers), oldest first. */
export async function deviceHistory(db: FieldbenchDB, device: DeviceIdentifiersInput): Promise<AuditRecord[]> {
  const keys = idKeys(normaliseIds(device));
  if (!keys.length) return [];
  const recs = (await Promise.all(keys.map((k) => db.audit.where('deviceIds').equals(k).toArray()))).flat();
  const bySeq = new Map(recs.map((r) => [r.seq, r]));
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

// ---------------------------------------------------------------- export

/** An audit entry as exported: the stored record without its local index, its byte fields as lowercase hex. */
export type AuditExportEntry = Omit<AuditRecord, 'deviceIds' | AuditBytesField> & Record<AuditBytesField, string>;

type AuditBytesField = 'prev' | 'hash' | 'sig' | 'signer';

export interface AuditExport {
  format: 'fieldbench-audit';
  version: 1;
  exported: string;
  entries: AuditExportEntry[];
  head: { seq: number; hash: string } | null;
}

export function auditRecordToExport(r: AuditRecord): AuditExportEntry {
  const e: AuditExportEntry = {
    seq: r.seq,
    time: r.time,
    technician: { id: r.technician.id, keyId: r.technician.keyId },
    op: r.op,
    device: r.device,
    outcome: r.outcome,
    details: r.details,
    prev: toHex(r.prev),
    hash: toHex(r.hash),
    sig: toHex(r.sig),
    signer: toHex(r.signer),
  };
  if (e.details === undefined) delete e.details;
  return e;
}

/** The whole trail as the export object (JSON.stringify it to save). */
export async function exportAudit(db: FieldbenchDB, now = Date.now()): Promise<AuditExport> {
  // Primary-key order is seq order; toArray() is much faster than a cursor walk.
  const entries = (await db.audit.toArray()).map(auditRecordToExport);
  const last = entries.at(-1);
  return {
    format: 'fieldbench-audit',
    version: 1,
    exported: new Date(now).toISOString(),
    entries,
    head: last ? { seq: last.seq, hash: last.hash } : null,
  };
}

export async function exportAuditJson(db: FieldbenchDB): Promise<string> {
  return JSON.stringify(await exportAudit(db));
}

// ---------------------------------------------------------------- verify

export type AuditFailure = 'deleted' | 'reordered' | 'inserted' | 'modified' | 'bad-signature' | 'malformed';

export type AuditVerdict =
  | {
      ok: true;
      count: number;
      head: { seq: number; hash: string } | null;
      /** True when every entry was checked against trustedTechnicianKeys. */
      authenticated: boolean;
      /** Key ids of the technicians who signed. */
      signers: string[];
    }
  /** index: position in `entries` (entries.length = after the last; -1 = the file itself). */
  | { ok: false; index: number; seq?: number; code: AuditFailure; reason: string };

interface Parsed extends Body {
  storedHash: Uint8Array;
  sig: Uint8Array;
  signer: Uint8Array;
  hash: Uint8Array; // recomputed
  hashHex: string;
  prevHex: string;
}

class Malformed extends FieldbenchError<'malformed'> {
  constructor(message: string) {
    super('malformed', message);
  }
}

function str(v: unknown, what: string, max = 1024): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new Malformed(`${what} must be a non-empty string`);
  return v;
}
function int(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || Object.is(v, -0)) throw new Malformed(`${what} must be an integer >= ${min}`);
  return v;
}
/** `len` bytes as lowercase hex, checked only (hexBytes decodes them too). */
function checkHex(v: unknown, what: string, len: number): string {
  if (typeof v !== 'string' || v.length !== len * 2) throw new Malformed(`${what} must be ${len} bytes of hex`);
  // one spelling per value (lowercase, as exports write it): a receiver that keys on the text, such as
  // the hub's idempotent ingest, must never see one entry as two
  if (!/^[0-9a-f]*$/.test(v)) throw new Malformed(`${what} must be lowercase hex`);
  return v;
}
function hexBytes(v: unknown, what: string, len: number): Uint8Array {
  checkHex(v, what, len);
  try {
    return fromHex(v as string);
  } catch {
    throw new Malformed(`${what} is not hex`);
  }
}

const ENTRY_FIELDS = new Set(['seq', 'time', 'technician', 'op', 'device', 'outcome', 'details', 'prev', 'hash', 'sig', 'signer']);

/** An entry's fields checked, and the body its hash covers; `o` is the entry as given. */
function entryBody(raw: unknown): { o: Record<string, unknown>; body: Body } {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Malformed('entry is not an object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!ENTRY_FIELDS.has(k)) throw new Malformed(`unknown field "${k}"`);
  const t = o.technician as Record<string, unknown> | undefined;
  if (!t || typeof t !== 'object' || Array.isArray(t)) throw new Malformed('technician must be an object');
  for (const k of Object.keys(t)) if (k !== 'id' && k !== 'keyId') throw new Malformed(`unknown technician field "${k}"`);
  const keyId = str(t.keyId, 'technician.keyId', 16);
  if (!/^[0-9a-f]{16}$/.test(keyId)) throw new Malformed('technician.keyId must be 16 lowercase hex digits');
  const d = o.device as Record<string, unknown> | undefined;
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw new Malformed('device must be an object');
  for (const [k, v] of Object.entries(d)) {
    if (!(ID_KINDS as readonly string[]).includes(k)) throw new Malformed(`unknown device identifier "${k}"`);
    str(v, `device.${k}`);
  }
  if (o.details !== undefined) {
    if (!o.details || typeof o.details !== 'object' || Array.isArray(o.details)) throw new Malformed('details must be an object');
    try {
      checkDetails(o.details);
    } catch (e) {
      throw new Malformed((e as Error).message);
    }
  }
  const body: Body = {
    seq: int(o.seq, 'seq', 1),
    time: int(o.time, 'time', 0),
    technician: { id: str(t.id, 'technician.id'), keyId },
    op: str(o.op, 'op'),
    device: d as DeviceIdentifiers,
    outcome: str(o.outcome, 'outcome'),
    details: o.details as Record<string, unknown> | undefined,
    prev: hexBytes(o.prev, 'prev', 32),
  };
  return { o, body };
}

function hashBody(body: Body, digest?: Sha256): Uint8Array {
  try {
    return bodyHash(body, digest);
  } catch (e) {
    throw new Malformed(`cannot encode entry: ${(e as Error).message}`);
  }
}

function parseEntry(raw: unknown, digest?: Sha256): Parsed {
  const { o, body } = entryBody(raw);
  const hash = hashBody(body, digest);
  return {
    ...body,
    storedHash: hexBytes(o.hash, 'hash', 32),
    sig: hexBytes(o.sig, 'sig', 64),
    signer: hexBytes(o.signer, 'signer', 32),
    hash,
    hashHex: toHex(hash),
    prevHex: o.prev as string,
  };
}

type Failure = Extract<AuditVerdict, { ok: false }>;
const fail = (index: number, code: AuditFailure, reason: string, seq?: number): Failure => ({ ok: false, index, seq, code, reason });

/**
 * Verify an exported audit trail (JSON text or the parsed object). With
 * `trustedTechnicianKeys`, every entry must be signed by one of them;
 * without, the embedded signer keys are used (integrity only).
 * Never throws.
 */
export async function verifyAuditExport(
  json: string | unknown,
  trustedTechnicianKeys?: Uint8Array[],
  opts: { expectedHead?: { seq: number; hash: string } } = {},
): Promise<AuditVerdict> {
  try {
    return await verifyInner(json, trustedTechnicianKeys, opts);
  } catch (e) {
    return fail(-1, 'malformed', `verification failed: ${(e as Error).message}`);
  }
}

async function verifyInner(
  json: string | unknown,
  trusted: Uint8Array[] | undefined,
  opts: { expectedHead?: { seq: number; hash: string } },
): Promise<AuditVerdict> {
  let doc: unknown = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json);
    } catch (e) {
      return fail(-1, 'malformed', `not JSON: ${(e as Error).message}`);
    }
  }
  const d = doc as Partial<AuditExport> | null;
  if (!d || typeof d !== 'object' || d.format !== 'fieldbench-audit') return fail(-1, 'malformed', 'not a fieldbench audit export (format)');
  if (d.version !== 1) return fail(-1, 'malformed', `unsupported audit export version ${String(d.version)}`);
  if (!Array.isArray(d.entries)) return fail(-1, 'malformed', 'entries must be an array');
  let head: { seq: number; hash: string } | null = null;
  if (d.head !== null && d.head !== undefined) {
    const h = d.head as { seq?: unknown; hash?: unknown };
    if (!Number.isSafeInteger(h.seq) || typeof h.hash !== 'string' || !/^[0-9a-f]{64}$/.test(h.hash)) return fail(-1, 'malformed', 'head must be {seq, hash (64 hex)}');
    head = { seq: h.seq as number, hash: h.hash };
  } else if (d.entries.length) {
    return fail(-1, 'malformed', 'head is missing');
  }

  const n = d.entries.length;
  const es: Parsed[] = new Array(n);
  for (let i = 0; i < n; i++) {
    try {
      es[i] = parseEntry(d.entries[i]);
    } catch (e) {
      if (e instanceof Malformed) {
        const s = (d.entries[i] as { seq?: unknown })?.seq;
        return fail(i, 'malformed', `entry ${i}: ${e.message}`, typeof s === 'number' ? s : undefined);
      }
      throw e;
    }
  }

  // Keys: trusted (by key id) or the embedded signer (which must match its key id).
  const trustedById = trusted ? new Map(trusted.map((k) => [keyIdHex(k), k])) : undefined;
  const sigCheck = async (i: number): Promise<Failure | undefined> => {
    const e = es[i];
    let pub: Uint8Array;
    if (trustedById) {
      const k = trustedById.get(e.technician.keyId);
      if (!k) return fail(i, 'bad-signature', `entry ${i} (seq ${e.seq}) is signed by key ${e.technician.keyId}, which is not a trusted technician key`, e.seq);
      // the entry's own signer field is what readers (and the hub) show: it must be the key that verified it
      if (!equalBytes(e.signer, k)) return fail(i, 'bad-signature', `entry ${i} (seq ${e.seq}): its signer field is not the key ${e.technician.keyId} that signed it`, e.seq);
      pub = k;
    } else {
      if (keyIdHex(e.signer) !== e.technician.keyId) {
        return fail(i, 'bad-signature', `entry ${i} (seq ${e.seq}): signer key does not match technician.keyId ${e.technician.keyId}`, e.seq);
      }
      pub = e.signer;
    }
    if (!(await verifyEd25519(e.sig, e.hash, pub))) {
      return fail(i, 'bad-signature', `entry ${i} (seq ${e.seq}): signature does not verify under key ${e.technician.keyId}`, e.seq);
    }
    return undefined;
  };

  const structural = await findStructural(es, head, opts.expectedHead, sigCheck);
  const limit = structural ? Math.min(structural.index, n) : n;
  // Signatures up to the first structural break, in parallel batches; the
  // lowest failing index wins.
  const BATCH = 512;
  for (let start = 0; start < limit; start += BATCH) {
    const end = Math.min(limit, start + BATCH);
    const jobs: Promise<Failure | undefined>[] = [];
    for (let i = start; i < end; i++) jobs.push(sigCheck(i));
    const results = await Promise.all(jobs);
    const bad = results.find((r) => r !== undefined);
    if (bad) return bad;
  }
  if (structural) return structural;
  return {
    ok: true,
    count: n,
    head,
    authenticated: trustedById !== undefined,
    signers: [...new Set(es.map((e) => e.technician.keyId))],
  };
}

async function findStructural(
  es: Parsed[],
  head: { seq: number; hash: string } | null,
  expectedHead: { seq: number; hash: string } | undefined,
  sigCheck: (i: number) => Promise<Failure | undefined>,
): Promise<Failure | undefined> {
  const n = es.length;
  const byHash = new Map<string, number>();
  const seqCount = new Map<number, number>();
  const referencedBy = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    if (!byHash.has(es[i].hashHex)) byHash.set(es[i].hashHex, i);
    seqCount.set(es[i].seq, (seqCount.get(es[i].seq) ?? 0) + 1);
    const list = referencedBy.get(es[i].prevHex);
    if (list) list.push(i);
    else referencedBy.set(es[i].prevHex, [i]);
  }
  const zeroHex = toHex(ZERO32);
  for (let i = 0; i < n; i++) {
    const e = es[i];
    if (!equalBytes(e.hash, e.storedHash)) {
      return fail(i, 'modified', `entry ${i} (seq ${e.seq}) was changed after it was recorded: its content no longer matches its hash`, e.seq);
    }
    const first = byHash.get(e.hashHex)!;
    if (first < i) return fail(i, 'inserted', `entry ${i} (seq ${e.seq}) is a second copy of entry ${first}`, e.seq);
    const expSeq = i === 0 ? 1 : es[i - 1].seq + 1;
    const expPrev = i === 0 ? zeroHex : es[i - 1].hashHex;
    if (e.seq === expSeq && e.prevHex === expPrev) continue;

    if (i === 0) {
      if (e.prevHex === zeroHex) return fail(0, 'modified', `entry 0 starts the chain but carries seq ${e.seq} instead of 1`, e.seq);
      const p = byHash.get(e.prevHex);
      if (p !== undefined) return fail(0, 'reordered', `entry 0 (seq ${e.seq}) belongs after entry ${p} (seq ${es[p].seq})`, e.seq);
      return fail(0, 'deleted', `entries before seq ${e.seq} are missing (the trail should start at seq 1)`, e.seq);
    }
    const prevE = es[i - 1];
    const p = byHash.get(e.prevHex);
    if (p !== undefined && p > i) {
      return fail(i, 'reordered', `entry ${i} (seq ${e.seq}) is out of order: it belongs right after entry ${p} (seq ${es[p].seq})`, e.seq);
    }
    if (p !== undefined && p < i - 1) {
      const j = p + 1;
      // The run j..i-1 sits between an entry and its successor. If something
      // outside the run chains to one of its entries, the run was moved here.
      let moved = false;
      for (let m = j; m < i && !moved; m++) {
        for (const r of referencedBy.get(es[m].hashHex) ?? []) if (r < j || r >= i) moved = true;
      }
      if (moved) {
        return fail(j, 'reordered', `entry ${j} (seq ${es[j].seq}) is out of order: entry ${i} (seq ${e.seq}) follows entry ${p} directly`, es[j].seq);
      }
      return fail(
        j,
        'inserted',
        `entr${i - j > 1 ? `ies ${j}..${i - 1} were` : `y ${j} (seq ${es[j].seq}) was`} added: entry ${i} (seq ${e.seq}) chains directly to entry ${p} (seq ${es[p].seq})`,
        es[j].seq,
      );
    }
    if (p === i - 1) {
      return fail(i, 'modified', `entry ${i} carries seq ${e.seq} but follows seq ${prevE.seq}: its content was rewritten`, e.seq);
    }
    // The entry it chains to is not in the file.
    if (e.seq > prevE.seq + 1) {
      const a = prevE.seq + 1;
      const b = e.seq - 1;
      return fail(i, 'deleted', `entr${a === b ? `y seq ${a} is` : `ies seq ${a}..${b} are`} missing before entry ${i} (seq ${e.seq})`, e.seq);
    }
    if (e.seq === prevE.seq + 1) {
      // Entry i-1 or entry i was rewritten (and rehashed); the signature tells which.
      const prevBad = await sigCheck(i - 1);
      if (prevBad || !(await sigCheck(i))) {
        return fail(i - 1, 'modified', `entry ${i - 1} (seq ${prevE.seq}) is not the entry that entry ${i} was chained to: it was rewritten`, prevE.seq);
      }
      return fail(i, 'modified', `entry ${i} (seq ${e.seq}) does not chain to entry ${i - 1}: it was rewritten`, e.seq);
    }
    if ((seqCount.get(e.seq) ?? 0) > 1) {
      return fail(i, 'inserted', `entry ${i} reuses seq ${e.seq} and chains to no entry in the trail: it was added`, e.seq);
    }
    return fail(i, 'reordered', `entry ${i} (seq ${e.seq}) comes after seq ${prevE.seq}`, e.seq);
  }
  const checkHead = (h: { seq: number; hash: string } | null, what: string): Failure | undefined => {
    if (h === null) return n ? fail(n, 'malformed', `${what} is missing`) : undefined;
    if (n === 0) return fail(0, 'deleted', `the trail is empty but ${what} is seq ${h.seq}`, h.seq);
    const k = byHash.get(h.hash);
    if (k === n - 1 && es[k].seq === h.seq) return undefined;
    if (k !== undefined && k < n - 1) {
      return fail(k + 1, 'inserted', `entries ${k + 1}..${n - 1} were added after the ${what} (seq ${h.seq})`, es[k + 1].seq);
    }
    const last = es[n - 1];
    if (h.seq > last.seq) {
      return fail(n, 'deleted', `entr${h.seq - last.seq > 1 ? `ies seq ${last.seq + 1}..${h.seq} are` : `y seq ${h.seq} is`} missing at the end (${what} is seq ${h.seq})`, h.seq);
    }
    const at = es.findIndex((x) => x.seq === h.seq);
    if (at >= 0) return fail(at, 'modified', `entry ${at} (seq ${h.seq}) differs from the ${what}`, h.seq);
    return fail(n, 'malformed', `${what} (seq ${h.seq}) matches no entry`);
  };
  return checkHead(head, 'recorded head') ?? (expectedHead ? checkHead(expectedHead, 'expected head') : undefined);
}

/** SHA-256 (hex) of an exported entry's body, as the chain and signature use it. Throws on malformed entries. */
export function exportEntryHash(e: AuditExportEntry, digest?: Sha256): string {
  return entryHashHex(e, (b) => toHex((digest ?? sha256)(b)));
}

/**
 * The same with a digest that answers in hex (the hub's node:crypto one-shot): every field is
 * checked as parseEntry checks it, in the same order, with the same errors (the entry's own
 * `hash` is not looked at), but nothing the hash does not cover is decoded.
 */
export function entryHashHex(e: AuditExportEntry, hexDigest: (bytes: Uint8Array) => string): string {
  const { o, body } = entryBody(e);
  let h: string;
  try {
    h = hexDigest(encodeBody(body));
  } catch (err) {
    throw new Malformed(`cannot encode entry: ${(err as Error).message}`);
  }
  checkHex(o.sig, 'sig', 64);
  checkHex(o.signer, 'signer', 32);
  return h;
}

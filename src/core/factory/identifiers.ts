/**
 * Identifier allocation for the factory station: serial numbers from a
 * pattern and range, DevEUIs (EUI-64) and MAC addresses (EUI-48) from blocks
 * the manufacturer owns. Unit k of a policy gets serial.first + k, devEui.first
 * + k and mac.first + k together, so the three identifiers always move as one
 * "index" and a block of indices (handed out by the fleet hub) is a block of
 * all three.
 *
 * Rules (see docs/FACTORY.md, "Identifiers"):
 *  - An identifier is journaled (durably: append + fsync on Node, an IndexedDB
 *    transaction in the browser) BEFORE allocate() returns it, so a crash or
 *    restart never hands it out again.
 *  - Every allocation ends in a commit: 'provisioned' or 'failed'. A failed
 *    identifier is never reissued (it may be printed on a scrapped label, or
 *    written into a device that died half-way). An allocation that was never
 *    committed when the station stopped is recorded as failed ('interrupted')
 *    on the next start.
 *  - A torn last record (crash during a write) is cut off and the index it
 *    may have named is burned (recorded as void), never reissued.
 *  - A corrupt record anywhere else stops the allocator (journal-corrupt):
 *    guessing could duplicate identifiers.
 *  - Calls are serialised inside the process (many ports share one
 *    allocator); the Node journal takes a lock file so a second process on the
 *    same journal is refused (journal-locked).
 *
 * The journal is JSON lines, each `<json>\t<sha256/8 hex>`; the first line is a
 * header naming the policy and block, so a journal is never replayed under a
 * different policy.
 *
 * Chip UIDs (the clone check, docs/FACTORY.md "Two units with one chip UID"): an
 * allocation made for a provisioning offer journals the offer's chip UID and the
 * identity key to be certified with it (before the certificate exists), and a
 * unit found holding this station's certificate on a retry is journaled as
 * holding it. A UID is HELD by a key once the station saw the unit store and read
 * back the certificate (commit 'provisioned', or `hold` on a retry), or when the
 * station's control log says so (`certified` seeds). allocate(unit, chip) refuses
 * (duplicate-uid), before anything is allocated, a UID held by another key (unless
 * the claim replaces that key under an owner-signed re-provisioning authorization)
 * or being certified right now for another key on another port. A certificate
 * issued but never confirmed (a fault before the read-back) does not hold the UID:
 * the unit's retry makes new keys (the device drops its candidate keys) and must go
 * through; if it had stored the certificate after all, the retry finds it and
 * `hold` confirms it, or names the other key that got the UID meanwhile.
 */
import { sha256 } from '@noble/hashes/sha2.js';

export interface IdentifierPolicy {
  serial: { pattern: string /* e.g. "SN-{n:06}" */; first: number; last: number };
  /** EUI-64 block: first DevEUI (16 hex digits) and how many the manufacturer owns. */
  devEui?: { first: string; count: number };
  /** EUI-48 block: first MAC (12 hex digits) and how many. */
  mac?: { first: string; count: number };
}

export interface AllocatedIds {
  /** Index inside the policy (0 = serial.first), unique per policy. */
  index: number;
  serial: string;
  /** 16 lowercase hex digits. */
  devEui?: string;
  /** 12 lowercase hex digits. */
  mac?: string;
}

export type AllocationResult = 'provisioned' | 'failed';

/** What a provisioning offer claims: its chip UID and the new identity key it proved it holds. */
export interface ChipClaim {
  /** Chip UID, lowercase hex. */
  uid: string;
  /** The Ed25519 identity public key to be certified, lowercase hex. */
  key: string;
  /**
   * Re-provisioning only: the key the unit held until now (lowercase hex), which it proved it
   * holds and which an owner-signed authorization names with this UID. That key may be replaced.
   */
  replaces?: string;
}

/** A chip UID this station certified and saw held: for which key, as which serial, when, where. */
export interface CertifiedChip {
  uid: string;
  key: string;
  serial: string;
  at: number;
  /** The port (or unit name) it was on. */
  unit?: string;
  source?: 'journal' | 'control-log';
}

export interface IdAllocator {
  /**
   * Next free identifiers for `unit` (a port name, chip UID, ...); journaled before it returns.
   * With `chip`, the claim is journaled with them, and refused (duplicate-uid) before anything
   * is allocated when the chip UID is held by, or being certified for, another key.
   */
  allocate(unit: string, chip?: ChipClaim): Promise<AllocatedIds>;
  /** Record the unit's result; journaled. Failed ids are never reissued. */
  commit(ids: AllocatedIds, result: AllocationResult, detail?: string): Promise<void>;
  /**
   * A unit was found holding this station's certificate (a retry) and proved it holds its key:
   * journal that it holds the UID. Refused (duplicate-uid) when the UID is held by another key.
   */
  hold(chip: Omit<CertifiedChip, 'at' | 'source'>): Promise<void>;
}

/**
 * A sub-range of a policy's indices handed to one station by the fleet hub:
 * indices [start, start + count). Blocks of one policy must not overlap (the
 * hub's job); an allocator limited to a block never leaves it.
 */
export interface IdentifierBlock {
  /** Block id assigned by the hub (recorded in the journal header). */
  id: string;
  /** First index (0 = the policy's serial.first). */
  start: number;
  /** Number of indices. */
  count: number;
  /** Optional: policyDigest(policy) the block was cut from; checked when present. */
  policy?: string;
}

export type AllocationStatus = 'allocated' | 'provisioned' | 'failed' | 'void';

export interface AllocationEntry {
  index: number;
  status: AllocationStatus;
  unit?: string;
  ids?: AllocatedIds;
  detail?: string;
  allocatedAt?: number;
  committedAt?: number;
}

export type AllocatorFailure =
  | 'invalid-policy'
  | 'invalid-block'
  | 'invalid-unit'
  | 'exhausted'
  | 'journal-corrupt'
  | 'journal-mismatch'
  | 'journal-locked'
  | 'journal-io'
  | 'unknown-allocation'
  | 'already-committed'
  /** The chip UID is already certified for (or being certified for) another identity key: a clone or a reused board. */
  | 'duplicate-uid'
  | 'closed';

export class AllocatorError extends Error {
  constructor(
    readonly code: AllocatorFailure,
    message: string,
  ) {
    super(message);
    this.name = 'AllocatorError';
  }
}

/* ------------------------------------------------------------------ policy */

const LITERAL = /^[A-Za-z0-9._\-/]*$/;
const PLACEHOLDER = /\{n(?::0(\d{1,2}))?\}/g;

export interface CompiledPolicy {
  policy: IdentifierPolicy;
  /** How many units the policy can identify (the smallest of its ranges). */
  capacity: number;
  /** Which range limits the capacity. */
  limitedBy: 'serial' | 'devEui' | 'mac';
  /** Identifiers of index k (0 <= k < capacity). */
  at(index: number): AllocatedIds;
  /** Stable digest of the policy (hex), recorded in journals and blocks. */
  digest: string;
}

function bad(msg: string): never {
  throw new AllocatorError('invalid-policy', msg);
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
}

function euiBlock(name: 'devEui' | 'mac', b: { first: string; count: number } | undefined, digits: number): { first: bigint; count: number } | undefined {
  if (b === undefined) return undefined;
  if (typeof b !== 'object' || b === null) bad(`${name} must be {first, count}`);
  if (typeof b.first !== 'string' || !new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(b.first)) bad(`${name}.first must be ${digits} hex digits`);
  if (!isCount(b.count)) bad(`${name}.count must be a positive integer`);
  const first = BigInt('0x' + b.first);
  const last = first + BigInt(b.count) - 1n;
  const bits = BigInt(digits * 4);
  if (last >> bits !== 0n) bad(`${name} block runs past ${'F'.repeat(digits)}`);
  // every address of the block must share the first address's OUI (24 bits) and be unicast (I/G bit clear)
  const ouiShift = bits - 24n;
  if (first >> ouiShift !== last >> ouiShift) bad(`${name} block crosses its OUI (${b.first.slice(0, 6)}): a manufacturer block lies inside one OUI`);
  if ((first >> (bits - 8n)) & 1n) bad(`${name} block is a group (multicast) address range: the I/G bit of ${b.first.slice(0, 2)} is set`);
  return { first, count: b.count };
}

function parsePattern(pattern: unknown): { prefix: string; suffix: string; width: number } {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 64) bad('serial.pattern must be 1..64 characters');
  const found = [...pattern.matchAll(PLACEHOLDER)];
  if (found.length !== 1) bad(`serial.pattern must hold exactly one {n} or {n:0W} placeholder, found ${found.length}`);
  const m = found[0];
  const prefix = pattern.slice(0, m.index);
  const suffix = pattern.slice(m.index! + m[0].length);
  if (!LITERAL.test(prefix) || !LITERAL.test(suffix)) bad('serial.pattern may only hold letters, digits and . _ - / besides its placeholder');
  const width = m[1] === undefined ? 0 : Number(m[1]);
  if (m[1] !== undefined && (width < 1 || width > 20)) bad('serial.pattern width must be 1..20');
  return { prefix, suffix, width };
}

/** Canonical JSON of a policy (sorted keys, lowercase hex): what its digest covers. */
export function canonicalPolicy(p: IdentifierPolicy): string {
  const o: Record<string, unknown> = { serial: { first: p.serial.first, last: p.serial.last, pattern: p.serial.pattern } };
  if (p.devEui) o.devEui = { count: p.devEui.count, first: p.devEui.first.toLowerCase() };
  if (p.mac) o.mac = { count: p.mac.count, first: p.mac.first.toLowerCase() };
  return JSON.stringify(o);
}

/** Validate a policy (AllocatorError 'invalid-policy' with the reason) and compile it. */
export function compilePolicy(policy: IdentifierPolicy): CompiledPolicy {
  if (typeof policy !== 'object' || policy === null || typeof policy.serial !== 'object' || policy.serial === null) bad('an identifier policy needs serial {pattern, first, last}');
  const { prefix, suffix, width } = parsePattern(policy.serial.pattern);
  const { first, last } = policy.serial;
  if (!Number.isSafeInteger(first) || first < 0) bad('serial.first must be a non-negative integer');
  if (!Number.isSafeInteger(last) || last < first) bad('serial.last must be an integer >= serial.first');
  if (width && String(last).length > width) bad(`serial.last ${last} does not fit the pattern's ${width} digits`);
  const sample = prefix + String(last).padStart(width, '0') + suffix;
  if (sample.length > 128) bad('serials would be longer than 128 characters');
  const dev = euiBlock('devEui', policy.devEui, 16);
  const mac = euiBlock('mac', policy.mac, 12);
  let capacity = last - first + 1;
  let limitedBy: CompiledPolicy['limitedBy'] = 'serial';
  if (dev && dev.count < capacity) (capacity = dev.count), (limitedBy = 'devEui');
  if (mac && mac.count < capacity) (capacity = mac.count), (limitedBy = 'mac');
  const digest = hex(sha256(new TextEncoder().encode(canonicalPolicy(policy)))).slice(0, 32);
  return {
    policy,
    capacity,
    limitedBy,
    digest,
    at(index: number): AllocatedIds {
      if (!Number.isSafeInteger(index) || index < 0 || index >= capacity) throw new AllocatorError('exhausted', `index ${index} is outside the policy's ${capacity} identifiers`);
      const ids: AllocatedIds = { index, serial: prefix + String(first + index).padStart(width, '0') + suffix };
      if (dev) ids.devEui = (dev.first + BigInt(index)).toString(16).padStart(16, '0');
      if (mac) ids.mac = (mac.first + BigInt(index)).toString(16).padStart(12, '0');
      return ids;
    },
  };
}

/** Digest naming a policy (what IdentifierBlock.policy holds). */
export function policyDigest(policy: IdentifierPolicy): string {
  return compilePolicy(policy).digest;
}

/** Check a block against a compiled policy (AllocatorError 'invalid-block'). */
export function checkBlock(c: CompiledPolicy, block: IdentifierBlock): void {
  const fail: (m: string) => never = (m) => {
    throw new AllocatorError('invalid-block', m);
  };
  if (typeof block !== 'object' || block === null) fail('a block is {id, start, count}');
  if (typeof block.id !== 'string' || block.id.length === 0 || block.id.length > 128 || /[\u0000-\u001f]/.test(block.id)) fail('block.id must be 1..128 printable characters');
  if (!Number.isSafeInteger(block.start) || block.start < 0) fail('block.start must be a non-negative integer');
  if (!isCount(block.count)) fail('block.count must be a positive integer');
  if (block.start + block.count > c.capacity) fail(`block [${block.start}, ${block.start + block.count}) runs past the policy's ${c.capacity} identifiers`);
  if (block.policy !== undefined && block.policy !== c.digest) fail(`block ${block.id} was cut from another policy (${block.policy}, this one is ${c.digest})`);
}

/* ----------------------------------------------------------------- journal */

/** Durable line storage behind an allocator (file on Node, IndexedDB in the browser, memory in tests). */
export interface JournalStore {
  /** Read every line (without '\n'); `torn` when the last line was incomplete (it has been cut off). */
  open(): Promise<{ lines: string[]; torn: boolean }>;
  /** Append one line durably before resolving. */
  append(line: string): Promise<void>;
  close(): Promise<void>;
}

/** In-memory journal (memoryAllocator; tests can read and damage `text`). */
export class MemoryJournal implements JournalStore {
  text = '';
  async open() {
    const nl = this.text.lastIndexOf('\n');
    const torn = nl !== this.text.length - 1 && this.text.length > 0;
    this.text = this.text.slice(0, nl + 1);
    return { lines: this.text ? this.text.slice(0, -1).split('\n') : [], torn };
  }
  async append(line: string) {
    this.text += line + '\n';
  }
  async close() {}
}

type Rec =
  | { t: 'h'; v: 1; policy: string; digest: string; block?: IdentifierBlock }
  | { t: 'a'; i: number; u: string; s: string; e?: string; m?: string; at: number; uid?: string; k?: string; r?: string }
  | { t: 'u'; uid: string; k: string; s: string; u?: string; at: number }
  | { t: 'c'; i: number; r: AllocationResult; d?: string; at: number }
  | { t: 'x'; i: number; why: string; at: number };

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

const te = new TextEncoder();

export function encodeRecord(r: Rec): string {
  const j = JSON.stringify(r);
  return `${j}\t${hex(sha256(te.encode(j))).slice(0, 8)}`;
}

function decodeRecord(line: string): Rec | undefined {
  const tab = line.lastIndexOf('\t');
  if (tab < 0) return undefined;
  const j = line.slice(0, tab);
  if (hex(sha256(te.encode(j))).slice(0, 8) !== line.slice(tab + 1)) return undefined;
  try {
    const r = JSON.parse(j) as Rec;
    if (typeof r !== 'object' || r === null || !['h', 'a', 'c', 'x', 'u'].includes(r.t)) return undefined;
    if (r.t !== 'h' && r.t !== 'u' && !Number.isSafeInteger(r.i)) return undefined;
    if (r.t === 'u' && (typeof r.uid !== 'string' || typeof r.k !== 'string' || typeof r.s !== 'string')) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

export interface AllocatorOptions {
  journal: JournalStore;
  block?: IdentifierBlock;
  now?: () => number;
  /** Chip UIDs known held from elsewhere (the station's control log), read when the journal opens. */
  certified?: CertifiedChip[] | (() => Promise<CertifiedChip[]>);
}

/** An allocator with its bookkeeping visible (reports, the Bench page, tests). */
export interface JournaledAllocator extends IdAllocator {
  readonly policy: CompiledPolicy;
  readonly block?: IdentifierBlock;
  /** Every index used so far, in order. */
  entries(): Promise<AllocationEntry[]>;
  /** Indices left. */
  remaining(): Promise<number>;
  /** Every chip UID held, with its key and serial (newest last per UID). */
  certifiedChips(): Promise<CertifiedChip[]>;
  close(): Promise<void>;
}

const short = (k: string) => k.slice(0, 16);
const when = (at: number) => new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z');

const MAX_DETAIL = 500;

/**
 * The allocator over any JournalStore. The journal is opened on the first call
 * (errors such as journal-locked or journal-corrupt surface there); call
 * `ready()`-style eagerly with `openAllocator` when you want them up front.
 */
export function journaledAllocator(policy: IdentifierPolicy, opts: AllocatorOptions): JournaledAllocator {
  const c = compilePolicy(policy);
  const block = opts.block;
  if (block) checkBlock(c, block);
  const start = block ? block.start : 0;
  const end = block ? block.start + block.count : c.capacity;
  const now = opts.now ?? Date.now;
  const journal = opts.journal;
  const entries = new Map<number, AllocationEntry>();
  /** The chip claim journaled with each allocation made for an offer. */
  const claims = new Map<number, ChipClaim>();
  /** Per chip UID, every key seen holding it (in journal order). */
  const holders = new Map<string, CertifiedChip[]>();
  /** `${uid} ${key}` replaced by a re-provisioning. */
  const replaced = new Set<string>();
  let next = start;
  let opened: Promise<void> | undefined;
  let closed = false;
  let chain: Promise<unknown> = Promise.resolve();

  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(async () => {
      if (closed) throw new AllocatorError('closed', 'this allocator was closed');
      await (opened ??= open().catch(async (e) => {
        await journal.close().catch(() => undefined);
        throw e;
      }));
      return fn();
    });
    chain = p.catch(() => undefined);
    return p;
  };

  const write = async (r: Rec) => {
    try {
      await journal.append(encodeRecord(r));
    } catch (e) {
      throw new AllocatorError('journal-io', `could not write the identifier journal: ${(e as Error).message}`);
    }
  };

  async function open(): Promise<void> {
    const seeds = typeof opts.certified === 'function' ? await opts.certified() : (opts.certified ?? []);
    for (const c of seeds) addHolder({ ...c, source: c.source ?? 'control-log' });
    let lines: string[];
    let torn: boolean;
    try {
      ({ lines, torn } = await journal.open());
    } catch (e) {
      if (e instanceof AllocatorError) throw e;
      throw new AllocatorError('journal-io', `could not open the identifier journal: ${(e as Error).message}`);
    }
    const header: Rec = { t: 'h', v: 1, policy: canonicalPolicy(policy), digest: c.digest, ...(block ? { block: { id: block.id, start: block.start, count: block.count } } : {}) };
    if (lines.length === 0) {
      await write(header);
      if (torn) await burn(next, 'torn-record');
      return;
    }
    for (let n = 0; n < lines.length; n++) {
      const r = decodeRecord(lines[n]);
      if (!r) {
        // a damaged LAST line is a torn write (its checksum never completed); anything earlier is corruption
        if (n === lines.length - 1) {
          torn = true;
          break;
        }
        throw new AllocatorError('journal-corrupt', `identifier journal record ${n + 1} is damaged; refusing to guess which identifiers were issued`);
      }
      if (n === 0) {
        if (r.t !== 'h') throw new AllocatorError('journal-corrupt', 'identifier journal has no header');
        if (r.digest !== c.digest || r.policy !== header.policy) throw new AllocatorError('journal-mismatch', `this journal belongs to another identifier policy (${r.digest}, this one is ${c.digest})`);
        const hb = r.block;
        if (JSON.stringify(hb ?? null) !== JSON.stringify(header.block ?? null)) throw new AllocatorError('journal-mismatch', `this journal belongs to block ${hb ? hb.id : '(none)'}, not ${block ? block.id : '(none)'}`);
        continue;
      }
      apply(r, n + 1);
    }
    if (torn) await burn(next, 'torn-record');
    // allocations the previous run never finished: recorded as failed, never reissued
    for (const e of [...entries.values()]) {
      if (e.status === 'allocated') {
        const at = now();
        await write({ t: 'c', i: e.index, r: 'failed', d: 'interrupted', at });
        Object.assign(e, { status: 'failed', detail: 'interrupted', committedAt: at });
      }
    }
  }

  function apply(r: Rec, line: number): void {
    const corrupt: (m: string) => never = (m) => {
      throw new AllocatorError('journal-corrupt', `identifier journal record ${line}: ${m}`);
    };
    if (r.t === 'h') corrupt('second header');
    if (r.t === 'u') {
      addHolder({ uid: r.uid, key: r.k, serial: r.s, at: r.at, ...(r.u ? { unit: r.u } : {}), source: 'journal' });
      return;
    }
    if (r.t === 'a' || r.t === 'x') {
      if (r.i !== next) corrupt(`index ${r.i} out of order (expected ${next})`);
      if (r.i >= end) corrupt(`index ${r.i} outside the journal's range`);
      if (r.t === 'a') {
        const ids = c.at(r.i);
        if (ids.serial !== r.s || ids.devEui !== r.e || ids.mac !== r.m) corrupt(`identifiers of index ${r.i} do not follow the policy`);
        entries.set(r.i, { index: r.i, status: 'allocated', unit: r.u, ids, allocatedAt: r.at });
        if (typeof r.uid === 'string' && typeof r.k === 'string') claims.set(r.i, { uid: r.uid, key: r.k, ...(typeof r.r === 'string' ? { replaces: r.r } : {}) });
      } else entries.set(r.i, { index: r.i, status: 'void', detail: r.why, allocatedAt: r.at });
      next = r.i + 1;
      return;
    }
    const e = entries.get(r.i);
    if (!e || e.status === 'void') corrupt(`commit of index ${r.i}, which was never allocated`);
    if (e.status !== 'allocated') corrupt(`second commit of index ${r.i}`);
    if (r.r !== 'provisioned' && r.r !== 'failed') corrupt(`unknown result ${JSON.stringify(r.r)}`);
    Object.assign(e, { status: r.r, detail: r.d, committedAt: r.at });
    if (r.r === 'provisioned') certified(e);
  }

  function addHolder(c: CertifiedChip): void {
    const list = holders.get(c.uid) ?? [];
    if (!list.some((h) => h.key === c.key && h.serial === c.serial)) list.push(c);
    holders.set(c.uid, list);
  }

  /** An allocation committed provisioned: its claim's key holds the UID (and replaces the old key). */
  function certified(e: AllocationEntry): void {
    const cl = claims.get(e.index);
    if (!cl || !e.ids) return;
    addHolder({ uid: cl.uid, key: cl.key, serial: e.ids.serial, at: e.committedAt ?? e.allocatedAt ?? 0, ...(e.unit ? { unit: e.unit.split(' ')[0] } : {}), source: 'journal' });
    if (cl.replaces) replaced.add(`${cl.uid} ${cl.replaces}`);
  }

  /** Why this claim must be refused, or undefined. */
  function conflict(c: ChipClaim, held: boolean): string | undefined {
    for (const [i, cl] of claims) {
      const e = entries.get(i);
      if (e?.status === 'allocated' && cl.uid === c.uid && cl.key !== c.key) {
        return `chip UID ${c.uid} is being certified right now as serial ${e.ids?.serial} (${e.unit?.split(' ')[0]}, key ${short(cl.key)}…) for another device key (${short(c.key)}…): a clone or a reused board on two ports; not provisioned`;
      }
    }
    const others = (holders.get(c.uid) ?? []).filter((h) => h.key !== c.key && h.key !== c.replaces && !replaced.has(`${c.uid} ${h.key}`));
    if (!others.length) return undefined;
    const h = others.reduce((a, b) => (b.at >= a.at ? b : a));
    const where = `${when(h.at)}${h.unit ? ` (${h.unit})` : ''}`;
    return held
      ? `chip UID ${c.uid} is also certified as serial ${h.serial} on ${where} for another device key (${short(h.key)}…, this unit holds ${short(c.key)}…): two units with one chip UID, a clone or a reused board`
      : `chip UID ${c.uid} was already certified as serial ${h.serial} on ${where} for another device key (${short(h.key)}…, this unit offers ${short(c.key)}…): a clone or a reused board; not provisioned`;
  }

  const checkClaim = (c: ChipClaim): void => {
    const hexOk = (v: unknown) => typeof v === 'string' && /^[0-9a-f]{2,128}$/.test(v);
    if (!c || !hexOk(c.uid) || !hexOk(c.key) || (c.replaces !== undefined && !hexOk(c.replaces))) throw new AllocatorError('invalid-unit', 'a chip claim is {uid, key, replaces?} in lowercase hex');
  };

  async function burn(index: number, why: string): Promise<void> {
    if (index >= end) return;
    const at = now();
    await write({ t: 'x', i: index, why, at });
    entries.set(index, { index, status: 'void', detail: why, allocatedAt: at });
    next = index + 1;
  }

  return {
    policy: c,
    block,
    allocate(unit: string, chip?: ChipClaim) {
      if (typeof unit !== 'string' || unit.length === 0 || unit.length > 256) return Promise.reject(new AllocatorError('invalid-unit', 'unit must be a 1..256 character name'));
      try {
        if (chip !== undefined) checkClaim(chip);
      } catch (e) {
        return Promise.reject(e);
      }
      return serial(async () => {
        const why = chip && conflict(chip, false);
        if (why) throw new AllocatorError('duplicate-uid', why);
        if (next >= end) {
          const where = block ? `block ${block.id} [${block.start}, ${end})` : `the policy's ${c.limitedBy} range (${c.capacity} identifiers)`;
          throw new AllocatorError('exhausted', `no identifiers left in ${where}: ask for a new block or extend the policy`);
        }
        const ids = c.at(next);
        const at = now();
        const claim = chip ? { uid: chip.uid, k: chip.key, ...(chip.replaces ? { r: chip.replaces } : {}) } : {};
        await write({ t: 'a', i: ids.index, u: unit, s: ids.serial, ...(ids.devEui ? { e: ids.devEui } : {}), ...(ids.mac ? { m: ids.mac } : {}), at, ...claim });
        entries.set(ids.index, { index: ids.index, status: 'allocated', unit, ids, allocatedAt: at });
        if (chip) claims.set(ids.index, { uid: chip.uid, key: chip.key, ...(chip.replaces ? { replaces: chip.replaces } : {}) });
        next = ids.index + 1;
        return { ...ids };
      });
    },
    commit(ids: AllocatedIds, result: AllocationResult, detail?: string) {
      return serial(async () => {
        const e = ids && typeof ids === 'object' ? entries.get(ids.index) : undefined;
        if (!e || !e.ids || e.ids.serial !== ids.serial || e.ids.devEui !== ids.devEui || e.ids.mac !== ids.mac) {
          throw new AllocatorError('unknown-allocation', `these identifiers (${ids && (ids as AllocatedIds).serial}) were not allocated by this allocator`);
        }
        if (e.status !== 'allocated') throw new AllocatorError('already-committed', `${ids.serial} was already recorded as ${e.status}`);
        if (result !== 'provisioned' && result !== 'failed') throw new AllocatorError('invalid-unit', `result must be 'provisioned' or 'failed'`);
        const d = detail === undefined ? undefined : String(detail).slice(0, MAX_DETAIL);
        const at = now();
        await write({ t: 'c', i: e.index, r: result, ...(d !== undefined ? { d } : {}), at });
        Object.assign(e, { status: result, detail: d, committedAt: at });
        if (result === 'provisioned') certified(e);
      });
    },
    hold(chip) {
      try {
        checkClaim({ uid: chip?.uid, key: chip?.key });
        if (typeof chip.serial !== 'string' || !chip.serial) throw new AllocatorError('invalid-unit', 'a held chip names its serial');
      } catch (e) {
        return Promise.reject(e);
      }
      return serial(async () => {
        if ((holders.get(chip.uid) ?? []).some((h) => h.key === chip.key && h.serial === chip.serial)) return;
        const why = conflict({ uid: chip.uid, key: chip.key }, true);
        if (why) throw new AllocatorError('duplicate-uid', why);
        const at = now();
        await write({ t: 'u', uid: chip.uid, k: chip.key, s: chip.serial, ...(chip.unit ? { u: chip.unit.slice(0, 256) } : {}), at });
        addHolder({ uid: chip.uid, key: chip.key, serial: chip.serial, at, ...(chip.unit ? { unit: chip.unit } : {}), source: 'journal' });
      });
    },
    certifiedChips() {
      return serial(async () => [...holders.values()].flat().filter((h) => !replaced.has(`${h.uid} ${h.key}`)).map((h) => ({ ...h })));
    },
    entries() {
      return serial(async () => [...entries.values()].map((e) => ({ ...e, ids: e.ids && { ...e.ids } })));
    },
    remaining() {
      return serial(async () => end - next);
    },
    async close() {
      await chain;
      if (closed) return;
      closed = true;
      await journal.close();
    },
  };
}

/** An allocator journaled in memory (tests, the in-memory demo). */
export function memoryAllocator(policy: IdentifierPolicy, journal: JournalStore = new MemoryJournal()): JournaledAllocator {
  return journaledAllocator(policy, { journal });
}

/** An allocator limited to a hub-issued block, over the given journal (memory by default). */
export function blockAllocator(policy: IdentifierPolicy, block: IdentifierBlock, journal: JournalStore = new MemoryJournal()): JournaledAllocator {
  return journaledAllocator(policy, { journal, block });
}

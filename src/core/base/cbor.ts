/**
 * CBOR in plain mode (RFC 8949), shared by the SMP layer and the trust layer.
 *
 * cbor-x's defaults are not plain CBOR (records, tagged typed arrays); these
 * encoders/decoders are configured so that bytes are plain bstr, maps are
 * plain maps, and indefinite-length maps (as Zephyr's zcbor emits) decode.
 */
import { Decoder, Encoder, Tag } from 'cbor-x';
import { compareBytes } from './bytes.ts';
import { FieldbenchError } from './errors.ts';

export { Tag };

const plainOptions = {
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
  // cbor-x would otherwise turn some tags into JS objects (e.g. Date)
  structuredClone: false,
  // never produce float32 when a float64 is given (we never rely on floats)
  useFloat32: 0,
} as const;

const mapEncoder = new Encoder(plainOptions as never);
const mapDecoder = new Decoder(plainOptions as never);
const objectDecoder = new Decoder({ ...plainOptions, mapsAsObjects: true } as never);

export class CborError extends FieldbenchError<'cbor'> {
  constructor(message: string, cause?: unknown) {
    super('cbor', message, cause);
    this.name = 'CborError';
  }
}

/** Encode a value. Plain objects become maps with string keys in insertion order. */
export function encodeCbor(value: unknown): Uint8Array {
  return toU8(mapEncoder.encode(fixIntegers(value)));
}

const TWO_32 = 0x1_0000_0000;

/**
 * cbor-x writes integers of 2^32 and above as float64 and BigInts always in
 * 8 bytes; CBOR wants the shortest integer encoding. Large safe integers
 * become BigInt (encoded as 64-bit integers), small BigInts become numbers.
 */
function fixIntegers(v: unknown): unknown {
  if (typeof v === 'number') {
    return Number.isInteger(v) && (v >= TWO_32 || v < -TWO_32) && Number.isSafeInteger(v) ? BigInt(v) : v;
  }
  if (typeof v === 'bigint') return v < BigInt(TWO_32) && v >= -BigInt(TWO_32) ? Number(v) : v;
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.some(needsFix) ? v.map(fixIntegers) : v;
  if (v instanceof Map) {
    let dirty = false;
    for (const [k, x] of v) if (needsFix(k) || needsFix(x)) dirty = true;
    if (!dirty) return v;
    const m = new Map();
    for (const [k, x] of v) m.set(fixIntegers(k), fixIntegers(x));
    return m;
  }
  if (v instanceof Tag) return new Tag(fixIntegers(v.value), v.tag);
  if (Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    let dirty = false;
    for (const k in o) if (needsFix(o[k])) dirty = true;
    if (!dirty) return v;
    const out: Record<string, unknown> = {};
    for (const k in o) out[k] = fixIntegers(o[k]);
    return out;
  }
  return v;
}

function needsFix(v: unknown): boolean {
  if (typeof v === 'number') return Number.isInteger(v) && (v >= TWO_32 || v < -TWO_32);
  if (typeof v === 'bigint') return true;
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array);
}

/** Decode exactly one CBOR item; maps become `Map`. Trailing bytes are an error. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return decodeWith(mapDecoder, bytes);
}

/** Decode exactly one CBOR item; maps become plain objects (string keys). Used for SMP payloads. */
export function decodeCborObject(bytes: Uint8Array): unknown {
  return decodeWith(objectDecoder, bytes);
}

function decodeWith(decoder: Decoder, bytes: Uint8Array): unknown {
  // Bounded nesting and well-formedness first: a deep input fails here with a typed error.
  checkCbor(bytes, 'well-formed');
  let items: unknown[];
  try {
    items = decoder.decodeMultiple(bytes) as unknown[];
    if (!Array.isArray(items) || items.length !== 1) {
      throw new CborError(items && items.length > 1 ? 'trailing bytes after CBOR item' : 'invalid CBOR');
    }
    return normalise(items[0]);
  } catch (e) {
    if (e instanceof CborError) throw e;
    throw new CborError(`invalid CBOR: ${(e as Error).message}`, e);
  }
}

/** cbor-x may hand back Buffer in Node; make every byte string a plain Uint8Array. */
function normalise(v: unknown): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  if (v instanceof Uint8Array) return v.constructor === Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(normalise);
  if (v instanceof Map) {
    const m = new Map();
    for (const [k, val] of v) m.set(normalise(k), normalise(val));
    return m;
  }
  if (v instanceof Tag) return new Tag(normalise(v.value), v.tag);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) o[k] = normalise(val);
    return o;
  }
  return v;
}

function toU8(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Deterministic encoding (RFC 8949 section 4.2.1): map keys sorted by the
 * bytewise order of their encodings, definite lengths, shortest integers.
 * Plain objects are treated as maps with string keys.
 */
export function encodeDeterministic(value: unknown): Uint8Array {
  return encodePlainDeterministic(value) ?? encodeDeterministicReference(value);
}

/** The general deterministic path (canonical Maps through cbor-x): the reference the direct writer below must equal. */
export function encodeDeterministicReference(value: unknown): Uint8Array {
  return encodeCbor(canonicalise(value));
}

// ---------------------------------------------------------------- direct deterministic writer
//
// The same bytes as encodeCbor(canonicalise(value)) for plain JSON-like values (text, safe
// integers, booleans, null, Uint8Array, arrays, plain objects), written straight into one
// buffer: no intermediate Maps, no per-key cbor-x calls. Anything else (floats, -0, BigInt,
// Map, Tag, undefined outside an object, other objects) makes it give up (undefined) and the
// general path above decides, so verdicts and errors stay those of the general path.
// tests/unit/cbor.test.ts compares both paths on generated values.

const utf8 = new TextEncoder();
let out = new Uint8Array(4096);
let at = 0;
/** Sorted encoded keys per object shape (the key list joined), so a repeated shape sorts once. */
const keyOrder = new Map<string, { keys: string[]; enc: Uint8Array[] }>();
const KEY_ORDER_MAX = 512;

class GiveUp {}
const GIVE_UP = new GiveUp();

function room(n: number): void {
  if (at + n <= out.length) return;
  let size = out.length * 2;
  while (size < at + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(out.subarray(0, at));
  out = next;
}

function head(major: number, n: number): void {
  room(9);
  const m = major << 5;
  if (n < 24) out[at++] = m | n;
  else if (n < 0x100) {
    out[at++] = m | 24;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = m | 25;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  } else if (n < 0x1_0000_0000) {
    out[at++] = m | 26;
    out[at++] = n >>> 24;
    out[at++] = (n >>> 16) & 0xff;
    out[at++] = (n >>> 8) & 0xff;
    out[at++] = n & 0xff;
  } else {
    out[at++] = m | 27;
    const hi = Math.floor(n / 0x1_0000_0000);
    const lo = n >>> 0;
    out[at++] = hi >>> 24;
    out[at++] = (hi >>> 16) & 0xff;
    out[at++] = (hi >>> 8) & 0xff;
    out[at++] = hi & 0xff;
    out[at++] = lo >>> 24;
    out[at++] = (lo >>> 16) & 0xff;
    out[at++] = (lo >>> 8) & 0xff;
    out[at++] = lo & 0xff;
  }
}

function text(s: string): void {
  const n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    head(3, n);
    room(n);
    for (let i = 0; i < n; i++) out[at++] = s.charCodeAt(i);
    return;
  }
  // lone surrogates: TextEncoder would replace them; leave the decision to the general path
  if (/[\uD800-\uDFFF]/u.test(s)) throw GIVE_UP;
  const b = utf8.encode(s);
  head(3, b.length);
  room(b.length);
  out.set(b, at);
  at += b.length;
}

function keyBytes(k: string): Uint8Array {
  const start = at;
  text(k);
  const b = out.slice(start, at);
  at = start;
  return b;
}

function orderOf(keys: string[]): { keys: string[]; enc: Uint8Array[] } {
  // length-prefixed: no two key lists share an id
  let id = '';
  for (const k of keys) id += `${k.length}:${k}`;
  let e = keyOrder.get(id);
  if (!e) {
    const ks = keys.map((k) => ({ k, enc: keyBytes(k) }));
    ks.sort((a, b) => compareBytes(a.enc, b.enc));
    e = { keys: ks.map((x) => x.k), enc: ks.map((x) => x.enc) };
    if (keyOrder.size >= KEY_ORDER_MAX) keyOrder.clear();
    keyOrder.set(id, e);
  }
  return e;
}

function item(v: unknown, depth: number): void {
  if (depth > 256) throw GIVE_UP;
  switch (typeof v) {
    case 'string':
      text(v);
      return;
    case 'number':
      if (!Number.isSafeInteger(v) || Object.is(v, -0)) throw GIVE_UP;
      if (v >= 0) head(0, v);
      else head(1, -1 - v);
      return;
    case 'boolean':
      room(1);
      out[at++] = v ? 0xf5 : 0xf4;
      return;
    case 'object': {
      if (v === null) {
        room(1);
        out[at++] = 0xf6;
        return;
      }
      if (Array.isArray(v)) {
        head(4, v.length);
        for (let i = 0; i < v.length; i++) {
          if (v[i] === undefined) throw GIVE_UP;
          item(v[i], depth + 1);
        }
        return;
      }
      if (v.constructor === Uint8Array) {
        const b = v as Uint8Array;
        head(2, b.length);
        room(b.length);
        out.set(b, at);
        at += b.length;
        return;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) throw GIVE_UP;
      const o = v as Record<string, unknown>;
      const all = Object.keys(o);
      let keys = all;
      for (let i = 0; i < all.length; i++) {
        if (o[all[i]] === undefined) {
          keys = all.filter((k) => o[k] !== undefined);
          break;
        }
      }
      const ord = orderOf(keys);
      head(5, ord.keys.length);
      for (let i = 0; i < ord.keys.length; i++) {
        const kb = ord.enc[i];
        room(kb.length);
        out.set(kb, at);
        at += kb.length;
        item(o[ord.keys[i]], depth + 1);
      }
      return;
    }
    default:
      throw GIVE_UP;
  }
}

/** encodeDeterministic's bytes for plain values, or undefined when the general path must decide. */
function encodePlainDeterministic(value: unknown): Uint8Array | undefined {
  at = 0;
  try {
    item(value, 0);
  } catch (e) {
    if (e === GIVE_UP) return undefined;
    throw e;
  }
  const r = out.slice(0, at);
  if (out.length > 1 << 20) out = new Uint8Array(4096);
  return r;
}

function canonicalise(v: unknown): unknown {
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isInteger(v)) throw new CborError('deterministic CBOR here carries no floats');
    return v;
  }
  if (Array.isArray(v)) return v.map(canonicalise);
  if (v instanceof Tag) return new Tag(canonicalise(v.value), v.tag);
  const entries: [unknown, unknown][] = v instanceof Map ? [...v.entries()] : Object.entries(v as object);
  const keyed = entries
    .filter(([, val]) => val !== undefined)
    .map(([k, val]) => ({ k, enc: encodeCbor(k), val: canonicalise(val) }));
  keyed.sort((a, b) => compareBytes(a.enc, b.enc));
  for (let i = 1; i < keyed.length; i++) {
    if (compareBytes(keyed[i - 1].enc, keyed[i].enc) === 0) throw new CborError('duplicate map key');
  }
  return new Map(keyed.map((e) => [e.k, e.val]));
}

// ---------------------------------------------------------------- strict and bounded decoding

/** Deepest nesting any decoder here accepts (arrays, maps, tags). */
export const MAX_CBOR_DEPTH = 64;

export type CborStrictness = 'well-formed' | 'deterministic';

/** What a scan of CBOR bytes refuses beyond ill-formed input (see scanCbor). */
export interface CborScanRules {
  /** RFC 8949 section 4.2.1 core deterministic encoding (our signed payloads). */
  deterministic?: boolean;
  /** Refuse indefinite lengths (RFC 9783 section 5.1 for PSA claims). */
  definiteOnly?: boolean;
  /** Refuse floating-point values (COSE headers: 1.0 must not pose as the label 1). */
  noFloats?: boolean;
  /** Deepest nesting accepted (arrays, maps, tags); MAX_CBOR_DEPTH unless given. */
  maxDepth?: number;
}

/**
 * Walk one CBOR item of `bytes` from `pos`: the one CBOR head reader of fieldbench.
 * Always: well-formed, nesting at most `maxDepth`, lengths within the input. With
 * `deterministic`: definite lengths only, shortest arguments, map keys in bytewise
 * order of their encodings with no duplicates, valid UTF-8 text, and no floats, no
 * undefined and no other simple values than false, true and null. Returns where the
 * item ends and how many map entries it holds, nested ones included (a decoder
 * silently keeps one of two equal keys: comparing with countMapEntries of the
 * decoded value finds them). Throws CborError.
 */
export function scanCbor(bytes: Uint8Array, pos = 0, rules: CborScanRules = {}): { end: number; entries: number } {
  const s: ScanState = {
    b: bytes,
    strict: rules.deterministic === true,
    definite: rules.deterministic === true || rules.definiteOnly === true,
    noFloats: rules.deterministic === true || rules.noFloats === true,
    maxDepth: rules.maxDepth ?? MAX_CBOR_DEPTH,
    entries: 0,
  };
  try {
    const end = scan(s, pos, 0);
    return { end, entries: s.entries };
  } catch (e) {
    if (e instanceof CborError) throw e;
    // A pathological input must still fail with a typed error.
    throw new CborError(`invalid CBOR: ${(e as Error).message}`, e);
  }
}

interface ScanState {
  b: Uint8Array;
  strict: boolean;
  definite: boolean;
  noFloats: boolean;
  maxDepth: number;
  entries: number;
}

function scan(s: ScanState, pos: number, depth: number): number {
  const { b, strict } = s;
  if (depth > s.maxDepth) throw new CborError(`CBOR nested deeper than ${s.maxDepth} levels`);
  if (pos >= b.length) throw new CborError('truncated CBOR');
  const ib = b[pos++];
  const mt = ib >> 5;
  const ai = ib & 31;
  let val = 0;
  if (ai < 24) val = ai;
  else if (ai <= 27) {
    const n = 1 << (ai - 24);
    if (pos + n > b.length) throw new CborError('truncated CBOR');
    for (let i = 0; i < n; i++) val = val * 256 + b[pos + i];
    pos += n;
    if (strict && mt !== 7) {
      const min = n === 1 ? 24 : n === 2 ? 0x100 : n === 4 ? 0x10000 : 0x1_0000_0000;
      if (val < min) throw new CborError('non-deterministic CBOR: an integer or length is not in its shortest form');
    }
  } else if (ai === 31) {
    if (mt === 0 || mt === 1 || mt === 6) throw new CborError('invalid indefinite-length CBOR');
    if (mt === 7) throw new CborError('unexpected CBOR break');
    if (strict) throw new CborError('non-deterministic CBOR: indefinite length');
    if (s.definite) throw new CborError('indefinite-length items are not allowed here');
    for (;;) {
      if (pos >= b.length) throw new CborError('truncated CBOR');
      if (b[pos] === 0xff) return pos + 1;
      if ((mt === 2 || mt === 3) && (b[pos] >> 5 !== mt || (b[pos] & 31) === 31)) throw new CborError('bad indefinite-length string chunk');
      pos = scan(s, pos, depth + 1);
      if (mt === 5) {
        pos = scan(s, pos, depth + 1);
        s.entries++;
      }
    }
  } else throw new CborError('reserved CBOR additional information');
  switch (mt) {
    case 0:
    case 1:
      return pos;
    case 2:
    case 3:
      if (val > b.length - pos) throw new CborError('truncated CBOR string');
      if (strict && mt === 3) {
        try {
          utf8Fatal.decode(b.subarray(pos, pos + val));
        } catch {
          throw new CborError('CBOR text is not valid UTF-8');
        }
      }
      return pos + val;
    case 4:
      if (val > b.length - pos) throw new CborError('truncated CBOR array');
      for (let i = 0; i < val; i++) pos = scan(s, pos, depth + 1);
      return pos;
    case 5: {
      if (val > b.length - pos) throw new CborError('truncated CBOR map');
      let prev: Uint8Array | null = null;
      for (let i = 0; i < val; i++) {
        const k = pos;
        pos = scan(s, pos, depth + 1);
        if (strict) {
          const key = b.subarray(k, pos);
          if (prev) {
            const c = compareBytes(prev, key);
            if (c === 0) throw new CborError('duplicate map key');
            if (c > 0) throw new CborError('non-deterministic CBOR: map keys are not in bytewise order');
          }
          prev = key;
        }
        pos = scan(s, pos, depth + 1);
      }
      s.entries += val;
      return pos;
    }
    case 6:
      return scan(s, pos, depth + 1);
    default: // 7
      if (ai >= 25 && ai <= 27) {
        if (s.noFloats) throw new CborError('floating-point values are not allowed here');
        return pos;
      }
      if (ai === 24 && val < 32) throw new CborError('invalid CBOR simple value');
      if (strict && !(ai >= 20 && ai <= 22)) throw new CborError(`CBOR simple value ${ai === 24 ? val : ai} is not allowed here`);
      return pos;
  }
}

/** Map entries in a decoded value, nested ones (and those in keys) included. */
export function countMapEntries(v: unknown): number {
  if (v instanceof Map) {
    let n = v.size;
    for (const [k, x] of v) n += countMapEntries(k) + countMapEntries(x);
    return n;
  }
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + countMapEntries(x), 0);
  if (v instanceof Tag) return countMapEntries(v.value);
  if (v instanceof Set) {
    let n = 0;
    for (const x of v) n += countMapEntries(x);
    return n;
  }
  return 0;
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** Bytes after the one CBOR item expected (`count` of them). */
export class CborTrailingBytesError extends CborError {
  constructor(readonly count: number) {
    super('trailing bytes after CBOR item');
    this.name = 'CborTrailingBytesError';
  }
}

/** Check that `bytes` is exactly one CBOR item under `strictness`; throws CborError. */
export function checkCbor(bytes: Uint8Array, strictness: CborStrictness = 'well-formed', maxDepth = MAX_CBOR_DEPTH): void {
  checkOne(bytes, { deterministic: strictness === 'deterministic', maxDepth });
}

function checkOne(bytes: Uint8Array, rules: CborScanRules): number {
  if (bytes.length === 0) throw new CborError('empty CBOR input');
  const { end, entries } = scanCbor(bytes, 0, rules);
  if (end !== bytes.length) throw new CborTrailingBytesError(bytes.length - end);
  return entries;
}

/**
 * Decode exactly one CBOR item that follows `rules` and has no duplicate map keys
 * (keys equal once decoded count as duplicates, e.g. 1 and a non-shortest 1); maps
 * become `Map`. Throws CborError (CborTrailingBytesError for bytes after the item).
 */
export function decodeUnique(bytes: Uint8Array, rules: CborScanRules = {}): unknown {
  const entries = checkOne(bytes, rules);
  const value = decodeCbor(bytes);
  if (countMapEntries(value) !== entries) throw new CborError('duplicate map key');
  return value;
}

/**
 * Decode a signed payload strictly: exactly one item in core deterministic
 * encoding (no duplicate keys, no floats, no indefinite lengths, shortest
 * forms, sorted keys); maps become `Map`. Throws CborError.
 */
export function decodeStrict(bytes: Uint8Array, maxDepth = MAX_CBOR_DEPTH): unknown {
  checkCbor(bytes, 'deterministic', maxDepth);
  return decodeCbor(bytes);
}

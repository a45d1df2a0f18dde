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
  if (bytes.length === 0) throw new CborError('empty CBOR input');
  let items: unknown[];
  try {
    items = decoder.decodeMultiple(bytes) as unknown[];
  } catch (e) {
    throw new CborError(`invalid CBOR: ${(e as Error).message}`, e);
  }
  if (!Array.isArray(items) || items.length !== 1) {
    throw new CborError(items && items.length > 1 ? 'trailing bytes after CBOR item' : 'invalid CBOR');
  }
  return normalise(items[0]);
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
  return encodeCbor(canonicalise(value));
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

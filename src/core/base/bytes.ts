/** Byte helpers for every layer (no Buffer: this runs in browsers too): base64, concat, hex, equality, UTF-8. */
import { FieldbenchError } from './errors.ts';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INV = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_INV[B64.charCodeAt(i)] = i;
const B64_BYTES = new Uint8Array(64);
for (let i = 0; i < 64; i++) B64_BYTES[i] = B64.charCodeAt(i);
const PAD = 0x3d; // '='

/** Base64-encode `src` into ASCII bytes at out[offset..]; returns the new offset. */
export function base64EncodeInto(src: Uint8Array, out: Uint8Array, offset: number): number {
  let o = offset;
  const n = src.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];
    out[o++] = B64_BYTES[v >> 18];
    out[o++] = B64_BYTES[(v >> 12) & 63];
    out[o++] = B64_BYTES[(v >> 6) & 63];
    out[o++] = B64_BYTES[v & 63];
  }
  if (i < n) {
    const v = (src[i] << 16) | (i + 1 < n ? src[i + 1] << 8 : 0);
    out[o++] = B64_BYTES[v >> 18];
    out[o++] = B64_BYTES[(v >> 12) & 63];
    out[o++] = i + 1 < n ? B64_BYTES[(v >> 6) & 63] : PAD;
    out[o++] = PAD;
  }
  return o;
}

export function base64Length(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/**
 * Decode ASCII base64 in src[start..end) into out at offset. Returns the new
 * offset, or -1 if the text is not whole base64 quads.
 */
export function base64DecodeInto(src: Uint8Array, start: number, end: number, out: Uint8Array, offset: number): number {
  const len = end - start;
  if (len % 4 !== 0) return -1;
  let o = offset;
  for (let i = start; i < end; i += 4) {
    const a = B64_INV[src[i]];
    const b = B64_INV[src[i + 1]];
    if (a < 0 || b < 0) return -1;
    const c3 = src[i + 2];
    const c4 = src[i + 3];
    if (c3 === PAD) {
      if (c4 !== PAD || i + 4 !== end) return -1;
      out[o++] = (a << 2) | (b >> 4);
      return o;
    }
    const c = B64_INV[c3];
    if (c < 0) return -1;
    if (c4 === PAD) {
      if (i + 4 !== end) return -1;
      out[o++] = (a << 2) | (b >> 4);
      out[o++] = ((b & 15) << 4) | (c >> 2);
      return o;
    }
    const d = B64_INV[c4];
    if (d < 0) return -1;
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 15) << 4) | (c >> 2);
    out[o++] = ((c & 3) << 6) | d;
  }
  return o;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return concatAll(parts);
}

/** concatBytes for a list of any length (a spread of many thousand parts would overflow the call). Always a new array. */
export function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lowercase hex of the bytes. */
export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]];
  return s;
}

const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) NIBBLE[65 + i] = NIBBLE[97 + i] = 10 + i;

/** Strict hex decoding: even length, hex digits only (either case), nothing else. */
export function fromHex(s: string): Uint8Array {
  if (typeof s !== 'string' || s.length % 2 !== 0) throw new BytesError('hex', 'not an even-length hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const a = s.charCodeAt(2 * i);
    const b = s.charCodeAt(2 * i + 1);
    const hi = a < 128 ? NIBBLE[a] : -1;
    const lo = b < 128 ? NIBBLE[b] : -1;
    if (hi < 0 || lo < 0) throw new BytesError('hex', 'not a hex string');
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Hex as people write it: white space, ':' and '-' separators and a leading 0x are dropped first. */
export function fromLooseHex(s: string): Uint8Array {
  return fromHex(s.trim().replace(/^0x/i, '').replace(/[:\s-]/g, ''));
}

/** Equal contents, in time that depends only on the lengths (safe for MACs and secrets). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Equal contents, where either side may be absent (both absent is equal). */
export function equalOptBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return equalBytes(a, b);
}

/** Both present and equal (an absent side never matches). */
export function equalPresentBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && equalBytes(a, b);
}

/** Bytewise order (shorter first on a common prefix). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function containsBytes(list: readonly Uint8Array[] | undefined, x: Uint8Array): boolean {
  if (!list) return false;
  for (const e of list) if (equalBytes(e, x)) return true;
  return false;
}

// ---------------------------------------------------------------- base64 strings

/** Standard base64 (with padding) of the bytes, as a string. */
export function toBase64(b: Uint8Array): string {
  const out = new Uint8Array(base64Length(b.length));
  base64EncodeInto(b, out, 0);
  let s = '';
  for (let i = 0; i < out.length; i += 0x8000) s += String.fromCharCode(...out.subarray(i, i + 0x8000));
  return s;
}

/** Strict standard base64 (padded, no white space); null when the text is not base64. */
export function fromBase64(s: string): Uint8Array | null {
  const src = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return null;
    src[i] = c;
  }
  const out = new Uint8Array((s.length / 4) * 3);
  const n = base64DecodeInto(src, 0, src.length, out, 0);
  return n < 0 ? null : out.subarray(0, n);
}

// ---------------------------------------------------------------- UTF-8

const te = new TextEncoder();
const tdStrict = new TextDecoder('utf-8', { fatal: true });
const tdLoose = new TextDecoder();

export function utf8(s: string): Uint8Array {
  return te.encode(s);
}

/** Decode UTF-8; invalid sequences throw (strict) or become U+FFFD (`{ lenient: true }`). */
export function fromUtf8(b: Uint8Array, opts: { lenient?: boolean } = {}): string {
  if (opts.lenient) return tdLoose.decode(b);
  try {
    return tdStrict.decode(b);
  } catch (e) {
    throw new BytesError('utf8', 'not valid UTF-8', e);
  }
}

export class BytesError extends FieldbenchError<'hex' | 'utf8'> {
  constructor(code: 'hex' | 'utf8', message: string, cause?: unknown) {
    super(code, message, cause);
    this.name = 'BytesError';
  }
}

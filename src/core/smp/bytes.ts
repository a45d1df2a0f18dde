/** Small byte helpers shared by the codecs (no Buffer: this runs in browsers too). */

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

const CRC_TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  CRC_TABLE[i] = c;
}

/** CRC-16/XMODEM (poly 0x1021, init 0, no reflection): Zephyr's crc16_itu_t(0, ...). */
export function crc16xmodem(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ data[i]) & 0xff];
  return crc;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
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

export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}

export function fromHex(h: string): Uint8Array {
  const clean = h.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error('invalid hex string');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/**
 * Intel HEX (the format Zephyr, MCUboot's imgtool and most flash tools write).
 *
 * Records handled: 00 data, 01 end of file, 02 extended segment address,
 * 03 start segment address, 04 extended linear address, 05 start linear
 * address. Every record's checksum is checked; errors name the line.
 *
 * `writeIhex` lays records out exactly as Python's `intelhex` package
 * (which imgtool uses) does: 16 data bytes per record, runs broken at holes
 * and at 64 KiB boundaries, an 04 record whenever the upper address changes
 * (only when some address is above 0xFFFF), upper-case hex, LF line ends.
 */
import { FieldbenchError } from '../base/errors.ts';
import { concatAll } from '../base/bytes.ts';

export class IhexError extends FieldbenchError<'ihex'> {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super('ihex', line !== undefined ? `line ${line}: ${message}` : message);
    this.name = 'IhexError';
  }
}

export interface IhexSegment {
  address: number;
  data: Uint8Array;
}

export interface IhexImage {
  /** Non-overlapping, sorted by address, adjacent runs merged. */
  segments: IhexSegment[];
  /** From an 05 record (EIP). */
  startLinear?: number;
  /** From an 03 record (CS:IP). */
  startSegment?: { cs: number; ip: number };
}

/** Upper bound on the span a hex file may cover when flattened (guards against a 4 GiB allocation). */
export const IHEX_MAX_SPAN = 64 * 1024 * 1024;

const HEX_VALUE = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[65 + i] = 10 + i;
    t[97 + i] = 10 + i;
  }
  return t;
})();

function hexByte(s: string, i: number): number {
  const hi = s.charCodeAt(i);
  const lo = s.charCodeAt(i + 1);
  const h = hi < 128 ? HEX_VALUE[hi] : -1;
  const l = lo < 128 ? HEX_VALUE[lo] : -1;
  if (h < 0 || l < 0) return -1;
  return (h << 4) | l;
}

/** Parse Intel HEX text. Throws IhexError naming the offending line. */
export function parseIhex(text: string): IhexImage {
  const chunks: { address: number; data: Uint8Array; line: number }[] = [];
  let base = 0; // from 02 or 04
  let startLinear: number | undefined;
  let startSegment: { cs: number; ip: number } | undefined;
  let sawEof = false;
  let lineNo = 0;
  let pos = 0;
  const n = text.length;
  while (pos < n) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = n;
    lineNo++;
    let line = text.slice(pos, end);
    pos = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    line = line.trim();
    if (line.length === 0) continue;
    if (sawEof) throw new IhexError('data after the end-of-file record', lineNo);
    if (line[0] !== ':') throw new IhexError(`record does not start with ':'`, lineNo);
    if (line.length < 11) throw new IhexError('record too short', lineNo);
    if ((line.length - 1) % 2 !== 0) throw new IhexError('odd number of hex digits', lineNo);
    const count = hexByte(line, 1);
    if (count < 0) throw new IhexError('invalid hex digit', lineNo);
    if (line.length !== 11 + count * 2) {
      throw new IhexError(`byte count ${count} does not match the record length`, lineNo);
    }
    const bytes = new Uint8Array(5 + count);
    let sum = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = hexByte(line, 1 + i * 2);
      if (b < 0) throw new IhexError('invalid hex digit', lineNo);
      bytes[i] = b;
      sum += b;
    }
    if ((sum & 0xff) !== 0) {
      const expect = (-(sum - bytes[bytes.length - 1])) & 0xff;
      throw new IhexError(
        `checksum mismatch (record has 0x${hex2(bytes[bytes.length - 1])}, computed 0x${hex2(expect)})`,
        lineNo,
      );
    }
    const offset = (bytes[1] << 8) | bytes[2];
    const type = bytes[3];
    const payload = bytes.subarray(4, 4 + count);
    switch (type) {
      case 0x00:
        if (count > 0) chunks.push({ address: base + offset, data: payload, line: lineNo });
        break;
      case 0x01:
        if (count !== 0) throw new IhexError('end-of-file record carries data', lineNo);
        sawEof = true;
        break;
      case 0x02:
        if (count !== 2) throw new IhexError('extended segment address record needs 2 data bytes', lineNo);
        base = ((payload[0] << 8) | payload[1]) * 16;
        break;
      case 0x03:
        if (count !== 4) throw new IhexError('start segment address record needs 4 data bytes', lineNo);
        startSegment = { cs: (payload[0] << 8) | payload[1], ip: (payload[2] << 8) | payload[3] };
        break;
      case 0x04:
        if (count !== 2) throw new IhexError('extended linear address record needs 2 data bytes', lineNo);
        base = ((payload[0] << 8) | payload[1]) * 0x10000;
        break;
      case 0x05:
        if (count !== 4) throw new IhexError('start linear address record needs 4 data bytes', lineNo);
        startLinear = ((payload[0] << 24) | (payload[1] << 16) | (payload[2] << 8) | payload[3]) >>> 0;
        break;
      default:
        throw new IhexError(`unknown record type 0x${hex2(type)}`, lineNo);
    }
  }
  if (!sawEof) throw new IhexError('no end-of-file record (file truncated?)');
  chunks.sort((a, b) => a.address - b.address || a.line - b.line);
  const segments: IhexSegment[] = [];
  let runStart = -1;
  let runEnd = -1;
  let parts: Uint8Array[] = [];
  const flush = () => {
    if (runStart < 0) return;
    segments.push({ address: runStart, data: concatAll(parts) });
    parts = [];
  };
  for (const c of chunks) {
    if (c.address < runEnd) {
      throw new IhexError(`data at 0x${c.address.toString(16)} overlaps earlier data`, c.line);
    }
    if (c.address + c.data.length > 0x1_0000_0000) {
      throw new IhexError('data runs past the 4 GiB address space', c.line);
    }
    if (c.address !== runEnd) {
      flush();
      runStart = c.address;
    }
    parts.push(c.data);
    runEnd = c.address + c.data.length;
  }
  flush();
  const out: IhexImage = { segments };
  if (startLinear !== undefined) out.startLinear = startLinear;
  if (startSegment !== undefined) out.startSegment = startSegment;
  return out;
}

/**
 * Flatten to one binary from the lowest address, gaps filled with `fill`
 * (0xff, erased flash, by default), as `intelhex.tobinarray()` does.
 */
export function ihexToBinary(img: IhexImage, opts: { fill?: number; maxSpan?: number } = {}): { baseAddr: number; data: Uint8Array } {
  if (img.segments.length === 0) throw new IhexError('the hex file holds no data');
  const fill = opts.fill ?? 0xff;
  const first = img.segments[0].address;
  const last = img.segments[img.segments.length - 1];
  const span = last.address + last.data.length - first;
  const max = opts.maxSpan ?? IHEX_MAX_SPAN;
  if (span > max) {
    throw new IhexError(`the data spans ${span} bytes (0x${first.toString(16)}..), more than the ${max} allowed`);
  }
  const data = new Uint8Array(span).fill(fill);
  for (const s of img.segments) data.set(s.data, s.address - first);
  return { baseAddr: first, data };
}

/** Parse and flatten in one step. */
export function readIhexBinary(text: string, opts?: { fill?: number; maxSpan?: number }): { baseAddr: number; data: Uint8Array } {
  return ihexToBinary(parseIhex(text), opts);
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0').toUpperCase();
}

const UPPER = '0123456789ABCDEF';

function record(out: string[], type: number, address: number, data: Uint8Array, from: number, len: number): void {
  let sum = len + ((address >> 8) & 0xff) + (address & 0xff) + type;
  let s = ':' + hex2(len) + hex2((address >> 8) & 0xff) + hex2(address & 0xff) + hex2(type);
  for (let i = 0; i < len; i++) {
    const b = data[from + i];
    sum += b;
    s += UPPER[b >> 4] + UPPER[b & 15];
  }
  s += hex2(-sum & 0xff);
  out.push(s);
}

/**
 * Serialise segments as Intel HEX text, laid out byte-for-byte like Python
 * intelhex's `tofile(..., 'hex')` on Linux.
 */
export function writeIhex(img: IhexImage | IhexSegment[], opts: { byteCount?: number } = {}): string {
  const byteCount = opts.byteCount ?? 16;
  if (!(byteCount >= 1 && byteCount <= 255)) throw new IhexError(`byte count ${byteCount} out of range 1..255`);
  const src = Array.isArray(img) ? { segments: img } : img;
  // normalise: sort, reject overlaps, merge adjacent runs (intelhex works per address)
  const segs = src.segments.filter((s) => s.data.length > 0).sort((a, b) => a.address - b.address);
  const merged: { address: number; parts: Uint8Array[]; end: number }[] = [];
  for (const s of segs) {
    const prev = merged[merged.length - 1];
    if (prev && s.address < prev.end) throw new IhexError(`segments overlap at 0x${s.address.toString(16)}`);
    if (s.address + s.data.length > 0x1_0000_0000) throw new IhexError('segment runs past the 4 GiB address space');
    if (prev && s.address === prev.end) {
      prev.parts.push(s.data);
      prev.end += s.data.length;
    } else merged.push({ address: s.address, parts: [s.data], end: s.address + s.data.length });
  }
  const out: string[] = [];
  if (!Array.isArray(img)) {
    if (img.startSegment) {
      const { cs, ip } = img.startSegment;
      record(out, 0x03, 0, Uint8Array.of(cs >> 8, cs & 0xff, ip >> 8, ip & 0xff), 0, 4);
    } else if (img.startLinear !== undefined) {
      const e = img.startLinear >>> 0;
      record(out, 0x05, 0, Uint8Array.of(e >>> 24, (e >> 16) & 0xff, (e >> 8) & 0xff, e & 0xff), 0, 4);
    }
  }
  if (merged.length > 0) {
    const maxAddr = merged[merged.length - 1].end - 1;
    const needOffset = maxAddr > 0xffff;
    let high = -1;
    for (const m of merged) {
      const data = concatAll(m.parts);
      let off = 0;
      while (off < data.length) {
        const addr = m.address + off;
        const h = Math.floor(addr / 0x10000);
        if (needOffset && h !== high) {
          record(out, 0x04, 0, Uint8Array.of(h >> 8, h & 0xff), 0, 2);
          high = h;
        }
        const low = addr & 0xffff;
        const len = Math.min(byteCount, 0x10000 - low, data.length - off);
        record(out, 0x00, low, data, off, len);
        off += len;
      }
    }
  }
  out.push(':00000001FF');
  return out.join('\n') + '\n';
}

/**
 * Flatten a firmware file as imgtool reads it: Intel HEX when the name ends
 * in .hex (gaps 0xff, from the lowest address), raw binary otherwise.
 * Throws IhexError for a bad hex file.
 */
export function readFirmwareFile(name: string, bytes: Uint8Array): { format: 'hex' | 'bin'; data: Uint8Array; baseAddr?: number } {
  if (/\.hex$/i.test(name)) {
    const { baseAddr, data } = readIhexBinary(new TextDecoder('latin1').decode(bytes));
    return { format: 'hex', data, baseAddr };
  }
  return { format: 'bin', data: bytes };
}

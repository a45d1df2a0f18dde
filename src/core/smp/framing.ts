/**
 * SMP framing codecs, as stream transforms.
 *
 * Console framing (Zephyr doc smp_transport.rst, "SMP over console/UART"):
 *   body  = len_be16 | packet | crc16_be,  len = packet.length + 2
 *   lines = base64(body) cut into whole quads; the first line starts 06 09,
 *           continuation lines start 04 14; each line ends with '\n' and is at
 *           most `lineMax` (127) bytes long including marker and newline.
 *   CRC   = CRC-16/XMODEM over the packet.
 * Lines that are not frames (boot logs, shell prompts) are skipped.
 *
 * Raw framing (CONFIG_UART_MCUMGR_RAW_PROTOCOL): packets back to back; the
 * header's length field delimits them.
 *
 * Datagram "framing" (SMP over UDP): one packet per datagram, nothing added;
 * a datagram whose header does not declare exactly its own length is dropped.
 */
import { base64DecodeInto, base64EncodeInto } from '../base/bytes.ts';
import { crc16xmodem } from '../base/crc.ts';
import { SMP_HEADER_SIZE } from './header.ts';

export type Framing = 'console' | 'raw' | 'datagram';
/** The framings a byte stream (serial port, pty, TCP) can carry. */
export type StreamFraming = 'console' | 'raw';

export const CONSOLE_LINE_MAX = 127;
const MARK_FIRST_0 = 0x06;
const MARK_FIRST_1 = 0x09;
const MARK_CONT_0 = 0x04;
const MARK_CONT_1 = 0x14;
const NL = 0x0a;
const CR = 0x0d;

export type DropReason =
  | 'crc' // CRC mismatch
  | 'base64' // a line that is not whole base64 quads
  | 'length' // absurd or oversized declared length
  | 'truncated' // a new frame began before the previous one was complete
  | 'overrun' // more data than the declared length
  | 'overlong-line' // a line longer than the decoder accepts
  | 'orphan' // a continuation line with no frame in progress
  | 'header'; // raw framing: bytes that cannot start an SMP header

export interface FramingStats {
  packets: number;
  noiseLines: number;
  dropped: Record<DropReason, number>;
}

export function newStats(): FramingStats {
  return {
    packets: 0,
    noiseLines: 0,
    dropped: { crc: 0, base64: 0, length: 0, truncated: 0, overrun: 0, 'overlong-line': 0, orphan: 0, header: 0 },
  };
}

export interface DecoderOptions {
  /** Largest packet (header + CBOR) accepted; larger declared lengths are dropped. */
  maxPacket?: number;
  /** Longest line kept in memory; longer lines are discarded up to their newline. */
  maxLine?: number;
  onDrop?: (reason: DropReason) => void;
  /**
   * Highest header version a raw or datagram packet may carry (default 1, SMP v2: a byte with a
   * higher one cannot begin a packet we read). A server passes 3 so that it can answer the reserved
   * versions itself (Zephyr: MGMT_ERR_UNSUPPORTED_TOO_NEW), as Zephyr's transports hand them on.
   */
  maxVersion?: number;
  onNoise?: (line: Uint8Array) => void;
  stats?: FramingStats;
}

/** Bytes per line of payload: whole base64 quads that fit between the marker and the newline. */
export function consolePayloadPerLine(lineMax = CONSOLE_LINE_MAX): number {
  return Math.floor((lineMax - 3) / 4) * 3;
}

/** Encode one packet as console lines (each returned chunk is one whole line). */
export function encodeConsoleLines(packet: Uint8Array, lineMax = CONSOLE_LINE_MAX): Uint8Array[] {
  if (packet.length > 0xfffd) throw new RangeError('packet too large for console framing');
  const body = new Uint8Array(packet.length + 4);
  const len = packet.length + 2;
  body[0] = len >> 8;
  body[1] = len & 0xff;
  body.set(packet, 2);
  const crc = crc16xmodem(packet);
  body[body.length - 2] = crc >> 8;
  body[body.length - 1] = crc & 0xff;
  const per = consolePayloadPerLine(lineMax);
  if (per <= 0) throw new RangeError('line length too small for console framing');
  const lines: Uint8Array[] = [];
  for (let off = 0; off < body.length; off += per) {
    const chunk = body.subarray(off, Math.min(off + per, body.length));
    const line = new Uint8Array(2 + Math.ceil(chunk.length / 3) * 4 + 1);
    line[0] = off === 0 ? MARK_FIRST_0 : MARK_CONT_0;
    line[1] = off === 0 ? MARK_FIRST_1 : MARK_CONT_1;
    const end = base64EncodeInto(chunk, line, 2);
    line[end] = NL;
    lines.push(line);
  }
  return lines;
}

/** Bytes on the wire for a packet of `n` bytes in console framing. */
export function consoleEncodedSize(n: number, lineMax = CONSOLE_LINE_MAX): number {
  const body = n + 4;
  const per = consolePayloadPerLine(lineMax);
  const full = Math.floor(body / per);
  const rest = body % per;
  return full * (3 + (per / 3) * 4) + (rest ? 3 + Math.ceil(rest / 3) * 4 : 0);
}

/** Streaming decoder of console framing. Feed bytes with push(); packets come out through `emit`. */
export class ConsoleDecoder {
  readonly stats: FramingStats;
  private readonly maxPacket: number;
  private readonly maxLine: number;
  private line: Uint8Array;
  private lineLen = 0;
  private lineOverlong = false;
  private frame: Uint8Array | null = null; // len_be16 | packet | crc, as declared
  private frameFill = 0;
  private readonly scratch: Uint8Array;

  constructor(
    private readonly emit: (packet: Uint8Array) => void,
    private readonly opts: DecoderOptions = {},
  ) {
    this.stats = opts.stats ?? newStats();
    this.maxPacket = opts.maxPacket ?? 0xfffd;
    this.maxLine = opts.maxLine ?? 4096;
    this.line = new Uint8Array(Math.min(this.maxLine, 256));
    this.scratch = new Uint8Array(Math.ceil(this.maxLine / 4) * 3 + 3);
  }

  push(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const b = data[i];
      if (b === NL) {
        if (this.lineOverlong) this.lineOverlong = false;
        else this.onLine(this.lineLen > 0 && this.line[this.lineLen - 1] === CR ? this.lineLen - 1 : this.lineLen);
        this.lineLen = 0;
        continue;
      }
      if (this.lineOverlong) continue;
      if (this.lineLen === this.maxLine) {
        this.lineOverlong = true;
        this.lineLen = 0;
        this.drop('overlong-line');
        this.abandonFrame();
        continue;
      }
      if (this.lineLen === this.line.length) {
        const bigger = new Uint8Array(Math.min(this.maxLine, this.line.length * 2));
        bigger.set(this.line);
        this.line = bigger;
      }
      this.line[this.lineLen++] = b;
    }
  }

  /** Forget any partial line or frame (e.g. after a reset). */
  reset(): void {
    this.lineLen = 0;
    this.lineOverlong = false;
    this.frame = null;
    this.frameFill = 0;
  }

  private drop(reason: DropReason): void {
    this.stats.dropped[reason]++;
    this.opts.onDrop?.(reason);
  }

  private abandonFrame(): void {
    this.frame = null;
    this.frameFill = 0;
  }

  private onLine(len: number): void {
    const line = this.line;
    // Find a frame marker; text before it (a shell prompt) is noise.
    let m = -1;
    for (let i = 0; i + 1 < len; i++) {
      const a = line[i];
      if ((a === MARK_FIRST_0 && line[i + 1] === MARK_FIRST_1) || (a === MARK_CONT_0 && line[i + 1] === MARK_CONT_1)) {
        m = i;
        break;
      }
    }
    if (m < 0) {
      if (len > 0) {
        this.stats.noiseLines++;
        this.opts.onNoise?.(line.slice(0, len));
      }
      return;
    }
    const first = line[m] === MARK_FIRST_0;
    const n = base64DecodeInto(line, m + 2, len, this.scratch, 0);
    if (n < 0) {
      this.drop('base64');
      this.abandonFrame();
      return;
    }
    if (first) {
      if (this.frame) {
        this.drop('truncated');
        this.abandonFrame();
      }
      if (n < 2) {
        this.drop('length');
        return;
      }
      const declared = (this.scratch[0] << 8) | this.scratch[1];
      if (declared < SMP_HEADER_SIZE + 2 || declared - 2 > this.maxPacket) {
        this.drop('length');
        return;
      }
      this.frame = new Uint8Array(declared);
      this.frameFill = 0;
      this.append(2, n);
    } else {
      if (!this.frame) {
        this.drop('orphan');
        return;
      }
      this.append(0, n);
    }
  }

  private append(from: number, to: number): void {
    const frame = this.frame!;
    const count = to - from;
    if (this.frameFill + count > frame.length) {
      this.drop('overrun');
      this.abandonFrame();
      return;
    }
    frame.set(this.scratch.subarray(from, to), this.frameFill);
    this.frameFill += count;
    if (this.frameFill === frame.length) {
      this.abandonFrame();
      // CRC over packet | crc is 0 when intact.
      if (crc16xmodem(frame) !== 0) {
        this.drop('crc');
        return;
      }
      this.stats.packets++;
      this.emit(frame.subarray(0, frame.length - 2));
    }
  }
}

/**
 * Streaming decoder of raw framing. Without markers there is no resynchronisation
 * point, so a byte that cannot start a valid header is dropped and counted.
 */
export class RawDecoder {
  readonly stats: FramingStats;
  private buf = new Uint8Array(1024);
  private fill = 0;
  private readonly maxPacket: number;

  constructor(
    private readonly emit: (packet: Uint8Array) => void,
    private readonly opts: DecoderOptions & { acceptOps?: number[] } = {},
  ) {
    this.stats = opts.stats ?? newStats();
    this.maxPacket = opts.maxPacket ?? 0xffff + SMP_HEADER_SIZE;
  }

  push(data: Uint8Array): void {
    if (this.fill + data.length > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.fill + data.length));
      bigger.set(this.buf.subarray(0, this.fill));
      this.buf = bigger;
    }
    this.buf.set(data, this.fill);
    this.fill += data.length;
    let off = 0;
    const ops = this.opts.acceptOps;
    while (this.fill - off >= SMP_HEADER_SIZE) {
      const b0 = this.buf[off];
      const op = b0 & 7;
      const ver = (b0 >> 3) & 3;
      const len = (this.buf[off + 2] << 8) | this.buf[off + 3];
      if ((b0 & 0xe0) !== 0 || ver > (this.opts.maxVersion ?? 1) || op > 3 || (ops && !ops.includes(op)) || len + SMP_HEADER_SIZE > this.maxPacket) {
        this.stats.dropped.header++;
        this.opts.onDrop?.('header');
        off++;
        continue;
      }
      if (this.fill - off < SMP_HEADER_SIZE + len) break;
      this.stats.packets++;
      this.emit(this.buf.slice(off, off + SMP_HEADER_SIZE + len));
      off += SMP_HEADER_SIZE + len;
    }
    if (off > 0) {
      this.buf.copyWithin(0, off, this.fill);
      this.fill -= off;
    }
    // Bound memory: if a frame claims more than we may ever buffer, the header check above dropped it.
  }

  reset(): void {
    this.fill = 0;
  }
}

/** One SMP packet per pushed chunk (a datagram): checked, never joined or split. */
export class DatagramDecoder {
  readonly stats: FramingStats;
  constructor(
    private readonly emit: (packet: Uint8Array) => void,
    private readonly opts: DecoderOptions & { acceptOps?: number[] } = {},
  ) {
    this.stats = opts.stats ?? newStats();
  }

  push(d: Uint8Array): void {
    if (d.length < SMP_HEADER_SIZE) return this.drop('length');
    const b0 = d[0];
    const op = b0 & 7;
    const len = (d[2] << 8) | d[3];
    if ((b0 & 0xe0) !== 0 || ((b0 >> 3) & 3) > (this.opts.maxVersion ?? 1) || (this.opts.acceptOps && !this.opts.acceptOps.includes(op))) return this.drop('header');
    if (len + SMP_HEADER_SIZE !== d.length || d.length > (this.opts.maxPacket ?? 0xffff + SMP_HEADER_SIZE)) return this.drop('length');
    this.stats.packets++;
    this.emit(d.slice());
  }

  private drop(reason: DropReason): void {
    this.stats.dropped[reason]++;
    this.opts.onDrop?.(reason);
  }

  reset(): void {}
}

export interface PacketDecoder {
  readonly stats: FramingStats;
  push(data: Uint8Array): void;
  reset(): void;
}

export function createDecoder(
  framing: Framing,
  emit: (packet: Uint8Array) => void,
  opts: DecoderOptions & { acceptOps?: number[] } = {},
): PacketDecoder {
  return framing === 'raw' ? new RawDecoder(emit, opts) : framing === 'datagram' ? new DatagramDecoder(emit, opts) : new ConsoleDecoder(emit, opts);
}

/** Encode a packet for the wire: console lines (one chunk per line) or the raw packet. */
export function encodeFrames(framing: Framing, packet: Uint8Array, lineMax = CONSOLE_LINE_MAX): Uint8Array[] {
  return framing === 'console' ? encodeConsoleLines(packet, lineMax) : [packet];
}

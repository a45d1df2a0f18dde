import { describe, expect, it } from 'vitest';
import { base64DecodeInto, base64EncodeInto, fromHex, toHex } from '../../src/core/base/bytes.ts';
import { crc16xmodem } from '../../src/core/base/crc.ts';
import {
  ConsoleDecoder,
  RawDecoder,
  consoleEncodedSize,
  encodeConsoleLines,
  newStats,
} from '../../src/core/smp/framing.ts';
import { buildPacket } from '../../src/core/smp/header.ts';
import { encodeCbor } from '../../src/core/base/cbor.ts';

const enc = new TextEncoder();
const packet = (n: number, seq = 1) => buildPacket({ op: 2, version: 1, flags: 0, group: 0, seq, id: 0 }, encodeCbor({ d: 'x'.repeat(n) }));

function decodeAll(bytes: Uint8Array, maxPacket?: number) {
  const out: Uint8Array[] = [];
  const drops: string[] = [];
  const d = new ConsoleDecoder((p) => out.push(p.slice()), { maxPacket, onDrop: (r) => drops.push(r) });
  d.push(bytes);
  return { out, drops, stats: d.stats };
}

const join = (parts: Uint8Array[]) => {
  const o = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    o.set(p, i);
    i += p.length;
  }
  return o;
};

describe('CRC-16/XMODEM and base64', () => {
  it('matches the CRC-16/XMODEM check value', () => {
    expect(crc16xmodem(enc.encode('123456789'))).toBe(0x31c3);
  });
  it('round-trips base64 of every length up to 100 and rejects partial quads', () => {
    for (let n = 0; n < 100; n++) {
      const src = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      const b = new Uint8Array(Math.ceil(n / 3) * 4);
      const e = base64EncodeInto(src, b, 0);
      expect(new TextDecoder().decode(b.subarray(0, e))).toBe(Buffer.from(src).toString('base64'));
      const back = new Uint8Array(n + 3);
      expect(base64DecodeInto(b, 0, e, back, 0)).toBe(n);
      expect(toHex(back.subarray(0, n))).toBe(toHex(src));
    }
    const bad = enc.encode('QUJD=');
    expect(base64DecodeInto(bad, 0, bad.length, new Uint8Array(8), 0)).toBe(-1);
    const bad2 = enc.encode('QU=D');
    expect(base64DecodeInto(bad2, 0, bad2.length, new Uint8Array(8), 0)).toBe(-1);
  });
});

describe('console framing', () => {
  it('encodes as Zephyr does: 06 09 then 04 14, at most 127 bytes a line, whole quads', () => {
    const p = packet(300);
    const lines = encodeConsoleLines(p);
    expect(lines.length).toBeGreaterThan(3);
    lines.forEach((l, i) => {
      expect(l.length).toBeLessThanOrEqual(127);
      expect([l[0], l[1]]).toEqual(i === 0 ? [0x06, 0x09] : [0x04, 0x14]);
      expect(l[l.length - 1]).toBe(0x0a);
      expect((l.length - 3) % 4).toBe(0);
    });
    // The whole body: len_be16 | packet | crc_be16
    const body = Buffer.from(lines.map((l) => new TextDecoder().decode(l.subarray(2, l.length - 1))).map((s) => Buffer.from(s, 'base64')).reduce((a, b) => Buffer.concat([a, b])));
    expect(body.readUInt16BE(0)).toBe(p.length + 2);
    expect(toHex(body.subarray(2, 2 + p.length))).toBe(toHex(p));
    expect(body.readUInt16BE(2 + p.length)).toBe(crc16xmodem(p));
    expect(consoleEncodedSize(p.length)).toBe(lines.reduce((n, l) => n + l.length, 0));
  });

  it('matches a known frame byte for byte (echo "hello", seq 0, v1)', () => {
    // Request as sent by mcumgr-client/smpclient for echo {"d":"hello"}.
    const p = buildPacket({ op: 2, version: 0, flags: 0, group: 0, seq: 0, id: 0 }, encodeCbor({ d: 'hello' }));
    expect(toHex(p)).toBe('0200000900000000' + 'a161646568656c6c6f');
    const line = encodeConsoleLines(p)[0];
    expect(new TextDecoder().decode(line)).toBe('\x06\x09' + Buffer.from(join([fromHex('0013'), p, fromHex(crc16xmodem(p).toString(16).padStart(4, '0'))])).toString('base64') + '\n');
  });

  it('decodes what it encodes, for every size from 0 to 2 KiB of payload', () => {
    for (let n = 0; n < 2048; n += 37) {
      const p = packet(n);
      const { out } = decodeAll(join(encodeConsoleLines(p)));
      expect(out.length).toBe(1);
      expect(toHex(out[0])).toBe(toHex(p));
    }
  });

  it('skips boot logs and shell prompts between frames, and a prompt before a marker', () => {
    const p1 = packet(10, 1);
    const p2 = packet(200, 2);
    const l2 = encodeConsoleLines(p2);
    const stream = join([
      enc.encode('*** Booting Zephyr OS build v4.4.0 ***\r\n'),
      ...encodeConsoleLines(p1),
      enc.encode('uart:~$ '),
      l2[0],
      enc.encode('[00:00:01.000,000] <inf> app: interleaved log\r\n'),
      ...l2.slice(1),
    ]);
    const { out, stats } = decodeAll(stream);
    expect(out.map(toHex)).toEqual([toHex(p1), toHex(p2)]);
    expect(stats.noiseLines).toBe(2);
  });

  it('survives arbitrary chunking (byte by byte)', () => {
    const p = packet(500);
    const bytes = join(encodeConsoleLines(p));
    const out: Uint8Array[] = [];
    const d = new ConsoleDecoder((x) => out.push(x.slice()));
    for (let i = 0; i < bytes.length; i++) d.push(bytes.subarray(i, i + 1));
    expect(out.length).toBe(1);
    expect(toHex(out[0])).toBe(toHex(p));
  });

  it('drops and counts a CRC error, and decodes the next frame', () => {
    const bad = encodeConsoleLines(packet(20, 1));
    // Corrupt one payload character (still valid base64).
    const l = bad[0].slice();
    l[10] = l[10] === 0x41 ? 0x42 : 0x41;
    const good = packet(20, 2);
    const { out, drops } = decodeAll(join([l, ...bad.slice(1), ...encodeConsoleLines(good)]));
    expect(drops).toContain('crc');
    expect(out.map(toHex)).toEqual([toHex(good)]);
  });

  it('drops truncated frames, orphan continuations, bad base64, absurd lengths, over-long lines', () => {
    const big = encodeConsoleLines(packet(400, 1));
    const good = packet(5, 9);
    const absurd = enc.encode('\x06\x09' + Buffer.from([0xff, 0xff, 1, 2, 3, 4]).toString('base64') + '\n');
    const overlong = new Uint8Array(10000).fill(0x41);
    const { out, drops } = decodeAll(
      join([
        big[0], // truncated: next frame starts before it completes
        ...encodeConsoleLines(packet(3, 3)).map((x, i, a) => (i === a.length - 1 ? x : x)),
        big[2], // orphan continuation (no frame in progress after the complete one)
        enc.encode('\x04\x14@@@@\n'), // bad base64 (orphan too)
        absurd,
        overlong,
        enc.encode('\n'),
        ...encodeConsoleLines(good),
      ]),
      1024,
    );
    expect(drops).toEqual(expect.arrayContaining(['truncated', 'orphan', 'length', 'overlong-line']));
    expect(out.map(toHex)).toEqual([toHex(packet(3, 3)), toHex(good)]);
  });

  it('keeps memory bounded: a frame declaring more than maxPacket is refused up front', () => {
    const lines = encodeConsoleLines(packet(3000));
    const { out, drops } = decodeAll(join(lines), 2048);
    expect(out.length).toBe(0);
    expect(drops[0]).toBe('length');
  });

  it('random noise never throws and never yields a packet with a bad CRC', () => {
    let x = 12345;
    const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
    const noise = Uint8Array.from({ length: 200000 }, () => {
      const r = rnd();
      return r < 8 ? [0x06, 0x09, 0x04, 0x14, 0x0a, 0x0a, 0x3d, 0x41][r] : r;
    });
    const out: Uint8Array[] = [];
    const d = new ConsoleDecoder((p) => out.push(p));
    expect(() => d.push(noise)).not.toThrow();
    expect(out.length).toBe(0);
  });
});

describe('raw framing', () => {
  it('splits back-to-back packets by the header length and resynchronises over garbage', () => {
    const a = packet(10, 1);
    const b = packet(300, 2);
    const out: Uint8Array[] = [];
    const stats = newStats();
    const d = new RawDecoder((p) => out.push(p), { acceptOps: [2], stats });
    const all = join([a, fromHex('ffffff'), b]);
    for (let i = 0; i < all.length; i += 7) d.push(all.subarray(i, i + 7));
    expect(out.map(toHex)).toEqual([toHex(a), toHex(b)]);
    expect(stats.dropped.header).toBe(3);
  });
});

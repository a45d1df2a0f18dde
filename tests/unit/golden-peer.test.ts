/**
 * Golden transcripts from real Zephyr 4.4.0 SMP servers (recorded by
 * tests/peer/record.ts from intercreate's smp-server fixtures): the device's
 * bytes must decode through our framing and SMP layers into the recorded
 * replies, our encoder must reproduce what we sent byte for byte, and the
 * whole session (readDeviceInfo, echoes, error cases) replayed against the
 * transcript must give the recorded results.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TranscriptChunk } from '../../src/core/link/recording.ts';
import { readDeviceInfo } from '../../src/core/ops/identification/info.ts';
import { resultOf } from '../../src/core/ops/outcome.ts';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { encodeFrames, type Framing } from '../../src/core/smp/framing.ts';
import { buildPacket } from '../../src/core/smp/header.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { ReplayLink } from '../helpers/replay-link.ts';
import { bytesReviver, concatChunks, decodePackets, decodeTranscript, jsonRoundTrip, runPeerScript, type DecodedPacket, type ScriptResults } from '../peer/script.ts';

const here = dirname(fileURLToPath(import.meta.url));
const GOLDEN_DIR = resolve(here, '../golden/peer');

interface Golden {
  fixture: string;
  zephyrVersion: string;
  zephyrBuild: string | null;
  manifest: {
    artifact: string;
    buf_size: number;
    buf_count: number;
    line_length_max: number | null;
    mcuboot: boolean;
    groups: string[];
    transport: string;
    recovery_buf_size?: number;
    recovery_buf_count?: number;
  };
  /** The transcript is of MCUboot's serial recovery SMP server (the app was reset into it first). */
  recovery: boolean;
  peer: string;
  framing: Framing;
  recordedAt: string;
  session: { lineGapMs: number; timeoutMs: number; firstSeq: number; datagram?: { maxPayload: number } };
  results: ScriptResults;
  packets: { tx: DecodedPacket[]; rx: DecodedPacket[] };
  framingNotes: { txDrops: string[]; rxDrops: string[]; rxNoise: string[] };
  chunks: TranscriptChunk[];
}

const packetSizeOf = (p: DecodedPacket) => 8 + p.header.length;

const files = readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.json')).sort();

it('has a recorded peer for every fixture of the snapshot that runs on a Linux host', () => {
  expect(files.map((f) => f.replace(/\.json$/, ''))).toEqual([
    'mps2_an385.serial_recovery',
    ...['_buf1024', '_buf2048', '_buf400', '_buf512', '_raw'].map((c) => `mps2_an385.serial_recovery${c}`),
    ...['', '_bigrx', '_buf1024', '_buf2048', '_buf256', '_buf400', '_buf512', '_buf96', '_fs', '_line512', '_noparams', '_raw'].map((c) => `native_sim.serial${c}`),
    'native_sim.shell',
    'native_sim.udp',
    'native_sim.udp6',
    'qemu_cortex_m0.serial',
    'qemu_cortex_m0.serial_buf256',
    'qemu_cortex_m0.serial_buf512',
  ]);
});

/** Open a session over a replay of `g`, with the client starting at the recorded sequence number. */
async function replaySession(g: Golden) {
  const link = new ReplayLink(g.chunks, `replay ${g.fixture}`, g.session.datagram ? { datagram: g.session.datagram } : {});
  // Start at the recorded sequence number so our bytes must equal the recorded ones.
  const session = await openSession(link, { framing: g.framing, timeoutMs: g.session.timeoutMs, initialSeq: g.session.firstSeq });
  return { link, session };
}

afterEach(() => vi.restoreAllMocks());

for (const file of files) {
  const g = JSON.parse(readFileSync(join(GOLDEN_DIR, file), 'utf8'), bytesReviver) as Golden;
  const txBytes = concatChunks(g.chunks, 'tx');
  const rxBytes = concatChunks(g.chunks, 'rx');
  // no params command: the noparams app build, and MCUboot's recovery in the 0eae053d builds (no recovery_buf_size)
  const noParams = g.manifest.artifact.includes('_noparams') || (g.recovery && g.manifest.recovery_buf_size === undefined);

  describe(`golden peer ${g.fixture} (Zephyr ${g.zephyrVersion}, ${g.framing} framing, buf ${g.manifest.buf_size})`, () => {
    const rx = decodeTranscript(g.framing, g.chunks, 'rx');
    const tx = decodeTranscript(g.framing, g.chunks, 'tx');
    const bySeq = (seq: number) => rx.packets.filter((p) => p.header.seq === seq);
    const reqs = (group: number, id: number) => tx.packets.filter((p) => p.header.group === group && p.header.id === id);

    it('the device bytes decode through our framing into the recorded replies, nothing dropped', () => {
      expect(rx.drops).toEqual([]);
      expect(rx.packets.length).toBeGreaterThanOrEqual(10);
      expect(rx.packets).toEqual(g.packets.rx);
      expect(rx.noise).toEqual(g.framingNotes.rxNoise);
    });

    it('every reply is an indefinite-length CBOR map (as zcbor writes it) that we decode', () => {
      const payloads: number[] = [];
      const dec = decodeTranscript(g.framing, g.chunks, 'rx');
      expect(dec.packets.length).toBe(g.packets.rx.length);
      // first payload byte of each reply, found by re-scanning the decoded packet lengths against the raw stream
      for (const p of g.packets.rx) expect(typeof p.body).toBe('object');
      const raw = g.framing !== 'console' ? rxBytes : null;
      if (raw) {
        for (let off = 0; off < raw.length; ) {
          const len = (raw[off + 2] << 8) | raw[off + 3];
          payloads.push(raw[off + 8]);
          off += 8 + len;
        }
        expect(new Set(payloads)).toEqual(new Set([0xbf]));
      } else {
        // console: decode the base64 of each first line and look at byte 2 + 8
        const text = Buffer.from(rxBytes).toString('latin1');
        for (const m of text.matchAll(/\x06\x09([A-Za-z0-9+/=]+)\r?\n/g)) payloads.push(Buffer.from(m[1], 'base64')[2 + 8]);
        expect(payloads.length).toBe(g.packets.rx.length);
        expect(new Set(payloads)).toEqual(new Set([0xbf]));
      }
    });

    it('our encoder reproduces the recorded tx bytes exactly', () => {
      expect(tx.drops).toEqual([]);
      expect(tx.packets).toEqual(g.packets.tx);
      const parts: Uint8Array[] = [];
      for (const p of tx.packets) {
        const { length: _len, ...h } = p.header;
        const packet = buildPacket(h, encodeCbor(p.body));
        parts.push(...encodeFrames(g.framing, packet));
      }
      const ours = Buffer.concat(parts);
      expect(ours.length).toBe(txBytes.length);
      expect(Buffer.compare(ours, Buffer.from(txBytes))).toBe(0);
    });

    // the buffer the server in the transcript has: the app's, or MCUboot recovery's
    const bufSize = g.recovery ? g.manifest.recovery_buf_size! : g.manifest.buf_size;
    const bufCount = g.recovery ? g.manifest.recovery_buf_count! : g.manifest.buf_count;

    it('params match the manifest buf_size and buf_count', () => {
      const [req] = reqs(0, 6);
      const [rep] = bySeq(req.header.seq);
      if (noParams) {
        // the build has no params command: rc 8, and the session drives it with the conservative 256 x 2
        expect(rep.body).toEqual({ rc: 8 });
        expect(g.results.params).toEqual({ bufSize: 256, bufCount: 2, reported: false });
        return;
      }
      expect(rep.body).toEqual({ buf_size: bufSize, buf_count: bufCount });
      expect(g.results.params).toEqual({ bufSize, bufCount, reported: true });
    });

    it('the device is the Zephyr version the fixture names', () => {
      expect(g.manifest.artifact).toContain(`zephyr_${g.zephyrVersion}_`);
      const info = g.results.info as { os?: Record<string, string>; unavailable: { what: string }[] };
      if (g.recovery) {
        // MCUboot's recovery server has no OS info, groups list or bootloader info: only img (and params, reset)
        expect(info.os).toBeUndefined();
        // info recognises it and asks only what it serves: one OS probe, the image list, bootloader info
        expect((info as { mode?: string }).mode).toBe('serial-recovery');
        expect(info.unavailable.map((u) => u.what)).toEqual(['os', 'bootloader']);
        expect(reqs(0, 7)).toHaveLength(1);
        expect(reqs(10, 0).length + reqs(10, 1).length + reqs(10, 3).length).toBe(0);
        return;
      }
      expect((info as { mode?: string }).mode).toBe('application');
      expect(info.os!.version).toBe(g.zephyrVersion);
      expect(info.os!.kernel).toBe('Zephyr');
      expect(info.os!.release).toBe(g.zephyrBuild);
    });

    it('every request got the reply it asked for: same seq, group, id, op + 1', () => {
      for (const r of rx.packets) {
        const q = tx.packets.filter((p) => p.header.seq === r.header.seq && p.header.group === r.header.group && p.header.id === r.header.id);
        expect(q.length, `reply seq ${r.header.seq}`).toBeGreaterThan(0);
        expect(r.header.op).toBe(q[0].header.op + 1);
        expect(r.header.version).toBe(1);
      }
    });

    it('echo replies carry back exactly what was sent', () => {
      if (g.recovery) {
        // echo is not built into this MCUboot: every echo is answered rc 8
        for (const q of reqs(0, 0)) expect(bySeq(q.header.seq).map((p) => p.body).filter((b) => b), `seq ${q.header.seq}`).toEqual(
          // console: buf_size - 2 and over are dropped; raw recovery reads whole packets and answers them all
          g.framing === 'console' && packetSizeOf(q) > bufSize - 3 ? [] : [{ rc: 8 }],
        );
        return;
      }
      let n = 0;
      for (const q of reqs(0, 0)) {
        const [rep] = bySeq(q.header.seq);
        const d = (q.body as { d: string }).d;
        if (!rep) continue; // the oversized ones (below)
        if ('rc' in (rep.body as object)) continue;
        expect((rep.body as { r: string }).r).toBe(d);
        n++;
      }
      expect(n).toBe(g.results.echoes.length);
    });

    it('an unknown group is answered rc 8 (ENOTSUP)', () => {
      const [q] = reqs(100, 0);
      expect(bySeq(q.header.seq).map((p) => p.body)).toEqual([{ rc: 8 }]);
      expect(g.results.unknownGroup).toEqual({ ok: false, kind: 'rc', rc: 8 });
    });

    it('oversized requests: the size limit we observed', () => {
      const packetSize = packetSizeOf;
      if (noParams || g.framing === 'datagram') {
        // no buffer size reported (nothing to exceed) / over UDP the path MTU caps packets: none sent
        expect(g.results.oversize).toEqual([]);
        if (g.framing === 'datagram') {
          const largest = Math.max(...reqs(0, 0).map(packetSize));
          expect(largest).toBe(g.session.datagram!.maxPayload);
          expect(bySeq(reqs(0, 0).find((p) => packetSize(p) === largest)!.header.seq)).toHaveLength(1);
        }
        return;
      }
      if (g.recovery && g.framing === 'raw') {
        // MCUboot's raw recovery (f33aa2bc4a43) takes buf_size - 3 and buf_size - 2 whole: rc 8 (no echo) for both
        const sent = g.results.oversize.map((o) => o.packetBytes);
        expect(sent).toEqual([bufSize - 3, bufSize - 2]);
        for (const o of g.results.oversize) expect(o.outcome).toEqual({ ok: false, kind: 'rc', rc: 8 });
        return;
      }
      if (g.recovery) {
        // MCUboot recovery answers buf_size - 3 (rc 8 here: no echo) and silently drops buf_size - 2
        const big = reqs(0, 0).filter((p) => packetSize(p) > bufSize - 4);
        expect(big.map(packetSize)).toEqual([bufSize - 3, bufSize - 2]);
        expect(bySeq(big[0].header.seq).map((p) => p.body)).toEqual([{ rc: 8 }]);
        expect(bySeq(big[1].header.seq)).toEqual([]);
        return;
      }
      const big = reqs(0, 0).filter((p) => packetSize(p) > g.manifest.buf_size - 4);
      if (g.framing === 'console') {
        // buf_size - 4 is answered; buf_size - 3 gets no reply at all (frame length + CRC share the buffer)
        const answered = reqs(0, 0).filter((p) => packetSize(p) === g.manifest.buf_size - 4);
        expect(answered.length).toBe(1);
        expect(bySeq(answered[0].header.seq).length).toBe(1);
        expect(big.map(packetSize)).toEqual([g.manifest.buf_size - 3]);
        expect(bySeq(big[0].header.seq)).toEqual([]);
      } else {
        // raw: buf_size - 1 answered, buf_size -> rc 7 (EMSGSIZE), buf_size + 1 -> silence
        const sizes = big.map(packetSize);
        expect(sizes).toEqual([g.manifest.buf_size - 1, g.manifest.buf_size, g.manifest.buf_size + 1]);
        expect(bySeq(big[0].header.seq).length).toBe(1);
        expect(bySeq(big[1].header.seq).map((p) => p.body)).toEqual([{ rc: 7 }]);
        expect(bySeq(big[2].header.seq)).toEqual([]);
      }
    });

    it('readDeviceInfo over the replayed transcript yields the recorded info', async () => {
      const { link, session } = await replaySession(g);
      const info = await resultOf(readDeviceInfo(session));
      expect(link.mismatch).toBeUndefined();
      expect(jsonRoundTrip(info)).toEqual(g.results.info);
      await session.close();
    });

    it('the whole recorded session replays: same bytes out, same results', async () => {
      const { link, session } = await replaySession(g);
      const results = await runPeerScript(session, { recovery: g.recovery });
      expect(link.mismatch).toBeUndefined();
      expect(link.finished, link.position).toBe(true);
      expect(jsonRoundTrip(results)).toEqual(g.results);
      await session.close();
    }, 20_000);
  });
}

describe('the golden checks catch tampering', () => {
  const g = JSON.parse(readFileSync(join(GOLDEN_DIR, 'native_sim.serial.json'), 'utf8'), bytesReviver) as Golden;

  it('a changed character in a reply line is a CRC drop, not a different reply', () => {
    const chunks = g.chunks.map((c) => ({ ...c }));
    const idx = chunks.findIndex((c) => c.dir === 'rx' && c.hex.length > 40);
    const b = Buffer.from(chunks[idx].hex, 'hex');
    const at = b.indexOf(0x41, 4) >= 0 ? b.indexOf(0x41, 4) : 6; // an 'A' inside the base64
    b[at] = 0x42;
    chunks[idx].hex = b.toString('hex');
    const rx = decodePackets('console', concatChunks(chunks, 'rx'), 'replies');
    expect(rx.drops.length).toBe(1);
    expect(rx.packets.length).toBe(g.packets.rx.length - 1);
  });

  it('a replay whose recorded request differs by one byte is reported as a mismatch', async () => {
    const chunks = g.chunks.map((c) => ({ ...c }));
    const idx = chunks.findIndex((c) => c.dir === 'tx');
    const b = Buffer.from(chunks[idx].hex, 'hex');
    b[b.length - 2] ^= 0x01;
    chunks[idx].hex = b.toString('hex');
    const link = new ReplayLink(chunks);
    vi.spyOn(Math, 'random').mockReturnValueOnce((((g.session.firstSeq - 1) & 0xff) + 0.5) / 256);
    // the params request is the first thing sent: the replay refuses it and the session cannot open
    await expect(openSession(link, { framing: 'console', timeoutMs: 500 })).rejects.toThrow();
    expect(link.mismatch).toMatch(/^tx differs from the recording at tx byte \d+/);
    expect(await link.closed).toMatchObject({ reason: 'error' });
  });
});

/**
 * Firmware updates recorded against real MCUboot devices (Zephyr 4.4.0
 * smp_server fixtures under QEMU; tests/peer/update-peer.ts records them):
 *  - qemu_cortex_m0.serial: MCUboot in swap-using-offset mode: upload, test,
 *    reset (the bootloader swaps), post-reset state, confirm;
 *  - mps2_an385 app under a RAM_LOAD MCUboot: upload, test answered ENOTSUP,
 *    reset, the bootloader loads the higher version.
 *
 * The device's bytes are replayed verbatim through our framing, SMP decoding
 * and the update op. The fixtures' firmware is not in this repository: the
 * golden keeps each upload request's data as {len, sha256} only, and the
 * replay link compares our requests structurally (header, CBOR keys in order,
 * off/len/sha/hash values, data length and SHA-256).
 *
 * Without the fixtures (CI) the op uploads a STAND-IN image: the same header,
 * size and TLV layout signed by the same test key, with zeros where the
 * fixture's code was. Its SHA-256 TLV is replaced, in what verifyImage
 * reports, by the hash the device computed over the real image, and its file
 * SHA-256 maps to the recorded one; upload data is then compared by length
 * and offset. With the fixtures extracted, the real derived image is uploaded
 * and every chunk's SHA-256 must match.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it, vi } from 'vitest';
import { runUpdate, type UpdateState } from '../../src/core/ops/update/update.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { TLV } from '../../src/core/trust/mcuboot/parse.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { PacketReplayLink, type RecordedRequest, type ReplayEvent } from '../helpers/packet-replay-link.ts';
import { fixturesAvailable, type PeerFixtureId } from '../peer/fixtures.ts';
import { bytesReviver, type DecodedPacket } from '../peer/script.ts';
import { decodeCborObject } from '../../src/core/base/cbor.ts';
import { createDecoder } from '../../src/core/smp/framing.ts';
import { SMP_HEADER_SIZE, decodeHeader } from '../../src/core/smp/header.ts';
import {
  PEER_TEST_KEY, UPDATE_SCENARIOS, appUpdateScenario, deriveUpdateImage, peerTestPublicKey, stateTrail, summarizeState, updateOptions,
  type RedactedData, type UpdateGolden,
} from '../peer/update-peer.ts';
import { toHex } from '../../src/core/base/bytes.ts';

// The stand-in image's hash TLV reads as the recorded one (see above); only for that exact byte array.
const standIn = vi.hoisted(() => ({ current: null as null | { bytes: Uint8Array; hash: Uint8Array } }));
vi.mock('../../src/core/trust/mcuboot/verify.ts', async (importOriginal) => {
  const m = await importOriginal<typeof import('../../src/core/trust/mcuboot/verify.ts')>();
  return {
    ...m,
    verifyImage: async (bytes: Uint8Array, opts: Parameters<typeof m.verifyImage>[1]) => {
      const r = await m.verifyImage(bytes, opts);
      const s = standIn.current;
      if (s && bytes === s.bytes && r.image) {
        r.image = { ...r.image, tlvs: r.image.tlvs.map((t) => (t.type === TLV.SHA256 ? { ...t, value: s.hash } : t)) };
      }
      return r;
    },
  };
});

const here = dirname(fileURLToPath(import.meta.url));
const DIR = resolve(here, '../golden/peer/update');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();
const fromHexStr = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const isRedacted = (v: unknown): v is RedactedData => !!v && typeof v === 'object' && (v as RedactedData).$redacted === 'image bytes';

function load(file: string): UpdateGolden {
  return JSON.parse(readFileSync(join(DIR, file), 'utf8'), bytesReviver) as UpdateGolden;
}

it('has the recorded application-mode updates (swap; RAM_LOAD on each serial-recovery build, console and raw, each buffer)', () => {
  expect(files).toEqual([
    'mps2_an385.ramload.update.json',
    ...['buf1024', 'buf2048', 'buf400', 'buf512', 'raw'].map((c) => `mps2_an385.serial_recovery_${c}.app-update.json`),
    'qemu_cortex_m0.serial.update.json',
  ]);
});

it('no firmware bytes in the golden: every upload data field is redacted, no raw tx chunk is kept', () => {
  for (const f of files) {
    const g = load(f);
    const uploads = g.events.filter((e): e is Extract<typeof e, { dir: 'tx' }> => e.dir === 'tx' && e.header.group === 1 && e.header.id === 1);
    expect(uploads.length).toBeGreaterThanOrEqual(Math.ceil(g.image.size / g.session.params.bufSize)); // a whole image went up, chunk by chunk
    for (const u of uploads) expect(isRedacted(u.body.data), `${f} seq ${u.header.seq}`).toBe(true);
    expect(g.events.some((e) => e.dir === 'tx' && 'hex' in e)).toBe(false);
    expect(Object.keys(g)).not.toContain('chunks');
  }
});

interface Pair {
  req: RecordedRequest;
  replies: DecodedPacket[];
}

/** Each recorded request with the replies (same seq, group, id) that arrived after it and before the next request with that seq. */
function pairUp(g: UpdateGolden): { pairs: Pair[]; rxDrops: string[]; noise: string[] } {
  const pairs: Pair[] = [];
  const noise: string[] = [];
  const rxDrops: string[] = [];
  const open = new Map<number, Pair>();
  const dec = createDecoder(
    g.framing,
    (pkt) => {
      const header = decodeHeader(pkt);
      const body = header.length === 0 ? {} : decodeCborObject(pkt.subarray(SMP_HEADER_SIZE));
      const p = open.get(header.seq);
      if (p && p.req.header.group === header.group && p.req.header.id === header.id) p.replies.push({ header, body });
      else rxDrops.push(`unmatched reply seq ${header.seq}`);
    },
    { acceptOps: [1, 3], onDrop: (r) => rxDrops.push(r), onNoise: (l) => noise.push(new TextDecoder().decode(l)) },
  );
  for (const e of g.events) {
    if (e.dir === 'tx') {
      const p: Pair = { req: e as RecordedRequest, replies: [] };
      pairs.push(p);
      open.set(e.header.seq, p);
    } else dec.push(fromHexStr(e.hex));
  }
  return { pairs, rxDrops, noise };
}

function checkRequest(mode: { standIn?: { bytes: Uint8Array; fileSha: string; recordedFileSha: string } }) {
  let bySha = 0;
  let byBytes = 0;
  const check = (got: { header: RecordedRequest['header']; body: Record<string, unknown> }, want: RecordedRequest): string | undefined => {
    for (const k of ['version', 'op', 'flags', 'group', 'seq', 'id', 'length'] as const) {
      if (got.header[k] !== want.header[k]) return `header ${k} ${got.header[k]} != recorded ${want.header[k]}`;
    }
    const gk = Object.keys(got.body).join(',');
    const wk = Object.keys(want.body).join(',');
    if (gk !== wk) return `CBOR keys [${gk}] != recorded [${wk}]`;
    for (const k of Object.keys(want.body)) {
      const g = got.body[k];
      const w = want.body[k];
      if (isRedacted(w)) {
        if (!(g instanceof Uint8Array)) return `${k} is not a bstr`;
        if (g.length !== w.len) return `${k} length ${g.length} != recorded ${w.len}`;
        if (mode.standIn) {
          const off = got.body.off as number;
          const exp = mode.standIn.bytes.subarray(off, off + g.length);
          if (toHex(g) !== toHex(exp)) return `${k} is not the image's bytes at offset ${off}`;
          byBytes++;
        } else {
          const h = toHex(sha256(g));
          if (h !== w.sha256) return `${k} SHA-256 ${h} != recorded ${w.sha256}`;
          bySha++;
        }
      } else if (w instanceof Uint8Array) {
        if (!(g instanceof Uint8Array)) return `${k} is not a bstr`;
        let gh = toHex(g);
        if (mode.standIn && k === 'sha' && gh === mode.standIn.fileSha) gh = mode.standIn.recordedFileSha;
        if (gh !== toHex(w)) return `${k} ${gh} != recorded ${toHex(w)}`;
      } else if (JSON.stringify(g) !== JSON.stringify(w)) return `${k} ${JSON.stringify(g)} != recorded ${JSON.stringify(w)}`;
    }
    return undefined;
  };
  return { check, counts: () => ({ bySha, byBytes }) };
}

/** The stand-in: our signImage over zeros, same options, so header, size and TLV layout equal the recorded image's. */
async function makeStandIn(g: UpdateGolden): Promise<Uint8Array> {
  const s = await signImage(new Uint8Array(g.image.bodySize), {
    key: PEER_TEST_KEY,
    version: g.image.version,
    headerSize: g.image.headerSize,
    padHeader: true,
    ...(g.image.loadAddr !== undefined ? { loadAddr: g.image.loadAddr } : {}),
  });
  return s.image;
}

async function replayUpdate(g: UpdateGolden, image: Uint8Array, check: ReturnType<typeof checkRequest>['check'], events = g.events as ReplayEvent[], extra: Partial<ReturnType<typeof updateOptions>> = {}) {
  const link = new PacketReplayLink(events, g.framing, check, `replay ${g.scenario}`);
  const session = await openSession(link, { framing: g.framing, timeoutMs: 400, initialSeq: g.session.firstSeq });
  session.client.setLimits(g.session.maxPacket, g.session.window);
  const states: UpdateState[] = [];
  const final = await runUpdate(session, image, { ...updateOptions(await peerTestPublicKey()), resetSettleMs: 5, ...extra }, (s) => states.push(s));
  await session.close();
  return { link, states, final, session };
}

for (const file of files) {
  const g = load(file);
  const ramLoad = g.image.loadAddr !== undefined;
  const upload = (p: Pair) => p.req.header.group === 1 && p.req.header.id === 1;
  const stateRead = (p: Pair) => p.req.header.group === 1 && p.req.header.id === 0 && p.req.header.op === 0;
  const stateWrite = (p: Pair) => p.req.header.group === 1 && p.req.header.id === 0 && p.req.header.op === 2;
  const resetReq = (p: Pair) => p.req.header.group === 0 && p.req.header.id === 5;
  const hash = g.image.hash;
  type Slot = { slot: number; version: string; hash: Uint8Array; active: boolean; confirmed: boolean; pending: boolean };
  const slotsOf = (p: Pair) => (p.replies[0].body as { images: Slot[] }).images;
  const slotWith = (p: Pair, h: string) => slotsOf(p).find((s) => toHex(s.hash) === h);

  describe(`golden update ${g.scenario} (Zephyr ${g.zephyrVersion}, ${g.bootloader})`, () => {
    const { pairs, rxDrops, noise } = pairUp(g);
    const resetAt = pairs.findIndex(resetReq);

    it('the device bytes decode through our framing, nothing dropped; log lines are noise', () => {
      expect(rxDrops).toEqual([]);
      // the nRF51 shares one UART for SMP, MCUboot's boot log and the app's log; mps2 logs to its second UART
      if (!ramLoad) expect(noise.some((l) => l.includes('Booting MCUboot'))).toBe(true);
      else expect(noise).toEqual([]);
      for (const p of pairs) for (const r of p.replies) {
        expect(r.header.op).toBe(p.req.header.op + 1);
        expect(r.header.version).toBe(1);
      }
    });

    it('upload: each reply is the next offset the device expects, ending at the image size', () => {
      const ups = pairs.filter(upload);
      const answered = ups.filter((p) => p.replies.length === 1);
      expect(ups[0].req.body.len).toBe(g.image.size);
      expect(toHex(ups[0].req.body.sha as Uint8Array)).toBe(g.image.fileSha256);
      let expected = 0;
      for (const p of ups) {
        const off = p.req.body.off as number;
        const len = (p.req.body.data as RedactedData).len;
        if (p.replies.length === 0) continue; // lost on the way (see below): the op resent it
        expect(off).toBe(expected);
        const r = p.replies[0].body as { off: number; match?: boolean };
        expect(r.off).toBe(off + len);
        expected = r.off;
      }
      expect(expected).toBe(g.image.size);
      const last = answered.at(-1)!.replies[0].body as Record<string, unknown>;
      // This img_mgmt build does not report `match` (the op then relies on the slot hash)
      expect(last).toEqual({ off: g.image.size });
      // every request got at most one reply
      for (const p of pairs) expect(p.replies.length).toBeLessThanOrEqual(1);
      const lost = ups.filter((p) => p.replies.length === 0);
      for (const p of lost) {
        // a lost chunk is resent at the same offset with the same data
        const again = ups.find((q) => q !== p && q.req.header.seq !== p.req.header.seq && q.req.body.off === p.req.body.off && q.replies.length === 1);
        expect(again, `resend of off ${String(p.req.body.off)}`).toBeDefined();
        expect((again!.req.body.data as RedactedData).sha256).toBe((p.req.body.data as RedactedData).sha256);
      }
      if (!ramLoad) {
        // the nRF51 dropped whole requests ("uart_mcumgr: Insufficient buffers, fragment dropped")
        expect(noise.filter((l) => l.includes('Insufficient buffers, fragment dropped')).length).toBe(lost.length);
      }
    });

    it('after the upload the device lists the new image in slot 1, hash = our image hash TLV', () => {
      const after = pairs.slice(0, resetAt).filter(stateRead).at(-1)!;
      const s = slotWith(after, hash)!;
      expect(s).toMatchObject({ slot: 1, active: false, confirmed: false, pending: false });
      // img_mgmt prints the build number as a fourth dotted part
      expect(s.version).toBe('1.0.0.1');
    });

    if (!ramLoad) {
      it('test: the state write marks it pending; reset answers {}; after the swap it runs unconfirmed; confirm makes it permanent', () => {
        const test = pairs.find(stateWrite)!;
        expect(test.req.body).toMatchObject({ confirm: false });
        expect(toHex(test.req.body.hash as Uint8Array)).toBe(hash);
        expect(slotWith(test, hash)).toMatchObject({ slot: 1, pending: true, confirmed: false, active: false });
        expect(pairs[resetAt].replies.map((r) => r.body)).toEqual([{}]);
        const post = pairs.slice(resetAt + 1).find(stateRead)!;
        expect(slotWith(post, hash)).toMatchObject({ slot: 0, active: true, confirmed: false, pending: false });
        expect(slotsOf(post).find((s) => s.slot === 1)).toMatchObject({ version: '0.0.0', confirmed: true, active: false });
        expect(noise).toContain('I: Starting swap using offset algorithm.');
        expect(noise).toContain('I: Image version: v1.0.0');
        const confirm = pairs.slice(resetAt + 1).find(stateWrite)!;
        expect(confirm.req.body).toEqual({ confirm: true });
        expect(slotWith(confirm, hash)).toMatchObject({ slot: 0, active: true, confirmed: true });
      });
    } else {
      it('test: the RAM_LOAD bootloader has no test/confirm: the state write is answered {rc: 8} (ENOTSUP); after reset it runs the new image', () => {
        const test = pairs.find(stateWrite)!;
        expect(test.req.body).toMatchObject({ confirm: false });
        expect(test.replies.map((r) => r.body)).toEqual([{ rc: 8 }]);
        expect(pairs[resetAt].replies.map((r) => r.body)).toEqual([{}]);
        const post = pairs.slice(resetAt + 1).find(stateRead)!;
        expect(slotWith(post, hash)).toMatchObject({ slot: 1, active: true, confirmed: true });
        expect(pairs.slice(resetAt + 1).some(stateWrite)).toBe(false);
      });
    }

    it('the op, driven by the device\'s recorded replies, reaches the recorded outcome (stand-in image)', async () => {
      const bytes = await makeStandIn(g);
      expect(bytes.length).toBe(g.image.size);
      standIn.current = { bytes, hash: fromHexStr(hash) };
      try {
        const c = checkRequest({ standIn: { bytes, fileSha: toHex(sha256(bytes)), recordedFileSha: g.image.fileSha256 } });
        const { link, states, final } = await replayUpdate(g, bytes, c.check);
        expect(link.mismatch).toBeUndefined();
        expect(link.finished, link.position).toBe(true);
        expect(summarizeState(final)).toEqual(g.outcome);
        expect(stateTrail(states)).toEqual(g.states);
        expect(c.counts().byBytes).toBe(pairs.filter(upload).length);
        if (ramLoad) {
          const t = states.find((s) => s.kind === 'testing' && s.skipped);
          expect(t).toMatchObject({ note: expect.stringMatching(/no test\/confirm \(ENOTSUP\): test skipped/) });
          expect(final).toMatchObject({ kind: 'done', result: { confirmed: true, message: 'running 1.0.0+1 (no test/confirm in this bootloader)' } });
        } else {
          expect(final).toMatchObject({ kind: 'done', result: { confirmed: true, message: 'running 1.0.0+1, confirmed' } });
        }
      } finally {
        standIn.current = null;
      }
    }, 20_000);

    it('a request that differs from the recording is caught (an upload chunk at the wrong offset)', async () => {
      const bytes = await makeStandIn(g);
      standIn.current = { bytes, hash: fromHexStr(hash) };
      try {
        const events = g.events.map((e) => (e.dir === 'tx' && e.header.group === 1 && e.header.id === 1 && e.body.off === (pairs.filter(upload)[3].req.body.off as number) ? { ...e, body: { ...e.body, off: (e.body.off as number) + 1 } } : e)) as ReplayEvent[];
        const c = checkRequest({ standIn: { bytes, fileSha: toHex(sha256(bytes)), recordedFileSha: g.image.fileSha256 } });
        const { link, final } = await replayUpdate(g, bytes, c.check, events);
        expect(link.mismatch).toMatch(/off \d+ != recorded \d+/);
        expect(final.kind).toBe('failed');
      } finally {
        standIn.current = null;
      }
    }, 20_000);

    it('a device that never comes back after reset ends in a recoverable error, not a hang', async () => {
      const bytes = await makeStandIn(g);
      standIn.current = { bytes, hash: fromHexStr(hash) };
      try {
        const cut = g.events.findIndex((e) => e.dir === 'tx' && e.header.group === 0 && e.header.id === 5);
        // keep the reset request and the rx right after it (its reply), drop the rest
        let end = cut + 1;
        while (end < g.events.length && g.events[end].dir === 'rx') end++;
        const c = checkRequest({ standIn: { bytes, fileSha: toHex(sha256(bytes)), recordedFileSha: g.image.fileSha256 } });
        const { final } = await replayUpdate(g, bytes, c.check, g.events.slice(0, end) as ReplayEvent[], { bootTimeoutMs: 1500 });
        expect(final).toMatchObject({ kind: 'failed', code: 'no-return', retryable: true });
      } finally {
        standIn.current = null;
      }
    }, 20_000);

    it.skipIf(!fixturesAvailable())(`with the fixture's own image (extracted fixtures only): every chunk's SHA-256 matches the recording`, async () => {
      // the app-update scenarios read the fixtures' manifest: only where the fixtures are extracted
      const sc = Object.values(UPDATE_SCENARIOS).find((s) => s.name === g.scenario) ?? appUpdateScenario(g.fixture as PeerFixtureId);
      const d = await deriveUpdateImage(sc);
      expect(toHex(d.bodySha256)).toBe(g.image.bodySha256);
      expect(toHex(sha256(d.image))).toBe(g.image.fileSha256);
      const c = checkRequest({});
      const { link, final } = await replayUpdate(g, d.image, c.check);
      expect(link.mismatch).toBeUndefined();
      expect(summarizeState(final)).toEqual(g.outcome);
      expect(c.counts().bySha).toBe(pairs.filter(upload).length);
    }, 20_000);
  });
}

it('the stand-in hash substitution applies to the stand-in only', async () => {
  const g = load(files[1]);
  const bytes = await makeStandIn(g);
  const { verifyImage } = await import('../../src/core/trust/mcuboot/verify.ts');
  const real = await verifyImage(bytes, { keys: [await peerTestPublicKey()] });
  expect(real.ok).toBe(true);
  const own = real.image!.tlvs.find((t) => t.type === TLV.SHA256)!.value;
  expect(toHex(own)).not.toBe(g.image.hash);
});

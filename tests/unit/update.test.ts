import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Link } from '../../src/core/link/link.ts';
import { type LinkModel, createLinkPair } from '../../src/core/link/memory.ts';
import { readState, writeState } from '../../src/core/groups/image.ts';
import { type UpdateOptions, type UpdateState, runUpdate, updateFirmware } from '../../src/core/ops/update/update.ts';
import { checkImage, preflightImage, readDeviceFacts } from '../../src/core/ops/update/preflight.ts';
import { maxChunkData, uploadImage, uploadPacketSize, uploadStopAndWait } from '../../src/core/ops/update/engine.ts';
import { type Framing } from '../../src/core/smp/framing.ts';
import { type SmpSession, openSession } from '../../src/core/groups/session.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { verifyImage } from '../../src/core/trust/mcuboot/verify.ts';
import type { TrustBundle } from '../../src/core/trust/bundle.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { type ImageModel, type ImageModelOptions } from '../../src/device/groups/image.ts';
import { configureImageModel, imageModelOf } from '../../src/device/groups/standard.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { sha256 } from '@noble/hashes/sha2.js';

const vectors = path.resolve(__dirname, '../../../shared/vectors');
const samplePem = parsePem(readFileSync(path.join(vectors, 'mcuboot/root-ed25519.pem'), 'utf8'));
if (samplePem.kind !== 'ed25519-private') throw new Error('sample key is not an Ed25519 private key');
const SAMPLE_SEED = samplePem.seed;
const SAMPLE_PUB = await ed25519PublicKey(SAMPLE_SEED);

const fast: LinkModel = { baudRate: 921600 * 10, latencyMs: 0 };

function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

function body(size: number, seed = 7): Uint8Array {
  const r = prng(seed);
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (r() * 256) | 0;
  return b;
}

async function makeImage(version: string, securityCounter: number | undefined, size = 20000, key: Uint8Array | null = SAMPLE_SEED, extra: Record<string, unknown> = {}) {
  return (await signImage(body(size, size ^ securityCounter!), { key: key ?? undefined, version, headerSize: 32, padHeader: true, securityCounter, ...extra })).image;
}

interface Setup {
  device: ReferenceDevice;
  model: ImageModel;
  s: SmpSession;
  connect: (wrap?: (l: Link) => Link) => Promise<SmpSession>;
  pairs: ReturnType<typeof createLinkPair>[];
}

async function setup(o: { framing?: Framing; bufSize?: number; bufCount?: number; link?: LinkModel; image?: ImageModelOptions; wrap?: (l: Link) => Link; timeoutMs?: number } = {}): Promise<Setup> {
  const framing = o.framing ?? 'console';
  const device = new ReferenceDevice({ framing, bufSize: o.bufSize ?? 384, bufCount: o.bufCount ?? 4 });
  const model = await configureImageModel(device, { trustedKeys: [SAMPLE_PUB], ...o.image });
  const pairs: ReturnType<typeof createLinkPair>[] = [];
  const connect = async (wrap?: (l: Link) => Link) => {
    const pair = createLinkPair(o.link ?? fast);
    pairs.push(pair);
    void device.serve(pair.b);
    return openSession(wrap ? wrap(pair.a) : pair.a, { framing, timeoutMs: o.timeoutMs ?? 400 });
  };
  const s = await connect(o.wrap);
  return { device, model, s, connect, pairs };
}

const baseOpts = (extra: Partial<UpdateOptions> = {}): UpdateOptions => ({ trustedKeys: [SAMPLE_PUB], resetSettleMs: 60, firstChunkTimeoutMs: 1500, ...extra });

async function collect(session: SmpSession, image: Uint8Array, opts: UpdateOptions, onState?: (s: UpdateState) => void) {
  const states: UpdateState[] = [];
  const last = await runUpdate(session, image, opts, (st) => {
    states.push(st);
    onState?.(st);
  });
  return { states, last, kinds: [...new Set(states.map((x) => x.kind))] };
}

/** Every image the device ever booted verifies under its trusted keys and never rolls its counter back. */
async function assertOnlyGoodBoots(model: ImageModel) {
  let counter = 0;
  for (const b of model.bootHistory) {
    expect(b.securityCounter).toBeDefined();
    expect(b.securityCounter!).toBeGreaterThanOrEqual(counter);
    counter = Math.max(counter, b.securityCounter!);
  }
  const running = model.slots[model.active];
  expect(running).toBeTruthy();
  const r = await verifyImage(running!.data, { keys: model.trusted, requireSecurityCounter: true });
  expect(r.ok).toBe(true);
}

describe('upload request sizing', () => {
  it('fills buf_size exactly, counting the header and the CBOR bstr/uint prefixes', () => {
    const sha = new Uint8Array(32);
    for (const buf of [128, 256, 300, 384, 512, 2048, 4096]) {
      for (const fields of [{ off: 0, len: 300000, sha }, { off: 5 }, { off: 100 }, { off: 1000 }, { off: 70000 }, { off: 0, len: 20, sha, image: 0, upgrade: true }]) {
        const n = maxChunkData(buf, fields);
        expect(n).toBeGreaterThan(0);
        expect(uploadPacketSize(fields, n)).toBeLessThanOrEqual(buf);
        expect(uploadPacketSize(fields, n + 1)).toBeGreaterThan(buf);
      }
    }
  });

  it('an update at 384 and 2048 bytes never sends a packet the device drops as oversized', async () => {
    for (const bufSize of [384, 2048]) {
      const t = await setup({ bufSize, framing: 'raw' });
      const img = await makeImage('1.1.0', 2, 30000);
      const r = await collect(t.s, img, baseOpts());
      expect(r.last).toMatchObject({ kind: 'done', confirmed: true });
      expect(t.device.stats.droppedOversize).toBe(0);
      await t.s.close();
    }
  });
});

describe('firmware update against the reference device', () => {
  it('swap mode: preflight, upload, test, reset, confirm; the device keeps the new image', async () => {
    const t = await setup();
    const img = await makeImage('1.1.0', 2);
    const r = await collect(t.s, img, baseOpts());
    expect(r.last).toMatchObject({ kind: 'done', version: '1.1.0+0', confirmed: true });
    expect(r.kinds).toEqual(['preflight', 'uploading', 'verifying', 'testing', 'resetting', 'waiting-for-device', 'confirming', 'done']);
    const pre = r.states[0] as Extract<UpdateState, { kind: 'preflight' }>;
    expect(pre.report.ok).toBe(true);
    expect(pre.report.checks.find((c) => c.name === 'signature')?.result).toBe('pass');
    const up = r.states.filter((x) => x.kind === 'uploading') as Extract<UpdateState, { kind: 'uploading' }>[];
    expect(up.at(-1)).toMatchObject({ sent: img.length, total: img.length });
    expect(t.model.securityCounter).toBe(2);
    expect(t.model.bootEvents.map((e) => e.event)).toContain('swapped');
    // Confirmed: a further reboot does not revert.
    await t.device.reboot();
    const st = await readState(t.s.client);
    expect(st.find((x) => x.active)?.version).toBe('1.1.0');
    expect(st.find((x) => x.active)?.confirmed).toBe(true);
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  });

  it('test-only: the device runs the image unconfirmed and reverts at the next reboot', async () => {
    const t = await setup();
    const before = (await readState(t.s.client)).find((x) => x.active)!;
    const img = await makeImage('1.2.0', 3);
    const r = await collect(t.s, img, baseOpts({ confirm: 'test-only' }));
    expect(r.last).toMatchObject({ kind: 'done', confirmed: false });
    expect(t.model.securityCounter).toBe(1); // not raised by an unconfirmed test image
    await t.device.reboot();
    const after = (await readState(t.s.client)).find((x) => x.active)!;
    expect(after.hash).toEqual(before.hash);
    expect(t.model.bootEvents.at(-2)?.event).toBe('reverted');
    await t.s.close();
  });

  it('RAM load bootloader: test answers ENOTSUP, the op skips it and says so; the device boots the new image', async () => {
    const t = await setup({ image: { bootMode: 'ram-load' } });
    const img = await makeImage('1.1.0', 2);
    const r = await collect(t.s, img, baseOpts());
    const skipped = r.states.find((x) => x.kind === 'testing' && x.skipped) as Extract<UpdateState, { kind: 'testing' }>;
    expect(skipped?.note).toMatch(/no test\/confirm \(ENOTSUP\)/);
    expect(skipped?.note).toMatch(/RAM load/);
    expect(r.last).toMatchObject({ kind: 'done', confirmed: true });
    expect(r.kinds).not.toContain('confirming');
    expect(t.model.active).toBe(1);
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  });

  it('overwrite-only bootloader: the upgrade is requested permanent; no revert', async () => {
    const t = await setup({ image: { bootMode: 'overwrite' } });
    const img = await makeImage('1.1.0', 2);
    const r = await collect(t.s, img, baseOpts());
    expect(r.states.find((x) => x.kind === 'testing')).toMatchObject({ note: expect.stringMatching(/overwrite-only/) });
    expect(r.last).toMatchObject({ kind: 'done', confirmed: true });
    expect(t.model.slots[1]).toBeNull();
    await t.s.close();
  });

  it('resume after unplug: a new link to the same device continues from the device offset, not 0', async () => {
    const t = await setup({ link: { baudRate: 921600, latencyMs: 0 }, image: { writeUsPerByte: 2 } });
    const img = await makeImage('1.1.0', 2, 60000);
    let unplugged = false;
    const r1 = await collect(t.s, img, baseOpts(), (st) => {
      if (!unplugged && st.kind === 'uploading' && st.sent > img.length * 0.4) {
        unplugged = true;
        t.pairs[0].unplug('USB cable unplugged');
      }
    });
    expect(r1.last).toMatchObject({ kind: 'error', recoverable: true });
    expect((r1.last as { message: string }).message).toMatch(/link lost|disconnected|closed/);
    // the device may still be writing chunks it had queued when the cable went: wait until it is idle
    let devOffset = t.model.upload?.off ?? 0;
    for (let stable = 0; stable < 5; ) {
      await new Promise((r) => setTimeout(r, 20));
      const now = t.model.upload?.off ?? 0;
      stable = now === devOffset ? stable + 1 : 0;
      devOffset = now;
    }
    expect(devOffset).toBeGreaterThan(img.length * 0.4);
    const s2 = await t.connect();
    const r2 = await collect(s2, img, baseOpts());
    const resumed = r2.states.find((x) => x.kind === 'resumed') as Extract<UpdateState, { kind: 'resumed' }>;
    expect(resumed?.from).toBe(devOffset);
    const firstUp = r2.states.find((x) => x.kind === 'uploading') as Extract<UpdateState, { kind: 'uploading' }>;
    expect(firstUp.sent).toBeGreaterThanOrEqual(devOffset);
    expect(r2.last).toMatchObject({ kind: 'done', confirmed: true });
    await assertOnlyGoodBoots(t.model);
    await s2.close();
  });

  it('resume with a reconnect option: the op reopens the link and continues by itself', async () => {
    const t = await setup({ link: { baudRate: 921600, latencyMs: 0 }, image: { writeUsPerByte: 2 } });
    const img = await makeImage('1.1.0', 2, 60000);
    let unplugged = false;
    let last: SmpSession | null = null;
    const r = await collect(
      t.s,
      img,
      baseOpts({ reconnect: async () => (last = await t.connect()) }),
      (st) => {
        if (!unplugged && st.kind === 'uploading' && st.sent > img.length * 0.3) {
          unplugged = true;
          t.pairs[0].unplug();
        }
      },
    );
    const resumed = r.states.find((x) => x.kind === 'resumed') as Extract<UpdateState, { kind: 'resumed' }>;
    expect(resumed.from).toBeGreaterThan(img.length * 0.3);
    expect(r.last).toMatchObject({ kind: 'done', confirmed: true });
    await last!.close();
  });

  it('device reboot mid-upload: the device forgets the upload; the op restarts it and completes', async () => {
    const t = await setup({ link: { baudRate: 921600, latencyMs: 0 }, image: { writeUsPerByte: 2 } });
    const img = await makeImage('1.1.0', 2, 60000);
    let rebooted = false;
    const r = await collect(t.s, img, baseOpts(), (st) => {
      if (!rebooted && st.kind === 'uploading' && st.sent > img.length * 0.5) {
        rebooted = true;
        void t.device.reboot();
      }
    });
    expect(rebooted).toBe(true);
    expect(r.last).toMatchObject({ kind: 'done', confirmed: true });
    expect(t.model.bootHistory.length).toBeGreaterThanOrEqual(3);
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  });

  /** Host -> device lines dropped or corrupted at random. */
  function lossy(rate: { drop: number; corrupt: number }, seed: number) {
    const rnd = prng(seed);
    const stats = { dropped: 0, corrupted: 0, enabled: true };
    const wrap = (l: Link): Link => {
      const w = l.writable.getWriter();
      const writable = new WritableStream<Uint8Array>({
        async write(chunk) {
          if (!stats.enabled) return w.write(chunk);
          // Loss strikes line by line (a session may write a packet's lines in one chunk).
          const parts: Uint8Array[] = [];
          for (let start = 0; start < chunk.length; ) {
            let end = chunk.indexOf(0x0a, start);
            end = end < 0 ? chunk.length : end + 1;
            parts.push(chunk.subarray(start, end));
            start = end;
          }
          for (const part of parts) {
            const x = rnd();
            if (x < rate.drop) {
              stats.dropped++;
              continue;
            }
            if (x < rate.drop + rate.corrupt) {
              stats.corrupted++;
              const c = part.slice();
              c[(rnd() * c.length) | 0] ^= 1 << ((rnd() * 8) | 0);
              await w.write(c);
              continue;
            }
            await w.write(part);
          }
        },
      });
      return { label: l.label, readable: l.readable, writable, closed: l.closed, close: () => l.close(), baudRate: l.baudRate };
    };
    return { wrap, stats };
  }

  it('lines lost or garbled at random points (console): the upload resynchronises and completes', async () => {
    const { wrap, stats } = lossy({ drop: 0.02, corrupt: 0.02 }, 12345);
    const t = await setup({ wrap, timeoutMs: 300 });
    const img = await makeImage('1.1.0', 2, 30000);
    const r = await collect(t.s, img, baseOpts({ firstChunkTimeoutMs: 300, maxStalls: 20 }));
    expect(stats.dropped + stats.corrupted).toBeGreaterThan(5);
    if (r.last.kind === 'done') {
      expect(t.model.slots[0]!.data).toEqual(img);
    } else {
      expect(r.last).toMatchObject({ kind: 'error', message: expect.stringMatching(/\w{10,}/) });
    }
    expect(r.last).toMatchObject({ kind: 'done' });
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  }, 30000);

  it('garbled raw framing (no CRC): corrupted data is caught by the device sha match or at boot; a bad image never boots', async () => {
    const { wrap, stats } = lossy({ drop: 0, corrupt: 0.01 }, 999);
    const t = await setup({ framing: 'raw', wrap, timeoutMs: 300 });
    const img = await makeImage('1.1.0', 2, 40000);
    const r = await collect(t.s, img, baseOpts({ firstChunkTimeoutMs: 300, maxStalls: 20 }));
    expect(stats.corrupted).toBeGreaterThan(0);
    expect(['done', 'error']).toContain(r.last.kind);
    if (r.last.kind === 'error') expect(r.last.message.length).toBeGreaterThan(20);
    if (r.last.kind === 'done') expect(t.model.slots[0]!.data).toEqual(img);
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  }, 30000);

  it('a line that mostly drops everything: stops with a clear, recoverable error; nothing is installed', async () => {
    const { wrap, stats } = lossy({ drop: 0.6, corrupt: 0.2 }, 4242);
    stats.enabled = false;
    const t = await setup({ wrap, timeoutMs: 150 });
    stats.enabled = true;
    const before = t.model.slots[0]!.data;
    const img = await makeImage('1.1.0', 2, 30000);
    const r = await collect(t.s, img, baseOpts({ firstChunkTimeoutMs: 150, maxStalls: 3 }));
    expect(r.last.kind).toBe('error');
    expect((r.last as { recoverable: boolean }).recoverable).toBe(true);
    expect((r.last as { message: string }).message).toMatch(/no reply|stopped answering|could not read/);
    expect(t.model.slots[0]!.data).toBe(before);
    expect(t.model.pending).toBe('none');
    await t.s.close();
  }, 30000);

  it('cancel via AbortSignal, then resume', async () => {
    const t = await setup({ link: { baudRate: 921600 } });
    const img = await makeImage('1.1.0', 2, 50000);
    const ac = new AbortController();
    const r1 = await collect(t.s, img, baseOpts({ signal: ac.signal }), (st) => {
      if (st.kind === 'uploading' && st.sent > img.length / 3) ac.abort();
    });
    expect(r1.last).toMatchObject({ kind: 'cancelled' });
    expect(t.model.pending).toBe('none');
    const r2 = await collect(t.s, img, baseOpts());
    expect(r2.states.some((x) => x.kind === 'resumed')).toBe(true);
    expect(r2.last).toMatchObject({ kind: 'done' });
    await t.s.close();
  });

  it('stop-and-wait 128-byte baseline uploads a matching image', async () => {
    const t = await setup();
    const img = await makeImage('1.1.0', 2, 5000);
    const r = await uploadStopAndWait(t.s.client, img);
    expect(r.match).toBe(true);
    expect(r.requests).toBe(Math.ceil(img.length / 128));
    await t.s.close();
  });
});

describe('refusals: preflight and the device', () => {
  it('rollback: refused by preflight (version), and by the device (security counter) even when the host is fooled', async () => {
    const t = await setup();
    expect((await collect(t.s, await makeImage('1.3.0', 5), baseOpts())).last).toMatchObject({ kind: 'done' });
    expect(t.model.securityCounter).toBe(5);
    // Older version: preflight refuses, nothing is sent.
    const older = await makeImage('1.2.0', 6);
    const before = t.device.stats.requests;
    const r1 = await collect(t.s, older, baseOpts());
    expect(r1.last).toMatchObject({ kind: 'error', recoverable: false, message: expect.stringMatching(/rollback refused/) });
    expect(r1.kinds).toEqual(['preflight', 'error']);
    expect(t.device.stats.requests - before).toBeLessThan(6); // only the preflight reads
    // Newer version but a lower security counter: the host cannot know the counter without a bundle; the device refuses to boot it.
    const sneaky = await makeImage('2.0.0', 3);
    const r2 = await collect(t.s, sneaky, baseOpts());
    expect(r2.last).toMatchObject({ kind: 'error', recoverable: false, message: expect.stringMatching(/did not boot the new image/) });
    expect(t.model.bootEvents.some((e) => e.event === 'rejected' && /security counter 3 is below the device's 5/.test(e.message))).toBe(true);
    expect((await readState(t.s.client)).find((x) => x.active)?.version).toBe('1.3.0');
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  });

  it('noDowngrade: the bootloader refuses an older version with the same security counter, even sent past the preflight', async () => {
    const t = await setup({ image: { noDowngrade: true } });
    expect((await collect(t.s, await makeImage('2.0.0', 5), baseOpts())).last).toMatchObject({ kind: 'done' });
    const older = await makeImage('1.0.0', 5);
    await uploadImage(t.s.client, older); // the raw engine: no preflight
    const hash = (await readState(t.s.client)).find((x) => x.slot === 1)!.hash!;
    await writeState(t.s.client, hash, true);
    await t.device.reboot();
    await t.model.settled();
    expect((await readState(t.s.client)).find((x) => x.active)?.version).toBe('2.0.0');
    expect(t.model.bootEvents.some((e) => e.event === 'rejected' && /downgrade prevented/.test(e.message))).toBe(true);
    await assertOnlyGoodBoots(t.model);
    await t.s.close();
  });

  it('rollback of the security counter is refused by preflight when the bundle knows the running image', async () => {
    const t = await setup();
    const facts = await readDeviceFacts(t.s);
    const running = facts.slots.find((x) => x.active)!;
    const img = await makeImage('1.1.0', 0);
    const bundle: TrustBundle = {
      version: 3, issued: 1, expires: 4102444800, anchors: { manufacturer: [], firmware: [], owner: [] },
      revocations: { keyIds: [], certSerials: [], credentialIds: [] },
      firmware: [
        { model: 'fieldbench_ref', version: '1.0.0', sha256: running.hash!, securityCounter: 1, signerKid: new Uint8Array(8) },
        { model: 'fieldbench_ref', version: '1.1.0', sha256: sha256(img), securityCounter: 0, signerKid: keyId(SAMPLE_PUB) },
      ],
      configurations: [], issuer: new Uint8Array(8), stale: false,
    };
    const rep = await checkImage(img, facts, { trustedKeys: [SAMPLE_PUB], bundle, deviceModel: { name: 'fieldbench_ref' } });
    expect(rep.ok).toBe(false);
    expect(rep.checks.find((c) => c.name === 'security-counter')).toMatchObject({ result: 'fail', reason: expect.stringMatching(/below the running image's 1/) });
    // A big jump warns; wrong model fails; stale bundle fails; revoked key fails.
    const jump = await makeImage('1.1.0', 500);
    bundle.firmware[1] = { ...bundle.firmware[1], sha256: sha256(jump), securityCounter: 500 };
    const rj = await checkImage(jump, facts, { trustedKeys: [SAMPLE_PUB], bundle, deviceModel: { name: 'fieldbench_ref' } });
    expect(rj.ok).toBe(true);
    expect(rj.checks.find((c) => c.name === 'security-counter')?.result).toBe('warn');
    const rm = await checkImage(jump, facts, { trustedKeys: [SAMPLE_PUB], bundle, deviceModel: { name: 'other_board' } });
    expect(rm.checks.find((c) => c.name === 'model')).toMatchObject({ result: 'fail', reason: expect.stringMatching(/other_board/) });
    const rs = await checkImage(jump, facts, { trustedKeys: [SAMPLE_PUB], bundle: { ...bundle, stale: true }, deviceModel: { name: 'fieldbench_ref' } });
    expect(rs.checks.find((c) => c.name === 'bundle')?.result).toBe('fail');
    const rr = await checkImage(jump, facts, { trustedKeys: [SAMPLE_PUB], bundle: { ...bundle, revocations: { ...bundle.revocations, keyIds: [keyId(SAMPLE_PUB)] } } });
    expect(rr.checks.find((c) => c.name === 'revocation')?.result).toBe('fail');
    const unlisted = await makeImage('1.1.0', 2);
    const ru = await checkImage(unlisted, facts, { trustedKeys: [SAMPLE_PUB], bundle });
    expect(ru.checks.find((c) => c.name === 'model')).toMatchObject({ result: 'fail', reason: expect.stringMatching(/not listed/) });
    await t.s.close();
  });

  it('model by UUID TLVs: matching vendor/class passes, another class fails', async () => {
    const t = await setup();
    const img = await makeImage('1.1.0', 2, 2000, SAMPLE_SEED, { vid: 'example.com', cid: 'sensor-v2' });
    const ok = await preflightImage(t.s, img, { trustedKeys: [SAMPLE_PUB], deviceModel: { vendorId: 'example.com', classId: 'sensor-v2' } });
    expect(ok.checks.find((c) => c.name === 'model')?.result).toBe('pass');
    const bad = await preflightImage(t.s, img, { trustedKeys: [SAMPLE_PUB], deviceModel: { vendorId: 'example.com', classId: 'gateway' } });
    expect(bad.ok).toBe(false);
    expect(bad.checks.find((c) => c.name === 'model')?.result).toBe('fail');
    await t.s.close();
  });

  it('an image hashed with SHA-512 only is refused (img_mgmt reports SHA-256 image hashes)', async () => {
    const t = await setup();
    const img = await makeImage('1.1.0', 2, 3000, SAMPLE_SEED, { sha: '512' });
    const rep = await preflightImage(t.s, img, { trustedKeys: [SAMPLE_PUB] });
    expect(rep.checks.find((c) => c.name === 'signature')?.result).toBe('pass');
    expect(rep.checks.find((c) => c.name === 'format')).toMatchObject({ result: 'fail', reason: expect.stringMatching(/SHA512 hash only/) });
    expect(rep.ok).toBe(false);
    await t.s.close();
  });

  it('unsigned image: refused by preflight and never booted by the device', async () => {
    const t = await setup();
    const img = await makeImage('1.1.0', 2, 4000, null);
    const r = await collect(t.s, img, baseOpts());
    expect(r.last).toMatchObject({ kind: 'error', recoverable: false, message: expect.stringMatching(/signature|unsigned/) });
    const hash = (await readState(t.s.client)).find((x) => x.active)!.hash;
    await t.model.stage(img);
    await t.device.reboot();
    expect((await readState(t.s.client)).find((x) => x.active)!.hash).toEqual(hash);
    expect(t.model.bootEvents.at(-2)).toMatchObject({ event: 'rejected', message: expect.stringMatching(/unsigned/) });
    await t.s.close();
  });

  it('image signed by an unknown key: refused by preflight and never booted by the device', async () => {
    const t = await setup();
    const other = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const img = await makeImage('1.1.0', 2, 4000, other);
    const r = await collect(t.s, img, baseOpts());
    expect(r.last).toMatchObject({ kind: 'error', recoverable: false });
    expect((r.states[0] as Extract<UpdateState, { kind: 'preflight' }>).report.checks.find((c) => c.name === 'signature')?.result).toBe('fail');
    await t.model.stage(img);
    await t.device.reboot();
    expect(t.model.bootEvents.at(-2)?.event).toBe('rejected');
    expect(t.model.slots[0]!.data).not.toEqual(img);
    await t.s.close();
  });

  it('an image that does not fit the slot: refused by preflight and by the device', async () => {
    const t = await setup({ image: { slotSize: 32 * 1024 } });
    const img = await makeImage('1.1.0', 2, 40000);
    const rep = await preflightImage(t.s, img, { trustedKeys: [SAMPLE_PUB] });
    expect(rep.checks.find((c) => c.name === 'slot')).toMatchObject({ result: 'fail', reason: expect.stringMatching(/does not fit the 32768-byte slot/) });
    // The device refuses the first chunk too (img_mgmt: image too large).
    const e = await t.s.client
      .write(1, 1, { len: img.length, off: 0, sha: sha256(img), data: img.subarray(0, 200) })
      .catch((x) => x);
    expect(e).toMatchObject({ kind: 'group', rc: 30 });
    await t.s.close();
  });
});

describe('the device never boots an image that fails verification', () => {
  async function flipAll(img: Uint8Array, positions: number[], model: ImageModel, device: ReferenceDevice) {
    const good = model.slots[0]!.data;
    let rejected = 0;
    for (const pos of positions) {
      for (const bit of [0, 1, 2, 3, 4, 5, 6, 7]) {
        const bad = img.slice();
        bad[pos] ^= 1 << bit;
        await model.stage(bad, 'permanent');
        await device.reboot();
        expect(model.slots[0]!.data).toBe(good);
        expect(model.active).toBe(0);
        const ev = model.bootEvents.at(-2)!;
        expect(ev.event).toBe('rejected');
        rejected++;
      }
    }
    return rejected;
  }

  it('every single-bit flip of a tiny signed image (whole signed region) is rejected at boot', async () => {
    const device = new ReferenceDevice();
    const model = await configureImageModel(device, { trustedKeys: [SAMPLE_PUB] });
    const img = await makeImage('1.1.0', 2, 16);
    const v = await verifyImage(img, { keys: [SAMPLE_PUB] });
    const signedEnd = v.image!.signedEnd;
    expect(signedEnd).toBe(32 + 16 + 12);
    const n = await flipAll(img, Array.from({ length: signedEnd }, (_, i) => i), model, device);
    expect(n).toBe(signedEnd * 8);
    // And the unflipped image is accepted (the test can fail).
    await model.stage(img, 'permanent');
    await device.reboot();
    expect(model.slots[0]!.data).toEqual(img);
  }, 60000);

  it('sampled bit flips across header, body, protected TLVs and the signature of a larger image are rejected', async () => {
    const device = new ReferenceDevice();
    const model = await configureImageModel(device, { trustedKeys: [SAMPLE_PUB] });
    const img = await makeImage('1.1.0', 2, 8000);
    const v = await verifyImage(img, { keys: [SAMPLE_PUB] });
    const { signedEnd, tlvOffset } = v.image!;
    const rnd = prng(31337);
    const positions = new Set<number>();
    for (let i = 0; i < 32; i++) positions.add(i); // header
    for (let i = tlvOffset; i < signedEnd; i++) positions.add(i); // protected TLVs
    while (positions.size < 300) positions.add(32 + ((rnd() * (tlvOffset - 32)) | 0)); // body
    const sig = v.image!.tlvs.find((t) => t.type === 0x24)!;
    for (let i = 0; i < 8; i++) positions.add(sig.offset + i * 8); // signature (outside the signed region)
    await flipAll(img, [...positions].slice(0, 40), model, device); // every bit of 40 positions
    const good = model.slots[0]!.data;
    for (const pos of [...positions].slice(40)) {
      const bad = img.slice();
      bad[pos] ^= 1 << ((rnd() * 8) | 0);
      await model.stage(bad, 'permanent');
      await device.reboot();
      expect(model.slots[0]!.data).toBe(good);
    }
  }, 60000);

  it('RAM load never boots a newer version that fails verification; it keeps the valid one', async () => {
    const device = new ReferenceDevice();
    const model = await configureImageModel(device, { trustedKeys: [SAMPLE_PUB], bootMode: 'ram-load' });
    const img = await makeImage('9.0.0', 2, 500);
    const bad = img.slice();
    bad[100] ^= 4;
    await model.stage(bad);
    await device.reboot();
    expect(model.active).toBe(0);
    await model.stage(img);
    await device.reboot();
    expect(model.active).toBe(1);
  });
});

void createVirtualDevice;

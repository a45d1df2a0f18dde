/**
 * MCUboot serial recovery end to end against the reference device's model of
 * it (src/device/groups/recovery.ts): reset into the bootloader, info that
 * recognises it and asks only what it serves, an upload that follows the
 * device's 4-byte-aligned offsets, the warning, and the hash check after it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { readState } from '../../src/core/groups/image.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { readDeviceInfo } from '../../src/core/ops/identification/info.ts';
import { resultOf, runOp } from '../../src/core/ops/outcome.ts';
import { type UpdateState, RECOVERY_WARNING, runUpdate } from '../../src/core/ops/update/update.ts';
import { uploadImage } from '../../src/core/ops/update/engine.ts';
import { type RestartOutcome, restartDevice } from '../../src/core/ops/update/restart.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { type Framing } from '../../src/core/smp/framing.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import type { SerialRecoveryOptions } from '../../src/device/groups/recovery.ts';
import { configureImageModel, serialRecoveryOf } from '../../src/device/groups/standard.ts';

const pem = parsePem(readFileSync(path.resolve(__dirname, '../../../shared/vectors/mcuboot/root-ed25519.pem'), 'utf8'));
if (pem.kind !== 'ed25519-private') throw new Error('sample key is not Ed25519');
const SEED = pem.seed;
const PUB = await ed25519PublicKey(SEED);

async function image(version: string, size = 30001) {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return (await signImage(b, { key: SEED, version, headerSize: 32, padHeader: true, securityCounter: 2 })).image;
}

async function setup(rec: SerialRecoveryOptions = {}, framing: Framing = 'console') {
  const device = new ReferenceDevice({ framing, serialRecovery: rec });
  const model = await configureImageModel(device, { trustedKeys: [PUB], bootMode: 'swap-move' });
  const connect = () => {
    const pair = createLinkPair({ baudRate: 9216000, latencyMs: 0 });
    void device.serve(pair.b);
    return openSession(pair.a, { framing, timeoutMs: 600 });
  };
  return { device, model, connect, recovery: serialRecoveryOf(device) };
}

/** Reset the app into recovery over the op, as `fieldbench reset --boot-mode bootloader` does. */
async function intoRecovery(t: Awaited<ReturnType<typeof setup>>) {
  const s = await t.connect();
  const o = (await runOp(restartDevice(s, { target: 'bootloader', reconnect: t.connect, settleMs: 50 }))) as RestartOutcome;
  expect(o).toMatchObject({ kind: 'done', result: { mode: 'serial-recovery' } });
  expect(t.recovery.active).toBe(true);
  return t.connect();
}

describe('serial recovery', () => {
  it('reset --boot-mode bootloader enters recovery; a device without boot mode support is a clear failure', async () => {
    const t = await setup();
    await intoRecovery(t);
    const u = await setup({ bootModeReset: false });
    const o = (await runOp(restartDevice(await u.connect(), { target: 'bootloader', reconnect: u.connect, settleMs: 50 }))) as RestartOutcome;
    expect(o).toMatchObject({ kind: 'failed', code: 'boot-mode-ignored' });
    expect(u.recovery.active).toBe(false);
  });

  it('info says serial-recovery and reads only what recovery serves (no nine OS queries, no groups list)', async () => {
    const t = await setup({ bootloaderInfo: true });
    const s = await intoRecovery(t);
    const before = t.device.stats.requests;
    const info = await resultOf(readDeviceInfo(s));
    expect(info.mode).toBe('serial-recovery');
    expect(info.os).toBeUndefined();
    expect(info.groups).toBeUndefined();
    expect(info.bootloader?.name).toBe('MCUboot');
    expect(info.slots?.[0]).toMatchObject({ slot: 0 });
    expect(info.slots?.[0].active).toBeUndefined();
    // one OS info probe, the image list, bootloader info and its mode query
    expect(t.device.stats.requests - before).toBe(4);
    const app = await resultOf(readDeviceInfo(await (await setup()).connect()));
    expect(app.mode).toBe('application');
    expect(Object.keys(app.os ?? {})).toHaveLength(9);
  });

  it('the upload follows the aligned offsets the device reports: no mismatch, no resume claimed', async () => {
    const t = await setup();
    const s = await intoRecovery(t);
    const img = await image('1.1.0');
    const resumes: number[] = [];
    const r = await uploadImage(s.client, img, { onResume: (f) => resumes.push(f) });
    expect(resumes).toEqual([]);
    expect(r.resumedFrom).toBeUndefined();
    expect(r.partial).toBeGreaterThan(0);
    // learnt from the first reply: a power of two the device's 4-byte words divide (one value may suggest more)
    expect(r.align % 4).toBe(0);
    // learnt after the first partial chunk: later chunks end on a word and are taken whole
    expect(t.recovery.partialWrites).toBe(r.partial);
    expect(r.partial).toBe(1);
    expect(r.resyncs).toBe(0);
    expect(t.model.slots[0]!.data).toEqual(img);
  });

  it('flash through recovery: warning first, primary slot written, hash checked, boots after reset', async () => {
    const t = await setup({ params: true });
    const s = await intoRecovery(t);
    const img = await image('1.2.0');
    const states: UpdateState[] = [];
    const o = await runUpdate(s, img, { trustedKeys: [PUB] }, (x) => states.push(x));
    expect(o).toMatchObject({ kind: 'done' });
    const warn = states.findIndex((x) => x.kind === 'serial-recovery');
    expect(warn).toBeGreaterThan(-1);
    expect(states[warn]).toMatchObject({ note: RECOVERY_WARNING });
    expect(warn).toBeLessThan(states.findIndex((x) => x.kind === 'uploading'));
    expect(states.some((x) => x.kind === 'resumed' || x.kind === 'testing')).toBe(false);
    await t.device.reboot();
    expect(t.recovery.active).toBe(false);
    const st = await readState((await t.connect()).client);
    expect(st.find((x) => x.active)?.version).toBe('1.2.0');
  });

  it('an image the primary slot does not list afterwards is a hash-mismatch failure', async () => {
    const t = await setup({ params: true });
    const s = await intoRecovery(t);
    const img = await image('1.3.0');
    // flash corrupts one byte of the body as it is written
    const orig = t.model.slots;
    const o = await runUpdate(s, img, { trustedKeys: [PUB] }, (x) => {
      if (x.kind === 'verifying') orig[0]!.data[100] ^= 0xff;
    });
    expect(o).toMatchObject({ kind: 'failed', code: 'hash-mismatch', retryable: true });
  });

  it('a recovery that does not report params is measured up to MCUboot\'s 1024-byte buffer', async () => {
    const t = await setup({ params: false });
    const s = await intoRecovery(t);
    expect(s.params.reported).toBe(false);
    const o = await runUpdate(s, await image('1.4.0'), { trustedKeys: [PUB] });
    expect(o.kind).toBe('done');
    expect(s.client.maxPacket).toBe(1020);
  });

  it('an interrupted recovery upload says the rerun starts over, not that it resumes', async () => {
    const t = await setup({ params: true });
    const s = await intoRecovery(t);
    const ac = new AbortController();
    const o = await runUpdate(s, await image('1.5.0'), { trustedKeys: [PUB], signal: ac.signal }, (x) => {
      if (x.kind === 'uploading' && x.sent > 5000) ac.abort();
    });
    expect(o.kind).toBe('cancelled');
    expect((o as { reason: string }).reason).toMatch(/starts over/);
    expect((o as { reason: string }).reason).not.toMatch(/resume/);
  });
});

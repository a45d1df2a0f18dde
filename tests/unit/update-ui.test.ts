/**
 * The update panel's controller runs the update op against the reference
 * device in Node (preflight before anything is sent, upload, test/reset/
 * confirm, resume after an unplug), and the components render the states it
 * keeps (server-side render, no DOM).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import type { UpdateState } from '../../src/core/ops/update/update.ts';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { signImage, signedImageHexSegments } from '../../src/core/trust/mcuboot/sign.ts';
import { writeIhex } from '../../src/core/trust/ihex.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { configureImageModel } from '../../src/device/groups/standard.ts';
import { UpdateController, type UpdateSettings } from '../../src/ui/update/update.svelte.ts';
import { formatEta, stepStatuses } from '../../src/ui/update/format.ts';
import UpdatePanel from '../../src/ui/update/UpdatePanel.svelte';
import SlotsView from '../../src/ui/update/SlotsView.svelte';
import UpdateSteps from '../../src/ui/update/UpdateSteps.svelte';

const vectors = path.resolve(__dirname, '../../../shared/vectors');
const pem = parsePem(readFileSync(path.join(vectors, 'mcuboot/root-ed25519.pem'), 'utf8'));
if (pem.kind !== 'ed25519-private') throw new Error('sample key is not an Ed25519 private key');
const SEED = pem.seed;
const PUB = await ed25519PublicKey(SEED);

function body(size: number, seed: number): Uint8Array {
  let x = seed >>> 0 || 1;
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function image(version: string, counter: number, size = 20000): Promise<Uint8Array> {
  return (await signImage(body(size, size + counter), { key: SEED, version, headerSize: 32, padHeader: true, securityCounter: counter })).image;
}

async function world(link = { baudRate: 921600 * 10, latencyMs: 0 }, writeUsPerByte = 0) {
  const device = new ReferenceDevice({ framing: 'console', bufSize: 384, bufCount: 4 });
  const model = await configureImageModel(device, { trustedKeys: [PUB], writeUsPerByte });
  const pairs: ReturnType<typeof createLinkPair>[] = [];
  const sessions: SmpSession[] = [];
  const connect = async () => {
    const pair = createLinkPair(link);
    pairs.push(pair);
    void device.serve(pair.b);
    const s = await openSession(pair.a, { framing: 'console', timeoutMs: 400 });
    sessions.push(s);
    return s;
  };
  const s = await connect();
  return { device, model, s, pairs, connect, close: () => Promise.all(sessions.map((x) => x.close().catch(() => {}))) };
}

const settings = (extra: Partial<UpdateSettings> = {}): UpdateSettings => ({
  trustedKeys: [PUB],
  options: { resetSettleMs: 60, firstChunkTimeoutMs: 1500 },
  ...extra,
});

describe('UpdateController against the reference device', () => {
  it('preflight first (nothing sent), then upload, test, reset, confirm; slots show the new image', async () => {
    const w = await world();
    const ctl = new UpdateController();
    const img = await image('1.1.0', 2);
    expect(ctl.choose('app-1.1.0.bin', img)).toBe(true);
    expect(ctl.canUpload(w.s)).toBe(false); // not checked yet
    await ctl.ensurePreflight(w.s, settings());
    expect(ctl.report?.ok).toBe(true);
    expect(ctl.report?.checks.find((c) => c.name === 'signature')?.result).toBe('pass');
    expect(w.model.upload).toBeFalsy(); // preflight only reads
    expect(ctl.canUpload(w.s)).toBe(true);
    const seen: UpdateState[] = [];
    let done: unknown;
    const out = await ctl.start(w.s, settings({ onState: (s) => seen.push(s), onDone: (o, info) => (done = { o, name: info.name }) }));
    expect(out).toMatchObject({ kind: 'done', result: { confirmed: true, version: '1.1.0+0' } });
    expect(done).toMatchObject({ o: { kind: 'done' }, name: 'app-1.1.0.bin' });
    expect([...new Set(seen.map((s) => s.kind))]).toEqual(['preflight', 'uploading', 'verifying', 'testing', 'resetting', 'waiting-for-device', 'confirming', 'done']);
    // Progress states collapse into one entry; the last one is complete.
    expect(ctl.states.filter((s) => s.kind === 'uploading')).toHaveLength(1);
    expect(ctl.progress).toMatchObject({ sent: img.length, total: img.length });
    expect(stepStatuses(ctl.states).map((s) => s.status)).toEqual(['done', 'done', 'done', 'done', 'done', 'done', 'done']);
    // slots are read again after the run
    for (let i = 0; i < 50 && ctl.slots?.find((s) => s.active)?.version !== '1.1.0'; i++) await new Promise((r) => setTimeout(r, 20));
    const active = ctl.slots!.find((s) => s.active)!;
    expect(active).toMatchObject({ version: '1.1.0', confirmed: true });
    const html = render(UpdatePanel, { props: { session: w.s, trustedKeys: [PUB], controller: ctl } }).body;
    expect(html).toContain('data-testid="update-result" data-result="done"');
    expect(html).toContain('running 1.1.0, confirmed');
    expect(html).toContain('Pre-flight passed');
    expect(html).not.toContain('Nothing has been sent');
    expect(ctl.canUpload(w.s)).toBe(false); // done: the device runs it now
    expect(html).toMatch(/data-slot="0" data-version="1.1.0"/);
    await w.close();
  });

  it('a bit-flipped image is refused at preflight with the reason; Upload stays disabled and nothing is sent', async () => {
    const w = await world();
    const ctl = new UpdateController();
    const img = (await image('1.1.0', 2)).slice();
    img[100] ^= 0x01;
    ctl.choose('flipped.bin', img);
    await ctl.ensurePreflight(w.s, settings());
    expect(ctl.report?.ok).toBe(false);
    const sig = ctl.report!.checks.find((c) => c.name === 'signature')!;
    expect(sig.result).toBe('fail');
    expect(sig.reason).toMatch(/hash/);
    expect(ctl.canUpload(w.s)).toBe(false);
    const html = render(UpdatePanel, { props: { session: w.s, trustedKeys: [PUB], controller: ctl } }).body;
    expect(html).toContain('data-testid="preflight" data-ok="no"');
    expect(html).toMatch(/data-check="signature" data-result="fail"/);
    expect(html).toContain('This image will not be uploaded.');
    expect(html).toMatch(/<button[^>]*class="primary"[^>]*disabled[^>]*data-testid="update-upload"/);
    // Even forced, the op refuses at its own preflight: the device never sees an upload.
    const out = await ctl.start(w.s, settings());
    expect(out).toMatchObject({ kind: 'failed', retryable: false });
    expect(w.model.upload).toBeFalsy();
    await w.close();
  });

  it('an image signed by an untrusted key, a rollback, and no keys at all are refused with their reasons', async () => {
    const w = await world();
    const ctl = new UpdateController();
    const other = (await signImage(body(5000, 3), { key: new Uint8Array(32).fill(9), version: '1.2.0', headerSize: 32, padHeader: true, securityCounter: 3 })).image;
    ctl.choose('other.bin', other);
    await ctl.ensurePreflight(w.s, settings());
    expect(ctl.report?.ok).toBe(false);
    expect(ctl.report?.reason).toMatch(/signature/);
    ctl.choose('old.bin', await image('0.9.0', 1));
    await ctl.ensurePreflight(w.s, settings());
    expect(ctl.report?.checks.find((c) => c.name === 'version')).toMatchObject({ result: 'fail' });
    ctl.choose('new.bin', await image('1.1.0', 2));
    await ctl.ensurePreflight(w.s, settings({ trustedKeys: [] }));
    expect(ctl.report?.reason).toMatch(/no trusted firmware keys/);
    expect(render(UpdatePanel, { props: { session: w.s, trustedKeys: [], controller: ctl } }).body).toContain('data-testid="no-keys"');
    await w.close();
  });

  it('link lost mid-upload: says so, offers Resume, and Resume continues from the device offset', async () => {
    const w = await world({ baudRate: 921600, latencyMs: 0 }, 2);
    const ctl = new UpdateController();
    const img = await image('1.1.0', 2, 60000);
    ctl.choose('app.bin', img);
    let unplugged = false;
    const out = await ctl.start(
      w.s,
      settings({
        onState: (st) => {
          if (!unplugged && st.kind === 'uploading' && st.sent > img.length * 0.4) {
            unplugged = true;
            w.pairs[0].unplug('USB cable unplugged');
          }
        },
      }),
    );
    expect(out).toMatchObject({ kind: 'failed', retryable: true });
    expect(ctl.linkLost?.sent).toBeGreaterThan(img.length * 0.4);
    // the device may still be writing chunks it had queued when the cable went: wait until it is idle
    let devOffset = w.model.upload?.off ?? 0;
    for (let stable = 0; stable < 5; ) {
      await new Promise((r) => setTimeout(r, 20));
      const now = w.model.upload?.off ?? 0;
      stable = now === devOffset ? stable + 1 : 0;
      devOffset = now;
    }
    expect(devOffset).toBeGreaterThan(img.length * 0.4);
    // Disconnected: the panel says so, Resume waits for the device.
    let html = render(UpdatePanel, { props: { session: null, trustedKeys: [PUB], controller: ctl } }).body;
    expect(html).toContain('data-phase="link-lost"');
    expect(html).toContain('The link to the device was lost during the upload');
    expect(html).toMatch(/<button[^>]*disabled[^>]*data-testid="update-resume"/);
    // Reconnected: Resume is offered.
    const s2 = await w.connect();
    html = render(UpdatePanel, { props: { session: s2, trustedKeys: [PUB], controller: ctl } }).body;
    expect(html).not.toMatch(/<button[^>]*disabled[^>]*data-testid="update-resume"/);
    expect(html).toContain('Press Resume');
    const out2 = await ctl.resume(s2, settings());
    expect(ctl.resumedFrom).toBe(devOffset);
    expect(out2).toMatchObject({ kind: 'done', result: { confirmed: true } });
    expect(ctl.linkLost).toBeNull();
    html = render(UpdatePanel, { props: { session: s2, trustedKeys: [PUB], controller: ctl } }).body;
    expect(html).toContain('data-testid="upload-resumed"');
    await w.close();
  });

  it('with reconnect, Resume reopens the link itself', async () => {
    const w = await world({ baudRate: 921600, latencyMs: 0 }, 2);
    const ctl = new UpdateController();
    const img = await image('1.1.0', 2, 40000);
    ctl.choose('app.bin', img);
    let unplugged = false;
    await ctl.start(w.s, settings({ onState: (st) => { if (!unplugged && st.kind === 'uploading' && st.sent > 10000) { unplugged = true; w.pairs[0].unplug(); } } }));
    expect(ctl.linkLost).not.toBeNull();
    const out = await ctl.resume(null, settings({ reconnect: () => w.connect() }));
    expect(out).toMatchObject({ kind: 'done' });
    expect(ctl.resumedFrom).toBeGreaterThan(10000);
    await w.close();
  });

  it('cancel aborts the upload and says where it stopped', async () => {
    const w = await world({ baudRate: 921600, latencyMs: 0 }, 2);
    const ctl = new UpdateController();
    const img = await image('1.1.0', 2, 60000);
    ctl.choose('app.bin', img);
    const out = await ctl.start(w.s, settings({ onState: (st) => st.kind === 'uploading' && st.sent > 5000 && ctl.cancel() }));
    expect(out?.kind).toBe('cancelled');
    expect(ctl.linkLost).toBeNull();
    expect(render(UpdatePanel, { props: { session: w.s, trustedKeys: [PUB], controller: ctl } }).body).toContain('data-result="cancelled"');
    await w.close();
  });
});

describe('choosing firmware', () => {
  it('reads .hex files as their binary, refuses empty and unreadable files with a reason', async () => {
    const ctl = new UpdateController();
    const img = await image('1.1.0', 2, 3000);
    const hex = writeIhex(signedImageHexSegments(img, 0x10000, { version: '1.1.0', headerSize: 32 }));
    expect(ctl.choose('app.hex', new TextEncoder().encode(hex))).toBe(true);
    expect(ctl.source?.format).toBe('hex');
    expect(ctl.source?.image).toEqual(img);
    expect(ctl.choose('empty.bin', new Uint8Array(0))).toBe(false);
    expect(ctl.sourceError).toMatch(/empty/);
    expect(ctl.choose('broken.hex', new TextEncoder().encode(':zz\n'))).toBe(false);
    expect(ctl.sourceError).toMatch(/could not be read as firmware/);
    const html = render(UpdatePanel, { props: { session: null, trustedKeys: [PUB], controller: ctl, library: [{ name: 'lib-1.2.0.bin', bytes: img, sha256: 'ab'.repeat(32), meta: { version: '1.2.0' } }] } }).body;
    expect(html).toContain('data-testid="fw-error"');
    expect(html).toContain('lib-1.2.0.bin');
    expect(html).toContain('v1.2.0');
  });
});

describe('rendering', () => {
  it('slots: flags the device does not report are shown as not reported', () => {
    const html = render(SlotsView, {
      props: { slots: [{ image: 0, slot: 0, version: '1.0.0', hash: new Uint8Array(32).fill(0xaa), active: true, confirmed: true, pending: false, bootable: true }, { image: 0, slot: 1, version: '1.1.0' }] },
    }).body;
    expect(html).toMatch(/data-slot="0"[\s\S]*data-flag="active" data-value="yes"/);
    expect(html).toMatch(/data-slot="1"[\s\S]*data-flag="pending" data-value="not reported"/);
    expect(html).toContain('aaaaaaaaaaaaaaaa');
  });

  it('steps: testing/resetting/waiting states, a revert, a test-only run', () => {
    const hash = new Uint8Array(32);
    const up: UpdateState = { kind: 'uploading', sent: 10, total: 10, bytesPerSecond: 0, etaMs: 0 };
    const mid: UpdateState[] = [up, { kind: 'verifying' }, { kind: 'testing', note: 'marking the image for a test boot' }, { kind: 'resetting' }, { kind: 'waiting-for-device' }];
    const st = stepStatuses(mid);
    expect(st.find((s) => s.id === 'wait')?.status).toBe('active');
    expect(st.find((s) => s.id === 'reset')?.status).toBe('done');
    const html = render(UpdateSteps, { props: { states: mid } }).body;
    expect(html).toMatch(/data-step="wait" data-status="active"/);
    expect(html).toContain('marking the image for a test boot');
    // The note is shown once: the label already says it (issue 14: no repeats).
    expect(html.split('marking the image for a test boot').length - 1).toBe(1);
    const permanent = stepStatuses([up, { kind: 'verifying' }, { kind: 'testing', note: 'marking the image permanent before reset' }]);
    expect(permanent.find((s) => s.id === 'test')?.note).toBe('marking the image permanent before reset');
    const reverted = stepStatuses([...mid, { kind: 'failed', code: 'not-booted', reason: 'the device did not boot the new image', retryable: false }]);
    expect(reverted.find((s) => s.id === 'wait')?.status).toBe('failed');
    const testOnly = stepStatuses([...mid, { kind: 'done', result: { version: '1', hash, confirmed: false, message: 'x' } }]);
    expect(testOnly.find((s) => s.id === 'confirm')?.status).toBe('skipped');
    // waiting-for-device during the upload is the link coming back, not the reboot
    expect(stepStatuses([up, { kind: 'waiting-for-device' }]).find((s) => s.id === 'upload')?.status).toBe('active');
    expect(formatEta(NaN)).toBe('measuring…');
    expect(formatEta(75_000)).toBe('1 min 15 s');
  });

  it('the reverted outcome and the running phases render with clear words', () => {
    const ctl = new UpdateController();
    ctl.states = [{ kind: 'uploading', sent: 1, total: 1, bytesPerSecond: 0, etaMs: 0 }, { kind: 'verifying' }, { kind: 'testing' }, { kind: 'resetting' }, { kind: 'waiting-for-device' }, { kind: 'failed', code: 'not-booted', reason: 'the device did not boot the new image (its bootloader rejected or reverted it): it runs 1.0.0', retryable: false }];
    ctl.outcome = ctl.states.at(-1) as never;
    const html = render(UpdatePanel, { props: { session: null, trustedKeys: [PUB], controller: ctl } }).body;
    expect(html).toContain('data-phase="reverted"');
    expect(html).toContain('Reverted: the device kept its previous firmware.');
    ctl.outcome = null;
    ctl.running = true;
    ctl.states = ctl.states.slice(0, 3);
    expect(render(UpdatePanel, { props: { session: null, trustedKeys: [PUB], controller: ctl } }).body).toContain('Testing: marking the new image for a test boot');
    ctl.states = [{ kind: 'uploading', sent: 5000, total: 20000, bytesPerSecond: 2500, etaMs: 6000 }];
    ctl.progress = { sent: 5000, total: 20000, bytesPerSecond: 2500, etaMs: 6000 };
    const up = render(UpdatePanel, { props: { session: null, trustedKeys: [PUB], controller: ctl } }).body;
    expect(up).toContain('4.9 KiB of 19.5 KiB');
    expect(up).toContain('2.4 KiB/s');
    expect(up).toContain('6 s left');
    expect(up).toContain('data-testid="update-cancel"');
  });
});

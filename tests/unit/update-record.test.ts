/**
 * The update op's record (src/core/ops/update/record.ts): how a finished run
 * is audited. Runs the real op against the reference device, so each outcome
 * is the one a technician would get.
 *
 * Regression (issue 10): a run whose CONFIRM failed ("...the device reverts
 * ... at its next reboot") was audited as `reverted` because the UI tested
 * /revert/i against the message, while the device still ran the new image,
 * unconfirmed. The record is classified from the outcome's code.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { runUpdate, type UpdateOptions, type UpdateState } from '../../src/core/ops/update/update.ts';
import { plainVersion, recordUpdate, type UpdateOutcome } from '../../src/core/ops/update/record.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { configureImageModel } from '../../src/device/groups/standard.ts';

const vectors = path.resolve(__dirname, '../../../shared/vectors');
const pem = parsePem(readFileSync(path.join(vectors, 'mcuboot/root-ed25519.pem'), 'utf8'));
if (pem.kind !== 'ed25519-private') throw new Error('sample key is not an Ed25519 private key');
const SEED = pem.seed;
const PUB = await ed25519PublicKey(SEED);

async function image(version: string, counter: number, size = 12000) {
  const body = new Uint8Array(size).map((_, i) => (i * 31 + counter) & 0xff);
  return (await signImage(body, { key: SEED, version, headerSize: 32, padHeader: true, securityCounter: counter })).image;
}

async function device() {
  const dev = new ReferenceDevice({ framing: 'console', bufSize: 384, bufCount: 4 });
  const model = await configureImageModel(dev, { trustedKeys: [PUB] });
  const pair = createLinkPair({ baudRate: 921600 * 10, latencyMs: 0 });
  void dev.serve(pair.b);
  const session = await openSession(pair.a, { framing: 'console', timeoutMs: 400 });
  return { dev, model, session };
}

const opts = (extra: Partial<UpdateOptions> = {}): UpdateOptions => ({ trustedKeys: [PUB], resetSettleMs: 60, firstChunkTimeoutMs: 1500, ...extra });
const DEVICE = { serial: 'SN-REC-1' };

describe('update record', () => {
  it('a failed confirm is NOT audited as reverted: the new image runs, unconfirmed (regression)', async () => {
    const t = await device();
    const img = await image('1.1.0', 2);
    const states: UpdateState[] = [];
    const last = await runUpdate(t.session, img, opts(), (s) => {
      states.push(s);
      // The link drops right when the op asks the device to confirm the image it booted.
      if (s.kind === 'confirming') void t.session.close();
    });
    expect(states.map((s) => s.kind)).toContain('confirming');
    // The device runs the new image as a test boot: it reverts only at its next reboot.
    expect(t.model.testBoot).toBe(true);
    expect(t.model.slots[t.model.active]?.data.length).toBe(img.length);
    const plan = recordUpdate(last as UpdateOutcome, { name: 'app-1.1.0.bin', report: null, device: DEVICE, time: 1000 });
    expect(plan.audit.outcome).not.toBe('reverted');
    expect(plan.audit.outcome).toBe('attention');
    expect(plan.audit.details).toMatchObject({ code: 'unconfirmed', running: 'new-unconfirmed' });
  });

  it('a confirmed update is ok; a test-only run is attention; both update the inventory as seen', async () => {
    const t = await device();
    const ok = await runUpdate(t.session, await image('1.1.0', 2), opts());
    const p1 = recordUpdate(ok as UpdateOutcome, { name: 'a.bin', report: null, device: DEVICE, time: 1000 });
    expect(p1.audit.outcome).toBe('ok');
    expect(p1.inventory).toMatchObject({ serial: 'SN-REC-1', seen: 1000 });
    // The inventory says what the device runs now, as people write it (issue 14, defect 4).
    expect(p1.inventory).toMatchObject({ firmware: '1.1.0' });
    const test = await runUpdate(t.session, await image('1.2.0', 3), opts({ confirm: 'test-only' }));
    expect(recordUpdate(test as UpdateOutcome, { name: 'b.bin', report: null, device: DEVICE }).audit.outcome).toBe('attention');
  });

  it('an image the bootloader refuses to boot is audited as reverted', async () => {
    const t = await device();
    // Signed by a key the device's bootloader does not trust, but trusted by the tool: preflight passes, the boot does not.
    const other = new Uint8Array(32).fill(9);
    const img = (await signImage(new Uint8Array(12000).fill(5), { key: other, version: '1.1.0', headerSize: 32, padHeader: true, securityCounter: 2 })).image;
    const last = await runUpdate(t.session, img, opts({ trustedKeys: [PUB, await ed25519PublicKey(other)] }));
    const plan = recordUpdate(last as UpdateOutcome, { name: 'c.bin', report: null, device: DEVICE });
    expect(plan.audit.outcome).toBe('reverted');
    expect(plan.audit.details).toMatchObject({ code: 'not-booted' });
  });

  it('without a device serial the inventory is left alone', async () => {
    const plan = recordUpdate({ kind: 'cancelled', reason: 'cancelled before upload', details: { sent: 10 } } as UpdateOutcome, { name: 'x.bin', report: null });
    expect(plan.audit.outcome).toBe('cancelled');
    expect(plan.inventory).toBeNull();
  });

  it('a run that did not install leaves the inventory firmware alone; plainVersion drops only a +0 build', async () => {
    const plan = recordUpdate({ kind: 'cancelled', reason: 'cancelled before upload', details: { sent: 10 } } as UpdateOutcome, { name: 'x.bin', report: null, device: DEVICE });
    expect(plan.inventory).not.toHaveProperty('firmware');
    expect(plainVersion('1.1.0+0')).toBe('1.1.0');
    expect(plainVersion('1.1.0+7')).toBe('1.1.0+7');
  });
});

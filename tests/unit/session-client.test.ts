/**
 * The tool's half of the secure session: the key exchange checks the device's
 * identity before the technician signs, replies are checked, and a reset of
 * the device (by the tool's op or on its own) is followed by a new key
 * exchange inside the op that caused it, so an update or a configuration
 * continues; the device never takes the old keys (session-wire.test.ts).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SecureChannel, SecurityGroup } from '../../src/core/groups/security.ts';
import { reset } from '../../src/core/groups/os.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { AccessError, authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { runUpdate } from '../../src/core/ops/update/update.ts';
import { SEC_RC } from '../../src/core/protocol/security.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { ed25519PublicKey, ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { PROTECT_OVERHEAD, protect } from '../../src/core/trust/session.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { configureImageModel } from '../../src/device/groups/standard.ts';
import { type Authorities, createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import type { SecurityOptions } from '../../src/device/security.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';

const vectors = path.resolve(__dirname, '../../../shared/vectors');
const pem = parsePem(readFileSync(path.join(vectors, 'mcuboot/root-ed25519.pem'), 'utf8'));
if (pem.kind !== 'ed25519-private') throw new Error('sample key');
const IMG_SEED = pem.seed;
const IMG_PUB = await ed25519PublicKey(IMG_SEED);

let auth: Authorities;
async function setup(security: SecurityOptions = {}, bufSize = 384) {
  auth ??= await makeAuthorities();
  const { device, security: sec } = await createSecureDevice(auth, { bufSize, security });
  const model = await configureImageModel(device, { trustedKeys: [IMG_PUB] });
  const v = createVirtualDevice({ device, model: { baudRate: 921600 * 40 } });
  const s = await openSession(v.link, { timeoutMs: 1500 });
  const g = new SecurityGroup(s.client, sec.groupId);
  const id = await g.identity();
  let signatures = 0;
  const sign = (m: Uint8Array) => {
    signatures++;
    return ed25519Sign(m, auth.technician.privateKey);
  };
  return { device, sec, model, s, g, id, sign, signatures: () => signatures };
}

const channelOf = (s: { client: unknown }) => (s.client as { protector: SecureChannel | null }).protector;

describe('secure session: the tool', () => {
  it('login installs the session: requests go protected and the op sees the device buffer less the overhead', async () => {
    const x = await setup();
    const before = x.s.client.maxPacket;
    await authenticateTechnician(x.g, x.id.devicePublicKey, auth.credential, x.sign);
    expect(x.s.client.protectedSession).toBe(true);
    expect(x.s.client.maxPacket).toBe(before - PROTECT_OVERHEAD);
    await x.g.setInterface('smp_serial', 'authenticated');
    expect((await x.g.interfaces()).smp_serial).toBe('authenticated');
    await x.s.close();
  });

  it('a device that cannot prove its certified key fails the login before the technician signs anything', async () => {
    const x = await setup({ misbehave: { wrongKey: true } });
    const err = await authenticateTechnician(x.g, x.id.devicePublicKey, auth.credential, x.sign).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(AccessError);
    expect((err as AccessError).code).toBe('device-identity');
    expect(x.signatures()).toBe(0);
    expect(x.s.client.protectedSession).toBe(false);
    await x.s.close();
  });

  it('a tampered or injected protected reply is refused by the tool', async () => {
    const x = await setup();
    await authenticateTechnician(x.g, x.id.devicePublicKey, auth.credential, x.sign);
    const ch = channelOf(x.s)!;
    const w = ch.wrap(new Uint8Array(8));
    expect(() => w.open({ s: 1, c: new Uint8Array(40) })).toThrow(SmpError);
    expect(() => w.open({ s: 2, c: protect(new Uint8Array(32), 'd2t', 2, new Uint8Array(8)) })).toThrow(SmpError);
    expect(() => w.open({ s: 'x' })).toThrow(SmpError);
    await x.s.close();
  });

  it('an update through the session (interface authenticated): the op resets the device, the tool re-authenticates by itself and confirms', async () => {
    const x = await setup();
    await authenticateTechnician(x.g, x.id.devicePublicKey, auth.credential, x.sign);
    await x.g.setInterface('smp_serial', 'authenticated');
    const { image } = await signImage(new Uint8Array(12000).map((_, i) => (i * 7) & 0xff), { key: IMG_SEED, version: '1.1.0', headerSize: 32, padHeader: true, securityCounter: 2 });
    const last = await runUpdate(x.s, image, { trustedKeys: [IMG_PUB], resetSettleMs: 60, firstChunkTimeoutMs: 1500 }, () => {});
    expect(last).toMatchObject({ kind: 'done', confirmed: true });
    expect(channelOf(x.s)!.renewals).toBeGreaterThanOrEqual(1);
    expect(x.model.securityCounter).toBe(2);
    expect(x.device.stats.droppedOversize).toBe(0);
    // Nothing was refused for want of a session on the way.
    const refused = (await x.g.allEvents()).filter((e) => e.type === 'access-denied' || e.type === 'protection-failure');
    expect(refused.filter((e) => e.type === 'access-denied')).toEqual([]);
    await x.s.close();
  }, 30000);

  it('an update whose link drops mid-upload (interface authenticated): the reopened link gets a new key exchange and the op completes', async () => {
    auth ??= await makeAuthorities();
    const { device, security } = await createSecureDevice(auth, { bufSize: 384 });
    const model = await configureImageModel(device, { trustedKeys: [IMG_PUB], writeUsPerByte: 2 });
    const first = createVirtualDevice({ device, model: { baudRate: 921600 } });
    const s = await openSession(first.link, { timeoutMs: 1500 });
    const g = new SecurityGroup(s.client, security.groupId);
    const id = await g.identity();
    await authenticateTechnician(g, id.devicePublicKey, auth.credential, (m) => ed25519Sign(m, auth.technician.privateKey));
    await g.setInterface('smp_serial', 'authenticated');
    const { image } = await signImage(new Uint8Array(40000).map((_, i) => (i * 13) & 0xff), { key: IMG_SEED, version: '1.2.0', headerSize: 32, padHeader: true, securityCounter: 3 });
    let unplugged = false;
    let reopened: Awaited<ReturnType<typeof openSession>> | null = null;
    const last = await runUpdate(s, image, {
      trustedKeys: [IMG_PUB], resetSettleMs: 60, firstChunkTimeoutMs: 1500,
      reconnect: async () => (reopened = await openSession(createVirtualDevice({ device, model: { baudRate: 921600 } }).link, { timeoutMs: 1500 })),
    }, (st) => {
      if (!unplugged && st.kind === 'uploading' && st.sent > image.length * 0.3) {
        unplugged = true;
        first.pair.unplug();
      }
    });
    expect(unplugged).toBe(true);
    expect(last).toMatchObject({ kind: 'done', confirmed: true });
    expect(model.securityCounter).toBe(3);
    expect(reopened!.client.protectedSession).toBe(true);
    expect(s.client.protectedSession).toBe(false);
    await reopened!.close();
  }, 30000);

  it('a device that reboots on its own ends the session; the next privileged request runs a new key exchange first', async () => {
    const x = await setup();
    await authenticateTechnician(x.g, x.id.devicePublicKey, auth.credential, x.sign);
    const cfg = (n: number) =>
      issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: n, settings: { interval: 60 }, notAfter: new Date(Date.now() + 3600e3) }, auth.owner.privateKey);
    await x.g.applyConfig(await cfg(1));
    await x.device.reboot();
    const signed = x.signatures();
    await x.g.applyConfig(await cfg(2));
    expect(x.signatures()).toBe(signed + 1);
    expect((await x.g.readConfig()).sequence).toBe(2);
    // The tool's own reset: the channel knows the keys are dead and renews before asking.
    await reset(x.s.client);
    await new Promise((r) => setTimeout(r, 100));
    await x.g.applyConfig(await cfg(3));
    expect(channelOf(x.s)!.renewals).toBe(2);
    await x.s.close();
  }, 20000);

  it('when the new key exchange fails (credential revoked meanwhile), the op gets a clear error, not a plain request', async () => {
    const x = await setup();
    await authenticateTechnician(x.g, x.id.devicePublicKey, auth.credential, x.sign);
    await x.device.reboot();
    let calls = 0;
    // The technician's signer refuses from now on: the renewal cannot happen.
    const ch = channelOf(x.s)!;
    (ch as unknown as { renewKeys: () => Promise<never> }).renewKeys = async () => {
      calls++;
      throw new SmpError('group', 'revoked', SEC_RC.Revoked, x.sec.groupId);
    };
    const err = await x.g.wipe().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(SmpError);
    expect((err as SmpError).message).toMatch(/new key exchange failed/);
    expect(calls).toBe(1);
    await x.s.close();
  }, 20000);
});

/**
 * Provisioning over the wire: the station's half (src/core/factory/provision.ts) against the
 * reference device's half, and the device's half attacked directly through the raw group client.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { groupRc } from '../helpers/group-rc.ts';
import { SEC_RC, SecurityGroup } from '../../src/core/groups/security.ts';
import { ProvisionError, type ProvisionRequest, provisionIdentity } from '../../src/core/factory/provision.ts';
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { issueIdentity } from '../../src/core/trust/identity.ts';
import { issueReprovision } from '../../src/core/trust/reprovision.ts';
import { type Signer, memorySigner } from '../../src/core/trust/signer.ts';
import { identifyDevice } from '../../src/core/ops/identification/identify.ts';
import { runOp } from '../../src/core/ops/outcome.ts';
import { type Authorities, createBlankDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import type { SecurityOptions } from '../../src/device/security.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { makeBundle } from '../helpers/identity-world.ts';

const FAST = { baudRate: 921600 * 20 };
const YEAR = () => new Date(Date.now() + 365 * 86400_000);
let auth: Authorities;
beforeAll(async () => {
  auth = await makeAuthorities();
});

async function blank(security: SecurityOptions = {}) {
  const { device, security: sec } = await createBlankDevice({ manufacturerKeys: [auth.manufacturer.publicKey], ownerKeys: [auth.owner.publicKey] }, { bufSize: 256, security });
  const v = createVirtualDevice({ device, model: FAST });
  const s = await openSession(v.link);
  return { device, sec, v, s, g: new SecurityGroup(s.client, sec.groupId) };
}

async function reconnect(x: Awaited<ReturnType<typeof blank>>): Promise<{ s: SmpSession; g: SecurityGroup }> {
  await x.s.close();
  x.v.pair.unplug();
  const v = createVirtualDevice({ device: x.device, model: FAST });
  const s = await openSession(v.link);
  x.v = v;
  x.s = s;
  x.g = new SecurityGroup(s.client, x.sec.groupId);
  return x;
}

function request(extra: Partial<ProvisionRequest> = {}, calls: string[] = []): ProvisionRequest {
  return {
    signer: memorySigner(auth.manufacturer.privateKey),
    identifiers: () => {
      calls.push('ids');
      return { serial: 'SN-000042', devEui: '70b3d57ed0000042', mac: '02fb00000042' };
    },
    model: 'fieldbench-ref',
    notAfter: YEAR(),
    ...extra,
  };
}

describe('provisioning over the wire', () => {
  it('a factory-fresh device gets its identity: keys made on the device, certificate from the station, verified end to end', async () => {
    const x = await blank();
    const before = await x.g.provisionState();
    expect(before).toMatchObject({ state: 'unprovisioned', model: 'fieldbench-ref', hwRev: 'rev-b' });
    expect(before.devicePublicKey).toBeUndefined();
    let signed = 0;
    const counting: Signer = { kind: 'test', publicKey: auth.manufacturer.publicKey, sign: (m) => (signed++, memorySigner(auth.manufacturer.privateKey).sign(m)) };
    const r = await provisionIdentity(x.g, request({ signer: counting }));
    expect(signed).toBe(1);
    expect(r).toMatchObject({ serial: 'SN-000042', devEui: '70b3d57ed0000042', mac: '02fb00000042', reprovisioned: false });
    expect(r.chipUid).toEqual(before.chipUid);
    const after = await x.g.provisionState();
    expect(after.state).toBe('provisioned');
    expect(after.devicePublicKey).toEqual(r.devicePublicKey);
    // The identify op (what a technician runs in the field) verifies what the station made.
    const { bundle } = await makeBundle(auth, x.device);
    const o = await runOp(identifyDevice(x.s, { bundle }));
    if (o.kind !== 'done') throw new Error(o.kind);
    const id = o.result;
    expect(id.badges).toEqual(['verified']);
    expect(id.presented).toMatchObject({ serial: 'SN-000042' });
    expect(id.certificate?.devEui).toEqual(Uint8Array.from([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 0x42]));
    expect(x.sec.eventLog().map((e) => e.type)).toContain('provisioned');
    await x.s.close();
  });

  it('a provisioned device refuses a second provisioning without an owner authorization, through our tool and on the raw wire', async () => {
    const x = await blank();
    await provisionIdentity(x.g, request());
    const calls: string[] = [];
    await expect(provisionIdentity(x.g, request({}, calls))).rejects.toMatchObject({ code: 'already-provisioned' });
    expect(calls).toEqual([]);
    // An attacker skipping the tool's own check: the device refuses by itself.
    expect(await groupRc(x.g.provisionBegin(new Uint8Array(32)))).toBe(SEC_RC.AlreadyProvisioned);
    expect(x.sec.opts.serial).toBe('SN-000042');
    await x.s.close();
  });

  it('the device refuses a certificate from a manufacturer it does not trust, and stays factory-fresh', async () => {
    const x = await blank();
    const rogue = await generateEd25519();
    // Our tool refuses before it allocates anything...
    const calls: string[] = [];
    await expect(provisionIdentity(x.g, request({ signer: memorySigner(rogue.privateKey) }, calls))).rejects.toMatchObject({ code: 'untrusted-manufacturer' });
    expect(calls).toEqual([]);
    // ...and the device refuses on the raw wire.
    const offer = await x.g.provisionBegin(crypto.getRandomValues(new Uint8Array(32)));
    const cert = await issueIdentity({ serial: 'X-1', model: offer.model, hwRev: offer.hwRev, ueid: offer.chipUid, devicePublicKey: offer.devicePublicKey, deviceEncKey: offer.deviceEncKey, notAfter: YEAR() }, rogue.privateKey);
    expect(await groupRc(x.g.provisionCert(cert))).toBe(SEC_RC.BadSignature);
    expect((await x.g.provisionState()).state).toBe('unprovisioned');
    await x.s.close();
  });

  it('the device refuses a genuine certificate that binds another key, another chip, another model or is expired', async () => {
    const x = await blank();
    const other = await generateEd25519();
    const offer = await x.g.provisionBegin(crypto.getRandomValues(new Uint8Array(32)));
    const base = { serial: 'SN-1', model: offer.model, hwRev: offer.hwRev, ueid: offer.chipUid, devicePublicKey: offer.devicePublicKey, deviceEncKey: offer.deviceEncKey, notAfter: YEAR() };
    const mfr = auth.manufacturer.privateKey;
    expect(await groupRc(x.g.provisionCert(await issueIdentity({ ...base, devicePublicKey: other.publicKey }, mfr)))).toBe(SEC_RC.CertMismatch);
    expect(await groupRc(x.g.provisionCert(await issueIdentity({ ...base, deviceEncKey: other.publicKey }, mfr)))).toBe(SEC_RC.CertMismatch);
    expect(await groupRc(x.g.provisionCert(await issueIdentity({ ...base, ueid: Uint8Array.of(1, ...new Uint8Array(16)) }, mfr)))).toBe(SEC_RC.CertMismatch);
    expect(await groupRc(x.g.provisionCert(await issueIdentity({ ...base, ueid: undefined }, mfr)))).toBe(SEC_RC.CertMismatch);
    expect(await groupRc(x.g.provisionCert(await issueIdentity({ ...base, model: 'other-model' }, mfr)))).toBe(SEC_RC.CertMismatch);
    expect(await groupRc(x.g.provisionCert(await issueIdentity({ ...base, notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) }, mfr)))).toBe(SEC_RC.Expired);
    expect(await groupRc(x.g.provisionCert(new Uint8Array(40)))).toBe(SEC_RC.Malformed);
    expect((await x.g.provisionState()).state).toBe('unprovisioned');
    // The right one still goes in.
    expect((await x.g.provisionCert(await issueIdentity(base, mfr))).serial).toBe('SN-1');
    await x.s.close();
  });

  it('a certificate only completes a provisioning begun on the same connection and boot', async () => {
    const x = await blank();
    const offer = await x.g.provisionBegin(crypto.getRandomValues(new Uint8Array(32)));
    const cert = await issueIdentity({ serial: 'SN-2', model: offer.model, hwRev: offer.hwRev, ueid: offer.chipUid, devicePublicKey: offer.devicePublicKey, deviceEncKey: offer.deviceEncKey, notAfter: YEAR() }, auth.manufacturer.privateKey);
    await reconnect(x);
    expect(await groupRc(x.g.provisionCert(cert))).toBe(SEC_RC.ProvisionOrder);
    const offer2 = await x.g.provisionBegin(crypto.getRandomValues(new Uint8Array(32)));
    await x.device.reboot();
    const cert2 = await issueIdentity({ serial: 'SN-2', model: offer2.model, hwRev: offer2.hwRev, ueid: offer2.chipUid, devicePublicKey: offer2.devicePublicKey, deviceEncKey: offer2.deviceEncKey, notAfter: YEAR() }, auth.manufacturer.privateKey);
    expect(await groupRc(x.g.provisionCert(cert2))).toBe(SEC_RC.ProvisionOrder);
    // An interrupted provisioning is restartable from the start.
    expect((await provisionIdentity(x.g, request())).serial).toBe('SN-000042');
    await x.s.close();
  });

  it('a device whose proof of possession fails gets no identifiers', async () => {
    const x = await blank({ misbehave: { badProvisionProof: true } });
    const calls: string[] = [];
    await expect(provisionIdentity(x.g, request({}, calls))).rejects.toMatchObject({ code: 'bad-proof' });
    expect(calls).toEqual([]);
    await x.s.close();
  });

  it('the wrong model is refused before identifiers are allocated', async () => {
    const x = await blank();
    const calls: string[] = [];
    await expect(provisionIdentity(x.g, request({ model: 'pump-controller' }, calls))).rejects.toBeInstanceOf(ProvisionError);
    expect(calls).toEqual([]);
    await x.s.close();
  });

  it('a factory-fresh device cannot prove, attest or authenticate anyone', async () => {
    const x = await blank();
    expect(await groupRc(x.g.identity())).toBe(SEC_RC.NotProvisioned);
    expect(await groupRc(x.g.prove(new Uint8Array(32)))).toBe(SEC_RC.NotProvisioned);
    expect(await groupRc(x.g.attest(new Uint8Array(32)))).toBe(SEC_RC.NotProvisioned);
    expect(await groupRc(x.g.authenticate(auth.credential, new Uint8Array(64)))).toBe(SEC_RC.NotProvisioned);
    await x.s.close();
  });

  it('re-provisioning with an owner-signed, device-bound authorization: new keys, new identity, used once', async () => {
    const x = await blank();
    const first = await provisionIdentity(x.g, request());
    const authorization = await issueReprovision({ devicePublicKey: first.devicePublicKey, chipUid: first.chipUid, reason: 'board reworked', notAfter: new Date(Date.now() + 3600_000) }, auth.owner.privateKey);
    const second = await provisionIdentity(x.g, request({ authorization, identifiers: () => ({ serial: 'SN-000099' }) }));
    expect(second).toMatchObject({ serial: 'SN-000099', reprovisioned: true });
    expect(second.devicePublicKey).not.toEqual(first.devicePublicKey);
    expect(second.chipUid).toEqual(first.chipUid);
    // The same authorization names a key the device no longer has: the station sees it first, and so does the device.
    await expect(provisionIdentity(x.g, request({ authorization }))).rejects.toMatchObject({ code: 'bad-authorization' });
    expect(await groupRc(x.g.provisionAuthorize(authorization))).toBe(SEC_RC.WrongTarget);
    expect(x.sec.opts.serial).toBe('SN-000099');
    await x.s.close();
  });

  it('re-provisioning authorizations that are for another device, not from the owner, or expired are refused', async () => {
    const x = await blank();
    const first = await provisionIdentity(x.g, request());
    const stranger = await generateEd25519();
    const input = { devicePublicKey: first.devicePublicKey, chipUid: first.chipUid, reason: 'rework', notAfter: new Date(Date.now() + 3600_000) };
    const forOther = await issueReprovision({ ...input, chipUid: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }, auth.owner.privateKey);
    const notOwner = await issueReprovision(input, stranger.privateKey);
    const byManufacturer = await issueReprovision(input, auth.manufacturer.privateKey);
    const expired = await issueReprovision({ ...input, notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }, auth.owner.privateKey);
    expect(await groupRc(x.g.provisionAuthorize(forOther))).toBe(SEC_RC.WrongTarget);
    expect(await groupRc(x.g.provisionAuthorize(notOwner))).toBe(SEC_RC.BadSignature);
    expect(await groupRc(x.g.provisionAuthorize(byManufacturer))).toBe(SEC_RC.BadSignature);
    expect(await groupRc(x.g.provisionAuthorize(expired))).toBe(SEC_RC.Expired);
    expect(await groupRc(x.g.provisionAuthorize(auth.credential))).toBe(SEC_RC.WrongType);
    expect(await groupRc(x.g.provisionBegin(new Uint8Array(32)))).toBe(SEC_RC.AlreadyProvisioned);
    // A valid authorization counts for its own connection only.
    await x.g.provisionAuthorize(await issueReprovision(input, auth.owner.privateKey));
    await reconnect(x);
    expect(await groupRc(x.g.provisionBegin(new Uint8Array(32)))).toBe(SEC_RC.AlreadyProvisioned);
    expect(x.sec.opts.serial).toBe('SN-000042');
    await x.s.close();
  });
});

/**
 * Bundle push (issue 11 item 3): the tool hands the device the held trust
 * bundle inside the session; the device checks it chains from its owner keys
 * and is newer (rc 17 otherwise), then applies its revocations and key
 * rotations itself. Tried on the raw wire of a real `fieldbench device --listen`
 * process, and through the tool's login, which pushes when the device's is older.
 */
import { describe, expect, it } from 'vitest';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { Op } from '../../src/core/smp/header.ts';
import { type TrustBundle, issueBundle, verifyBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { ed25519Sign, generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { type ListeningDevice, connectTcp, startListeningDevice } from '../helpers/listen-device.ts';
import { GROUP, type RawSession, type RawSmp, groupRc, innerPacket, protectedPacket, protectedRequest, rawLogin, replyBody } from '../helpers/raw-session.ts';
import { useListeningDevice } from '../helpers/listen-fixture.ts';

const ld = useListeningDevice();
const conn = ld.conn;

const DAY = 86400_000;

/** A chunked write inside the session. */
async function protectedBlob(c: RawSmp, s: RawSession, cmd: number, blob: Uint8Array): Promise<Record<string, unknown>> {
  let r: Record<string, unknown> = {};
  for (let off = 0; off < blob.length; ) {
    const end = Math.min(blob.length, off + 100);
    r = await protectedRequest(c, s, Op.Write as 2, GROUP, cmd, { ...(off === 0 ? { len: blob.length } : {}), off, data: blob.subarray(off, end) });
    if (groupRc(r) !== undefined) return r;
    off = end;
  }
  return r;
}

const anchorsOf = (a: ListeningDevice['auth'], owner = a.owner.publicKey) => ({ manufacturer: [a.manufacturer.publicKey], firmware: [a.firmware.publicKey], owner: [owner] });


describe('bundle push', () => {
  it('a credential and a technician key revoked in bundle v4 are refused by the DEVICE after the push (raw wire); stale bundles get rc 17', async () => {
    const a = ld.dev.auth;
    // A second technician (own key, own credential) and a third one whose KEY gets revoked.
    const [t2, t3] = await Promise.all([generateEd25519(), generateEd25519()]);
    const c2id = crypto.getRandomValues(new Uint8Array(16));
    const cred2 = await issueCredential({ technicianId: 'tech-002', name: 'Two', publicKey: t2.publicKey, permissions: ['configure', 'identify'], models: ['fieldbench-ref'], credentialId: c2id, notAfter: new Date(Date.now() + DAY) }, a.owner.privateKey);
    const cred3 = await issueCredential({ technicianId: 'tech-003', name: 'Three', publicKey: t3.publicKey, permissions: ['configure'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, a.owner.privateKey);
    // Before: the device (only its provisioned owner key) takes both.
    const x2 = await conn();
    const s2 = await rawLogin(x2, ld.devicePub, cred2, t2.privateKey);
    expect(groupRc(s2.reply)).toBeUndefined();
    const x3 = await conn();
    expect(groupRc((await rawLogin(x3, ld.devicePub, cred3, t3.privateKey)).reply)).toBeUndefined();
    // The identity read reports the held bundle version (0: provisioning only).
    const tech = await conn();
    expect((await tech.request(Op.Read as 0, GROUP, SEC.Identity)).bundle_ver).toBe(0);
    const s = await rawLogin(tech, ld.devicePub, a.credential, a.technician.privateKey);
    expect(groupRc(s.reply)).toBeUndefined();
    const v4 = await issueBundle({ version: 4, expires: new Date(Date.now() + DAY), anchors: anchorsOf(a), revocations: { credentialIds: [c2id], keyIds: [keyId(t3.publicKey)] } }, a.owner.privateKey);
    // Outside the session: refused.
    const plain = await tech.request(Op.Write as 2, GROUP, SEC.BundlePush, { len: v4.length, off: 0, data: v4.subarray(0, 100) });
    expect(groupRc(plain)).toBe(SEC_RC.SessionRequired);
    const pushed = await protectedBlob(tech, s, SEC.BundlePush, v4);
    expect(pushed).toMatchObject({ version: 4, ended: false });
    expect((await protectedRequest(tech, s, Op.Read as 0, GROUP, SEC.Identity)).bundle_ver).toBe(4);
    // The revoked technician's open session ended with the push.
    expect(groupRc(replyBody(await x2.exchange(protectedPacket(x2, s2.keys, 1, innerPacket(Op.Read as 0, GROUP, SEC.Interfaces)))))).toBe(SEC_RC.Protection);
    // A new login with the revoked credential, or with the revoked key, is refused by the device.
    expect(groupRc((await rawLogin(await conn(), ld.devicePub, cred2, t2.privateKey)).reply)).toBe(SEC_RC.Revoked);
    expect(groupRc((await rawLogin(await conn(), ld.devicePub, cred3, t3.privateKey)).reply)).toBe(SEC_RC.Revoked);
    // The same bundle again, an older one, one signed by a stranger: rc 17, the device keeps v4.
    expect(groupRc(await protectedBlob(tech, s, SEC.BundlePush, v4))).toBe(SEC_RC.StaleBundle);
    const v3 = await issueBundle({ version: 3, expires: new Date(Date.now() + DAY), anchors: anchorsOf(a) }, a.owner.privateKey);
    expect(groupRc(await protectedBlob(tech, s, SEC.BundlePush, v3))).toBe(SEC_RC.StaleBundle);
    const stranger = await generateEd25519();
    const forged = await issueBundle({ version: 9, expires: new Date(Date.now() + DAY), anchors: anchorsOf(a, stranger.publicKey) }, stranger.privateKey);
    expect(groupRc(await protectedBlob(tech, s, SEC.BundlePush, forged))).toBe(SEC_RC.StaleBundle);
    expect((await protectedRequest(tech, s, Op.Read as 0, GROUP, SEC.Identity)).bundle_ver).toBe(4);
  }, 40000);

  it('an owner key rotated out by a pushed bundle no longer signs configurations on the device', async () => {
    const a = ld.dev.auth;
    const next = await generateEd25519();
    const tech = await conn();
    const s = await rawLogin(tech, ld.devicePub, a.credential, a.technician.privateKey);
    expect(groupRc(s.reply)).toBeUndefined();
    // v6, signed by the current owner key, hands the owner role to the next key.
    const v6 = await issueBundle({ version: 6, expires: new Date(Date.now() + DAY), anchors: anchorsOf(a, next.publicKey) }, a.owner.privateKey);
    expect(await protectedBlob(tech, s, SEC.BundlePush, v6)).toMatchObject({ version: 6 });
    const cfg = (n: number, seed: Uint8Array) =>
      issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: n, settings: { interval: 60 }, notAfter: new Date(Date.now() + DAY) }, seed);
    expect(groupRc(await protectedBlob(tech, s, SEC.ConfigApply, await cfg(40, a.owner.privateKey)))).toBe(SEC_RC.BadSignature);
    expect(await protectedBlob(tech, s, SEC.ConfigApply, await cfg(41, next.privateKey))).toMatchObject({ seq: 41 });
  }, 40000);
});

describe('bundle push by the tool', () => {
  it('login pushes the held bundle when the device reports an older one, and not again', async () => {
    const d = await startListeningDevice();
    try {
      const a = d.auth;
      const v2 = await issueBundle({ version: 2, expires: new Date(Date.now() + DAY), anchors: anchorsOf(a) }, a.owner.privateKey);
      const held = await verifyBundle(v2, { ownerKeys: [a.owner.publicKey] });
      if (!held.ok) throw new Error(held.reason);
      const b: TrustBundle = held.value;
      const s = await connectTcp(d.addr);
      const g = new SecurityGroup(s.client);
      const id = await g.identity();
      const sign = (m: Uint8Array) => ed25519Sign(m, a.technician.privateKey);
      const first = await authenticateTechnician(g, id.devicePublicKey, a.credential, sign, { bundle: b, bundleBytes: v2, permission: 'configure', device: id });
      expect(first.bundlePushed).toBe(2);
      expect(await g.bundleVersion()).toBe(2);
      const second = await authenticateTechnician(g, id.devicePublicKey, a.credential, sign, { bundle: b, bundleBytes: v2, permission: 'configure', device: id });
      expect(second.bundlePushed).toBeUndefined();
      await s.close();
    } finally {
      d.stop();
    }
  }, 40000);
});

/**
 * Red team: factory provisioning over the wire, attacked through raw SMP
 * packets (tests/helpers/raw-session.ts) on in-memory links to one reference
 * device, as several jigs or a hostile second port would have it. Nothing of the
 * honest station (src/core/factory/provision.ts) is used to make the attacks.
 * docs/SECURITY.md's threat table names these tests.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { SEC, SEC_RC, provisionPopMessage } from '../../src/core/protocol/security.ts';
import { OS } from '../../src/core/protocol/os.ts';
import { Group, Op } from '../../src/core/smp/header.ts';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { ed25519Verify, generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { issueIdentity, verifyIdentity } from '../../src/core/trust/identity.ts';
import { issueReprovision } from '../../src/core/trust/reprovision.ts';
import { ed25519Key } from '../../src/core/trust/artifact.ts';
import { type Authorities, createBlankDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import type { DeviceSecurity } from '../../src/device/security.ts';
import { rawConnect } from '../helpers/raw-world.ts';
import { GROUP, type RawSmp, groupRc, protectedRequest, rawLogin, rawSmpOverLink, writeChunked, type Body } from '../helpers/raw-session.ts';

/**
 * The device's certificate check, with a gate a test can close: a slow
 * verification (a microcontroller takes tens of milliseconds) held open so that
 * another connection's request runs meanwhile, deterministically.
 */
const gate = vi.hoisted(() => ({ closed: false, entered: null as null | (() => void), release: null as null | (() => void) }));
vi.mock('../../src/core/trust/identity.ts', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../src/core/trust/identity.ts')>();
  return {
    ...orig,
    verifyIdentity: async (...args: Parameters<typeof orig.verifyIdentity>) => {
      if (gate.closed) {
        gate.closed = false;
        await new Promise<void>((res) => {
          gate.release = res;
          gate.entered?.();
        });
      }
      return orig.verifyIdentity(...args);
    },
  };
});

/** Hold the next certificate verification until release(); resolves `entered` once it is held. */
function holdNextVerification(): { entered: Promise<void>; release: () => void } {
  gate.closed = true;
  const entered = new Promise<void>((res) => (gate.entered = res));
  return { entered, release: () => gate.release?.() };
}

const YEAR = () => new Date(Date.now() + 365 * 86400_000);
let auth: Authorities;
beforeAll(async () => {
  auth = await makeAuthorities();
});

interface World {
  device: ReferenceDevice;
  sec: DeviceSecurity;
  /** A new raw connection (its own link) to the same device. */
  conn(): RawSmp;
}

async function blank(): Promise<World> {
  const { device, security } = await createBlankDevice({ manufacturerKeys: [auth.manufacturer.publicKey], ownerKeys: [auth.owner.publicKey] }, { bufSize: 512 });
  return {
    device,
    sec: security,
    conn: () => rawConnect(device),
  };
}

interface Offer {
  pub: Uint8Array;
  enc_pub: Uint8Array;
  uid: Uint8Array;
  model: string;
  hw_rev: string;
  sig: Uint8Array;
}

const nonce = () => crypto.getRandomValues(new Uint8Array(32));
const begin = async (c: RawSmp, n = nonce()) => (await c.request(Op.Write as 2, GROUP, SEC.ProvisionBegin, { nonce: n })) as unknown as Offer & Body;
const sendCert = (c: RawSmp, cert: Uint8Array) => writeChunked(c, SEC.ProvisionCert, cert);
const sendAuthorization = (c: RawSmp, a: Uint8Array) => writeChunked(c, SEC.ProvisionAuthorize, a);
const state = async (c: RawSmp) => (await c.request(Op.Read as 0, GROUP, SEC.ProvisionState)) as Body;

function certFor(o: Offer, extra: Record<string, unknown> = {}, key: Uint8Array = auth.manufacturer.privateKey): Promise<Uint8Array> {
  return issueIdentity(
    { serial: 'SN-RT-1', model: o.model, hwRev: o.hw_rev, ueid: o.uid, devicePublicKey: o.pub, deviceEncKey: o.enc_pub, notAfter: YEAR(), ...extra },
    key,
  );
}

/** The stored certificate binds the key the secure element signs with (the invariant provisioning must keep). */
async function certBindsDeviceKey(w: World): Promise<boolean> {
  const v = await verifyIdentity(w.sec.identityCert!, {
    bundle: { version: 0, issued: 0, expires: Number.MAX_SAFE_INTEGER, anchors: { manufacturer: [ed25519Key(auth.manufacturer.publicKey)], firmware: [], owner: [] }, revocations: { keyIds: [], certSerials: [], credentialIds: [] }, firmware: [], configurations: [], issuer: new Uint8Array(8), stale: false },
  });
  if (!v.ok) return false;
  // Ask the device for a proof of possession: it must verify under the certified key.
  const c = w.conn();
  const n = nonce();
  const r = await c.request(Op.Write as 2, GROUP, SEC.Prove, { nonce: n });
  c.close();
  const msg = new Uint8Array([...new TextEncoder().encode('fieldbench-pop-v1\0'), ...n]);
  return r.sig instanceof Uint8Array && (await ed25519Verify(r.sig, msg, v.value.devicePublicKey));
}

async function provisioned(w: World, serial = 'SN-RT-1'): Promise<Offer> {
  const c = w.conn();
  const o = await begin(c);
  expect(groupRc(o)).toBeUndefined();
  const r = await sendCert(c, await certFor(o, { serial }));
  expect(r).toEqual({ serial });
  c.close();
  return o;
}

describe('red team: provisioning on the raw wire', () => {
  it('the proof of possession covers the station nonce, the keys and the chip: it verifies only over exactly those', async () => {
    const w = await blank();
    const c = w.conn();
    const n = nonce();
    const o = await begin(c, n);
    const msg = provisionPopMessage({ nonce: n, devicePublicKey: o.pub, deviceEncKey: o.enc_pub, chipUid: o.uid, model: o.model, hwRev: o.hw_rev });
    expect(await ed25519Verify(o.sig, msg, o.pub)).toBe(true);
    const other = provisionPopMessage({ nonce: nonce(), devicePublicKey: o.pub, deviceEncKey: o.enc_pub, chipUid: o.uid, model: o.model, hwRev: o.hw_rev });
    expect(await ed25519Verify(o.sig, other, o.pub)).toBe(false);
    // Nonce reuse gets new keys each time (a replayed station nonce cannot fetch an old offer).
    const again = await begin(c, n);
    expect(again.pub).not.toEqual(o.pub);
    c.close();
  });

  it('nonce missing, too short, too long or not bytes: rc 13 before any key is made', async () => {
    const w = await blank();
    const c = w.conn();
    for (const n of [undefined, new Uint8Array(7), new Uint8Array(65), 'aaaaaaaaaaaaaaaa', 12345678]) {
      const r = await c.request(Op.Write as 2, GROUP, SEC.ProvisionBegin, n === undefined ? {} : { nonce: n });
      expect(groupRc(r)).toBe(SEC_RC.Nonce);
    }
    expect(w.sec.eventLog().some((e) => e.type === 'provision-begin')).toBe(false);
    c.close();
  });

  it('a certificate for another device\'s key, chip UID, X25519 key, model or revision: rc 21, the device stays blank', async () => {
    const w = await blank();
    const other = await blank();
    const c = w.conn();
    const o = await begin(c);
    const oc = other.conn();
    const theirs = await begin(oc);
    for (const extra of [
      { devicePublicKey: theirs.pub },
      { deviceEncKey: theirs.enc_pub },
      { ueid: theirs.uid },
      { ueid: undefined },
      { model: 'pump-controller' },
      { hwRev: 'rev-z' },
    ]) {
      expect(groupRc(await sendCert(c, await certFor(o, extra)))).toBe(SEC_RC.CertMismatch);
    }
    // The other device's whole genuine certificate.
    expect(groupRc(await sendCert(c, await certFor(theirs)))).toBe(SEC_RC.CertMismatch);
    expect((await state(c)).state).toBe('unprovisioned');
    // After all of that, the right certificate still completes this provisioning.
    expect(await sendCert(c, await certFor(o))).toEqual({ serial: 'SN-RT-1' });
    c.close();
    oc.close();
  });

  it('a certificate signed by the owner, a technician or a stranger (not a manufacturer key the device trusts): rc 3', async () => {
    const w = await blank();
    const c = w.conn();
    const o = await begin(c);
    const stranger = await generateEd25519();
    for (const key of [auth.owner.privateKey, auth.technician.privateKey, auth.firmware.privateKey, stranger.privateKey]) {
      expect(groupRc(await sendCert(c, await certFor(o, {}, key)))).toBe(SEC_RC.BadSignature);
    }
    // A credential or an authorization in place of a certificate: wrong type.
    expect(groupRc(await sendCert(c, auth.credential))).toBe(SEC_RC.WrongType);
    expect((await state(c)).state).toBe('unprovisioned');
    c.close();
  });

  it('an expired or not yet valid certificate: rc 6', async () => {
    const w = await blank();
    const c = w.conn();
    const o = await begin(c);
    const past = await certFor(o, { notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    const future = await certFor(o, { notBefore: new Date(Date.now() + 86400_000), notAfter: YEAR() });
    expect(groupRc(await sendCert(c, past))).toBe(SEC_RC.Expired);
    expect(groupRc(await sendCert(c, future))).toBe(SEC_RC.Expired);
    expect((await state(c)).state).toBe('unprovisioned');
    c.close();
  });

  it('oversize and malformed transfers: a declared length over 16 KiB, zero, negative, a chunk past the declared length, out of order: refused, nothing buffered past the limit', async () => {
    const w = await blank();
    const c = w.conn();
    await begin(c);
    const chunk = (b: Body) => c.request(Op.Write as 2, GROUP, SEC.ProvisionCert, b);
    expect(groupRc(await chunk({ len: 16385, off: 0, data: new Uint8Array(8) }))).toBe(SEC_RC.Malformed);
    expect(groupRc(await chunk({ len: 0, off: 0, data: new Uint8Array(0) }))).toBe(SEC_RC.Malformed);
    expect(groupRc(await chunk({ len: -5, off: 0, data: new Uint8Array(8) }))).toBe(SEC_RC.Malformed);
    expect(groupRc(await chunk({ len: 8, off: 0, data: new Uint8Array(9) }))).toBe(SEC_RC.Malformed);
    expect(groupRc(await chunk({ off: 0, data: new Uint8Array(8) }))).toBe(SEC_RC.Malformed);
    expect(groupRc(await chunk({ len: 32, off: 4, data: new Uint8Array(8) }))).toBe(SEC_RC.Offset);
    // A started transfer: a chunk at the wrong offset, a chunk that runs past the end.
    expect(await chunk({ len: 32, off: 0, data: new Uint8Array(16) })).toEqual({ off: 16 });
    expect(groupRc(await chunk({ off: 20, data: new Uint8Array(4) }))).toBe(SEC_RC.Offset);
    expect(groupRc(await chunk({ off: 16, data: new Uint8Array(17) }))).toBe(SEC_RC.Malformed);
    // 32 bytes of zeros are not a certificate.
    expect(groupRc(await chunk({ off: 16, data: new Uint8Array(16) }))).toBe(SEC_RC.Malformed);
    expect((await state(c)).state).toBe('unprovisioned');
    c.close();
  });

  it('provisioning twice: a provisioned device refuses begin and certificate, on the same and on a new connection', async () => {
    const w = await blank();
    const first = await provisioned(w);
    const c = w.conn();
    expect(groupRc(await begin(c))).toBe(SEC_RC.AlreadyProvisioned);
    // The certificate of the first provisioning, sent again: no provisioning under way on this connection.
    expect(groupRc(await sendCert(c, await certFor(first, { serial: 'SN-EVIL' })))).toBe(SEC_RC.ProvisionOrder);
    expect(w.sec.opts.serial).toBe('SN-RT-1');
    c.close();
  });

  it('racing two connections: a begin on a second port while the first port\'s certificate is being checked never leaves a certificate for keys the device does not hold', async () => {
    const w = await blank();
    const a = w.conn();
    const b = w.conn();
    const offerA = await begin(a);
    const certA = await certFor(offerA, { serial: 'SN-A' });
    const held = holdNextVerification();
    const replyA = sendCert(a, certA);
    await held.entered;
    // Meanwhile the second port begins: a new candidate key pair in the secure element.
    const offerB = await begin(b);
    expect(groupRc(offerB)).toBeUndefined();
    held.release();
    const r = await replyA;
    if (w.sec.provisioned) {
      // Whatever was decided, a stored certificate binds the key the device signs with.
      expect(await certBindsDeviceKey(w)).toBe(true);
    } else {
      expect(groupRc(r)).toBe(SEC_RC.ProvisionOrder);
    }
    expect(groupRc(r)).toBe(SEC_RC.ProvisionOrder);
    expect(w.sec.provisioned).toBe(false);
    // The second port's provisioning, begun last, completes with its own certificate.
    expect(await sendCert(b, await certFor(offerB, { serial: 'SN-B' }))).toEqual({ serial: 'SN-B' });
    expect(await certBindsDeviceKey(w)).toBe(true);
    a.close();
    b.close();
  });

  it('a certificate for the second port\'s keys, sent on the first port: refused, the keys belong to the port that began', async () => {
    const w = await blank();
    const a = w.conn();
    const b = w.conn();
    await begin(a);
    const offerB = await begin(b);
    expect(groupRc(await sendCert(a, await certFor(offerB, { serial: 'SN-B-ON-A' })))).toBe(SEC_RC.ProvisionOrder);
    expect(w.sec.provisioned).toBe(false);
    expect(await sendCert(b, await certFor(offerB, { serial: 'SN-B' }))).toEqual({ serial: 'SN-B' });
    a.close();
    b.close();
  });

  it('a reset while the certificate is being checked: the interrupted check stores nothing, even when another port begins after the reboot', async () => {
    const w = await blank();
    const a = w.conn();
    const offerA = await begin(a);
    const held = holdNextVerification();
    const replyA = sendCert(a, await certFor(offerA));
    await held.entered;
    await w.device.reboot();
    const b = w.conn();
    const offerB = await begin(b);
    held.release();
    await replyA.catch(() => undefined);
    expect(w.sec.provisioned).toBe(false);
    expect(await sendCert(b, await certFor(offerB, { serial: 'SN-B' }))).toEqual({ serial: 'SN-B' });
    expect(await certBindsDeviceKey(w)).toBe(true);
    a.close();
    b.close();
  });

  it('a reset between begin and certificate (an os reset on the wire) drops the candidate keys: the old offer\'s certificate is refused', async () => {
    const w = await blank();
    const c = w.conn();
    const o = await begin(c);
    await c.request(Op.Write as 2, Group.OS, OS.Reset, {});
    await new Promise((r) => setTimeout(r, 60));
    await c.sync();
    expect(groupRc(await sendCert(c, await certFor(o)))).toBe(SEC_RC.ProvisionOrder);
    expect(w.sec.provisioned).toBe(false);
    c.close();
  });

  it('re-provisioning authorizations: for another device, replayed after use, replayed on a second port, and one captured from another port after that port re-provisioned', async () => {
    const w = await blank();
    const first = await provisioned(w);
    const other = await blank();
    const otherOffer = await provisioned(other);
    const a = w.conn();
    // Bound to the other device.
    const forOther = await issueReprovision({ devicePublicKey: otherOffer.pub, chipUid: otherOffer.uid, reason: 'rework', notAfter: new Date(Date.now() + 3600_000) }, auth.owner.privateKey);
    expect(groupRc(await sendAuthorization(a, forOther))).toBe(SEC_RC.WrongTarget);
    // A good one, presented on two ports (it travels in clear: anyone on the line can copy it).
    const good = await issueReprovision({ devicePublicKey: first.pub, chipUid: first.uid, reason: 'rework', notAfter: new Date(Date.now() + 3600_000) }, auth.owner.privateKey);
    const b = w.conn();
    expect(groupRc(await sendAuthorization(a, good))).toBeUndefined();
    expect(groupRc(await sendAuthorization(b, good))).toBeUndefined();
    // Port a re-provisions.
    const oa = await begin(a);
    expect(await sendCert(a, await certFor(oa, { serial: 'SN-NEW' }))).toEqual({ serial: 'SN-NEW' });
    // Port b's copy named the old key: it no longer opens the device.
    expect(groupRc(await begin(b))).toBe(SEC_RC.AlreadyProvisioned);
    // Replayed on any port after use.
    expect(groupRc(await sendAuthorization(a, good))).toBe(SEC_RC.WrongTarget);
    const c = w.conn();
    expect(groupRc(await sendAuthorization(c, good))).toBe(SEC_RC.WrongTarget);
    expect(groupRc(await begin(c))).toBe(SEC_RC.AlreadyProvisioned);
    expect(w.sec.opts.serial).toBe('SN-NEW');
    a.close();
    b.close();
    c.close();
  });

  it('a re-provisioning authorization does not survive a reboot, and does not reach another port', async () => {
    const w = await blank();
    const first = await provisioned(w);
    const good = await issueReprovision({ devicePublicKey: first.pub, chipUid: first.uid, reason: 'rework', notAfter: new Date(Date.now() + 3600_000) }, auth.owner.privateKey);
    const a = w.conn();
    expect(groupRc(await sendAuthorization(a, good))).toBeUndefined();
    const b = w.conn();
    expect(groupRc(await begin(b))).toBe(SEC_RC.AlreadyProvisioned);
    await w.device.reboot();
    expect(groupRc(await begin(a))).toBe(SEC_RC.AlreadyProvisioned);
    a.close();
    b.close();
  });

  it('sessions opened against the old identity end when the device is re-provisioned', async () => {
    const w = await blank();
    const first = await provisioned(w);
    const tech = w.conn();
    const s = await rawLogin(tech, first.pub, auth.credential, auth.technician.privateKey);
    expect(groupRc(s.reply)).toBeUndefined();
    expect(groupRc(await protectedRequest(tech, s, Op.Read as 0, GROUP, SEC.Interfaces))).toBeUndefined();
    const station = w.conn();
    const good = await issueReprovision({ devicePublicKey: first.pub, chipUid: first.uid, reason: 'new owner', notAfter: new Date(Date.now() + 3600_000) }, auth.owner.privateKey);
    expect(groupRc(await sendAuthorization(station, good))).toBeUndefined();
    const o = await begin(station);
    expect(await sendCert(station, await certFor(o, { serial: 'SN-NEW' }))).toEqual({ serial: 'SN-NEW' });
    // The technician's session was made with the old identity key: it is gone.
    const r = await protectedRequest(tech, s, Op.Write as 2, GROUP, SEC.Wipe, { confirm: true });
    expect(groupRc(r)).toBe(SEC_RC.Protection);
    tech.close();
    station.close();
  });
});

describe('red team: a hostile unit on the station\'s jig', () => {
  it('a unit offering a low-order X25519 key (secrets sealed to it would open for anyone) gets no certificate and no identifiers', async () => {
    const { ReferenceDevice } = await import('../../src/device/device.ts');
    const { ed25519PublicKey } = await import('../../src/core/trust/ed25519.ts');
    const { ed25519Sign } = await import('../../src/core/trust/ed25519.ts');
    const { keyId } = await import('../../src/core/trust/keys.ts');
    const { openSession } = await import('../../src/core/groups/session.ts');
    const { SecurityGroup } = await import('../../src/core/groups/security.ts');
    const { ProvisionError, provisionIdentity } = await import('../../src/core/factory/provision.ts');
    const { memorySigner } = await import('../../src/core/trust/signer.ts');
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const pub = await ed25519PublicKey(seed);
    const uid = Uint8Array.of(0x01, ...crypto.getRandomValues(new Uint8Array(16)));
    const device = new ReferenceDevice({ image: false, bufSize: 512 });
    let certificates = 0;
    for (const encPub of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31)), Uint8Array.of(0xec, ...new Uint8Array(30).fill(0xff), 0x7f)]) {
      device.registerGroup({
        id: GROUP,
        name: 'fieldbench_sec',
        read: { [SEC.ProvisionState]: () => ({ state: 'unprovisioned', uid, model: 'fieldbench-ref', hw_rev: 'rev-b', mfr: [keyId(auth.manufacturer.publicKey)] }) },
        write: {
          [SEC.ProvisionBegin]: async (b: Body) => ({
            pub, enc_pub: encPub, uid, model: 'fieldbench-ref', hw_rev: 'rev-b',
            sig: await ed25519Sign(provisionPopMessage({ nonce: b.nonce as Uint8Array, devicePublicKey: pub, deviceEncKey: encPub, chipUid: uid, model: 'fieldbench-ref', hwRev: 'rev-b' }), seed),
          }),
          [SEC.ProvisionCert]: () => {
            certificates++;
            return { serial: 'SN-EVIL' };
          },
        },
      });
      const pair = createLinkPair({}, ['station', 'hostile unit']);
      void device.serve(pair.b);
      const s = await openSession(pair.a);
      const calls: string[] = [];
      const e = await provisionIdentity(new SecurityGroup(s.client, GROUP), {
        signer: memorySigner(auth.manufacturer.privateKey),
        identifiers: () => {
          calls.push('ids');
          return { serial: 'SN-EVIL' };
        },
        model: 'fieldbench-ref',
        notAfter: YEAR(),
      }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ProvisionError);
      expect((e as InstanceType<typeof ProvisionError>).code).toBe('bad-proof');
      expect(calls).toEqual([]);
      await s.close();
      pair.unplug();
    }
    expect(certificates).toBe(0);
  });
});

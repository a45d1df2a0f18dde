/**
 * Red team: rotation (security command 17), interfaces and wipe, attacked
 * through hand-built SMP packets and a key exchange done by hand
 * (tests/helpers/raw-session.ts) on in-memory links to one reference device.
 * docs/SECURITY.md's threat table names these tests.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { SEC, SEC_RC, rotationKeyId } from '../../src/core/protocol/security.ts';
import { IMG } from '../../src/core/protocol/image.ts';
import { OS } from '../../src/core/protocol/os.ts';
import { MGMT_RC } from '../../src/core/protocol/mgmt.ts';
import { Group, Op } from '../../src/core/smp/header.ts';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { type Authorities, makeAuthorities } from '../../src/device/provisioning.ts';
import type { SecurityOptions } from '../../src/device/security.ts';
import { type RawWorld, rawConnect, rawWorld } from '../helpers/raw-world.ts';
import { GROUP, type RawSession, type RawSmp, type Body, groupRc, innerPacket, openReply, protectedPacket, protectedRequest, rawLogin, replyBody, protectedChunked } from '../helpers/raw-session.ts';

const DAY = 86400_000;
let auth: Authorities;
beforeAll(async () => {
  auth = await makeAuthorities();
});

/** A provisioned device with a DevEUI, served over raw connections (tests/helpers/raw-world.ts). */
function secure(security: SecurityOptions = {}): Promise<RawWorld> {
  return rawWorld(auth, { image: {}, security: { devEui: Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1), ...security } });
}

const rotate = (c: RawSmp, s: RawSession, body: Body) => protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Rotate, body);
const nonce = () => crypto.getRandomValues(new Uint8Array(16));
const EUI = Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 0x42);

describe('red team: rotation on the raw wire', () => {
  it('a captured rotate request replayed on its connection, after a new login, after a reboot and on another connection: never applied again', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    const p = protectedPacket(c, s.keys, 1, innerPacket(Op.Write as 2, GROUP, SEC.Rotate, { what: 'dev-eui', value: EUI, nonce: nonce() }));
    s.seq = 1;
    const first = openReply(s.keys, 1, replyBody(await c.exchange(p)));
    expect(first.new).toEqual(EUI);
    // Rotate back, then replay the captured packet byte for byte.
    const back = Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1);
    expect((await rotate(c, s, { what: 'dev-eui', value: back, nonce: nonce() })).new).toEqual(back);
    expect(groupRc(replyBody(await c.exchange(p)))).toBe(SEC_RC.Protection);
    await w.login(c);
    expect(groupRc(replyBody(await c.exchange(p)))).toBe(SEC_RC.Protection);
    const other = w.conn();
    expect(groupRc(replyBody(await other.exchange(p)))).toBe(SEC_RC.Protection);
    await w.device.reboot();
    expect(groupRc(replyBody(await c.exchange(p)))).toBe(SEC_RC.Protection);
    expect(w.sec.opts.devEui).toEqual(back);
    c.close();
    other.close();
  });

  it('a rotate request made for another device (its session keys) is refused by this one', async () => {
    const a = await secure();
    const b = await secure();
    const ca = a.conn();
    const sa = await a.login(ca);
    const cb = b.conn();
    await b.login(cb);
    const p = protectedPacket(cb, sa.keys, 1, innerPacket(Op.Write as 2, GROUP, SEC.Rotate, { what: 'app-key', value: crypto.getRandomValues(new Uint8Array(16)), nonce: nonce() }));
    expect(groupRc(replyBody(await cb.exchange(p)))).toBe(SEC_RC.Protection);
    expect(b.sec.appKeyId).toBeNull();
    ca.close();
    cb.close();
  });

  it('unknown targets (the identity key, inherited names), wrong types and sizes, a missing nonce: rc 7 or 13, nothing rotated', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    const bad: Body[] = [
      { what: 'identity-key', value: new Uint8Array(32), nonce: nonce() },
      { what: 'toString', value: EUI, nonce: nonce() },
      { what: '__proto__', value: EUI, nonce: nonce() },
      { what: 'dev-eui', value: '70b3d57ed0000042', nonce: nonce() },
      { what: 'dev-eui', value: EUI.subarray(0, 7), nonce: nonce() },
      { what: 'dev-eui', value: new Uint8Array(8), nonce: nonce() },
      { what: 'dev-eui', value: new Uint8Array(8).fill(0xff), nonce: nonce() },
      { what: 'app-key', value: new Uint8Array(32).fill(7), nonce: nonce() },
      { what: 'app-key', value: [1, 2, 3], nonce: nonce() },
    ];
    for (const b of bad) expect(groupRc(await rotate(c, s, b))).toBe(SEC_RC.Malformed);
    expect(groupRc(await rotate(c, s, { what: 'dev-eui', value: EUI }))).toBe(SEC_RC.Nonce);
    expect(groupRc(await rotate(c, s, { what: 'dev-eui', value: EUI, nonce: new Uint8Array(4) }))).toBe(SEC_RC.Nonce);
    expect(w.sec.opts.devEui).toEqual(Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1));
    expect(w.sec.appKeyId).toBeNull();
    c.close();
  });

  it('a credential scoped to another model, or without rotate-keys, rotates nothing', async () => {
    const w = await secure();
    const c = w.conn();
    const narrow = await issueCredential({ technicianId: 'tech-narrow', name: 'N', publicKey: auth.technician.publicKey, permissions: ['identify', 'configure'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    const s = await w.login(c, narrow);
    expect(groupRc(await rotate(c, s, { what: 'dev-eui', value: EUI, nonce: nonce() }))).toBe(SEC_RC.Permission);
    const elsewhere = await issueCredential({ technicianId: 'tech-pump', name: 'P', publicKey: auth.technician.publicKey, permissions: ['rotate-keys'], models: ['pump-controller'], notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    const r = await rawLogin(c, w.sec.devicePublicKey, elsewhere, auth.technician.privateKey);
    expect(groupRc(r.reply)).toBe(SEC_RC.WrongTarget);
    expect(w.sec.opts.devEui).toEqual(Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1));
    c.close();
  });

  it('a configuration with rotate.devEui goes through the same value rules as rotate: all zeros, all ones or not 8 bytes are refused before anything is stored', async () => {
    // A model without a schema on the device (validateSettings absent): only the device's own rule stands.
    const w = await secure({ validateSettings: undefined });
    const c = w.conn();
    const s = await w.login(c);
    let seq = 1;
    for (const eui of ['0000000000000000', 'ffffffffffffffff', '70b3d5', 'zz', '70b3d57ed000004242']) {
      const cfg = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: seq++, settings: { 'rotate.devEui': eui }, notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
      const r = await protectedChunked(c, s, SEC.ConfigApply, cfg);
      expect(groupRc(r), eui).toBe(SEC_RC.Malformed);
      expect(w.sec.activeConfig(), eui).toBeNull();
    }
    expect(w.sec.opts.devEui).toEqual(Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1));
    // A good one still rotates.
    const ok = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: seq++, settings: { 'rotate.devEui': '70b3d57ed0000042' }, notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    expect(groupRc(await protectedChunked(c, s, SEC.ConfigApply, ok))).toBeUndefined();
    expect(w.sec.opts.devEui).toEqual(EUI);
    c.close();
  });
});

describe('red team: interfaces and wipe on the raw wire', () => {
  it('smp_serial disabled: image, OS reset and settings are refused plain and inside the session; only the security group (to re-open) stays', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'disabled' }))).toBeUndefined();
    const attacker = w.conn();
    expect((await attacker.request(Op.Write as 2, Group.Image, IMG.Erase, { slot: 1 })).rc).toBe(MGMT_RC.EACCESSDENIED);
    expect((await attacker.request(Op.Write as 2, Group.OS, OS.Reset, {})).rc).toBe(MGMT_RC.EACCESSDENIED);
    expect((await attacker.request(Op.Read as 0, Group.Image, IMG.State, {})).rc).toBe(MGMT_RC.EACCESSDENIED);
    // Even the technician's session does not pass a disabled interface.
    expect((await protectedRequest(c, s, Op.Write as 2, Group.OS, OS.Reset, {})).rc).toBe(MGMT_RC.EACCESSDENIED);
    const boots = w.device.bootCount;
    // A reboot keeps the restriction.
    await w.device.reboot();
    expect((await attacker.request(Op.Write as 2, Group.OS, OS.Reset, {})).rc).toBe(MGMT_RC.EACCESSDENIED);
    expect(w.device.bootCount).toBe(boots + 1);
    // Re-opening needs a session with the interfaces permission; the attacker has none.
    expect(groupRc(await attacker.request(Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'open' }))).toBe(SEC_RC.NotAuthenticated);
    const s2 = await w.login(c);
    expect(groupRc(await protectedRequest(c, s2, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'open' }))).toBeUndefined();
    c.close();
    attacker.close();
  });

  it('smp_serial authenticated: a session without update cannot erase, upload or confirm images; a plain request on the session\'s own connection is refused', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'authenticated' }))).toBeUndefined();
    expect((await c.request(Op.Read as 0, Group.Image, IMG.State, {})).rc).toBe(MGMT_RC.EACCESSDENIED);
    const narrow = await issueCredential({ technicianId: 'tech-narrow', name: 'N', publicKey: auth.technician.publicKey, permissions: ['identify', 'interfaces'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    const n = await w.login(c, narrow);
    const erase = await protectedRequest(c, n, Op.Write as 2, Group.Image, IMG.Erase, { slot: 1 });
    expect(groupRc(erase)).toBe(SEC_RC.Permission);
    const upload = await protectedRequest(c, n, Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: 64, data: new Uint8Array(32) });
    expect(groupRc(upload)).toBe(SEC_RC.Permission);
    // Reads inside the session are allowed.
    expect(Array.isArray((await protectedRequest(c, n, Op.Read as 0, Group.Image, IMG.State, {})).images)).toBe(true);
    c.close();
  });

  it('debug cannot be opened on a secured device, not even by a technician with interfaces; unknown states are refused', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'debug', state: 'open' }))).toBe(SEC_RC.Permission);
    for (const state of ['OPEN', 'enabled', '', 1, null]) {
      expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state }))).toBe(SEC_RC.Malformed);
    }
    for (const name of ['constructor', 'hasOwnProperty', 'SMP_SERIAL', 'jtag']) {
      expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name, state: 'disabled' }))).toBe(SEC_RC.Malformed);
    }
    expect(w.sec.interfaces).toEqual({ smp_serial: 'open', shell: 'open', debug: 'disabled' });
    c.close();
  });

  it('a wipe erases the network key too: after it the device holds no AppKey and a new rotation reports no old key', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    const key = crypto.getRandomValues(new Uint8Array(16));
    const r = await rotate(c, s, { what: 'app-key', value: key, nonce: nonce() });
    expect(r.new).toEqual(rotationKeyId(key));
    expect(w.sec.appKeyId).toEqual(rotationKeyId(key));
    // Without confirm: nothing.
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Wipe, {}))).toBe(SEC_RC.Malformed);
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Wipe, { confirm: 1 }))).toBe(SEC_RC.Malformed);
    expect(w.sec.appKeyId).toEqual(rotationKeyId(key));
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Wipe, { confirm: true }))).toBeUndefined();
    expect(w.sec.appKeyId).toBeNull();
    const again = crypto.getRandomValues(new Uint8Array(16));
    const r2 = await rotate(c, s, { what: 'app-key', value: again, nonce: nonce() });
    expect(r2.old).toEqual(new Uint8Array(0));
    c.close();
  });

  it('a wipe leaves no Settings value a technician wrote (stock configuration), in RAM or in storage', async () => {
    const { device, conn, login } = await rawWorld(auth, { settings: true });
    const c = conn(['tech', 'device']);
    const s = await login(c);
    const SETTINGS_GROUP = 3;
    const val = new TextEncoder().encode('wss://old-owner.example/ingest');
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, SETTINGS_GROUP, 0, { name: 'fb/server', val }))).toBeUndefined();
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, SETTINGS_GROUP, 3, {}))).toBeUndefined();
    expect((await protectedRequest(c, s, Op.Read as 0, SETTINGS_GROUP, 0, { name: 'fb/server' })).val).toEqual(val);
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Wipe, { confirm: true }))).toBeUndefined();
    expect((await c.request(Op.Read as 0, SETTINGS_GROUP, 0, { name: 'fb/server' })).err).toMatchObject({ group: SETTINGS_GROUP, rc: 3 });
    await device.reboot();
    expect((await c.request(Op.Read as 0, SETTINGS_GROUP, 0, { name: 'fb/server' })).err).toMatchObject({ group: SETTINGS_GROUP, rc: 3 });
    c.close();
  });

  it('failed logins lock every connection out, not only the one that failed: a brute force spread over ports gains nothing', async () => {
    const w = await secure({ maxAuthFailures: 3, lockoutMs: 60_000 });
    const stranger = await issueCredential({ technicianId: 'x', name: 'X', publicKey: auth.technician.publicKey, permissions: ['wipe'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, crypto.getRandomValues(new Uint8Array(32)));
    for (let i = 0; i < 3; i++) {
      const c = w.conn();
      const r = await rawLogin(c, w.sec.devicePublicKey, stranger, auth.technician.privateKey);
      expect(groupRc(r.reply)).toBe(SEC_RC.BadSignature);
      c.close();
    }
    const fresh = w.conn();
    const r = await rawLogin(fresh, w.sec.devicePublicKey, auth.credential, auth.technician.privateKey);
    expect(groupRc(r.reply)).toBe(SEC_RC.LockedOut);
    // A reset does not end the lockout.
    await w.device.reboot();
    expect(groupRc((await rawLogin(fresh, w.sec.devicePublicKey, auth.credential, auth.technician.privateKey)).reply)).toBe(SEC_RC.LockedOut);
    fresh.close();
  });
});

describe('red team: what an unauthenticated peer can make the device buffer', () => {
  it('the first chunk of a configuration, a certificate without a begin, an authorization on a blank device or a login without a key exchange is refused before anything is buffered', async () => {
    const w = await secure();
    const c = w.conn();
    const first = (cmd: number) => c.request(Op.Write as 2, GROUP, cmd, { len: 16384, off: 0, data: new Uint8Array(200) });
    expect(groupRc(await first(SEC.ConfigApply))).toBe(SEC_RC.NotAuthenticated);
    expect(groupRc(await first(SEC.ProvisionCert))).toBe(SEC_RC.ProvisionOrder);
    expect(groupRc(await first(SEC.BundlePush))).toBe(SEC_RC.NotAuthenticated);
    expect(groupRc(await first(SEC.Auth))).toBe(SEC_RC.Nonce);
    c.close();
    const { createBlankDevice } = await import('../../src/device/provisioning.ts');
    const { device } = await createBlankDevice({ manufacturerKeys: [auth.manufacturer.publicKey], ownerKeys: [auth.owner.publicKey] }, { bufSize: 512 });
    const b = rawConnect(device);
    expect(groupRc(await b.request(Op.Write as 2, GROUP, SEC.ProvisionAuthorize, { len: 16384, off: 0, data: new Uint8Array(200) }))).toBe(SEC_RC.NotProvisioned);
    expect(groupRc(await b.request(Op.Write as 2, GROUP, SEC.Auth, { len: 16384, off: 0, data: new Uint8Array(200) }))).toBe(SEC_RC.NotProvisioned);
    b.close();
  });

  it('one transfer at a time per connection: starting another drops the first (a peer cannot hold a 16 KiB buffer per command)', async () => {
    const w = await secure();
    const c = w.conn();
    // A key exchange, then message 3 in chunks: the device buffers it.
    const { ephemeralX25519 } = await import('../../src/core/trust/session.ts');
    expect(groupRc(await c.request(Op.Read as 0, GROUP, SEC.AuthChallenge, { g_x: ephemeralX25519().publicKey }))).toBeUndefined();
    expect(await c.request(Op.Write as 2, GROUP, SEC.Auth, { len: 16384, off: 0, data: new Uint8Array(200) })).toEqual({ off: 200 });
    // Another transfer on the same connection (an authorization): the login's buffer is dropped.
    expect(await c.request(Op.Write as 2, GROUP, SEC.ProvisionAuthorize, { len: 16384, off: 0, data: new Uint8Array(200) })).toEqual({ off: 200 });
    expect(groupRc(await c.request(Op.Write as 2, GROUP, SEC.Auth, { off: 200, data: new Uint8Array(200) }))).toBe(SEC_RC.Offset);
    c.close();
  });

  it('a hundred connections each opening a key exchange: the device signs at most its bucket (20), the rest are answered busy (rc 23); a technician still logs in once it refills', async () => {
    const w = await secure();
    const { ephemeralX25519 } = await import('../../src/core/trust/session.ts');
    const conns: RawSmp[] = [];
    let signed = 0;
    await new Promise((res) => setTimeout(res, 250)); // the token provisioning took is back: a full bucket
    vi.useFakeTimers({ toFake: ['Date'] }); // the clock stands still during the flood: no refill, the count does not depend on the machine's speed
    try {
      for (let i = 0; i < 100; i++) {
        const c = w.conn();
        conns.push(c);
        const r = await c.request(Op.Read as 0, GROUP, SEC.AuthChallenge, { g_x: ephemeralX25519().publicKey });
        if (r.g_y instanceof Uint8Array) signed++;
        else expect(groupRc(r)).toBe(SEC_RC.Busy);
      }
      expect(signed).toBe(20);
    } finally {
      vi.useRealTimers();
    }
    await new Promise((res) => setTimeout(res, 250)); // 5 a second: one is back
    const t = w.conn();
    const s = await w.login(t);
    expect(groupRc(await protectedRequest(t, s, Op.Read as 0, GROUP, SEC.Interfaces))).toBeUndefined();
    for (const c of conns) c.close();
    t.close();
  });
});

describe('red team: what the device shows before a login', () => {
  it('the applied configuration and the event log: rc 1 unauthenticated (also while another connection has a session), rc 15 plain after a login, rc 2 without a permission that covers them; configure or wipe reads the configuration, attest or configure the log; identity, certificate, provisioning state and interfaces stay public', async () => {
    const w = await secure();
    const tech = w.conn(['tech', 'device']);
    const s = await w.login(tech);
    const cfg = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 3, settings: { interval: 33, name: 'pump-3' }, notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    expect(await protectedChunked(tech, s, SEC.ConfigApply, cfg)).toMatchObject({ seq: 3 });
    const attacker = w.conn();
    const reads = [
      ['configuration', SEC.ConfigRead, {}],
      ['event log', SEC.Events, { from: 0 }],
    ] as const;
    const logged = () => w.sec.eventLog().filter((e) => e.type === 'access-denied').length;
    for (const [what, id, body] of reads) {
      const before = logged();
      const r = await attacker.request(Op.Read as 0, GROUP, id, body);
      // the refusal and nothing else: no settings, no sequence, no events
      expect(r, what).toEqual({ err: { group: GROUP, rc: SEC_RC.NotAuthenticated } });
      expect(logged(), what).toBe(before + 1);
      // the technician's own connection, plain: the session is required
      expect(groupRc(await tech.request(Op.Read as 0, GROUP, id, body)), what).toBe(SEC_RC.SessionRequired);
    }
    // A credential whose permissions cover neither: rc 2 for both.
    const narrowCred = await issueCredential({ technicianId: 'tech-ifc', name: 'Interfaces only', publicKey: auth.technician.publicKey, permissions: ['interfaces'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    const narrow = w.conn();
    const sn = await w.login(narrow, narrowCred);
    for (const [what, id, body] of reads) expect(groupRc(await protectedRequest(narrow, sn, Op.Read as 0, GROUP, id, body)), what).toBe(SEC_RC.Permission);
    // The permissions that cover them.
    const only = async (permissions: string[]) => {
      const c = w.conn();
      const cred = await issueCredential({ technicianId: `tech-${permissions[0]}`, name: permissions[0], publicKey: auth.technician.publicKey, permissions: permissions as never, models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
      return { c, s: await w.login(c, cred) };
    };
    for (const p of ['configure', 'wipe']) {
      const x = await only([p]);
      expect((await protectedRequest(x.c, x.s, Op.Read as 0, GROUP, SEC.ConfigRead)).settings, p).toEqual({ interval: 33, name: 'pump-3' });
    }
    for (const p of ['attest', 'configure']) {
      const x = await only([p]);
      const page = await protectedRequest(x.c, x.s, Op.Read as 0, GROUP, SEC.Events, { from: 0 });
      expect(page.events, p).toBeInstanceOf(Array);
    }
    // wipe covers the configuration (what it erases), not the log; attest the log, not the configuration
    const wipeOnly = await only(['wipe']);
    expect(groupRc(await protectedRequest(wipeOnly.c, wipeOnly.s, Op.Read as 0, GROUP, SEC.Events, { from: 0 }))).toBe(SEC_RC.Permission);
    const attestOnly = await only(['attest']);
    expect(groupRc(await protectedRequest(attestOnly.c, attestOnly.s, Op.Read as 0, GROUP, SEC.ConfigRead))).toBe(SEC_RC.Permission);
    // Public: who the device is and what it exposes (the evidence checked before a login).
    expect((await attacker.request(Op.Read as 0, GROUP, SEC.Identity)).pub).toBeInstanceOf(Uint8Array);
    expect((await attacker.request(Op.Read as 0, GROUP, SEC.Cert, { off: 0 })).data).toBeInstanceOf(Uint8Array);
    expect((await attacker.request(Op.Read as 0, GROUP, SEC.ProvisionState)).state).toBe('provisioned');
    expect((await attacker.request(Op.Read as 0, GROUP, SEC.Interfaces)).interfaces).toMatchObject({ smp_serial: 'open' });
    attacker.close();
    tech.close();
    narrow.close();
  });
});

describe('red team: signatures for peers without a session (token bucket)', () => {
  it('a flood of proofs, tokens, key exchanges from many connections: at most the bucket is signed, the rest rc 23 before any work, logged once; a reboot does not refill it; a session is not counted; an honest client still identifies', async () => {
    const w = await secure();
    const tech = w.conn(['tech', 'device']);
    await new Promise((res) => setTimeout(res, 250)); // the token provisioning took is back: a full bucket
    const s = await w.login(tech); // one signature (message 2)
    const nonce32 = () => crypto.getRandomValues(new Uint8Array(32));
    const { ephemeralX25519 } = await import('../../src/core/trust/session.ts');
    const { ed25519Verify } = await import('../../src/core/trust/ed25519.ts');
    const { popMessage } = await import('../../src/core/protocol/security.ts');
    const attackers = [w.conn(), w.conn(), w.conn()];
    const eventsBefore = w.sec.eventLog().length;
    let signed = 0;
    let busy = 0;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      for (let i = 0; i < 60; i++) {
        const c = attackers[i % 3];
        const r =
          i % 3 === 0 ? await c.request(Op.Write as 2, GROUP, SEC.Prove, { nonce: nonce32() })
          : i % 3 === 1 ? await c.request(Op.Write as 2, GROUP, SEC.Attest, { nonce: nonce32() })
          : await c.request(Op.Read as 0, GROUP, SEC.AuthChallenge, { g_x: ephemeralX25519().publicKey });
        if (groupRc(r) === SEC_RC.Busy) busy++;
        else {
          expect(groupRc(r), JSON.stringify(r)).toBeUndefined();
          signed++;
        }
      }
      expect(signed).toBe(19); // 20 less the technician's login
      expect(busy).toBe(41);
      // Malformed requests are refused as such, and cost nothing.
      expect(groupRc(await attackers[0].request(Op.Write as 2, GROUP, SEC.Prove, { nonce: new Uint8Array(3) }))).toBe(SEC_RC.Nonce);
      // Logged once for the dry spell, not once per refusal.
      expect(w.sec.eventLog().slice(eventsBefore).filter((e) => e.type === 'signing-limited')).toHaveLength(1);
      // A reset (open to anyone) does not refill the bucket.
      await w.device.reboot();
      expect(groupRc(await attackers[0].request(Op.Write as 2, GROUP, SEC.Prove, { nonce: nonce32() }))).toBe(SEC_RC.Busy);
      // Inside an authenticated session nothing is counted: a technician attests at will.
      const s2 = await (async () => {
        vi.setSystemTime(Date.now() + 200); // one token for the new login after the reboot
        return w.login(tech);
      })();
      for (let i = 0; i < 25; i++) {
        const r = await protectedRequest(tech, s2, Op.Write as 2, GROUP, SEC.Attest, { nonce: nonce32() });
        expect(r.data, JSON.stringify(r)).toBeInstanceOf(Uint8Array);
      }
      void s;
    } finally {
      vi.useRealTimers();
    }
    // An honest client, right after the flood: its proof request waits for the refill and goes through.
    const pair = createLinkPair({}, ['technician', 'device']);
    void w.device.serve(pair.b);
    const session = await openSession(pair.a);
    const g = new SecurityGroup(session.client, GROUP);
    const n = nonce32();
    const sig = await g.prove(n);
    expect(await ed25519Verify(sig, popMessage(n), w.sec.devicePublicKey)).toBe(true);
    await session.close();
    for (const c of attackers) c.close();
    tech.close();
  });
});

describe('red team: the session wrapper', () => {
  it('key exchange with a low-order or malformed ephemeral key: rc 7, no handshake kept', async () => {
    const w = await secure();
    const c = w.conn();
    // u = 0, 1 and p - 1 (low-order points: the shared secret is all zeros), a short key, not bytes.
    const pMinus1 = Uint8Array.of(0xec, ...new Uint8Array(30).fill(0xff), 0x7f);
    const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31)), pMinus1, new Uint8Array(31), 'abc'];
    for (const g_x of lowOrder) {
      const r = await c.request(Op.Read as 0, GROUP, SEC.AuthChallenge, { g_x });
      expect(groupRc(r), String(g_x)).toBe(SEC_RC.Malformed);
    }
    expect(groupRc(await c.request(Op.Write as 2, GROUP, SEC.Auth, { len: 4, off: 0, data: new Uint8Array(4), sig: new Uint8Array(64) }))).toBe(SEC_RC.Nonce);
    c.close();
  });

  it('inner packets that are short, whose length lies, or that nest another protected request: rc 7, never dispatched, and the session goes on', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    const wipe = innerPacket(Op.Write as 2, GROUP, SEC.Wipe, { confirm: true });
    const lying = wipe.slice();
    lying[3] += 3;
    const nested = innerPacket(Op.Write as 2, GROUP, SEC.Protected, { s: 99, c: new Uint8Array(40) });
    for (const inner of [new Uint8Array(5), lying, nested]) {
      const seq = ++s.seq;
      const r = replyBody(await c.exchange(protectedPacket(c, s.keys, seq, inner)));
      expect(groupRc(r)).toBe(SEC_RC.Malformed);
    }
    expect(w.sec.eventLog().some((e) => e.type === 'wipe')).toBe(false);
    expect(groupRc(await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Interfaces))).toBeUndefined();
    c.close();
  });

  it('sequence numbers at the edges: 0, negative, past 2^53, not an integer type: refused without a dispatch', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    const inner = innerPacket(Op.Write as 2, GROUP, SEC.Wipe, { confirm: true });
    for (const seq of [0, -1]) {
      const r = await c.request(Op.Write as 2, GROUP, SEC.Protected, { s: seq, c: new Uint8Array(inner.length + 16) });
      expect([SEC_RC.Malformed, SEC_RC.Protection]).toContain(groupRc(r));
    }
    expect(groupRc(await c.request(Op.Write as 2, GROUP, SEC.Protected, { s: '1', c: new Uint8Array(40) }))).toBe(SEC_RC.Malformed);
    expect(groupRc(await c.request(Op.Write as 2, GROUP, SEC.Protected, { s: 2n ** 60n, c: new Uint8Array(40) }))).toBeDefined();
    expect(w.sec.eventLog().some((e) => e.type === 'wipe')).toBe(false);
    expect(groupRc(await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Interfaces))).toBeUndefined();
    c.close();
  });
});

describe('red team: the security event log under a flood', () => {
  it('1,500 unauthenticated refusals do not push the record of a login, a wipe or an interface change out of the log', async () => {
    const w = await secure();
    const c = w.conn();
    const s = await w.login(c);
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'shell', state: 'disabled' }))).toBeUndefined();
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Wipe, { confirm: true }))).toBeUndefined();
    // The flood, as raw request packets into the device's dispatcher (one attacker connection).
    const { Connection } = await import('../../src/device/mgmt.ts');
    const { buildPacket, SMP_V2 } = await import('../../src/core/smp/header.ts');
    const { encodeCbor } = await import('../../src/core/base/cbor.ts');
    const attacker = new Connection(9999);
    const wipe = buildPacket({ op: Op.Write, version: SMP_V2, flags: 0, group: GROUP, seq: 1, id: SEC.Wipe }, encodeCbor({ confirm: true }));
    for (let i = 0; i < 1500; i++) await w.device.handle(wipe, { connection: attacker });
    // Read the whole log back over the wire, page by page.
    const types: string[] = [];
    for (let from = 0; ; ) {
      const page = await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Events, { from });
      const events = page.events as { n: number; type: string }[];
      types.push(...events.map((e) => e.type));
      if (!events.length || (page.next as number) > (page.last as number)) break;
      from = page.next as number;
    }
    expect(types.length).toBeLessThanOrEqual(1000);
    for (const t of ['auth', 'interface', 'wipe', 'provisioned']) expect(types, t).toContain(t);
    expect(types.filter((t) => t === 'access-denied').length).toBeGreaterThan(900);
    c.close();
  }, 60_000);
});

describe('red team: two connections applying configurations at once', () => {
  const cfg = (sequence: number) => issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence, settings: { interval: 10 + sequence }, notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
  /** A device whose configuration apply stops at `at` (once) until released, and two logged-in connections. */
  async function heldApply(at: string) {
    let hold: { entered: () => void; release: Promise<void> } | null = null;
    const w = await secure({
      applyStep: async (step) => {
        if (step === at && hold) {
          const h = hold;
          hold = null;
          h.entered();
          await h.release;
        }
      },
    });
    const a = w.conn();
    const b = w.conn();
    const sa = await w.login(a);
    const sb = await w.login(b);
    let release!: () => void;
    const entered = new Promise<void>((res) => {
      hold = { entered: res, release: new Promise<void>((r) => (release = r)) };
    });
    return { w, a, b, sa, sb, entered, release: () => release() };
  }
  it('an older configuration whose apply was held while a newer one committed on another connection is refused, and never becomes active', async () => {
    const { w, a, b, sa, sb, entered, release } = await heldApply('verified');
    const [five, six] = await Promise.all([cfg(5), cfg(6)]);
    const older = protectedChunked(b, sb, SEC.ConfigApply, five);
    await entered;
    // Meanwhile on the other connection: the newer configuration, all the way.
    expect(await protectedChunked(a, sa, SEC.ConfigApply, six)).toMatchObject({ seq: 6 });
    release();
    expect(groupRc(await older)).toBe(SEC_RC.Replayed);
    expect(w.sec.activeConfig()?.sequence).toBe(6);
    a.close();
    b.close();
  });

  it('while one apply is staged, another connection\'s apply is answered busy and stages nothing over it', async () => {
    const { w, a, b, sa, sb, entered, release } = await heldApply('staged');
    const [seven, eight] = await Promise.all([cfg(7), cfg(8)]);
    const first = protectedChunked(b, sb, SEC.ConfigApply, seven);
    await entered;
    expect((await protectedChunked(a, sa, SEC.ConfigApply, eight)).rc).toBe(MGMT_RC.EBUSY);
    release();
    expect(await first).toMatchObject({ seq: 7 });
    expect(w.sec.activeConfig()?.sequence).toBe(7);
    expect(await protectedChunked(a, sa, SEC.ConfigApply, eight)).toMatchObject({ seq: 8 });
    a.close();
    b.close();
  });
});

/**
 * Trusted time on the device (issue 11 item 2), on the raw wire of a real
 * `fieldbench device --listen` process: validity checks use a floor that only
 * moves forward (the latest signed time seen), nobody without the configure
 * permission in a session sets the clock back (rc 18), nobody sets it below the
 * floor, and a clock before 1970 is refused and cannot reach attestation.
 */
import { describe, expect, it } from 'vitest';
import { OS } from '../../src/core/protocol/os.ts';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { Group, Op } from '../../src/core/smp/header.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { peekToken } from '../../src/core/trust/eat.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { GROUP, type RawSmp, groupRc, protectedRequest, rawLogin, writeChunked } from '../helpers/raw-session.ts';
import { useListeningDevice } from '../helpers/listen-fixture.ts';

const ld = useListeningDevice();
const conn = ld.conn;

const HOUR = 3600_000;

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, '');
const setClock = (c: RawSmp, ms: number) => c.request(Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(ms) });


describe('trusted time: raw clock writes', () => {
  it('roll the clock back, then try an expired credential and an expired configuration: both refused', async () => {
    const a = ld.dev.auth;
    // The expired credential: same technician key, valid from -3 h to -2 h.
    const expired = await issueCredential(
      { technicianId: 'tech-old', name: 'Old', publicKey: a.technician.publicKey, permissions: ['configure'], models: ['fieldbench-ref'], notBefore: new Date(Date.now() - 3 * HOUR), notAfter: new Date(Date.now() - 2 * HOUR) },
      a.owner.privateKey,
    );
    // A technician logs in once (the device sees a credential issued now: the floor moves to it).
    const tech = await conn();
    const s = await rawLogin(tech, ld.devicePub, a.credential, a.technician.privateKey);
    expect(groupRc(s.reply)).toBeUndefined();
    // An unauthenticated connection rolls the clock back 2.5 h: refused, rc 18 in the security group's table.
    const attacker = await conn();
    const r = await setClock(attacker, Date.now() - 2.5 * HOUR);
    expect(r.err).toMatchObject({ group: GROUP, rc: SEC_RC.Clock });
    // The clock did not move: the expired credential is expired.
    const l = await rawLogin(attacker, ld.devicePub, expired, a.technician.privateKey);
    expect(groupRc(l.reply)).toBe(SEC_RC.Expired);
    // Even the technician, with the configure permission inside the session, cannot go below the floor.
    const back = await protectedRequest(tech, s, Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(Date.now() - 2.5 * HOUR) });
    expect(back.err).toMatchObject({ group: GROUP, rc: SEC_RC.Clock });
    // An expired configuration (valid -3 h .. -2 h), sent inside the session: expired.
    const cfg = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 31, settings: { interval: 60 }, notBefore: new Date(Date.now() - 3 * HOUR), notAfter: new Date(Date.now() - 2 * HOUR) }, a.owner.privateKey);
    let off = 0;
    let rr: Record<string, unknown> = {};
    while (off < cfg.length) {
      const end = Math.min(cfg.length, off + 100);
      rr = await protectedRequest(tech, s, Op.Write as 2, GROUP, SEC.ConfigApply, { ...(off === 0 ? { len: cfg.length } : {}), off, data: cfg.subarray(off, end) });
      off = end;
    }
    expect(groupRc(rr)).toBe(SEC_RC.Expired);
  }, 30000);

  it('moving the clock forward is allowed to anyone (a device without an RTC boots at 1970); back is not, without the permission', async () => {
    const c = await conn();
    expect((await setClock(c, Date.now() + 60_000)).err).toBeUndefined();
    expect((await setClock(c, Date.now() + 30_000)).err).toMatchObject({ group: GROUP, rc: SEC_RC.Clock });
    // A technician in a session may set it back, but not below the floor.
    const s = await rawLogin(c, ld.devicePub, ld.dev.auth.credential, ld.dev.auth.technician.privateKey);
    expect(groupRc(s.reply)).toBeUndefined();
    expect((await protectedRequest(c, s, Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(Date.now() + 1000) })).err).toBeUndefined();
    // Outside the session the same technician's connection cannot.
    expect((await setClock(c, Date.now() - 1000)).err).toMatchObject({ group: GROUP, rc: SEC_RC.Clock });
  }, 30000);

  it('a clock before 1970 is refused by the OS group and cannot reach attestation', async () => {
    const c = await conn();
    const r = await c.request(Op.Write as 2, Group.OS, OS.DateTime, { datetime: '1969-07-20T20:17:00' });
    expect(r.err ?? r.rc).toBeTruthy();
    expect(groupRc(r)).not.toBe(0);
    // Written through a chunk-free bundle push attempt: unauthenticated, refused (not a clock path).
    expect(groupRc(await writeChunked(c, SEC.BundlePush, ld.dev.auth.bundle))).toBe(SEC_RC.NotAuthenticated);
  }, 30000);
});

describe('trusted time: the attestation clock', () => {
  it('a device clock before 1970 gives a token with a non-negative iat', async () => {
    const a = await makeAuthorities();
    const { device, security } = await createSecureDevice(a);
    device.clockOffsetMs = -Date.now() - 86400_000; // the device clock reads 31 Dec 1969
    const s = await openSession(createVirtualDevice({ device, model: { baudRate: 921600 * 40 } }).link);
    const g = new SecurityGroup(s.client, security.groupId);
    const token = await g.attest(new Uint8Array(32).fill(1));
    const claims = peekToken(token).claims as Map<number, unknown>;
    const iat = claims instanceof Map ? claims.get(6) : (claims as Record<string, unknown>)[6];
    expect(typeof iat).toBe('number');
    expect(iat as number).toBeGreaterThanOrEqual(0);
    await s.close();
  });
});

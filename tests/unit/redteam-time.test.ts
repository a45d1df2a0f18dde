/**
 * Red team: the device clock as an unauthenticated peer can move it. Anyone may
 * move it forward (a device without a battery-backed clock boots at 1970 and a
 * stock tool sets it); that must never lock the owner's technicians out, and it
 * must never make an expired credential, configuration or bundle acceptable.
 * docs/SECURITY.md's threat table names these tests.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { OS } from '../../src/core/protocol/os.ts';
import { Group, Op } from '../../src/core/smp/header.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { type Authorities, makeAuthorities } from '../../src/device/provisioning.ts';
import { GROUP, groupRc, protectedRequest, rawLogin } from '../helpers/raw-session.ts';
import { rawWorld } from '../helpers/raw-world.ts';

const DAY = 86400_000;
let auth: Authorities;
beforeAll(async () => {
  auth = await makeAuthorities();
});

const iso = (ms: number) => new Date(ms).toISOString();

async function secure() {
  const w = await rawWorld(auth);
  return { device: w.device, security: w.sec, conn: () => w.conn(['peer', 'device']), login: w.login };
}

describe('red team: the clock moved by anyone', () => {
  it('an unauthenticated jump to 2100 does not lock technicians out: they log in, and set the clock back in the session', async () => {
    const w = await secure();
    const attacker = w.conn();
    const far = Date.parse('2100-01-01T00:00:00Z');
    expect((await attacker.request(Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(far) })).err).toBeUndefined();
    expect(w.device.now()).toBeGreaterThan(far - DAY);
    const tech = w.conn();
    const s = await w.login(tech);
    expect((await protectedRequest(tech, s, Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(Date.now()) })).err).toBeUndefined();
    expect(Math.abs(w.device.now() - Date.now())).toBeLessThan(60_000);
    attacker.close();
    tech.close();
  });

  it('the jump still makes nothing expired acceptable, nor does it help an attacker: an expired credential is refused at any clock', async () => {
    const w = await secure();
    const expired = await issueCredential(
      { technicianId: 'tech-old', name: 'Old', publicKey: auth.technician.publicKey, permissions: ['wipe'], models: ['fieldbench-ref'], notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) },
      auth.owner.privateKey,
    );
    const c = w.conn();
    expect(groupRc((await rawLogin(c, w.security.devicePublicKey, expired, auth.technician.privateKey)).reply)).toBe(SEC_RC.Expired);
    await c.request(Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(Date.parse('2100-01-01T00:00:00Z')) });
    expect(groupRc((await rawLogin(c, w.security.devicePublicKey, expired, auth.technician.privateKey)).reply)).toBe(SEC_RC.Expired);
    c.close();
  });

  it('a device whose clock lags (no battery-backed clock): a stock tool\'s forward write still lets a fresh credential in', async () => {
    const w = await secure();
    // The device clock reads two days ago (it kept time from its last boot, say); the credential is from today.
    w.device.clockOffsetMs = -2 * DAY;
    const fresh = await issueCredential(
      { technicianId: 'tech-new', name: 'New', publicKey: auth.technician.publicKey, permissions: ['configure', 'wipe'], models: ['fieldbench-ref'], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + DAY) },
      auth.owner.privateKey,
    );
    const c = w.conn();
    expect(groupRc((await rawLogin(c, w.security.devicePublicKey, fresh, auth.technician.privateKey)).reply)).toBe(SEC_RC.Expired);
    expect((await c.request(Op.Write as 2, Group.OS, OS.DateTime, { datetime: iso(Date.now()) })).err).toBeUndefined();
    const s = await w.login(c, fresh);
    expect(groupRc(await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Interfaces))).toBeUndefined();
    c.close();
  });
});

/**
 * The secure session on the wire, tried as an attacker has it: a real
 * `fieldbench device --listen` process, raw TCP connections, packets built by
 * hand (tests/helpers/raw-session.ts), replayed, reordered, tampered with and
 * moved to another connection. docs/SECURITY.md's threat table names these tests.
 */
import { describe, expect, it } from 'vitest';
import { OS } from '../../src/core/protocol/os.ts';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { Group, Op } from '../../src/core/smp/header.ts';
import { MGMT_RC } from '../../src/core/protocol/mgmt.ts';
import {
  GROUP, type RawSmp, groupRc, innerPacket, openReply, protectedPacket, protectedRequest, rawLogin, replyBody,
} from '../helpers/raw-session.ts';
import { useListeningDevice } from '../helpers/listen-fixture.ts';

const ld = useListeningDevice();
const conn = ld.conn;


async function login(c: RawSmp) {
  const s = await rawLogin(c, ld.devicePub, ld.dev.auth.credential, ld.dev.auth.technician.privateKey);
  expect(groupRc(s.reply)).toBeUndefined();
  return s;
}

const interfacesRead = () => innerPacket(Op.Read as 0, GROUP, SEC.Interfaces);
const setInterface = (state: string) => innerPacket(Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state });


describe('secure session: raw wire', () => {
  it('the key exchange yields keys both sides hold: a protected request is answered under them', async () => {
    const c = await conn();
    const s = await login(c);
    // Message 4 confirms the keys.
    expect(s.reply.kc).toEqual(s.keys.kc);
    const r = await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Interfaces);
    expect((r.interfaces as Record<string, string>).smp_serial).toBe('open');
  }, 20000);

  it('a privileged command sent unprotected after authentication is refused with rc 15 (SessionRequired)', async () => {
    const c = await conn();
    await login(c);
    const r = await c.request(Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'disabled' });
    expect(groupRc(r)).toBe(SEC_RC.SessionRequired);
    const w = await c.request(Op.Write as 2, GROUP, SEC.Wipe, { confirm: true });
    expect(groupRc(w)).toBe(SEC_RC.SessionRequired);
    const rot = await c.request(Op.Write as 2, GROUP, SEC.Rotate, { what: 'dev-eui', value: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), nonce: new Uint8Array(16) });
    expect(groupRc(rot)).toBe(SEC_RC.SessionRequired);
  }, 20000);

  it('a replayed protected request is refused with rc 16 and not executed again', async () => {
    const c = await conn();
    const s = await login(c);
    const p = protectedPacket(c, s.keys, 1, setInterface('authenticated'));
    const first = replyBody(await c.exchange(p));
    expect(groupRc(first)).toBeUndefined();
    expect((openReply(s.keys, 1, first).interfaces as Record<string, string>).smp_serial).toBe('authenticated');
    // Put it back to open (seq 2), then replay the captured seq-1 packet byte for byte.
    s.seq = 1;
    expect(groupRc(await protectedRequest(c, s, Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'open' }))).toBeUndefined();
    const again = replyBody(await c.exchange(p));
    expect(groupRc(again)).toBe(SEC_RC.Protection);
    expect((await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Interfaces)).interfaces).toMatchObject({ smp_serial: 'open' });
  }, 20000);

  it('reordered protected requests: a lower sequence number after a higher one is refused with rc 16', async () => {
    const c = await conn();
    const s = await login(c);
    const p2 = protectedPacket(c, s.keys, 2, interfacesRead());
    const p3 = protectedPacket(c, s.keys, 3, interfacesRead());
    expect(groupRc(replyBody(await c.exchange(p3)))).toBeUndefined();
    expect(groupRc(replyBody(await c.exchange(p2)))).toBe(SEC_RC.Protection);
  }, 20000);

  it('injected or tampered protected requests are refused with rc 16: a flipped bit, another key, a reflected reply', async () => {
    const c = await conn();
    const s = await login(c);
    const inner = setInterface('disabled');
    // Flip each of a few bits of the ciphertext (body, tag).
    for (const bit of [0, 77, 8 * 20 + 3]) {
      const p = protectedPacket(c, s.keys, 10 + bit, inner);
      p[p.length - 1 - (bit >> 3)] ^= 1 << (bit & 7);
      expect(groupRc(replyBody(await c.exchange(p)))).toBe(SEC_RC.Protection);
    }
    // Encrypted under a key the attacker made up.
    const forged = protectedPacket(c, { t2d: new Uint8Array(32).fill(7), d2t: new Uint8Array(32), kc: new Uint8Array(16) }, 500, inner);
    expect(groupRc(replyBody(await c.exchange(forged)))).toBe(SEC_RC.Protection);
    // The device's own reply sent back as a request (direction is bound: d2t is not t2d).
    const ok = replyBody(await c.exchange(protectedPacket(c, s.keys, 600, interfacesRead())));
    const reflected = c.packet(Op.Write as 2, GROUP, SEC.Protected, { s: 601, c: ok.c as Uint8Array });
    expect(groupRc(replyBody(await c.exchange(reflected)))).toBe(SEC_RC.Protection);
    // A malformed outer body is malformed.
    expect(groupRc(await c.request(Op.Write as 2, GROUP, SEC.Protected, { s: 'x', c: 1 }))).toBe(SEC_RC.Malformed);
    // Nothing was disabled.
    s.seq = 700;
    expect((await protectedRequest(c, s, Op.Read as 0, GROUP, SEC.Interfaces)).interfaces).toMatchObject({ smp_serial: 'open' });
  }, 20000);

  it('a protected request captured on one connection is refused on any other connection with rc 16', async () => {
    const tech = await conn();
    const s = await login(tech);
    const attacker = await conn();
    const p = protectedPacket(tech, s.keys, 1, setInterface('disabled'));
    // Never sent on the technician's connection: the attacker has it first.
    expect(groupRc(replyBody(await attacker.exchange(p)))).toBe(SEC_RC.Protection);
    // And an attacker with its own session cannot use the technician's keys either.
    await login(attacker);
    expect(groupRc(replyBody(await attacker.exchange(protectedPacket(attacker, s.keys, 2, setInterface('disabled')))))).toBe(SEC_RC.Protection);
    s.seq = 2;
    expect((await protectedRequest(tech, s, Op.Read as 0, GROUP, SEC.Interfaces)).interfaces).toMatchObject({ smp_serial: 'open' });
  }, 20000);

  it('message 3 without message 1, or a second use of message 2, is refused', async () => {
    const c = await conn();
    const s = await login(c);
    expect(s.reply.technician).toBe(ld.dev.auth.technicianId);
    // Replaying message 3 (the credential and signature) is a login without a fresh exchange.
    const again = await rawLogin(c, ld.devicePub, ld.dev.auth.credential, ld.dev.auth.technician.privateKey);
    expect(groupRc(again.reply)).toBeUndefined(); // a new exchange is fine
    const r = await c.request(Op.Write as 2, GROUP, SEC.Auth, { len: 4, off: 0, data: new Uint8Array(4), sig: new Uint8Array(64) });
    expect(groupRc(r)).toBe(SEC_RC.Nonce);
  }, 20000);

  it('after a reset the device never accepts the old session keys (rc 16), only a new key exchange', async () => {
    const c = await conn();
    const s = await login(c);
    const captured = protectedPacket(c, s.keys, 5, setInterface('disabled'));
    // The reset itself, protected: answered under the old keys, then the device reboots.
    const rr = await protectedRequest(c, s, Op.Write as 2, Group.OS, OS.Reset);
    expect(rr.rc ?? 0).toBe(MGMT_RC.EOK);
    await new Promise((r) => setTimeout(r, 300));
    // The captured request (never used before the reset) and a fresh one under the old keys.
    expect(groupRc(replyBody(await c.exchange(captured)))).toBe(SEC_RC.Protection);
    s.seq = 100;
    expect(groupRc(replyBody(await c.exchange(protectedPacket(c, s.keys, 101, interfacesRead()))))).toBe(SEC_RC.Protection);
    // A new exchange works.
    const fresh = await login(c);
    expect((await protectedRequest(c, fresh, Op.Read as 0, GROUP, SEC.Interfaces)).interfaces).toMatchObject({ smp_serial: 'open' });
  }, 20000);
});

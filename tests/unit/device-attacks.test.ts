/**
 * Attacks on the reference device as an attacker has them: a real
 * `fieldbench device --listen` process, several TCP connections, raw frames.
 * docs/SECURITY.md's threat table names these tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupRc } from '../helpers/group-rc.ts';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { SEC_RC } from '../../src/device/security.ts';
import { type ListeningDevice, connectTcp, startListeningDevice } from '../helpers/listen-device.ts';

let dev: ListeningDevice;
beforeAll(async () => {
  dev = await startListeningDevice();
}, 30000);
afterAll(() => dev?.stop());

async function technicianLogin(g: SecurityGroup) {
  const id = await g.identity();
  return authenticateTechnician(g, id.devicePublicKey, dev.auth.credential, (m) => ed25519Sign(m, dev.auth.technician.privateKey));
}

describe('device --listen: connections are separate', () => {
  it('a socket opened before the technician\'s does not inherit the authentication', async () => {
    const attacker = await connectTcp(dev.addr);
    const ga = new SecurityGroup(attacker.client);
    const tech = await connectTcp(dev.addr);
    const gt = new SecurityGroup(tech.client);
    await technicianLogin(gt);
    // While the technician is connected, and after they leave.
    expect(await groupRc(ga.setInterface('smp_serial', 'disabled'))).toBe(SEC_RC.NotAuthenticated);
    expect(await groupRc(ga.wipe())).toBe(SEC_RC.NotAuthenticated);
    await tech.close();
    expect(await groupRc(ga.wipe())).toBe(SEC_RC.NotAuthenticated);
    expect(await groupRc(ga.setInterface('smp_serial', 'disabled'))).toBe(SEC_RC.NotAuthenticated);
    expect((await ga.interfaces()).smp_serial).toBe('open');
    await attacker.close();
  }, 30000);

  it('a socket opened after the technician\'s does not inherit it either, nor their challenge', async () => {
    const tech = await connectTcp(dev.addr);
    const gt = new SecurityGroup(tech.client);
    await technicianLogin(gt);
    const attacker = await connectTcp(dev.addr);
    const ga = new SecurityGroup(attacker.client);
    expect(await groupRc(ga.wipe())).toBe(SEC_RC.NotAuthenticated);
    await tech.close();
    await attacker.close();
  }, 30000);
});

import { describe, expect, it } from 'vitest';
import { SEC_RC, SecurityGroup, popMessage } from '../../src/core/groups/security.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { readState } from '../../src/core/groups/image.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import { verifyBundle } from '../../src/core/trust/bundle.ts';
import { appraiseToken } from '../../src/core/trust/eat.ts';
import { ed25519Sign, ed25519Verify } from '../../src/core/trust/ed25519.ts';
import { verifyIdentityCert } from '../../src/core/trust/identity.ts';
import { seal } from '../../src/core/trust/seal.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { type Authorities, createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import type { SecurityOptions } from '../../src/device/security.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';

const fast = { baudRate: 921600 * 20 };
let authorities: Authorities;

async function setup(security: SecurityOptions = {}, auth?: Authorities) {
  authorities = auth ?? authorities ?? (await makeAuthorities());
  const { device, security: sec } = await createSecureDevice(authorities, { bufSize: 256, security });
  const v = createVirtualDevice({ device, model: fast });
  const s = await openSession(v.link);
  return { device, sec, s, g: new SecurityGroup(s.client, sec.groupId), v };
}

/** The secure-session login (key exchange); device refusals surface as the SmpError they were. */
async function login(g: SecurityGroup, devicePub: Uint8Array, a = authorities, credential = a.credential, seed = a.technician.privateKey) {
  let deviceError: unknown;
  const sign = (m: Uint8Array) => ed25519Sign(m, seed);
  const original = g.authenticate.bind(g);
  g.authenticate = (c, sig, o) => original(c, sig, o).catch((e: unknown) => { deviceError = e; throw e; });
  try {
    return await authenticateTechnician(g, devicePub, credential, sign);
  } catch (e) {
    throw deviceError ?? e;
  } finally {
    g.authenticate = original;
  }
}

const config = (a: Authorities, sequence: number, extra: Partial<Parameters<typeof issueConfig>[0]> = {}) =>
  issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence, settings: { interval: 60, name: 'pump-7' }, notAfter: Date.now() + 86400_000, ...extra }, a.owner.privateKey);

describe('security group: identity, possession, attestation', () => {
  it('presents a certificate that chains to the manufacturer and proves possession of the certified key', async () => {
    const { g, s } = await setup();
    const id = await g.identity();
    expect(id.serial).toBe('FB-0001');
    const cert = await g.certificate();
    expect(cert.length).toBe(id.certLength);
    expect(cert.length).toBeGreaterThan(s.params.bufSize - 40); // moved in chunks
    const bundle = await verifyBundle(authorities.bundle, { ownerKeys: [authorities.owner.publicKey] });
    expect(bundle.ok).toBe(true);
    if (!bundle.ok) return;
    const v = await verifyIdentityCert(cert, bundle.value, Date.now(), { devicePublicKey: id.devicePublicKey, serial: id.serial });
    expect(v.ok).toBe(true);
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const sig = await g.prove(nonce);
    expect(await ed25519Verify(sig, popMessage(nonce), id.devicePublicKey)).toBe(true);
    expect(await ed25519Verify(sig, popMessage(crypto.getRandomValues(new Uint8Array(32))), id.devicePublicKey)).toBe(false);
    await s.close();
  });

  it('a device told to use the wrong key fails proof of possession', async () => {
    const { g, s } = await setup({ misbehave: { wrongKey: true } });
    const id = await g.identity();
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    expect(await ed25519Verify(await g.prove(nonce), popMessage(nonce), id.devicePublicKey)).toBe(false);
    await s.close();
  });

  it('issues a fresh signed EAT that appraises trusted, and each misbehaviour is caught', async () => {
    for (const [mis, expectVerdict, check] of [
      [{}, 'trusted', null],
      [{ wrongKey: true }, 'untrusted', 'signature'],
      [{ debugUnlocked: true }, undefined, 'debug'],
      [{ unknownFirmware: true }, 'untrusted', 'measurements'],
      [{ staleNonce: true }, 'untrusted', 'nonce'],
    ] as const) {
      const { g, s, device } = await setup({ misbehave: mis, interfaces: { smp_serial: 'authenticated', shell: 'disabled', debug: 'disabled' } });
      const id = await g.identity();
      const firmware = device.firmware();
      const refs = firmware.map((f) => ({ sha256: toHex(f.sha256), version: f.version, model: 'fieldbench-ref' }));
      if ('staleNonce' in mis) await g.attest(crypto.getRandomValues(new Uint8Array(32)));
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const token = await g.attest(nonce);
      const a = await appraiseToken(token, { devicePublicKey: id.devicePublicKey, expectedNonce: nonce, referenceMeasurements: refs, revokedKeyIds: new Set() });
      if (expectVerdict) expect(a.verdict, JSON.stringify(a.reasons)).toBe(expectVerdict);
      else expect(a.verdict).not.toBe('trusted');
      if (check) expect(a.reasons.find((r) => r.check === check)?.result).not.toBe('pass');
      await s.close();
    }
  });

  it('pages through the event log in order of its monotonic counter', async () => {
    const { g, s, sec } = await setup();
    for (let i = 0; i < 40; i++) sec.log('tamper', `case opened ${i}`);
    // the device shows its log only inside a session (attest or configure)
    await expect(g.allEvents()).rejects.toMatchObject({ kind: 'group', rc: SEC_RC.NotAuthenticated });
    await login(g, sec.devicePublicKey);
    const all = await g.allEvents();
    expect(all.length).toBe(sec.eventLog().length);
    expect(all.map((e) => e.n)).toEqual([...all.map((e) => e.n)].sort((a, b) => a - b));
    expect(new Set(all.map((e) => e.n)).size).toBe(all.length);
    await s.close();
  });
});

describe('security group: access, configuration, wipe', () => {
  it('authenticates a technician with an owner-issued credential and a signed challenge', async () => {
    const { g, s, device, sec } = await setup();
    const id = await g.identity();
    const r = await login(g, id.devicePublicKey);
    expect(r.technician).toBe('tech-001');
    expect(r.permissions).toContain('configure');
    // A signature by a key other than the credential's fails on the device, and is counted.
    const other = await makeAuthorities();
    await expect(login(g, id.devicePublicKey, authorities, authorities.credential, other.technician.privateKey)).rejects.toMatchObject({ kind: 'group', rc: 3 });
    expect(sec.eventLog().some((e) => e.type === 'auth-failure')).toBe(true);
    expect(device.bootCount).toBe(1);
    await s.close();
  });

  it('locks out after repeated failures', async () => {
    const { g, s } = await setup({ maxAuthFailures: 3, lockoutMs: 60000 });
    const forged = await makeAuthorities(); // another owner: credential not trusted by the device
    const id = await g.identity();
    for (let i = 0; i < 3; i++) await expect(login(g, id.devicePublicKey, forged)).rejects.toMatchObject({ rc: 3 });
    await expect(login(g, id.devicePublicKey)).rejects.toMatchObject({ rc: 9 });
    await s.close();
  });

  it('applies only authorized, fresh, targeted configurations, and reports sequence and digest', async () => {
    const { g, s } = await setup();
    const id = await g.identity();
    await expect(g.applyConfig(await config(authorities, 1))).rejects.toMatchObject({ rc: 1 }); // not authenticated
    await login(g, id.devicePublicKey);
    const r = await g.applyConfig(await config(authorities, 5));
    expect(r.sequence).toBe(5);
    expect((await g.readConfig()).settings).toEqual({ interval: 60, name: 'pump-7' });
    await expect(g.applyConfig(await config(authorities, 5))).rejects.toMatchObject({ rc: 5 }); // replay
    await expect(g.applyConfig(await config(authorities, 4))).rejects.toMatchObject({ rc: 5 });
    await expect(g.applyConfig(await config(authorities, 6, { target: { kind: 'model', model: 'other' } }))).rejects.toMatchObject({ rc: 4 });
    await expect(g.applyConfig(await config(authorities, 7, { notAfter: Date.now() - 3600_000, notBefore: Date.now() - 7200_000 }))).rejects.toMatchObject({ rc: 6 });
    const other = await makeAuthorities();
    await expect(g.applyConfig(await config(other, 8))).rejects.toMatchObject({ rc: 3 }); // wrong signer
    expect((await g.readConfig()).sequence).toBe(5);
    await s.close();
  });

  it('keeps secrets sealed at rest and refuses secrets sealed to another device', async () => {
    const { g, s, sec } = await setup();
    const id = await g.identity();
    await login(g, id.devicePublicKey);
    const secret = 'correct horse battery staple';
    await g.applyConfig(await config(authorities, 1, { secrets: seal({ wifi_psk: secret }, id.deviceEncKey) }));
    expect(JSON.stringify(sec.storageSnapshot(), (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v))).not.toContain(secret);
    expect(JSON.stringify(await g.readConfig())).not.toContain(secret);
    const otherKey = crypto.getRandomValues(new Uint8Array(32));
    const { x25519 } = await import('@noble/curves/ed25519.js');
    await expect(g.applyConfig(await config(authorities, 2, { secrets: seal({ wifi_psk: secret }, x25519.getPublicKey(otherKey)) }))).rejects.toMatchObject({ rc: 8 });
    await s.close();
  });

  it('a reset at any step of an apply leaves the old or the new configuration, never a mix', async () => {
    for (const step of ['verified', 'staged', 'committed'] as const) {
      let device!: Awaited<ReturnType<typeof setup>>['device'];
      const ctx = await setup({
        applyStep: async (st) => {
          if (st === step && device.bootCount === 1) await device.reboot();
        },
      });
      device = ctx.device;
      const id = await ctx.g.identity();
      await login(ctx.g, id.devicePublicKey);
      await ctx.g.applyConfig(await config(authorities, 1)).catch(() => undefined);
      const after = ctx.sec.activeConfig();
      if (step === 'committed') expect(after?.sequence).toBe(1);
      else expect(after).toBeNull();
      await ctx.s.close();
    }
  });

  it('restricts interfaces and requires permissions for wipe; stock groups stay reachable for params', async () => {
    const limited = await makeAuthorities({ permissions: ['identify', 'attest'] });
    const { g, s } = await setup({}, limited);
    const id = await g.identity();
    await expect(g.setInterface('smp_serial', 'authenticated')).rejects.toMatchObject({ rc: 1 });
    await login(g, id.devicePublicKey, limited);
    await expect(g.setInterface('smp_serial', 'authenticated')).rejects.toMatchObject({ rc: 2 });
    await expect(g.wipe()).rejects.toMatchObject({ rc: 2 });
    await s.close();

    const { g: g2, s: s2, device } = await setup({}, await makeAuthorities());
    const id2 = await g2.identity();
    await login(g2, id2.devicePublicKey);
    expect(await g2.setInterface('smp_serial', 'authenticated')).toMatchObject({ smp_serial: 'authenticated' });
    await s2.close();
    // A new connection without authentication cannot read image state any more.
    const v = createVirtualDevice({ device, model: fast });
    const s3 = await openSession(v.link);
    await expect(readState(s3.client)).rejects.toMatchObject({ kind: 'rc', rc: 11 });
    await s3.close();
  });

  it('refuses an inherited interface name such as toString; it never reaches the attestation', async () => {
    const { g, s } = await setup({}, await makeAuthorities());
    const id = await g.identity();
    await login(g, id.devicePublicKey);
    for (const name of ['toString', '__proto__', 'constructor', 'hasOwnProperty']) {
      await expect(g.setInterface(name, 'disabled')).rejects.toMatchObject({ kind: 'group', rc: 7 });
    }
    expect(Object.keys(await g.interfaces()).sort()).toEqual(['debug', 'shell', 'smp_serial']);
    await s.close();
  });

  it('a credential presented as a configuration is refused as the wrong type, not as a bad signature', async () => {
    const { g, s } = await setup({}, await makeAuthorities());
    const id = await g.identity();
    await login(g, id.devicePublicKey);
    await expect(g.applyConfig(authorities.credential)).rejects.toMatchObject({ kind: 'group', rc: 14 });
    await s.close();
  });
});

describe('security group: attestation nonce', () => {
  it('a nonce of a size no token may carry is refused up front with rc 13 (not rc 1 after the work)', async () => {
    const { g, s } = await setup();
    for (const n of [8, 16, 31, 33, 47, 63]) {
      await expect(g.attest(new Uint8Array(n))).rejects.toMatchObject({ kind: 'group', rc: 13 });
    }
    for (const n of [32, 48, 64]) expect((await g.attest(crypto.getRandomValues(new Uint8Array(n)))).length).toBeGreaterThan(100);
    await s.close();
  });
});

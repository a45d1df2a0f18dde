import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { type AttestState, type EventsState, attestDevice, readSecurityEvents } from '../../src/core/ops/state-awareness/attest.ts';
import { runOp } from '../../src/core/ops/outcome.ts';
import { UNSUPPORTED_REASON } from '../../src/core/ops/identification/identify.ts';
import { recordAttestation } from '../../src/core/ops/record.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { type FieldbenchDB, openStore } from '../../src/core/store/db.ts';
import { exportAudit, verifyAuditExport } from '../../src/core/store/audit.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { artifactDigest } from '../../src/core/trust/bundle.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { FAST, LOCKED_DOWN, type World, makeBundle, world } from '../helpers/identity-world.ts';
import type { SecurityOptions } from '../../src/device/security.ts';

const open: World[] = [];
const dbs: FieldbenchDB[] = [];
async function w(security: SecurityOptions = {}, extra: Omit<Parameters<typeof world>[0] & object, 'security'> = {}) {
  const x = await world({ security: { interfaces: { ...LOCKED_DOWN }, ...security }, ...extra });
  open.push(x);
  return x;
}
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
  for (const d of dbs.splice(0)) {
    d.close();
    await d.delete();
  }
});

async function attest(x: World, ctx: Partial<Parameters<typeof attestDevice>[1]> = {}) {
  const r = await runOp(attestDevice(x.session, { bundle: x.bundle, devicePublicKey: x.sec.devicePublicKey, ...ctx }));
  if (r.kind !== 'done') throw new Error(`expected done, got ${JSON.stringify(r)}`);
  return r;
}
const reason = (r: Awaited<ReturnType<typeof attest>>, check: string) => r.result.appraisal.reasons.find((x) => x.check === check);

describe('attestDevice', () => {
  it('a locked-down genuine device with known firmware is trusted; the states come in order', async () => {
    const x = await w();
    const kinds: AttestState['kind'][] = [];
    let last: AttestState | undefined;
    for await (const s of attestDevice(x.session, { bundle: x.bundle, devicePublicKey: x.sec.devicePublicKey })) {
      kinds.push(s.kind);
      last = s;
    }
    expect(kinds).toEqual(['finding-group', 'requesting-token', 'appraising', 'done']);
    if (last?.kind !== 'done') throw new Error('not done');
    expect(last.result.appraisal.verdict, JSON.stringify(last.result.appraisal.reasons)).toBe('trusted');
    expect(last.result.appraisal.claims).not.toBeNull();
    expect(last.result.nonce.length).toBe(32);
    expect(last.result.evidence.length).toBeGreaterThan(100);
  });

  it('each attestation uses a fresh nonce', async () => {
    const x = await w();
    const a = await attest(x);
    const b = await attest(x);
    expect(Buffer.from(a.result.nonce).equals(Buffer.from(b.result.nonce))).toBe(false);
    expect(b.result.appraisal.verdict).toBe('trusted');
  });

  it('open interfaces give a warning verdict', async () => {
    const x = await w({ interfaces: { smp_serial: 'open', shell: 'open', debug: 'disabled' } });
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('warning');
    expect(reason(r, 'interfaces')).toMatchObject({ result: 'warn', detail: expect.stringContaining('smp_serial') });
  });

  it('wrong key: untrusted, signature fails, no claims', async () => {
    const x = await w({ misbehave: { wrongKey: true } });
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'signature')?.result).toBe('fail');
    expect(r.result.appraisal.claims).toBeNull();
  });

  it('stale nonce: the second token carries the first nonce and is untrusted', async () => {
    const x = await w({ misbehave: { staleNonce: true } });
    await attest(x);
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'nonce')).toMatchObject({ result: 'fail', detail: expect.stringContaining('stale or replayed') });
  });

  it('debug unlocked: untrusted', async () => {
    const x = await w({ misbehave: { debugUnlocked: true } });
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'debug')?.result).toBe('fail');
  });

  it('unknown firmware: untrusted', async () => {
    const x = await w({ misbehave: { unknownFirmware: true } });
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'measurements')).toMatchObject({ result: 'fail', detail: expect.stringContaining('not a known firmware') });
  });

  it('a bundle without reference measurements cannot make firmware trusted', async () => {
    const x = await w();
    const { bundle } = await makeBundle(x.auth, null);
    const r = await attest(x, { bundle });
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'measurements')?.detail).toContain('no reference measurements');
  });

  it('revoked device key in the bundle: untrusted', async () => {
    const x = await w({}, { bundleExtra: (sec) => ({ revocations: { keyIds: [keyId(sec.devicePublicKey)] } }) });
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'revocation')?.result).toBe('fail');
  });

  it('a key other than the verified one: untrusted (never trusted without a verified signature)', async () => {
    const x = await w();
    const other = await w();
    const r = await attest(x, { devicePublicKey: other.sec.devicePublicKey });
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(r.result.appraisal.claims).toBeNull();
    expect(r.result.appraisal.reasons.some((q) => q.check === 'signature' && q.result === 'pass')).toBe(false);
  });

  it('an active configuration the owner did not publish is a warning; a published one passes', async () => {
    const x = await w();
    const cfg = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 1, settings: { interval: 60 }, notAfter: new Date(Date.now() + 86400_000) }, x.auth.owner.privateKey);
    const { SecurityGroup } = await import('../../src/core/groups/security.ts');
    const { authenticateTechnician } = await import('../../src/core/ops/access/login.ts');
    const { ed25519Sign } = await import('../../src/core/trust/ed25519.ts');
    const g = new SecurityGroup(x.session.client, x.sec.groupId);
    await authenticateTechnician(g, x.sec.devicePublicKey, x.auth.credential, (m) => ed25519Sign(m, x.auth.technician.privateKey));
    await g.applyConfig(cfg);
    expect(reason(await attest(x), 'configuration')?.result).toBe('warn');
    const { bundle } = await makeBundle(x.auth, x.device, { configurations: [artifactDigest(cfg)] });
    const r = await attest(x, { bundle });
    expect(reason(r, 'configuration')?.result).toBe('pass');
    expect(r.result.appraisal.verdict).toBe('trusted');
  });

  it('oversized and truncated tokens are untrusted with a clear reason', async () => {
    const x = await w();
    const real = x.sec.attestationToken.bind(x.sec);
    x.sec.attestationToken = async () => new Uint8Array(9000);
    const r = await attest(x);
    expect(r.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r, 'format')?.detail).toContain('more than the 8192-byte limit');
    x.sec.attestationToken = async () => new Uint8Array(20000);
    const r2 = await attest(x);
    expect(r2.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r2, 'format')?.detail).toContain('more than the 16384 accepted');
    x.sec.attestationToken = async (n) => (await real(n)).subarray(0, 150);
    const r3 = await attest(x);
    expect(r3.result.appraisal.verdict).toBe('untrusted');
    expect(reason(r3, 'signature')?.result).toBe('fail');
  });

  it('without a verified device key it refuses to start', async () => {
    const x = await w();
    const r = await runOp(attestDevice(x.session, { bundle: x.bundle, devicePublicKey: undefined as never }));
    expect(r).toMatchObject({ kind: 'failed', code: 'no-verified-identity', retryable: false });
  });

  it('a stock device: unsupported', async () => {
    const v = createVirtualDevice({ model: FAST });
    const s = await openSession(v.link);
    const x = await w();
    const r = await runOp(attestDevice(s, { bundle: x.bundle, devicePublicKey: x.sec.devicePublicKey }));
    expect(r).toEqual({ kind: 'unsupported', reason: UNSUPPORTED_REASON });
    await s.close();
  });
});

describe('readSecurityEvents', () => {
  async function events(x: { session: World['session']; login?: World['login'] }, from?: number, max?: number) {
    const states: EventsState[] = [];
    for await (const s of readSecurityEvents(x.session, { from, max, authenticate: x.login })) states.push(s);
    return states;
  }

  it('the device shows its log only inside a technician\'s session: without a login the op fails not-authenticated (by the device), with one it reads; a credential without attest or configure: permission', async () => {
    const x = await w();
    const refused = await runOp(readSecurityEvents(x.session));
    expect(refused).toMatchObject({ kind: 'failed', code: 'not-authenticated', by: 'device' });
    expect((refused as { reason: string }).reason).toMatch(/logged-in technician/);
    const st: EventsState[] = [];
    for await (const s of readSecurityEvents(x.session, { authenticate: x.login })) st.push(s);
    expect(st.map((s) => s.kind)).toEqual(['finding-group', 'authenticating', 'reading-events', ...st.slice(3).map(() => expect.anything())]);
    expect(st.at(-1)).toMatchObject({ kind: 'done' });
    // Once logged in on this connection, no second login.
    const again: EventsState[] = [];
    for await (const s of readSecurityEvents(x.session, { authenticate: async () => Promise.reject(new Error('not again')) })) again.push(s);
    expect(again.at(-1)).toMatchObject({ kind: 'done' });
    // A credential that grants neither attest nor configure.
    const y = await w();
    const { issueCredential } = await import('../../src/core/trust/credential.ts');
    const { authenticateTechnician } = await import('../../src/core/ops/access/login.ts');
    const { ed25519Sign } = await import('../../src/core/trust/ed25519.ts');
    const narrow = await issueCredential(
      { technicianId: 'tech-wipe', name: 'Wipes only', publicKey: y.auth.technician.publicKey, permissions: ['wipe'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + 86400_000) },
      y.auth.owner.privateKey,
    );
    const p = await runOp(readSecurityEvents(y.session, { authenticate: (g) => authenticateTechnician(g, y.sec.devicePublicKey, narrow, (m) => ed25519Sign(m, y.auth.technician.privateKey)) }));
    expect(p).toMatchObject({ kind: 'failed', code: 'permission', by: 'device' });
  });

  it('pages through the log in counter order, from a given counter', async () => {
    const x = await w();
    for (let i = 0; i < 60; i++) x.sec.log('tamper', `case opened ${i}`);
    const all = await events(x);
    const done = all.at(-1);
    if (done?.kind !== 'done') throw new Error(JSON.stringify(done));
    expect(all.filter((s) => s.kind === 'reading-events').length).toBeGreaterThan(2);
    expect(done.result.events.map((e) => e.n)).toEqual(x.sec.eventLog().map((e) => e.n));
    expect(done.result.last).toBe(x.sec.eventLog().at(-1)!.n);
    expect(done.result.truncated).toBe(false);
    const tail = (await events(x, 50)).at(-1);
    if (tail?.kind !== 'done') throw new Error('not done');
    expect(tail.result.events[0].n).toBe(50);
    expect(tail.result.events.at(-1)!.n).toBe(done.result.last);
    const capped = (await events(x, 0, 10)).at(-1);
    expect(capped).toMatchObject({ kind: 'done', result: { truncated: true } });
  });

  it('a stock device: unsupported', async () => {
    const v = createVirtualDevice({ model: FAST });
    const s = await openSession(v.link);
    expect((await events({ session: s })).at(-1)).toEqual({ kind: 'unsupported', reason: UNSUPPORTED_REASON });
    await s.close();
  });
});

describe('recordAttestation', () => {
  it('records the verdict in the inventory and a signed audit entry in one go', async () => {
    const db = await openStore({ name: `attest-op-${process.pid}` });
    dbs.push(db);
    const tech = await seedSigner('tech-001', crypto.getRandomValues(new Uint8Array(32)));
    const x = await w({ misbehave: { debugUnlocked: true } });
    const r = await attest(x);
    const rec = await recordAttestation({ db, signer: tech }, { device: { serial: 'FB-0001', devicePublicKey: x.sec.devicePublicKey }, appraisal: r.result.appraisal, nonce: r.result.nonce, evidence: r.result.evidence });
    expect(rec.entry).toMatchObject({ op: 'attest', outcome: 'rejected' });
    expect(rec.device).toMatchObject({ serial: 'FB-0001', verdict: 'untrusted' });
    expect((rec.entry.details as { claims: { debugStatus: string } }).claims.debugStatus).toBe('enabled');
    const y = await w();
    const r2 = await attest(y);
    const rec2 = await recordAttestation({ db, signer: tech }, { device: { serial: 'FB-0001', devicePublicKey: x.sec.devicePublicKey }, appraisal: r2.result.appraisal, nonce: r2.result.nonce, evidence: r2.result.evidence });
    expect(rec2.device?.id).toBe(rec.device?.id);
    expect(rec2.device?.verdict).toBe('trusted');
    expect(rec2.device?.firmware).toBeTruthy();
    expect((await verifyAuditExport(await exportAudit(db), [tech.publicKey])).ok).toBe(true);
  });
});

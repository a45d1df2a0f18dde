import 'fake-indexeddb/auto';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type FieldbenchDB } from '../../src/core/store/db.ts';
import { getKeyRecord, listKeyRecords } from '../../src/core/store/artifacts.ts';
import { recordOperation, verifyAuditExport, exportAudit } from '../../src/core/store/audit.ts';
import { DexieKeyBackend, TRUST_STATE_ID, TrustState } from '../../src/core/ops/trust-state.ts';
import { makeAuthorities, type Authorities } from '../../src/device/provisioning.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { TechnicianKeyStore } from '../../src/core/trust/keystore.ts';
import { demoKit } from '../../src/device/demo.ts';
import { runUpdate } from '../../src/core/ops/update/update.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { runIdentify } from '../../src/core/ops/identification/identify.ts';
import { runAttest } from '../../src/core/ops/state-awareness/attest.ts';
import { preflightImage } from '../../src/core/ops/update/preflight.ts';

const DAY = 86400_000;
const te = new TextEncoder();
let db: FieldbenchDB;
let n = 0;
let auth: Authorities;

beforeAll(async () => {
  auth = await makeAuthorities({ bundleVersion: 3 });
});
beforeEach(async () => {
  db = await openStore({ name: `trust-state-${process.pid}-${n++}` });
});
afterEach(() => db.close());

function bundleV(version: number, expires: Date = new Date(Date.now() + 30 * DAY), issued?: Date) {
  return issueBundle(
    {
      version,
      issued,
      expires,
      anchors: { manufacturer: [auth.manufacturer.publicKey], firmware: [auth.firmware.publicKey], owner: [auth.owner.publicKey] },
    },
    auth.owner.privateKey,
  );
}

async function full(ts: TrustState): Promise<void> {
  expect((await ts.importFile('owner.pem', te.encode(publicKeyPem(auth.owner.publicKey)))).ok).toBe(true);
  expect((await ts.importFile('bundle.cbor', auth.bundle)).ok).toBe(true);
  expect((await ts.importFile('cred.cbor', auth.credential)).ok).toBe(true);
  const k = await ts.importFile('tech.pem', te.encode(privateKeyPem(auth.technician.privateKey)), { passphrase: 'correct horse battery' });
  expect(k).toMatchObject({ ok: true, kind: 'key' });
}

describe('TrustState', () => {
  it('refuses the first bundle without a pinned owner key, and one signed by another owner', async () => {
    const ts = new TrustState(db);
    await ts.load();
    const r = await ts.importBundle(auth.bundle);
    expect(r).toMatchObject({ ok: false, code: 'no-owner-key' });
    const other = await makeAuthorities();
    expect((await ts.pinOwnerKey(publicKeyPem(other.owner.publicKey))).ok).toBe(true);
    const r2 = await ts.importBundle(auth.bundle);
    expect(r2.ok).toBe(false);
    expect(ts.snapshot().bundle).toBeNull();
  });

  it('pins the owner key, holds bundle, credential and key, and persists them across a reload', async () => {
    const ts = new TrustState(db);
    await ts.load();
    await full(ts);
    const s = ts.snapshot();
    expect(s.bundle?.value.version).toBe(3);
    expect(s.credential?.status).toEqual({ ok: true });
    expect(s.credential?.value.permissions).toContain('identify');
    expect(s.missing).toEqual([]);
    expect(ts.signer()?.id).toBe('tech-001');

    const again = new TrustState(db);
    const s2 = await again.load();
    expect(s2.pins).toHaveLength(1);
    expect(s2.bundle?.value.version).toBe(3);
    expect(s2.credential?.status.ok).toBe(true);
    expect(s2.key?.id).toBe(s.key?.id);
  });

  it('refuses an older bundle (replay) and an expired one (stale); accepts a newer one under the held anchors', async () => {
    const ts = new TrustState(db);
    await ts.load();
    await full(ts);
    const older = await ts.importBundle(await bundleV(2));
    expect(older).toMatchObject({ ok: false, code: 'replayed' });
    expect((older as { reason: string }).reason).toMatch(/older than the held version 3/);
    const expired = await ts.importBundle(await bundleV(9, new Date(Date.now() - DAY), new Date(Date.now() - 10 * DAY)));
    expect(expired).toMatchObject({ ok: false, code: 'stale' });
    const same = await ts.importBundle(await bundleV(3));
    expect(same).toMatchObject({ ok: false, code: 'replayed' });
    const newer = await ts.importBundle(await bundleV(4));
    expect(newer.ok).toBe(true);
    expect(ts.snapshot().bundle?.value.version).toBe(4);
    // a new owner pin is refused while a bundle is held
    expect(await ts.pinOwnerKey(publicKeyPem(auth.owner.publicKey))).toMatchObject({ ok: false, code: 'held' });
  });

  it('a held bundle that expires later is kept and flagged stale', async () => {
    let now = Date.now();
    const ts = new TrustState(db, { now: () => now });
    await ts.load();
    await full(ts);
    now += 400 * DAY;
    const s = await new TrustState(db, { now: () => now }).load();
    expect(s.bundle?.value.stale).toBe(true);
    expect(s.missing.join(' ')).toMatch(/fresh trust bundle/);
    expect(s.credential?.status.ok).toBe(false);
  });

  it('refuses a credential for another key and a key that is not the credential’s', async () => {
    const ts = new TrustState(db);
    await ts.load();
    await ts.pinOwnerKey(publicKeyPem(auth.owner.publicKey));
    await ts.importBundle(auth.bundle);
    await ts.importCredential(auth.credential);
    const other = await makeAuthorities();
    const r = await ts.importKey(privateKeyPem(other.technician.privateKey), { passphrase: 'correct horse battery' });
    expect(r).toMatchObject({ ok: false, code: 'key-mismatch' });
    const cred2 = await issueCredential(
      { technicianId: 't2', name: 'Other', publicKey: other.technician.publicKey, permissions: ['identify'], models: ['*'], notAfter: new Date(Date.now() + DAY) },
      auth.owner.privateKey,
    );
    await ts.importKey(privateKeyPem(auth.technician.privateKey), { passphrase: 'correct horse battery' });
    expect(await ts.importCredential(cred2)).toMatchObject({ ok: false, code: 'key-mismatch' });
  });

  it('never stores the private key in plaintext; a wrapped key needs the passphrase after reload', async () => {
    const ks = new TechnicianKeyStore(new DexieKeyBackend(db), { mode: 'wrapped' });
    const ts = new TrustState(db, { keyStore: ks });
    await ts.load();
    await full(ts);
    const seedHex = Buffer.from(auth.technician.privateKey).toString('hex');
    for (const r of await listKeyRecords(db)) {
      const dump = JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
      expect(dump).not.toContain(seedHex);
    }
    const again = new TrustState(db, { keyStore: ks });
    const s = await again.load();
    expect(s.keyLocked).toBe(true);
    expect(again.signer()).toBeNull();
    expect(await again.unlock('wrong passphrase!')).toMatchObject({ ok: false, code: 'bad-passphrase' });
    expect((await again.unlock('correct horse battery')).ok).toBe(true);
    const signer = again.signer()!;
    await recordOperation(db, { technician: signer, op: 'identify', device: { serial: 'SN-1' }, outcome: 'ok' });
    const v = await verifyAuditExport(await exportAudit(db), [auth.technician.publicKey]);
    expect(v).toMatchObject({ ok: true, count: 1, authenticated: true });
  }, 120_000); // scrypt N = 2^17 per wrap and unwrap

  it('the key backend ignores the trust-state record; unrecognised files are refused with a reason', async () => {
    const ts = new TrustState(db);
    await ts.load();
    await ts.pinOwnerKey(publicKeyPem(auth.owner.publicKey));
    expect(await getKeyRecord(db, TRUST_STATE_ID)).toBeDefined();
    expect(await new DexieKeyBackend(db).list()).toEqual([]);
    expect(await ts.importFile('x.bin', new Uint8Array([1, 2, 3]))).toMatchObject({ ok: false, code: 'unrecognised' });
    expect(await ts.importFile('priv-as-owner.pem', te.encode('-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n'))).toMatchObject({ ok: false });
  });

  it('loads the DEMO trust: bundle lists the demo firmware, library gets the demo image and configuration, older demo bundle is refused', async () => {
    const kit = await demoKit();
    expect(await demoKit()).toBe(kit); // one per page session
    const ts = new TrustState(db);
    await ts.load();
    const r = await ts.loadDemo(kit.trust, { passphrase: 'demo passphrase' });
    expect(r.ok).toBe(true);
    const s = ts.snapshot();
    expect(s.demo).toBe(true);
    expect(s.missing).toEqual([]);
    expect(s.bundle?.value.firmware).toHaveLength(2);
    const kinds = (await db.artifacts.toArray()).map((a) => a.kind).sort();
    expect(kinds).toEqual(['bundle', 'config', 'credential', 'firmware']);
    expect(await ts.importBundle(kit.olderBundle)).toMatchObject({ ok: false, code: 'replayed' });
  });

  it('the DEMO virtual device verifies under the demo trust: identify verified, attest not untrusted, demo image passes preflight', async () => {
    const kit = await demoKit();
    const ts = new TrustState(db);
    await ts.load();
    await ts.loadDemo(kit.trust, { passphrase: 'demo passphrase' });
    const bundle = ts.heldBundle()!;
    const s = await openSession(createVirtualDevice({ device: kit.device }).link);
    try {
      const id = await runIdentify(s, { bundle });
      expect(id.kind).toBe('done');
      if (id.kind !== 'done') return;
      expect(id.identity.verified).toBe(true);
      const a = await runAttest(s, { bundle, devicePublicKey: id.identity.devicePublicKey!, groupId: id.identity.groupId });
      expect(a.kind).toBe('done');
      if (a.kind !== 'done') return;
      expect(['trusted', 'warning']).toContain(a.appraisal.verdict);
      expect(a.appraisal.reasons.find((r) => r.check === 'measurements')?.result).toBe('pass');
      const img = kit.trust.library.find((l) => l.name.includes('firmware'))!.bytes;
      const rep = await preflightImage(s, img, { trustedKeys: ts.firmwareKeys(), bundle });
      expect(rep.checks.filter((c) => c.result === 'fail')).toEqual([]);
      // After the update, attestation measures the new image and names its signer as the bundle does.
      const done = await runUpdate(s, img, { trustedKeys: ts.firmwareKeys(), bundle, resetSettleMs: 50 }, () => {});
      expect(done.kind).toBe('done');
      const a2 = await runAttest(s, { bundle, devicePublicKey: id.identity.devicePublicKey!, groupId: id.identity.groupId });
      if (a2.kind !== 'done') throw new Error(`attest after update: ${a2.kind}`);
      expect(a2.appraisal.reasons.find((r) => r.check === 'measurements')).toMatchObject({ result: 'pass', detail: expect.stringMatching(/match/) });
      expect(JSON.stringify(a2.appraisal.claims, (_k, v) => (v instanceof Uint8Array ? 'bytes' : v))).toContain('1.1.0');
    } finally {
      await s.close();
    }
  });
});

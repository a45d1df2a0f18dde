import 'fake-indexeddb/auto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, StoreFullError, type FieldbenchDB } from '../../src/core/store/db.ts';
import { describeMeta, detectArtifact, heldBundle, importArtifact, listLibrary, MAX_IMPORT_FILE_BYTES } from '../../src/core/ops/library.ts';
import { classify, describeStoreError, readStorageStatus, requestPersistence } from '../../src/core/ops/storage.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { sha256 } from '@noble/hashes/sha2.js';

const te = new TextEncoder();
let db: FieldbenchDB;
let n = 0;

beforeEach(async () => {
  db = await openStore({ name: `records-library-${process.pid}-${n++}` });
});
afterEach(async () => {
  db.close();
  await db.delete();
});

async function world() {
  const owner = await generateEd25519();
  const fw = await generateEd25519();
  const maker = await generateEd25519();
  const tech = await generateEd25519();
  const body = new Uint8Array(1000).map((_, i) => i * 7);
  const image = (await signImage(body, { key: fw.privateKey, version: '1.2.3', headerSize: 32, padHeader: true })).image;
  const now = Date.now();
  const bundle = await issueBundle(
    {
      version: 3,
      expires: now + 30 * 86400_000,
      anchors: { owner: [owner.publicKey], firmware: [fw.publicKey], manufacturer: [maker.publicKey] },
      firmware: [{ model: 'fieldbench-ref', version: '1.2.3', sha256: sha256(image), securityCounter: 0, signerKid: new Uint8Array(8) }],
    },
    owner.privateKey,
  );
  const credential = await issueCredential(
    { technicianId: 'tech-1', name: 'Ada', publicKey: tech.publicKey, permissions: ['identify'], models: ['*'], notAfter: now + 86400_000 },
    owner.privateKey,
  );
  return { owner, fw, bundle, credential, image };
}

describe('library import', () => {
  it('recognises files without verifying them', async () => {
    const w = await world();
    expect(detectArtifact('b.cbor', w.bundle)).toMatchObject({ ok: true, kind: 'bundle' });
    expect(detectArtifact('c.cbor', w.credential)).toMatchObject({ ok: true, kind: 'credential' });
    expect(detectArtifact('app.bin', w.image)).toMatchObject({ ok: true, kind: 'firmware' });
    expect(detectArtifact('owner.pub.pem', te.encode(publicKeyPem(w.owner.publicKey)))).toMatchObject({ ok: true, kind: 'owner-key' });
    expect(detectArtifact('owner.pem', te.encode(privateKeyPem(w.owner.privateKey)))).toMatchObject({ ok: false, code: 'private-key' });
    expect(detectArtifact('x.txt', te.encode('hello'))).toMatchObject({ ok: false, code: 'unrecognised' });
    expect(detectArtifact('e.bin', new Uint8Array(0))).toMatchObject({ ok: false, code: 'empty' });
    const big = { length: MAX_IMPORT_FILE_BYTES + 1 } as unknown as Uint8Array;
    expect(detectArtifact('big.bin', big)).toMatchObject({ ok: false, code: 'too-large' });
  });

  it('stores a bundle only when it verifies against the owner key, once', async () => {
    const w = await world();
    expect(await importArtifact(db, 'b.cbor', w.bundle, {})).toMatchObject({ ok: false, code: 'no-bundle' });
    const other = await generateEd25519();
    const wrong = await importArtifact(db, 'b.cbor', w.bundle, { ownerKeys: [other.publicKey] });
    expect(wrong.ok).toBe(false);
    expect(await listLibrary(db)).toHaveLength(0);
    const first = await importArtifact(db, 'b.cbor', w.bundle, { ownerKeys: [w.owner.publicKey] });
    expect(first).toMatchObject({ ok: true, kind: 'bundle', created: true });
    const again = await importArtifact(db, 'copy.cbor', w.bundle, { ownerKeys: [w.owner.publicKey] });
    expect(again).toMatchObject({ ok: true, created: false });
    const items = await listLibrary(db);
    expect(items).toHaveLength(1);
    expect(items[0]!.sha256).toBe(Buffer.from(sha256(w.bundle)).toString('hex'));
    expect(items[0]!.meta).toMatchObject({ version: 3 });
    const held = await heldBundle(db, [w.owner.publicKey]);
    expect(held?.version).toBe(3);
    // A bundle signed by some other owner is never held, whatever its version.
    const stranger = await generateEd25519();
    const foreign = await issueBundle({ version: 99, expires: new Date(Date.now() + 86400_000), anchors: { owner: [stranger.publicKey] } }, stranger.privateKey);
    await importArtifact(db, 'foreign.cbor', foreign, { ownerKeys: [stranger.publicKey] });
    expect((await heldBundle(db, [w.owner.publicKey]))?.version).toBe(3);
    expect(await heldBundle(db, [])).toBeNull();
  });

  it('checks credentials and firmware against the held bundle; tampered bytes are refused', async () => {
    const w = await world();
    expect(await importArtifact(db, 'cred.cbor', w.credential, {})).toMatchObject({ ok: false, code: 'no-bundle' });
    await importArtifact(db, 'b.cbor', w.bundle, { ownerKeys: [w.owner.publicKey] });
    const bundle = await heldBundle(db, [w.owner.publicKey]);
    expect(await importArtifact(db, 'cred.cbor', w.credential, { bundle })).toMatchObject({ ok: true, kind: 'credential', created: true });
    const bad = w.credential.slice();
    bad[bad.length - 5] ^= 1;
    const r = await importArtifact(db, 'bad.cbor', bad, { bundle });
    expect(r).toMatchObject({ ok: false, code: 'invalid' });
    // Named by file, said once (issue 14 defect 8: no "rejected (code): ... rejected: ...").
    expect((r as { reason: string }).reason).toMatch(/^bad\.cbor: /);
    expect((r as { reason: string }).reason).not.toMatch(/rejected \(/);
    const fw = await importArtifact(db, 'app.bin', w.image, { bundle });
    expect(fw).toMatchObject({ ok: true, kind: 'firmware' });
    expect((fw as { record: { meta: Record<string, unknown> } }).record.meta).toMatchObject({ version: '1.2.3+0', listed: 'yes', model: 'fieldbench-ref' });
    const badImg = w.image.slice();
    badImg[100] ^= 0xff;
    expect(await importArtifact(db, 'bad.bin', badImg, { bundle })).toMatchObject({ ok: false, code: 'invalid' });
    const foreign = (await signImage(new Uint8Array(64), { key: (await generateEd25519()).privateKey, version: '1.0.0', headerSize: 32, padHeader: true })).image;
    expect(await importArtifact(db, 'foreign.bin', foreign, { bundle })).toMatchObject({ ok: false, code: 'invalid' });
    expect((await listLibrary(db)).map((i) => i.kind).sort()).toEqual(['bundle', 'credential', 'firmware']);
  });
});

describe('storage status', () => {
  it('classifies usage against the quota', () => {
    expect(classify(null, null).level).toBe('unknown');
    expect(classify(10, 100).level).toBe('ok');
    expect(classify(85, 100).level).toBe('low');
    expect(classify(99, 100)).toMatchObject({ level: 'full' });
    expect(classify(99, 100).message).toMatch(/full/);
  });

  it('reads estimate and persistence, reports refusals', async () => {
    const s = await readStorageStatus({ persisted: async () => false, estimate: async () => ({ usage: 2048, quota: 4096 }) });
    expect(s).toMatchObject({ supported: true, persisted: false, usage: 2048, quota: 4096, level: 'ok' });
    expect(s.message).toContain('2.00 KiB of 4.00 KiB');
    expect(await readStorageStatus(undefined)).toMatchObject({ supported: false, level: 'unknown' });
    expect(await requestPersistence({ persist: async () => false })).toMatchObject({ granted: false });
    expect(await requestPersistence({ persist: async () => true })).toMatchObject({ granted: true });
    expect((await requestPersistence({ persist: async () => { throw new Error('nope'); } })).message).toContain('nope');
  });

  it('names quota errors as a full store', () => {
    expect(describeStoreError(new StoreFullError('audit entry')).full).toBe(true);
    const q = Object.assign(new Error('x'), { name: 'QuotaExceededError' });
    expect(describeStoreError({ name: 'AbortError', inner: q })).toMatchObject({ full: true });
    expect(describeStoreError(new Error('other'))).toEqual({ full: false, message: 'other' });
  });
});

describe('library firmware listed in the bundle (issue 14 defect 5)', () => {
  it('an image the bundle lists by its measurement (SHA256 TLV) is listed, with its model', async () => {
    const { validateArtifact } = await import('../../src/core/ops/library.ts');
    const { parseImage, TLV } = await import('../../src/core/trust/mcuboot/parse.ts');
    const { verifyBundle } = await import('../../src/core/trust/bundle.ts');
    const owner = await generateEd25519();
    const fw = await generateEd25519();
    const image = (await signImage(new Uint8Array(500).map((_, i) => i), { key: fw.privateKey, version: '1.1.0', headerSize: 32, padHeader: true })).image;
    const measurement = parseImage(image).tlvs.find((t) => t.type === TLV.SHA256)!.value.slice();
    const bytes = await issueBundle(
      { version: 2, expires: Date.now() + 86400_000, anchors: { owner: [owner.publicKey], firmware: [fw.publicKey], manufacturer: [owner.publicKey] }, firmware: [{ model: 'fieldbench-ref', version: '1.1.0', sha256: measurement, securityCounter: 0, signerKid: new Uint8Array(8) }] },
      owner.privateKey,
    );
    const r = await verifyBundle(bytes, { ownerKeys: [owner.publicKey] });
    if (!r.ok) throw new Error(r.reason);
    const bundle = r.value;
    const v = await validateArtifact('firmware', image, { bundle });
    expect(v).toMatchObject({ ok: true, meta: { model: 'fieldbench-ref', listed: 'yes' } });
  });
});

describe('library details in words (issue 14: no raw keys, dates local)', () => {
  it('labels, the local calendar date, short hex with the full value kept, a sequence as #N', () => {
    const notAfter = '2027-12-03T08:54:12.000Z';
    const d = new Date(notAfter);
    const local = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const digest = 'ab'.repeat(32);
    const rows = describeMeta({ target: 'model fieldbench-ref', sequence: 1, notAfter, digest, permissions: 'identify attest', backup: 'snapshot', odd: 'kept' });
    expect(rows).toEqual([
      { key: 'target', label: 'for', value: 'model fieldbench-ref' },
      { key: 'sequence', label: 'configuration', value: '#1' },
      { key: 'notAfter', label: 'valid until', value: local, full: notAfter },
      { key: 'digest', label: 'digest', value: `${'ab'.repeat(8)}…`, full: digest },
      { key: 'permissions', label: 'may', value: 'identify, attest' },
      { key: 'backup', label: 'backup', value: 'the settings as read from the device' },
      { key: 'odd', label: 'odd', value: 'kept' },
    ]);
    expect(describeMeta(undefined)).toEqual([]);
  });
});

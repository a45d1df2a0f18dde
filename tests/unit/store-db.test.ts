import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { FieldbenchDB, openStore, SCHEMA_VERSION, StoreFullError, AppendOnlyError, isQuotaError } from '../../src/core/store/db.ts';
import { addDevices, findByIdentifier, search, upsertDevice } from '../../src/core/store/inventory.ts';
import { putArtifact, addBackup, latestBackup, getArtifact, putKeyRecord, getKeyRecord, ARTIFACT_LIMITS, deleteArtifact } from '../../src/core/store/artifacts.ts';
import { recordOperation } from '../../src/core/store/audit.ts';
import { seedSigner } from '../../src/core/store/sig.ts';

let n = 0;
const open: FieldbenchDB[] = [];
const fresh = (name = `db-test-${process.pid}-${++n}`) => name;
afterEach(async () => {
  for (const db of open.splice(0)) {
    db.close();
    await db.delete();
  }
});

const quota = () => new DOMException('The quota has been exceeded.', 'QuotaExceededError');
const KEY = 'AB'.repeat(32);

describe('schema migration v1 -> v2', () => {
  it('upgrades v1 data: normalises identifiers, flattens the verdict, builds the ids and audit indexes', async () => {
    const name = fresh();
    const v1 = new FieldbenchDB({ name, version: 1 });
    await v1.open();
    expect(v1.verno).toBe(1);
    await v1.devices.bulkAdd([
      { serial: ' SN-1 ', devicePublicKey: KEY, mac: 'AA:BB:CC:DD:EE:01', model: 'nrf52', firmware: '1.0.0', attestation: { verdict: 'verified', time: 5 }, lastSeen: 100 } as never,
      { serial: 'SN-2', devEui: '70-B3-D5-7E-D0-00-00-01', ueid: 'zz-not-hex', lastSeen: 200 } as never,
    ]);
    await v1.audit.add({ seq: 1, time: 1, device: { serial: 'SN-1', mac: 'AA-BB-CC-DD-EE-01' }, op: 'identify' } as never);
    // v1 has no `ids` index
    await expect(v1.devices.where('ids').equals('serial:SN-1').toArray()).rejects.toThrow();
    v1.close();

    const db = await openStore({ name });
    open.push(db);
    expect(db.verno).toBe(SCHEMA_VERSION);
    const [a, b] = await db.devices.orderBy('id').toArray();
    expect(a.serial).toBe('SN-1');
    expect(a.devicePublicKey).toBe('ab'.repeat(32));
    expect(a.mac).toBe('aabbccddee01');
    expect(a.verdict).toBe('verified');
    expect(a.verdictTime).toBe(5);
    expect((a as unknown as { attestation?: unknown }).attestation).toBeUndefined();
    expect(a.firstSeen).toBe(100);
    expect(a.ids).toEqual(['serial:SN-1', 'key:' + 'ab'.repeat(32), 'mac:aabbccddee01']);
    expect(b.devEui).toBe('70b3d57ed0000001');
    expect(b.ueid).toBeUndefined();
    expect(b.invalid).toEqual({ ueid: 'zz-not-hex' });
    // new indexes answer
    expect((await findByIdentifier(db, 'aa:bb:cc:dd:ee:01')).map((r) => r.serial)).toEqual(['SN-1']);
    expect((await findByIdentifier(db, '70B3D57ED0000001')).map((r) => r.serial)).toEqual(['SN-2']);
    expect((await search(db, '', { verdict: 'verified' })).map((r) => r.serial)).toEqual(['SN-1']);
    const [entry] = await db.audit.where('deviceIds').equals('mac:aabbccddee01').toArray();
    expect(entry.seq).toBe(1);
  });
});

describe('append-only audit table', () => {
  it('refuses update and delete of audit entries', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    await db.audit.add({ seq: 1 } as never);
    await expect(db.audit.update(1, { op: 'wipe' })).rejects.toThrow(AppendOnlyError);
    await expect(db.audit.delete(1)).rejects.toThrow(AppendOnlyError);
    expect(await db.audit.count()).toBe(1);
  });
});

describe('quota / full disk', () => {
  it('recognises the wrapped forms', () => {
    expect(isQuotaError(quota())).toBe(true);
    expect(isQuotaError({ name: 'AbortError', inner: quota() })).toBe(true);
    expect(isQuotaError({ name: 'BulkError', failures: [new Error('x'), quota()] })).toBe(true);
    expect(isQuotaError({ name: 'BulkError', failures: { 3: quota() } })).toBe(true);
    expect(isQuotaError(new Error('QuotaExceededError'))).toBe(false);
    expect(isQuotaError({ name: 'ConstraintError' })).toBe(false);
  });

  it('a quota failure in the inventory write of an operation leaves neither audit entry nor device', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    const signer = await seedSigner('tech-1', new Uint8Array(32).fill(7));
    db.devices.hook('creating', () => {
      throw quota();
    });
    const err = await recordOperation(db, { technician: signer, op: 'identify', outcome: 'ok' }, { serial: 'SN-9' }).catch((e) => e);
    expect(err).toBeInstanceOf(StoreFullError);
    expect(err.message).toMatch(/nothing was half-written/);
    expect(await db.audit.count()).toBe(0);
    expect(await db.devices.count()).toBe(0);
  });

  it('a bulk import failing part-way with quota stores none of it', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    let calls = 0;
    db.devices.hook('creating', () => {
      if (++calls === 3) throw quota();
    });
    const err = await addDevices(db, [1, 2, 3, 4].map((i) => ({ serial: `S${i}` }))).catch((e) => e);
    expect(err).toBeInstanceOf(StoreFullError);
    expect(calls).toBe(3);
    expect(await db.devices.count()).toBe(0);
  });

  it('a backup whose record write hits the quota leaves no orphan artifact', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    db.backups.hook('creating', () => {
      throw quota();
    });
    const err = await addBackup(db, { deviceId: 1, device: { serial: 'S' }, reason: 'before configure', config: new Uint8Array([1, 2]) }, () => ({ ok: true })).catch((e) => e);
    expect(err).toBeInstanceOf(StoreFullError);
    expect(await db.artifacts.count()).toBe(0);
    expect(await db.backups.count()).toBe(0);
  });

  it('passes other errors through unchanged', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    db.devices.hook('creating', () => {
      throw new RangeError('boom');
    });
    await expect(upsertDevice(db, { serial: 'X' })).rejects.toThrow(/boom/);
  });
});

describe('artifacts, backups, key records', () => {
  const okValidator = () => ({ ok: true as const, meta: { version: '1.2.3' } });

  it('stores content-addressed artifacts once, after validation', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    const bytes = new TextEncoder().encode('abc');
    const r1 = await putArtifact(db, 'config', bytes, okValidator, { now: 1 });
    expect(r1.created).toBe(true);
    expect(r1.record.sha256).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(r1.record.meta).toEqual({ version: '1.2.3' });
    const r2 = await putArtifact(db, 'config', bytes.slice(), okValidator, { now: 2 });
    expect(r2.created).toBe(false);
    expect(r2.record.added).toBe(1);
    expect(await db.artifacts.count()).toBe(1);
    expect((await getArtifact(db, r1.record.sha256.toUpperCase()))?.bytes).toEqual(bytes);
    await expect(putArtifact(db, 'firmware', bytes, okValidator)).rejects.toMatchObject({ code: 'kind-mismatch' });
  });

  it('rejects invalid, empty and oversized artifacts without storing them', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    await expect(putArtifact(db, 'bundle', new Uint8Array([1]), () => ({ ok: false, code: 'expired', reason: 'bundle expired' }))).rejects.toMatchObject({
      code: 'invalid',
      message: expect.stringMatching(/expired/),
    });
    await expect(
      putArtifact(db, 'bundle', new Uint8Array([1]), () => {
        throw new Error('validator crashed');
      }),
    ).rejects.toMatchObject({ code: 'invalid' });
    await expect(putArtifact(db, 'identity', new Uint8Array(0), okValidator)).rejects.toMatchObject({ code: 'empty' });
    let called = false;
    await expect(
      putArtifact(db, 'identity', new Uint8Array(ARTIFACT_LIMITS.identity + 1), () => {
        called = true;
        return { ok: true };
      }),
    ).rejects.toMatchObject({ code: 'too-large' });
    expect(called).toBe(false);
    await expect(putArtifact(db, 'weird' as never, new Uint8Array(1), okValidator)).rejects.toMatchObject({ code: 'unknown-kind' });
    expect(await db.artifacts.count()).toBe(0);
  });

  it('keeps configuration backups and protects referenced artifacts', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    const dev = await upsertDevice(db, { serial: 'SN-1' });
    await addBackup(db, { deviceId: dev.id!, device: { serial: 'SN-1' }, reason: 'before configure', configSeq: 3, config: new Uint8Array([3]), taken: 10 }, okValidator);
    const b2 = await addBackup(db, { deviceId: dev.id!, device: { serial: 'SN-1' }, reason: 'before update', configSeq: 4, config: new Uint8Array([4]), taken: 20 }, okValidator);
    const latest = await latestBackup(db, dev.id!);
    expect(latest?.backup.id).toBe(b2.id);
    expect(latest?.config).toEqual(new Uint8Array([4]));
    await expect(deleteArtifact(db, b2.artifact)).rejects.toMatchObject({ code: 'referenced' });
  });

  it('stores opaque key records', async () => {
    const db = await openStore({ name: fresh() });
    open.push(db);
    await putKeyRecord(db, { id: 'k1', created: 5, record: { wrapped: new Uint8Array([1, 2]) } });
    expect(await getKeyRecord(db, 'k1')).toEqual({ id: 'k1', created: 5, record: { wrapped: new Uint8Array([1, 2]) } });
  });
});

import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type IdentifyState,
  type InventoryLookup,
  UNSUPPORTED_REASON,
  identifyDevice,
  parseLabelCode,
  runIdentify,
} from '../../src/core/ops/identification/identify.ts';
import { inventoryLookup, recordIdentification } from '../../src/core/ops/record.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { type FieldbenchDB, openStore } from '../../src/core/store/db.ts';
import { verifyAuditExport, exportAudit } from '../../src/core/store/audit.ts';
import { findByIdentifier, upsertDevice } from '../../src/core/store/inventory.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { issueIdentity } from '../../src/core/trust/identity.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { makeAuthorities } from '../../src/device/provisioning.ts';
import { installSecurity } from '../../src/device/security.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { FAST, type World, makeBundle, world } from '../helpers/identity-world.ts';
import { toHex } from '../../src/core/base/bytes.ts';

const open: World[] = [];
const dbs: FieldbenchDB[] = [];
async function w(...a: Parameters<typeof world>) {
  const x = await world(...a);
  open.push(x);
  return x;
}
let n = 0;
async function db(): Promise<FieldbenchDB> {
  const d = await openStore({ name: `identify-op-${process.pid}-${++n}` });
  dbs.push(d);
  return d;
}
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
  for (const d of dbs.splice(0)) {
    d.close();
    await d.delete();
  }
});

const noDuplicates: InventoryLookup = { findByIdentifier: async () => [] };

async function done(x: World, ctx: Partial<Parameters<typeof identifyDevice>[1]> = {}) {
  const r = await runIdentify(x.session, { bundle: x.bundle, inventory: noDuplicates, ...ctx });
  if (r.kind !== 'done') throw new Error(`expected done, got ${JSON.stringify(r)}`);
  return r;
}
const check = (r: Awaited<ReturnType<typeof done>>, name: string) => r.checks.find((c) => c.check === name);

describe('identifyDevice', () => {
  it('a genuine device: every state in order, verified, label and inventory agree', async () => {
    const x = await w({ security: { mac: Uint8Array.from([0, 0x11, 0x22, 0x33, 0x44, 0x55]), devEui: Uint8Array.from([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1]) } });
    const states: IdentifyState['kind'][] = [];
    let last: IdentifyState | undefined;
    for await (const s of identifyDevice(x.session, { bundle: x.bundle, inventory: noDuplicates, label: { serial: 'FB-0001', mac: '00:11:22:33:44:55', devEui: '70-B3-D5-7E-D0-00-00-01' } })) {
      states.push(s.kind);
      last = s;
    }
    expect(states).toEqual(['finding-group', 'reading-identity', 'reading-certificate', 'verifying-certificate', 'proving-possession', 'comparing-label', 'checking-duplicates', 'done']);
    if (last?.kind !== 'done') throw new Error('not done');
    expect(last.badges).toEqual(['verified']);
    expect(last.checks.map((c) => [c.check, c.result])).toEqual([
      ['certificate', 'pass'],
      ['binding', 'pass'],
      ['possession', 'pass'],
      ['label', 'pass'],
      ['duplicates', 'pass'],
    ]);
    expect(last.identity.verified).toBe(true);
    expect(last.identity.devicePublicKey).toEqual(x.sec.devicePublicKey);
    expect(last.identity.certificate?.serial).toBe('FB-0001');
    expect(last.identity.groupId).toBe(x.sec.groupId);
  });

  it('without label or inventory: verified, with both checks as warnings', async () => {
    const x = await w();
    const r = await done(x, { inventory: undefined });
    expect(r.badges).toEqual(['verified']);
    expect(check(r, 'label')).toMatchObject({ result: 'warn', detail: expect.stringContaining('no label') });
    expect(check(r, 'duplicates')).toMatchObject({ result: 'warn', detail: expect.stringContaining('no inventory') });
  });

  it('wrong key: the device cannot sign a fresh nonce with the certified key', async () => {
    const x = await w({ security: { misbehave: { wrongKey: true } } });
    const r = await done(x);
    expect(r.badges).toEqual(['unverified']);
    expect(check(r, 'certificate')?.result).toBe('pass');
    expect(check(r, 'possession')).toMatchObject({ result: 'fail', detail: expect.stringContaining('does not hold that key') });
    expect(r.identity.devicePublicKey).toBeUndefined();
  });

  it('proof of possession uses a fresh nonce each time', async () => {
    const x = await w();
    const seen: Uint8Array[] = [];
    const orig = x.session.client.write.bind(x.session.client);
    x.session.client.write = ((g: number, id: number, body: Record<string, unknown>, o?: unknown) => {
      if (id === 2 && body.nonce instanceof Uint8Array) seen.push(body.nonce);
      return orig(g, id, body, o as never);
    }) as typeof x.session.client.write;
    await done(x);
    await done(x);
    expect(seen.length).toBe(2);
    expect(seen[0].length).toBe(32);
    expect(toHex(seen[0])).not.toBe(toHex(seen[1]));
  });

  it('forged certificate: signed by a manufacturer the bundle does not trust', async () => {
    const forger = await makeAuthorities();
    const x = await w();
    const { bundle } = await makeBundle(forger, x.device); // the device's cert is from the real manufacturer
    const r = await done(x, { bundle });
    expect(r.badges).toEqual(['unverified']);
    expect(check(r, 'certificate')?.result).toBe('fail');
    expect(check(r, 'binding')).toBeUndefined();
    expect(r.identity.certificate).toBeUndefined();
  });

  it('expired certificate (judged at the given time)', async () => {
    const x = await w();
    const d = (days: number) => new Date(Date.now() + days * 86400_000);
    x.sec.setIdentityCert(
      await issueIdentity({ serial: 'FB-0001', model: 'fieldbench-ref', hwRev: 'rev-b', ueid: x.sec.chipUid, devicePublicKey: x.sec.devicePublicKey, deviceEncKey: x.sec.se.encPublicKey, notBefore: d(-1), notAfter: d(30) }, x.auth.manufacturer.privateKey),
    );
    expect((await done(x)).badges).toEqual(['verified']);
    const r = await done(x, { now: d(31) });
    expect(check(r, 'certificate')).toMatchObject({ result: 'fail', code: 'expired' });
    expect(r.badges).toEqual(['unverified']);
  });

  it('revoked device key, and revoked certificate serial', async () => {
    const x = await w({ bundleExtra: (sec) => ({ revocations: { keyIds: [keyId(sec.devicePublicKey)] } }) });
    const r = await done(x);
    expect(check(r, 'certificate')).toMatchObject({ result: 'fail', code: 'revoked' });
    expect(r.badges).toEqual(['unverified']);

    const y = await w();
    const cert = (await runIdentify(y.session, { bundle: y.bundle })) as Extract<IdentifyState, { kind: 'done' }>;
    const { bundle } = await makeBundle(y.auth, y.device, { revocations: { certSerials: [cert.identity.certificate!.certSerial] } });
    const r2 = await done(y, { bundle });
    expect(check(r2, 'certificate')).toMatchObject({ result: 'fail', code: 'revoked' });
  });

  it('a certificate of another device (copied) fails binding and possession', async () => {
    const x = await w();
    const other = await w();
    other.sec.setIdentityCert(x.sec.identityCert!);
    const r = await done(other);
    expect(check(r, 'certificate')?.result).toBe('pass');
    expect(check(r, 'binding')).toMatchObject({ result: 'fail', detail: expect.stringContaining('certifies') });
    expect(check(r, 'possession')?.result).toBe('fail');
    expect(r.badges).toEqual(['unverified']);
  });

  it('a device reporting another serial than its certificate fails binding', async () => {
    const x = await w();
    x.sec.opts.serial = 'FB-9999';
    const r = await done(x);
    expect(check(r, 'binding')).toMatchObject({ result: 'fail', detail: expect.stringContaining('"FB-9999"') });
    expect(r.badges).toEqual(['unverified']);
  });

  it('an expired certificate issued properly is rejected, one issued for other identifiers too', async () => {
    const x = await w();
    x.sec.setIdentityCert(
      await issueIdentity(
        { serial: 'FB-0001', model: 'fieldbench-ref', hwRev: 'rev-b', ueid: x.sec.chipUid, devicePublicKey: x.sec.devicePublicKey, deviceEncKey: x.sec.se.encPublicKey, notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) },
        x.auth.manufacturer.privateKey,
      ),
    );
    expect(check(await done(x), 'certificate')).toMatchObject({ result: 'fail', code: 'expired' });
    x.sec.setIdentityCert(
      await issueIdentity(
        { serial: 'FB-0001', model: 'fieldbench-ref', hwRev: 'rev-b', ueid: x.sec.chipUid, mac: Uint8Array.from([2, 0, 0, 0, 0, 1]), devicePublicKey: x.sec.devicePublicKey, deviceEncKey: x.sec.se.encPublicKey, notAfter: new Date(Date.now() + 86400_000) },
        x.auth.manufacturer.privateKey,
      ),
    );
    expect(check(await done(x), 'binding')).toMatchObject({ result: 'fail', detail: expect.stringContaining('MAC') });
  });

  it('label mismatch: verified but not the labelled device', async () => {
    const x = await w({ security: { mac: Uint8Array.from([0, 0x11, 0x22, 0x33, 0x44, 0x55]) } });
    const r = await done(x, { label: { serial: 'FB-0002' } });
    expect(r.badges).toEqual(['verified', 'label-mismatch']);
    expect(check(r, 'label')).toMatchObject({ result: 'fail', detail: expect.stringContaining('"FB-0002"') });
    const r2 = await done(x, { label: { serial: 'FB-0001', mac: '00:11:22:33:44:56' } });
    expect(r2.badges).toEqual(['verified', 'label-mismatch']);
    const r3 = await done(x, { label: { mac: 'not a mac' } });
    expect(check(r3, 'label')).toMatchObject({ result: 'fail', detail: expect.stringContaining('not valid') });
    const r4 = await done(x, { label: { devEui: '70b3d57ed0000001' } });
    expect(check(r4, 'label')).toMatchObject({ result: 'fail', detail: expect.stringContaining('reports none') });
    const r5 = await done(x, { label: { serial: 'fb-0001' } });
    expect(check(r5, 'label')).toMatchObject({ result: 'fail', detail: expect.stringContaining('letter case') });
  });

  it('duplicates against the inventory: this key under another serial, this serial with another key', async () => {
    const store = await db();
    const x = await w({ security: { mac: Uint8Array.from([0, 0x11, 0x22, 0x33, 0x44, 0x55]) } });
    const inventory = inventoryLookup(store);
    expect((await done(x, { inventory })).badges).toEqual(['verified']);
    // The same device key recorded under another physical serial: a clone.
    await upsertDevice(store, { serial: 'FB-0777', devicePublicKey: x.sec.devicePublicKey });
    const r = await done(x, { inventory });
    expect(r.badges).toEqual(['verified', 'duplicate']);
    expect(check(r, 'duplicates')?.detail).toContain('"FB-0777"');

    const store2 = await db();
    await upsertDevice(store2, { serial: 'FB-0001', devicePublicKey: '33'.repeat(32) });
    const r2 = await done(x, { inventory: inventoryLookup(store2) });
    expect(r2.badges).toEqual(['verified', 'duplicate']);
    expect(check(r2, 'duplicates')?.detail).toContain('serial "FB-0001" is recorded with device key 3333');

    // A MAC recorded under another serial is a duplicate; a different MAC under this serial only a warning.
    const store3 = await db();
    await upsertDevice(store3, { serial: 'FB-0500', mac: '001122334455' });
    expect((await done(x, { inventory: inventoryLookup(store3) })).badges).toEqual(['verified', 'duplicate']);
    const store4 = await db();
    await upsertDevice(store4, { serial: 'FB-0001', devicePublicKey: x.sec.devicePublicKey, mac: '0011223344ff' });
    const r4 = await done(x, { inventory: inventoryLookup(store4) });
    expect(r4.badges).toEqual(['verified']);
    expect(check(r4, 'duplicates')).toMatchObject({ result: 'warn', detail: expect.stringContaining('rotated') });
  });

  it('a stock device without the group: unsupported (enum details, list only, and no enum)', async () => {
    for (const opts of [{}, { enumDetails: false }]) {
      const v = createVirtualDevice({ model: FAST, ...opts });
      const s = await openSession(v.link);
      const { bundle } = await makeBundle((await world()).auth, null);
      const r = await runIdentify(s, { bundle });
      expect(r).toEqual({ kind: 'unsupported', reason: UNSUPPORTED_REASON });
      await s.close();
    }
    const dev = new ReferenceDevice();
    dev.groups.delete(10); // no Enum group at all: the probe of the default id answers rc 8
    const v = createVirtualDevice({ model: FAST, device: dev });
    const s = await openSession(v.link);
    const { bundle } = await makeBundle((await world()).auth, null);
    expect((await runIdentify(s, { bundle })).kind).toBe('unsupported');
    await s.close();
  });

  it("another application's group at the default id is not taken for ours", async () => {
    const dev = new ReferenceDevice();
    let asked = 0;
    dev.registerGroup({ id: 96, name: 'vendor_x', read: { 0: () => (asked++, { hello: 'world' }) }, write: {} } as never);
    const v = createVirtualDevice({ model: FAST, device: dev });
    const s = await openSession(v.link);
    const { bundle } = await makeBundle((await world()).auth, null);
    expect((await runIdentify(s, { bundle })).kind).toBe('unsupported');
    expect(asked).toBe(0);
    const dev2 = new ReferenceDevice({ enumDetails: false });
    dev2.registerGroup({ id: 96, name: 'vendor_x', read: { 0: () => (asked++, { hello: 'world' }) }, write: {} } as never);
    const s2 = await openSession(createVirtualDevice({ model: FAST, device: dev2 }).link);
    expect((await runIdentify(s2, { bundle })).kind).toBe('unsupported'); // probed: a reply without our fields
    expect(asked).toBe(1);
    await s.close();
    await s2.close();
  });

  it('finds the group by probing when the device lists ids without names', async () => {
    const x = await w({ enumDetails: false });
    expect((await done(x)).badges).toEqual(['verified']);
  });

  it('a factory-fresh device has no identity: identify says so instead of guessing', async () => {
    const device = new ReferenceDevice({ bufSize: 256 });
    await installSecurity(device, {});
    const v = createVirtualDevice({ model: FAST, device });
    const s = await openSession(v.link);
    const { bundle } = await makeBundle((await world()).auth, null);
    const r = await runIdentify(s, { bundle });
    expect(r).toMatchObject({ kind: 'error', message: expect.stringContaining('factory-fresh') });
    await s.close();
  });

  it('truncated and oversized certificates are rejected with a clear reason', async () => {
    const x = await w();
    const cert = x.sec.identityCert!;
    x.sec.setIdentityCert(cert.subarray(0, cert.length - 7));
    const r = await done(x);
    expect(check(r, 'certificate')?.result).toBe('fail');
    expect(check(r, 'certificate')?.detail.length).toBeGreaterThan(10);
    x.sec.setIdentityCert(new Uint8Array(20000));
    const r2 = await done(x);
    expect(check(r2, 'certificate')).toMatchObject({ result: 'fail', detail: expect.stringContaining('more than the 16384 accepted') });
    expect(r2.badges).toEqual(['unverified']);
  });

  it('a link that dies mid-way ends in an error state', async () => {
    const x = await w();
    const states: IdentifyState[] = [];
    for await (const s of identifyDevice(x.session, { bundle: x.bundle })) {
      states.push(s);
      if (s.kind === 'reading-certificate') await x.session.link.close();
    }
    expect(states.at(-1)?.kind).toBe('error');
  });
});

describe('recordIdentification', () => {
  it('writes a signed audit entry and the inventory update together; unverified devices are audited only', async () => {
    const store = await db();
    const tech = await seedSigner('tech-001', crypto.getRandomValues(new Uint8Array(32)));
    const x = await w();
    const r = await done(x, { label: { serial: 'FB-0001' } });
    const rec = await recordIdentification({ db: store, signer: tech }, r.identity);
    expect(rec.entry.op).toBe('identify');
    expect(rec.entry.outcome).toBe('ok');
    expect(rec.device?.serial).toBe('FB-0001');
    expect(rec.device?.verdict).toBe('verified');
    expect(rec.entry.details?.badges).toEqual(['verified']);

    const bad = await w({ security: { misbehave: { wrongKey: true }, serial: 'FB-0002' } });
    const rb = await done(bad);
    const rec2 = await recordIdentification({ db: store, signer: tech }, rb.identity);
    expect(rec2.entry.outcome).toBe('rejected');
    expect(rec2.device).toBeUndefined();
    expect(await findByIdentifier(store, { kind: 'serial', value: 'FB-0002' })).toEqual([]);

    const x2 = await w({ security: { serial: 'FB-0003' } });
    const rm = await done(x2, { label: { serial: 'FB-0004' } });
    const rec3 = await recordIdentification({ db: store, signer: tech }, rm.identity);
    expect(rec3.entry.outcome).toBe('attention');
    expect(rec3.device).toMatchObject({ serial: 'FB-0003', verdict: 'label-mismatch', label: 'serial FB-0004' });

    const v = await verifyAuditExport(await exportAudit(store), [tech.publicKey]);
    expect(v.ok).toBe(true);
  });
});

describe('parseLabelCode', () => {
  it('reads plain serials, key=value labels and LoRaWAN TR005 codes', () => {
    expect(parseLabelCode('FB-0001')).toEqual({ serial: 'FB-0001' });
    expect(parseLabelCode('SN: FB-0001; MAC: 00:11:22:33:44:55')).toEqual({ serial: 'FB-0001', mac: '00:11:22:33:44:55' });
    expect(parseLabelCode('S/N=FB-7\nDevEUI=70B3D57ED0000001')).toEqual({ serial: 'FB-7', devEui: '70B3D57ED0000001' });
    expect(parseLabelCode('LW:D0:1122334455667788:70B3D57ED0000001:AABB1122:SFB-0009:C1234')).toEqual({ devEui: '70B3D57ED0000001', serial: 'FB-0009' });
  });
});

import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type FieldbenchDB } from '../../src/core/store/db.ts';
import {
  addDevices,
  csvCell,
  devicesToCsv,
  duplicates,
  exportInventoryCsv,
  exportInventoryJson,
  findByIdentifier,
  InventoryError,
  search,
  upsertDevice,
} from '../../src/core/store/inventory.ts';
import { IdentifierError, normaliseId } from '../../src/core/store/ids.ts';

let n = 0;
const dbs: FieldbenchDB[] = [];
async function fresh(): Promise<FieldbenchDB> {
  const db = await openStore({ name: `inv-test-${process.pid}-${++n}` });
  dbs.push(db);
  return db;
}
afterEach(async () => {
  for (const db of dbs.splice(0)) {
    db.close();
    await db.delete();
  }
});

const KEY1 = '11'.repeat(32);
const KEY2 = '22'.repeat(32);
const UEID = '01' + 'aa'.repeat(16);

describe('identifier normalisation', () => {
  it('canonicalises each kind and rejects malformed values', () => {
    expect(normaliseId('mac', 'AA-BB-CC-dd-ee-ff')).toBe('aabbccddeeff');
    expect(normaliseId('mac', 'aabb.ccdd.eeff')).toBe('aabbccddeeff');
    expect(normaliseId('devEui', new Uint8Array([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1]))).toBe('70b3d57ed0000001');
    expect(normaliseId('devicePublicKey', '0x' + KEY1.toUpperCase())).toBe(KEY1);
    expect(() => normaliseId('mac', 'aa:bb:cc')).toThrow(IdentifierError);
    expect(() => normaliseId('ueid', '0102')).toThrow(/7..33 bytes/);
    expect(() => normaliseId('devicePublicKey', 'xy'.repeat(32))).toThrow(/not hex/);
    expect(() => normaliseId('serial', 'a\nb')).toThrow(/control/);
  });
});

describe('inventory', () => {
  it('finds a device by each of its identifiers, typed or raw, in any notation', async () => {
    const db = await fresh();
    const rec = await upsertDevice(db, {
      serial: 'SN-0001',
      devicePublicKey: KEY1,
      ueid: UEID,
      mac: 'DE:AD:BE:EF:00:01',
      devEui: '70B3D57ED0000001',
      model: 'sensor-a',
      firmware: '1.0.0',
      seen: 1000,
    });
    await upsertDevice(db, { serial: 'SN-0002', mac: 'de:ad:be:ef:00:02', seen: 1000 });
    for (const q of ['SN-0001', KEY1.toUpperCase(), UEID, 'de-ad-be-ef-00-01', '70:b3:d5:7e:d0:00:00:01']) {
      const found = await findByIdentifier(db, q);
      expect(found.map((r) => r.id), q).toEqual([rec.id]);
    }
    expect((await findByIdentifier(db, { kind: 'mac', value: new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0, 1]) })).map((r) => r.id)).toEqual([rec.id]);
    expect(await findByIdentifier(db, { kind: 'mac', value: 'nonsense' })).toEqual([]);
    expect(await findByIdentifier(db, 'SN-9999')).toEqual([]);
    // a serial that looks like hex does not match a MAC
    expect(await findByIdentifier(db, { kind: 'serial', value: 'deadbeef0001' })).toEqual([]);
  });

  it('merges compatible sightings and updates fields', async () => {
    const db = await fresh();
    const a = await upsertDevice(db, { serial: 'SN-1', seen: 10 });
    const b = await upsertDevice(db, { serial: 'SN-1', devicePublicKey: KEY1, firmware: '1.1', verdict: 'verified', configSeq: 4, seen: 20 });
    expect(b.id).toBe(a.id);
    const c = await upsertDevice(db, { devicePublicKey: KEY1, mac: '02:00:00:00:00:01', seen: 15 });
    expect(c.id).toBe(a.id);
    const [rec] = await findByIdentifier(db, '02:00:00:00:00:01');
    expect(rec).toMatchObject({ serial: 'SN-1', devicePublicKey: KEY1, mac: '020000000001', firmware: '1.1', verdict: 'verified', verdictTime: 20, configSeq: 4, firstSeen: 10, lastSeen: 20 });
    expect(await db.devices.count()).toBe(1);
    await expect(upsertDevice(db, { model: 'x' })).rejects.toThrow(InventoryError);
    await expect(upsertDevice(db, { serial: 'SN-1', configSeq: -1 })).rejects.toThrow(InventoryError);
    await expect(upsertDevice(db, { id: 999, serial: 'x' })).rejects.toThrow(/no device record/);
  });

  it('reports the same identifier under two serials and a serial with two keys', async () => {
    const db = await fresh();
    await upsertDevice(db, { serial: 'SN-A', devicePublicKey: KEY1, mac: '02:00:00:00:00:0a' });
    // a clone: same device key, different serial
    await upsertDevice(db, { serial: 'SN-B', devicePublicKey: KEY1 });
    // re-provisioned board: same serial, new key -> new record, not merged
    const r = await upsertDevice(db, { serial: 'SN-A', devicePublicKey: KEY2 });
    // same MAC on another serial
    await upsertDevice(db, { serial: 'SN-C', mac: '02-00-00-00-00-0A' });
    // a clean device
    await upsertDevice(db, { serial: 'SN-D', devicePublicKey: '33'.repeat(32) });
    expect(await db.devices.count()).toBe(5);
    expect((await findByIdentifier(db, 'SN-A')).length).toBe(2);
    expect(r.devicePublicKey).toBe(KEY2);
    const d = await duplicates(db);
    const byKind = (k: string) => d.filter((x) => x.kind === k);
    expect(byKind('identifier-under-two-serials')).toEqual([
      { kind: 'identifier-under-two-serials', idKind: 'devicePublicKey', value: KEY1, serials: ['SN-A', 'SN-B'], deviceIds: [1, 2] },
      { kind: 'identifier-under-two-serials', idKind: 'mac', value: '02000000000a', serials: ['SN-A', 'SN-C'], deviceIds: [1, 4] },
    ]);
    expect(byKind('serial-with-two-keys')).toEqual([{ kind: 'serial-with-two-keys', serial: 'SN-A', keys: [KEY1, KEY2], deviceIds: [1, 3] }]);
  });

  it('search combines text and filters, newest first', async () => {
    const db = await fresh();
    await addDevices(db, [
      { serial: 'GW-1', model: 'gateway', firmware: '2.0', verdict: 'verified', seen: 100 },
      { serial: 'GW-2', model: 'gateway', firmware: '1.9', verdict: 'failed', seen: 300 },
      { serial: 'S-1', model: 'sensor', firmware: '2.0', verdict: 'verified', seen: 200, mac: '02:00:00:00:ab:cd' },
      { serial: 'S-2', model: 'sensor', firmware: '2.0', seen: 400 },
    ]);
    const s = async (q: string, f = {}) => (await search(db, q, f)).map((r) => r.serial);
    expect(await s('')).toEqual(['S-2', 'GW-2', 'S-1', 'GW-1']);
    expect(await s('gw')).toEqual(['GW-2', 'GW-1']);
    expect(await s('ab:cd')).toEqual(['S-1']);
    expect(await s('', { verdict: 'verified' })).toEqual(['S-1', 'GW-1']);
    expect(await s('', { verdict: ['verified', 'failed'], model: 'gateway' })).toEqual(['GW-2', 'GW-1']);
    expect(await s('', { firmware: '2.0' })).toEqual(['S-2', 'S-1', 'GW-1']);
    expect(await s('', { lastSeenFrom: 200, lastSeenTo: 300 })).toEqual(['GW-2', 'S-1']);
    expect(await s('s-', { lastSeenFrom: 150 })).toEqual(['S-2', 'S-1']);
    expect(await s('', { limit: 2 })).toEqual(['S-2', 'GW-2']);
  });
});

describe('export', () => {
  it('quotes CSV cells per RFC 4180 and neutralises formulas', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('line1\nline2')).toBe('"line1\nline2"');
    expect(csvCell('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('-2+3')).toBe("'-2+3");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell('\t=1')).toBe("'\t=1");
    expect(csvCell(7)).toBe('7');
    expect(csvCell(undefined)).toBe('');
  });

  it('exports the inventory as CSV and JSON', async () => {
    const db = await fresh();
    await upsertDevice(db, { serial: '=cmd|calc', model: 'a,"b"', firmware: '1.0', seen: 0, mac: '02:00:00:00:00:01', label: 'x\r\ny' });
    const csv = await exportInventoryCsv(db);
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('id,serial,devicePublicKey,ueid,mac,devEui,model,firmware,configSeq,verdict,verdictTime,firstSeen,lastSeen,label');
    expect(csv).toBe(
      'id,serial,devicePublicKey,ueid,mac,devEui,model,firmware,configSeq,verdict,verdictTime,firstSeen,lastSeen,label\r\n' +
        `1,'=cmd|calc,,,020000000001,,"a,""b""",1.0,,,,1970-01-01T00:00:00.000Z,1970-01-01T00:00:00.000Z,"x\r\ny"\r\n`,
    );
    expect(devicesToCsv([])).toBe(lines[0] + '\r\n');
    const json = JSON.parse(await exportInventoryJson(db, 0));
    expect(json).toMatchObject({ format: 'fieldbench-inventory', version: 1, exported: '1970-01-01T00:00:00.000Z' });
    expect(json.devices).toEqual([{ id: 1, serial: '=cmd|calc', mac: '020000000001', model: 'a,"b"', firmware: '1.0', label: 'x\r\ny', firstSeen: 0, lastSeen: 0 }]);
  });
});

/**
 * The Bench page's control log in the app's store (src/core/factory/station-log.ts):
 * chained and signed with the station key byte for byte as the CLI's records log,
 * durable across a reopen, exported as JSON that `fieldbench audit verify` checks and
 * as the CLI's CSV, taken into the audit trail and the inventory (duplicate detection
 * covers the units), a trail write lost between the two writes caught up; the
 * identifier journal in the store never reissues after a reopen.
 */
import 'fake-indexeddb/auto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendRecords } from '../../src/cli/records.ts';
import { commands } from '../../src/cli/commands/audit.ts';
import { FieldbenchDB, openStore } from '../../src/core/store/db.ts';
import { RECORDS_FILE, parseRecordsLog } from '../../src/core/store/records-log.ts';
import { chainEntries, auditRecordToExport, exportAudit, verifyAuditExport } from '../../src/core/store/audit.ts';
import { duplicates, findByIdentifier } from '../../src/core/store/inventory.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { memorySigner } from '../../src/core/trust/signer.ts';
import { publicKeyPem } from '../../src/core/trust/keys.ts';
import { CONTROL_CSV_COLUMNS, controlEntry, type UnitControlRecord } from '../../src/core/factory/control-log.ts';
import { memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { importRecordsLog } from '../../src/core/ops/records-import.ts';
import {
  appendStationEntry, controlLogDownload, dbJournal, stationAuditSigner, stationLogEntries, stationLogs, stationRecordsLog, syncStationLog,
} from '../../src/core/factory/station-log.ts';

const unit = (n: number, over: Partial<UnitControlRecord> = {}): UnitControlRecord => ({
  port: `virtual jig ${n}`, verdict: 'provisioned', profileDigest: 'ab'.repeat(32), model: 'pump',
  serial: `SN-00000${n}`, devEui: `70b3d57ed000000${n}`, mac: `02aabb00000${n}`, ueid: `1${n}`.repeat(16), devicePublicKey: `2${n}`.repeat(32),
  certificateDigest: '33'.repeat(32), firmwareDigest: '44'.repeat(32), configSequence: 3, attestation: 'trusted',
  steps: [{ step: 'flash', outcome: 'done', ms: 1200 }], ...over,
});
const failed = (n: number): UnitControlRecord => ({
  port: `virtual jig ${n}`, verdict: 'failed', profileDigest: 'ab'.repeat(32), model: 'pump', serial: `SN-00000${n}`,
  steps: [{ step: 'attest', outcome: 'failed', ms: 30 }], failure: { step: 'attest', code: 'untrusted', reason: 'measurement differs' },
});

let n = 0;
const dbName = () => `station-log-${process.pid}-${++n}`;
const T = 1_700_000_000_000;

describe('Bench control log in the store', () => {
  it('is the CLI records log byte for byte, survives a reopen, verifies with audit verify, exports the CLI CSV, fills the inventory', async () => {
    const name = dbName();
    const db = await openStore({ name });
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const station = stationAuditSigner(memorySigner(seed));
    const inputs = [controlEntry(unit(1), T), controlEntry(failed(2), T + 1000), controlEntry(unit(3), T + 2000)];
    for (const i of inputs) expect((await appendStationEntry(db, station, i)).inTrail).toBe(true);

    // the CLI writes the same entries, with the same key and technician id, to its records log
    const dir = await mkdtemp(join(tmpdir(), 'fb-station-log-'));
    for (const i of inputs) await appendRecords(dir, [i], { seed, technician: station.id });
    const cli = parseRecordsLog(await readFile(join(dir, RECORDS_FILE), 'utf8'));
    if (!cli.ok) throw new Error(cli.reason);

    // reopened (a page reload): nothing lost
    db.close();
    const again = new FieldbenchDB({ name });
    await again.open();
    const kid = station.id.slice('station:'.length);
    const entries = await stationLogEntries(again, kid);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entries.map((e) => e.hash)).toEqual(cli.entries.map((e) => e.hash));
    expect(entries.map((e) => e.sig)).toEqual(cli.entries.map((e) => e.sig));
    expect(await stationLogs(again)).toMatchObject([{ station: kid, signerId: station.id, entries: 3, provisioned: 2, failed: 1, head: { seq: 3, hash: entries[2].hash } }]);

    // JSON download: `fieldbench audit verify FILE --key station.pub.pem` says intact
    const json = await controlLogDownload(again, kid, 'json', T);
    await writeFile(join(dir, json.name), json.text);
    await writeFile(join(dir, 'station.pub.pem'), publicKeyPem(station.publicKey));
    let out = '';
    let err = '';
    const verify = (argv: string[]) => commands['audit verify'].run(argv, { out: (t) => void (out += t), err: (t) => void (err += t), cwd: dir });
    expect(await verify([json.name, '--key', 'station.pub.pem'])).toBe(0);
    expect(out).toMatch(/intact: .*3 entries/);
    expect(out).toMatch(/authenticated/);
    // an altered download does not
    await writeFile(join(dir, 'forged.json'), json.text.replace('"outcome": "failed"', '"outcome": "provisioned"'));
    expect(await readFile(join(dir, 'forged.json'), 'utf8')).not.toBe(json.text);
    expect(await verify(['forged.json', '--key', 'station.pub.pem'])).toBe(1);
    expect(err).toMatch(/TAMPERED.*seq 2/);
    // the records-log form is the CLI's file
    expect(stationRecordsLog(entries)).toBe(await readFile(join(dir, RECORDS_FILE), 'utf8'));

    // CSV as the CLI exports it
    const csv = (await controlLogDownload(again, kid, 'csv', T)).text.split('\r\n');
    expect(csv[0]).toBe(CONTROL_CSV_COLUMNS.join(','));
    expect(csv).toHaveLength(5);
    expect(csv[1]).toContain(',SN-000001,70b3d57ed0000001,02aabb000001,');

    // the trail holds them (countersigned, naming the station entry) and verifies; the inventory lists the units
    const trail = await exportAudit(again);
    expect(trail.entries.map((e) => [e.op, e.outcome, (e.details as { importedFrom: { seq: number } }).importedFrom.seq])).toEqual([
      ['factory/unit', 'provisioned', 1], ['factory/unit', 'failed', 2], ['factory/unit', 'provisioned', 3],
    ]);
    expect((await verifyAuditExport(trail)).ok).toBe(true);
    const [one] = await findByIdentifier(again, 'SN-000001');
    expect(one).toMatchObject({ serial: 'SN-000001', devEui: '70b3d57ed0000001', mac: '02aabb000001', model: 'pump', verdict: 'trusted', configSeq: 3 });
    expect((await findByIdentifier(again, 'SN-000002'))[0]?.verdict).toBeUndefined();
    expect(await duplicates(again)).toEqual([]);

    // the station's log again: nothing twice
    expect(await syncStationLog(again, kid, station, station.publicKey)).toEqual({ ok: true, imported: 0, skipped: 3, authenticated: true });

    // another station's log with the same serial under another device key: flagged
    const tech = await seedSigner('station:other', crypto.getRandomValues(new Uint8Array(32)));
    const [foreign] = await chainEntries([controlEntry(unit(1, { devicePublicKey: '99'.repeat(32), ueid: '98'.repeat(16), devEui: '70b3d57ed00000ff', mac: '02aabb0000ff' }), T + 5000)], tech, null);
    expect(await importRecordsLog(again, station, stationRecordsLog([auditRecordToExport(foreign)]))).toMatchObject({ ok: true, imported: 1 });
    expect(await duplicates(again)).toMatchObject([{ kind: 'serial-with-two-keys', serial: 'SN-000001' }]);
    again.close();
  });

  it('a trail write that failed after the entry was stored is caught up by syncStationLog; a stored entry is never altered', async () => {
    const db = await openStore({ name: dbName() });
    const station = stationAuditSigner(memorySigner(crypto.getRandomValues(new Uint8Array(32))));
    const broken = { ...station, sign: async () => { throw new Error('no technician key'); } };
    const r = await appendStationEntry(db, station, controlEntry(unit(1), T), broken);
    expect(r).toMatchObject({ inTrail: false, trailError: 'no technician key' });
    const kid = station.id.slice('station:'.length);
    expect(await stationLogEntries(db, kid)).toHaveLength(1);
    expect(await db.audit.count()).toBe(0);
    expect(await syncStationLog(db, kid, station, station.publicKey)).toEqual({ ok: true, imported: 1, skipped: 0, authenticated: true });
    expect(await findByIdentifier(db, 'SN-000001')).toHaveLength(1);
    // append-only
    const [row] = await db.stationLog.toArray();
    await expect(db.stationLog.update(row.id, { station: 'x' })).rejects.toThrow(/append-only/);
    await expect(db.stationLog.delete(row.id)).rejects.toThrow(/append-only/);
    // a forged row in the store (written around the hooks) is refused by the sync, nothing taken in
    const [e] = await stationLogEntries(db, kid);
    await db.stationLog.add({ id: `${kid}/0000000002`, station: kid, entry: { ...e, seq: 2, prev: e.hash } });
    expect(await syncStationLog(db, kid, station, station.publicKey)).toMatchObject({ ok: false });
    db.close();
  });

  it('two stations keep two chains; concurrent appends of one station stay in order', async () => {
    const db = await openStore({ name: dbName() });
    const a = stationAuditSigner(memorySigner(crypto.getRandomValues(new Uint8Array(32))));
    const b = stationAuditSigner(memorySigner(crypto.getRandomValues(new Uint8Array(32))));
    await Promise.all([1, 2, 3, 4].map((i) => appendStationEntry(db, i % 2 ? a : b, controlEntry(unit(i), T + i))));
    for (const s of [a, b]) {
      const kid = s.id.slice('station:'.length);
      expect((await stationLogEntries(db, kid)).map((e) => e.seq)).toEqual([1, 2]);
      expect(await syncStationLog(db, kid, s, s.publicKey)).toMatchObject({ ok: true, imported: 0, skipped: 2, authenticated: true });
    }
    // a catch-up started while units are being recorded takes nothing in twice
    const kidA = a.id.slice('station:'.length);
    await Promise.all([appendStationEntry(db, a, controlEntry(unit(5), T + 5)), syncStationLog(db, kidA, a, a.publicKey), appendStationEntry(db, a, controlEntry(unit(7), T + 7)), syncStationLog(db, kidA, a, a.publicKey)]);
    expect(await db.audit.count()).toBe(6);
    expect(await db.stationLog.count()).toBe(6);
    db.close();
  });

  it('the identifier journal in the store: a reopened allocator never reissues', async () => {
    const name = dbName();
    const policy = { serial: { pattern: 'SN-{n:06}', first: 1, last: 100 }, devEui: { first: '70b3d57ed0000000', count: 100 } };
    const db = await openStore({ name });
    const first = memoryAllocator(policy, dbJournal(db, 'line'));
    const x = await first.allocate('jig 1');
    await first.commit(x, 'provisioned');
    const y = await first.allocate('jig 2'); // left open: a reload mid-unit
    db.close();
    const again = new FieldbenchDB({ name });
    await again.open();
    const second = memoryAllocator(policy, dbJournal(again, 'line'));
    const z = await second.allocate('jig 1');
    expect([x.serial, y.serial]).toEqual(['SN-000001', 'SN-000002']);
    expect(z.serial).toBe('SN-000003');
    // another journal name is another line
    expect((await memoryAllocator(policy, dbJournal(again, 'other')).allocate('jig 1')).serial).toBe('SN-000001');
    again.close();
  });
});

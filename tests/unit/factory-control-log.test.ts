/**
 * The factory control log (src/core/factory/control-log.ts): one entry per
 * unit in the station's records log, chained and signed with the station key
 * by the same code as every records log (so `audit verify` checks it), with
 * JSON and CSV exports of the unit entries.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendRecords } from '../../src/cli/records.ts';
import { RECORDS_FILE, parseRecordsLog, verifyRecordsLog } from '../../src/core/store/records-log.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { publicKeyPem } from '../../src/core/trust/keys.ts';
import { commands } from '../../src/cli/commands/audit.ts';
import { CONTROL_CSV_COLUMNS, ControlRecordError, controlEntry, controlLogCsv, controlLogJson, type UnitControlRecord } from '../../src/core/factory/control-log.ts';

const good: UnitControlRecord = {
  port: 'tcp://127.0.0.1:47400', verdict: 'provisioned', profileDigest: 'ab'.repeat(32), model: 'pump',
  serial: 'SN-000001', devEui: '70b3d57ed0000001', mac: '02aabb000001', ueid: '11'.repeat(16), devicePublicKey: '22'.repeat(32),
  certificateDigest: '33'.repeat(32), firmwareDigest: '44'.repeat(32), configSequence: 3, attestation: 'trusted',
  steps: [{ step: 'flash', outcome: 'done', ms: 1200 }],
};
const bad: UnitControlRecord = {
  port: 'tcp://127.0.0.1:47401', verdict: 'failed', profileDigest: 'ab'.repeat(32), model: 'pump', serial: 'SN-000002',
  steps: [{ step: 'attest', outcome: 'failed', ms: 30 }], failure: { step: 'attest', code: 'untrusted', reason: 'measurement differs, "=cmd"' },
};

describe('factory control log', () => {
  it('appends one signed, chained entry per unit that verifies with the station key, and exports JSON and CSV', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fb-control-'));
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const stationKey = await ed25519PublicKey(seed);
    await appendRecords(dir, [controlEntry(good, 1_700_000_000_000)], { seed, technician: 'station:line-1' });
    await appendRecords(dir, [controlEntry(bad, 1_700_000_001_000)], { seed, technician: 'station:line-1' });
    const text = await readFile(join(dir, RECORDS_FILE), 'utf8');
    expect(await verifyRecordsLog(text, [stationKey])).toMatchObject({ ok: true, count: 2, authenticated: true, technicians: ['station:line-1'] });
    const p = parseRecordsLog(text);
    if (!p.ok) throw new Error(p.reason);
    const json = JSON.parse(controlLogJson(p.entries));
    expect(json.units.map((u: UnitControlRecord) => [u.serial, u.verdict])).toEqual([['SN-000001', 'provisioned'], ['SN-000002', 'failed']]);
    const csv = controlLogCsv(p.entries).split('\r\n');
    expect(csv[0]).toBe(CONTROL_CSV_COLUMNS.join(','));
    expect(csv).toHaveLength(4);
    expect(csv[1]).toContain(',SN-000001,70b3d57ed0000001,02aabb000001,');
    expect(csv[2]).toContain('"measurement differs, ""=cmd"""');
    // `fieldbench audit verify --records DIR --key station.pub.pem` checks it (the one records-log verifier)
    await writeFile(join(dir, 'station.pub.pem'), publicKeyPem(stationKey));
    let err = '';
    const verify = (argv: string[]) => commands['audit verify'].run(argv, { out: () => {}, err: (t) => void (err += t), cwd: dir });
    expect(await verify(['--records', dir, '--key', 'station.pub.pem'])).toBe(0);
    // a unit entry altered afterwards (a failed unit turned into a good one) no longer verifies
    const forged = text.replace('"verdict":"failed"', '"verdict":"provisioned"');
    expect(forged).not.toBe(text);
    expect(await verifyRecordsLog(forged, [stationKey])).toMatchObject({ ok: false, code: 'modified' });
    await writeFile(join(dir, RECORDS_FILE), forged);
    expect(await verify(['--records', dir, '--key', 'station.pub.pem'])).toBe(1);
    expect(err).toMatch(/seq|entry/i);
    // signed by another key than the station's: refused when the station key is required
    const other = await ed25519PublicKey(crypto.getRandomValues(new Uint8Array(32)));
    expect((await verifyRecordsLog(text, [other])).ok).toBe(false);
  });

  it('refuses an entry that would misstate a unit', () => {
    expect(() => controlEntry({ ...bad, failure: undefined })).toThrow(ControlRecordError);
    expect(() => controlEntry({ ...good, attestation: 'untrusted' })).toThrow(/trusted/);
    expect(() => controlEntry({ ...good, certificateDigest: undefined })).toThrow(/certificateDigest/);
    expect(() => controlEntry({ ...good, failure: { step: 'x', code: 'y', reason: 'z' } })).toThrow(/no failure/);
    expect(() => controlEntry({ ...good, mac: 'ZZ' })).toThrow(/hex/);
  });

  it('quotes CSV cells a spreadsheet would run as formulas', () => {
    const e = controlEntry({ ...bad, failure: { step: 'label', code: 'x', reason: '=HYPERLINK("x")' } });
    const entry = { seq: 1, time: 0, technician: { id: 's', keyId: 'k' }, op: e.op, device: {}, outcome: e.outcome, details: e.details, prev: '', hash: '', sig: '', signer: '' };
    const row = controlLogCsv([entry as never]).split('\r\n')[1];
    expect(row).toContain(`"'=HYPERLINK(""x"")"`);
  });
});

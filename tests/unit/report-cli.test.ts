/**
 * `fieldbench report` and `fieldbench report verify` (src/cli/commands/audit.ts):
 * the job report from a saved trail without the app: an audit export or the
 * CLI's records log, as PDF, JSON or words; a tampered trail gives no report;
 * a report checks against its trail, and a changed one does not.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands/audit.ts';
import { main } from '../../src/cli/main.ts';
import { appendRecords } from '../../src/cli/records.ts';
import { auditRecordToExport, chainEntries, type AuditInput } from '../../src/core/store/audit.ts';
import { logAsExport } from '../../src/core/store/records-log.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { publicKeyPem } from '../../src/core/trust/keys.ts';
import { readReportPdf } from '../../src/core/ops/job/report-pdf.ts';
import type { JobReport } from '../../src/core/ops/job/report.ts';
import { pdfPagesText } from '../helpers/pdf-text.ts';

let dir: string;
const KEY = 'ab'.repeat(32);
const device = { serial: 'SN-7', devicePublicKey: KEY };
const T = Date.UTC(2026, 11, 3, 9, 0, 0);
const job: AuditInput[] = [
  { op: 'identify', device, outcome: 'ok', time: T, details: { badges: ['verified'], model: 'pump', checks: [{ check: 'possession', result: 'pass', detail: 'signed a fresh random nonce' }, { check: 'label', result: 'pass', detail: 'label matches the device (serial)' }], label: 'serial SN-7' } },
  { op: 'attest', device, outcome: 'ok', time: T + 1000, details: { verdict: 'trusted', reasons: [{ check: 'nonce', result: 'pass', detail: 'nonce matches the challenge' }], claims: { profile: 'tag:psacertified.org,2023:psa#fieldbench', lifecycle: 0x3000, debugStatus: 'disabled', software: [{ version: '1.0.0+0', measurement: 'cd'.repeat(32) }] } } },
  { op: 'update', device, outcome: 'ok', time: T + 2000, details: { image: 'fw 1.1.0', result: 'done', version: '1.1.0+0', hash: 'ef'.repeat(32), confirmed: true, fromVersion: '1.0.0' } },
  { op: 'job', device, outcome: 'ok', time: T + 3000, details: { step: 'configure', decision: 'not-needed', reason: 'no configuration needed' } },
  { op: 'job', device, outcome: 'ok', time: T + 4000, details: { step: 'finish', verdict: 'ok', reason: 'OK to deploy.' } },
];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fb-report-'));
  const a = await seedSigner('alice', new Uint8Array(32).fill(3));
  const b = await seedSigner('bob', new Uint8Array(32).fill(4));
  const recs = await chainEntries([{ op: 'identify', device: { serial: 'OTHER' }, outcome: 'ok', time: T - 1 }, ...job], a, null);
  const exp = logAsExport(recs.map(auditRecordToExport));
  writeFileSync(path.join(dir, 'trail.json'), JSON.stringify(exp));
  const t = structuredClone(exp);
  (t.entries[3].details as Record<string, unknown>).version = '6.6.6';
  writeFileSync(path.join(dir, 'tampered.json'), JSON.stringify(t));
  writeFileSync(path.join(dir, 'alice.pub.pem'), publicKeyPem(a.publicKey));
  writeFileSync(path.join(dir, 'bob.pub.pem'), publicKeyPem(b.publicKey));
  // the CLI's own records log (signed with the folder's records key)
  await appendRecords(path.join(dir, 'records'), job);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(verb: 'report' | 'report verify', ...argv: string[]) {
  let out = '';
  let err = '';
  const code = await commands[verb].run(argv, { out: (t) => void (out += t), err: (t) => void (err += t), cwd: dir });
  return { code, out, err };
}

describe('fieldbench report', () => {
  it('writes the PDF (report embedded) and the JSON from an audit export; words on the terminal', async () => {
    let r = await run('report', 'trail.json', '--serial', 'SN-7', '--key', 'alice.pub.pem', '--out', 'job.pdf');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^wrote job\.pdf: OK to deploy, 5 entries, covers #6 [0-9a-f]{64}\n$/);
    const pdf = new Uint8Array(readFileSync(path.join(dir, 'job.pdf')));
    const embedded = (await readReportPdf(pdf)) as JobReport;
    expect(embedded).toMatchObject({ status: 'finished', verdict: { verdict: 'ok' }, firmware: { before: '1.0.0', after: '1.1.0', changed: true }, trail: { authenticated: true } });
    expect(embedded.device).toMatchObject({ serial: 'SN-7', model: 'pump', label: { result: 'match' } });
    const text = (await pdfPagesText(pdf)).join(' ').replace(/\s+/g, ' ');
    expect(text).toContain('Job report: SN-7');
    expect(text).toContain('updated from 1.0.0 to 1.1.0, confirmed');
    expect(text).toContain(embedded.covers!.hash);

    r = await run('report', 'trail.json', '--device-key', KEY.toUpperCase(), '--out', 'job.json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8'))).toEqual({ ...embedded, trail: { ...embedded.trail, authenticated: false } });
    // never overwritten without --force
    await expect(run('report', 'trail.json', '--serial', 'SN-7', '--out', 'job.json')).rejects.toThrow(/job\.json exists; refusing to overwrite it/);
    r = await run('report', 'trail.json', '--serial', 'SN-7', '--out', 'job.json', '--force');
    expect(r.code).toBe(0);

    r = await run('report', 'trail.json', '--serial', 'SN-7');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Job report: SN-7\nOK to deploy');
    expect(r.out).toContain('firmware: updated from 1.0.0 to 1.1.0, confirmed');
    expect(r.out).toContain('configuration: not changed: no configuration needed');
    expect(r.out).toContain('Lifecycle: secured');
    expect(r.out).toMatch(/#5 [0-9a-f]{64} .* Configuration marked not needed: no configuration needed/);
    expect(r.out).toContain('NOT authenticated');
    r = await run('report', 'trail.json', '--serial', 'SN-7', '--until', '3', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ status: 'partial', verdict: { verdict: 'pending' } });
  });

  it('refuses a tampered trail, a signer not trusted, a device not in it; bad usage is exit 2', async () => {
    let r = await run('report', 'tampered.json', '--serial', 'SN-7', '--out', 'never.pdf');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no report: the audit trail does not verify \(entry 3, seq 4: modified/);
    expect(() => readFileSync(path.join(dir, 'never.pdf'))).toThrow();
    r = await run('report', 'trail.json', '--serial', 'SN-7', '--key', 'bob.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad-signature/);
    r = await run('report', 'trail.json', '--serial', 'NOBODY');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no entry about this device/);
    await expect(run('report', 'trail.json')).rejects.toThrow(/--serial SN or --device-key/);
    await expect(run('report', 'trail.json', '--serial', 'SN-7', '--out', 'x.txt')).rejects.toThrow(/\.pdf or a \.json/);
    await expect(run('report', 'trail.json', '--serial', 'SN-7', '--since', 'yesterday')).rejects.toThrow(/seq/);
    await expect(run('report', 'missing.json', '--serial', 'SN-7')).rejects.toThrow(/cannot read missing\.json/);
  });

  it('reads the CLI records log (--records DIR, its records key trusted); report verify checks a report against its trail', async () => {
    let r = await run('report', '--records', 'records', '--serial', 'SN-7', '--out', 'rec.pdf');
    expect(r.code, r.err).toBe(0);
    r = await run('report verify', 'rec.pdf', '--records', 'records');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^matches: rec\.pdf is the report of .*records\.jsonl for SN-7 \(entries #1\.\.#5, last [0-9a-f]{64}\); every entry signed by a trusted key\n$/);
    // the JSON report made from the export checks against the export, not against the other trail
    r = await run('report verify', 'job.json', 'trail.json');
    expect(r.code, r.err).toBe(0);
    const forged = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8')) as JobReport;
    forged.verdict.headline = 'OK to deploy!';
    writeFileSync(path.join(dir, 'forged.json'), JSON.stringify(forged));
    r = await run('report verify', 'forged.json', 'trail.json');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^DOES NOT MATCH: forged\.json: the report does not match the audit trail at verdict\.headline/);
    r = await run('report verify', 'job.json', 'tampered.json');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/does not verify/);
    // a records log changed after the report was made
    const log = path.join(dir, 'records', 'records.jsonl');
    writeFileSync(log, readFileSync(log, 'utf8').replace('"1.1.0+0"', '"1.2.0+0"'));
    r = await run('report verify', 'rec.pdf', '--records', 'records');
    expect(r.code).toBe(1);
    r = await run('report', '--records', 'records', '--serial', 'SN-7');
    expect(r.code).toBe(1);
  });

  it('is reached from the verb index: report and report verify', async () => {
    let out = '';
    let err = '';
    const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t), cwd: dir };
    expect(await main(['report', 'trail.json', '--serial', 'SN-7', '--json'], io)).toBe(0);
    expect(JSON.parse(out).device.serial).toBe('SN-7');
    out = '';
    expect(await main(['report', 'verify', 'job.pdf', 'trail.json'], io), err).toBe(0);
    expect(out).toMatch(/^matches: job\.pdf/);
    expect(await main(['help'], io)).toBe(0);
    expect(out).toMatch(/report verify\s+check a job report/);
  });
});

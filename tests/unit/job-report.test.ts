/**
 * Issue 14: the job report, built from the audit trail alone (ops/job/report.ts).
 * Identify and attest run against the reference device (real entries); the
 * update and configuration entries come from their record functions. Every
 * field of a finished job, a tampered trail refused, a partial job reported as
 * partial, "not needed" and Finish audited, overrides, which entries make the
 * job, and a report checked against its trail.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runOp } from '../../src/core/ops/outcome.ts';
import { identifyDevice, type IdentifyOutcome } from '../../src/core/ops/identification/identify.ts';
import { attestDevice } from '../../src/core/ops/state-awareness/attest.ts';
import { attestRecord, identifyRecord, identifiers } from '../../src/core/ops/record.ts';
import { recordUpdate } from '../../src/core/ops/update/record.ts';
import { recordConfig } from '../../src/core/ops/configuration/record.ts';
import type { ConfigRunState } from '../../src/core/ops/configuration/restore.ts';
import type { UpdateOutcome } from '../../src/core/ops/update/update.ts';
import type { PreflightReport } from '../../src/core/ops/update/preflight.ts';
import { overrideRecord } from '../../src/core/ops/job/override.ts';
import { finishRecord, skipRecord } from '../../src/core/ops/job/record.ts';
import { jobVerdict, type JobFacts } from '../../src/core/ops/job/verdict.ts';
import { attestFact, identifyFact } from '../../src/core/ops/job/facts.ts';
import { buildJobReport, factsFromEntries, jobEntries, ReportError, verifyJobReport, type JobReport } from '../../src/core/ops/job/report.ts';
import { auditRecordToExport, chainEntries, type AuditExport, type AuditExportEntry, type AuditInput } from '../../src/core/store/audit.ts';
import { logAsExport } from '../../src/core/store/records-log.ts';
import { seedSigner, keyIdHex, type AuditSigner } from '../../src/core/store/sig.ts';
import type { DeviceIdentifiersInput } from '../../src/core/store/ids.ts';
import type { RecordPlan } from '../../src/core/ops/record-plan.ts';
import { keyFingerprint } from '../../src/core/factory/label-code.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import { type World, world, LOCKED_DOWN } from '../helpers/identity-world.ts';
import { PDFDocument } from 'pdf-lib';
import { readReportPdf, reportPdf, pdfSafe } from '../../src/core/ops/job/report-pdf.ts';
import { pdfPagesText } from '../helpers/pdf-text.ts';

let tech: AuditSigner;
let other: AuditSigner;
beforeAll(async () => {
  tech = await seedSigner('t-17', new Uint8Array(32).fill(7));
  other = await seedSigner('t-99', new Uint8Array(32).fill(9));
});
const open: World[] = [];
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
});

/** A trail: plans chained and signed one after the other, as the app appends them. */
class Trail {
  entries: AuditExportEntry[] = [];
  async add(plan: RecordPlan | AuditInput, signer = tech): Promise<AuditExportEntry> {
    const input = 'audit' in plan ? plan.audit : plan;
    const last = this.entries.at(-1);
    const [rec] = await chainEntries([input], signer, last ? { seq: last.seq, hash: hexBytes(last.hash) } : null);
    const e = auditRecordToExport(rec);
    this.entries.push(e);
    return e;
  }
  export(): AuditExport {
    return logAsExport(this.entries);
  }
}
const hexBytes = (h: string) => Uint8Array.from(h.match(/../g)!.map((b) => parseInt(b, 16)));

const T0 = Date.UTC(2026, 11, 3, 8, 0, 0);

async function device(label?: { serial?: string }) {
  const x = await world({ security: { interfaces: { ...LOCKED_DOWN } } });
  open.push(x);
  const id = (await runOp(identifyDevice(x.session, { bundle: x.bundle, inventory: { findByIdentifier: async () => [] }, label }))) as IdentifyOutcome;
  if (id.kind !== 'done') throw new Error(JSON.stringify(id));
  const ids = identifiers(id.result);
  const att = await runOp(attestDevice(x.session, { bundle: x.bundle, devicePublicKey: x.sec.devicePublicKey }));
  if (att.kind !== 'done') throw new Error(JSON.stringify(att));
  return { x, id, ids, att };
}

const updateDone = (version: string, confirmed = true): UpdateOutcome => ({ kind: 'done', result: { version, hash: new Uint8Array(32).fill(0xab), confirmed, message: 'ok' } });
const preflight = (active: string) => ({ ok: true, image: { version: '1.1.0', fileSha256: new Uint8Array(32).fill(1) }, device: { activeVersion: active, testConfirm: true, serialRecovery: false } }) as unknown as PreflightReport;
const configDone = (sequence: number, previousSequence: number) => ({ kind: 'done', result: { sequence, digest: new Uint8Array(32).fill(0xcd), previousSequence } }) as unknown as ConfigRunState;

/** The live facts as DevicePanels holds them, for the same outcomes. */
function liveVerdict(f: Omit<JobFacts, 'connected'>) {
  return jobVerdict({ connected: true, ...f });
}

async function fullJob(opts: { label?: { serial?: string }; override?: string } = {}) {
  const d = await device(opts.label ?? { serial: undefined });
  const t = new Trail();
  let time = T0;
  const at = () => (time += 60_000);
  await t.add(identifyRecord(d.id, { time: at() }));
  if (opts.override) await t.add(overrideRecord({ blocker: 'label-mismatch', reason: opts.override }, { device: d.ids, time: at() }));
  await t.add(attestRecord(d.att, { device: d.ids, time: at() }));
  await t.add(recordUpdate(updateDone('1.1.0+0'), { name: 'DEMO firmware 1.1.0', report: preflight('1.0.0+0'), device: d.ids, time: at() }));
  await t.add(recordConfig(configDone(3, 2), { op: 'apply', source: 'DEMO configuration #3', device: d.ids, time: at() }));
  const facts: Omit<JobFacts, 'connected'> = {
    identify: identifyFact(d.id),
    attest: attestFact(d.att),
    update: { kind: 'done', confirmed: true },
    configure: { kind: 'done' },
    overrides: opts.override ? [{ blocker: 'label-mismatch', reason: opts.override }] : undefined,
  };
  const v = liveVerdict(facts);
  await t.add(finishRecord(liveVerdict({ ...facts }), { device: d.ids, time: at() }));
  return { d, t, v: liveVerdict({ ...facts, finished: true }), finishV: v };
}

describe('job report', () => {
  it('a finished job: every field from the audit trail, each proven by its entries', async () => {
    const { d, t, v } = await fullJob({ label: { serial: undefined } });
    const serial = d.ids.serial!;
    const r = await buildJobReport(JSON.stringify(t.export()), { device: { serial }, trustedKeys: [tech.publicKey] });
    const [identify, attest, update, configure, finish] = t.entries;

    expect(r.format).toBe('fieldbench-job-report');
    expect(r.status).toBe('finished');
    expect(v.verdict).toBe('ok');
    expect(r.verdict).toMatchObject({ verdict: 'ok', headline: 'OK to deploy' });
    expect(r.verdict.proof).toEqual([identify.seq, attest.seq, update.seq, configure.seq, finish.seq]);
    // identity
    expect(r.device.serial).toBe(serial);
    expect(r.device.model).toBe(d.id.kind === 'done' ? d.id.result.presented.model : '');
    expect(r.device.ids.devicePublicKey).toBe(toHex(d.x.sec.devicePublicKey));
    expect(r.device.keyFingerprint).toBe(keyFingerprint(d.x.sec.devicePublicKey));
    expect(r.device.identity).toBe('verified');
    expect(r.device.badges).toEqual(['verified']);
    expect(r.device.label.result).toBe('not checked');
    expect(r.device.certificate?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(r.device.checks.map((c) => c.name)).toContain('Holds the certified key');
    expect(r.device.proof).toEqual([identify.seq]);
    // attestation: check names and claims in words, no raw ids
    const a = r.attestation!;
    expect(a.verdict).toBe(d.att.kind === 'done' ? d.att.result.appraisal.verdict : '');
    expect(a.checks.map((c) => c.name)).toContain('Fresh (answers our challenge)');
    expect(a.checks.map((c) => c.name)).not.toContain('nonce');
    expect(a.claims.map((c) => c.label)).toEqual(expect.arrayContaining(['Lifecycle', 'Debug access', 'Firmware', 'Security counter', 'Boots', 'Configuration']));
    expect(a.claims.find((c) => c.label === 'Lifecycle')!.value).toBe('secured');
    expect(JSON.stringify(a.claims)).not.toMatch(/"lifecycle"|debugStatus/);
    expect(a.proof).toEqual([attest.seq]);
    // firmware before and after, configuration before and after
    expect(r.firmware).toMatchObject({ before: '1.0.0', after: '1.1.0', changed: true, image: 'DEMO firmware 1.1.0', imageHash: 'ab'.repeat(32) });
    expect(r.firmware.words).toBe('updated from 1.0.0 to 1.1.0, confirmed');
    expect(r.firmware.proof).toEqual([update.seq]);
    expect(r.configuration).toMatchObject({ before: 2, after: 3, changed: true, digest: 'cd'.repeat(32), source: 'DEMO configuration #3', proof: [configure.seq] });
    expect(r.configuration.words).toBe('configuration #3 applied over #2');
    // steps, technician, times
    expect(r.steps.map((s) => [s.step, s.words])).toEqual([
      ['connect', 'done'],
      ['identify', 'done'],
      ['attest', 'done'],
      ['update', 'done'],
      ['configure', 'done'],
      ['finish', 'done'],
    ]);
    expect(r.technicians).toEqual([{ id: 't-17', keyId: keyIdHex(tech.publicKey) }]);
    expect(r.started).toBe(identify.time);
    expect(r.finished).toBe(finish.time);
    expect(r.overrides).toEqual([]);
    // the entries that prove it, and the last one it covers: the trail's head here
    expect(r.entries.map((e) => [e.seq, e.hash, e.op])).toEqual(t.entries.map((e) => [e.seq, e.hash, e.op]));
    expect(r.entries.at(-1)!.what).toBe('Job finished: ok to deploy');
    expect(r.entries[2].what).toBe('Firmware update: 1.1.0, confirmed');
    expect(r.covers).toEqual({ seq: finish.seq, hash: finish.hash });
    expect(r.trail).toMatchObject({ count: 5, head: { seq: finish.seq, hash: finish.hash }, authenticated: true });
    // the Finish entry carries the verdict the job bar showed
    expect(finish.details).toMatchObject({ step: 'finish', verdict: 'ok', reason: 'OK to deploy.' });
    // the report is plain JSON (what the PDF embeds)
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  }, 30_000);

  it('the facts rebuilt from the trail give the verdict the job bar showed (a label mismatch, overridden)', async () => {
    const { d, t, v } = await fullJob({ label: { serial: 'NOT-THIS-ONE' }, override: 'label was reprinted, checked by supervisor' });
    expect(factsFromEntries(t.entries).overrides).toEqual([{ blocker: 'label-mismatch', reason: 'label was reprinted, checked by supervisor' }]);
    expect(jobVerdict(factsFromEntries(t.entries))).toEqual(v);
    const r = await buildJobReport(t.export(), { device: d.ids });
    expect(r.device.label).toMatchObject({ entered: 'serial NOT-THIS-ONE', result: 'mismatch' });
    expect(r.device.badges).toContain('label-mismatch');
    expect(r.overrides).toEqual([{ blocker: 'label-mismatch', text: 'the physical label does not match what the device reports', reason: 'label was reprinted, checked by supervisor', time: t.entries[1].time, seq: t.entries[1].seq }]);
    expect(r.verdict.verdict).toBe('ok');
    expect(r.verdict.reason).toContain('label was reprinted');
    expect(r.verdict.proof).toContain(t.entries[1].seq);
    expect(r.trail.authenticated).toBe(false); // no trusted keys given
  }, 30_000);

  it('a tampered trail is refused: a changed entry, an entry cut out, a signer not trusted', async () => {
    const { d, t } = await fullJob();
    const changed = structuredClone(t.export());
    (changed.entries[2].details as Record<string, unknown>).version = '9.9.9';
    await expect(buildJobReport(changed, { device: d.ids })).rejects.toMatchObject({ code: 'tampered' });
    const cut = structuredClone(t.export());
    cut.entries.splice(1, 1);
    await expect(buildJobReport(cut, { device: d.ids })).rejects.toMatchObject({ code: 'tampered' });
    await expect(buildJobReport(t.export(), { device: d.ids, trustedKeys: [other.publicKey] })).rejects.toMatchObject({ code: 'tampered' });
    await expect(buildJobReport('not json', { device: d.ids })).rejects.toMatchObject({ code: 'malformed' });
    await expect(buildJobReport(t.export(), { device: { serial: 'SOMEONE-ELSE' } })).rejects.toMatchObject({ code: 'no-entries' });
    await expect(buildJobReport(t.export(), { device: {} })).rejects.toBeInstanceOf(ReportError);
  }, 30_000);

  it('a partial job is reported as partial: verdict not decided, steps still to do, covers the last entry so far', async () => {
    const d = await device();
    const t = new Trail();
    await t.add(identifyRecord(d.id, { time: T0 }));
    const a = await t.add(attestRecord(d.att, { device: d.ids, time: T0 + 1000 }));
    const r = await buildJobReport(t.export(), { device: d.ids });
    expect(r.status).toBe('partial');
    expect(r.verdict.verdict).toBe('pending');
    expect(r.verdict.headline).toBe('Not decided yet');
    expect(r.finished).toBeUndefined();
    expect(r.steps.find((s) => s.step === 'update')!.words).toBe('not done yet');
    expect(r.steps.find((s) => s.step === 'finish')!.status).not.toBe('done');
    expect(r.firmware).toMatchObject({ before: '1.0.0', changed: false, words: 'runs 1.0.0; no update decided yet', proof: [a.seq] });
    expect(r.configuration.words).toBe('no configuration decided yet');
    expect(r.covers).toEqual({ seq: a.seq, hash: a.hash });
  }, 30_000);

  it('a step marked not needed is audited and reported: firmware and configuration unchanged; Finish cannot be recorded early', async () => {
    const d = await device();
    const t = new Trail();
    await t.add(identifyRecord(d.id, { time: T0 }));
    await t.add(attestRecord(d.att, { device: d.ids, time: T0 + 1 }));
    const facts: JobFacts = { connected: true, identify: identifyFact(d.id), attest: attestFact(d.att) };
    expect(() => finishRecord(jobVerdict(facts), { device: d.ids })).toThrow(/cannot finish yet/);
    const su = await t.add(skipRecord('update', 'the firmware is current', { device: d.ids, time: T0 + 2 }));
    const sc = await t.add(skipRecord('configure', 'no configuration needed', { device: d.ids, time: T0 + 3 }));
    expect(su).toMatchObject({ op: 'job', outcome: 'ok', details: { step: 'update', decision: 'not-needed', reason: 'the firmware is current' } });
    expect(() => skipRecord('finish' as 'update', 'x')).toThrow();
    const v = jobVerdict({ ...facts, update: { kind: 'skipped', reason: 'the firmware is current' }, configure: { kind: 'skipped', reason: 'no configuration needed' } });
    expect(jobVerdict(factsFromEntries(t.entries))).toEqual(v);
    const fin = await t.add(finishRecord(v, { device: d.ids, time: T0 + 4 }));
    const r = await buildJobReport(t.export(), { device: d.ids });
    expect(r.status).toBe('finished');
    expect(r.firmware).toMatchObject({ before: '1.0.0', after: '1.0.0', changed: false, words: 'not updated: the firmware is current (runs 1.0.0)' });
    expect(r.configuration).toMatchObject({ changed: false, words: 'not changed: no configuration needed', proof: [sc.seq] });
    expect(r.steps.find((s) => s.step === 'update')).toMatchObject({ status: 'skipped', words: 'not needed', proof: [su.seq] });
    expect(r.entries.map((e) => e.what).slice(2)).toEqual(['Firmware update marked not needed: the firmware is current', 'Configuration marked not needed: no configuration needed', 'Job finished: ok to deploy']);
    expect(r.covers?.hash).toBe(fin.hash);
  }, 30_000);

  it('the job is the device\'s: other devices\' entries and its earlier finished job are left out', async () => {
    const d = await device();
    const t = new Trail();
    const ids: DeviceIdentifiersInput = d.ids;
    const skip = async (time: number) => {
      await t.add(skipRecord('update', 'the firmware is current', { device: ids, time }));
      await t.add(skipRecord('configure', 'no configuration needed', { device: ids, time }));
    };
    // an earlier finished job
    await t.add(identifyRecord(d.id, { time: T0 }));
    await t.add(attestRecord(d.att, { device: ids, time: T0 }));
    await skip(T0);
    await t.add({ op: 'job', device: ids, outcome: 'ok', details: { step: 'finish', verdict: 'ok', reason: 'OK to deploy.' }, time: T0 });
    // the next job, with another device's entry in between (another technician)
    const first = await t.add(identifyRecord(d.id, { time: T0 + 10 }));
    await t.add({ op: 'identify', device: { serial: 'OTHER-1' }, outcome: 'ok', details: {}, time: T0 + 11 }, other);
    await t.add(attestRecord(d.att, { device: ids, time: T0 + 12 }));
    const job = jobEntries(t.entries, { serial: ids.serial });
    expect(job[0].seq).toBe(first.seq);
    expect(job.map((e) => e.device.serial)).toEqual([ids.serial, ids.serial]);
    const r = await buildJobReport(t.export(), { device: { serial: ids.serial } });
    expect(r.status).toBe('partial');
    expect(r.technicians.map((x) => x.id)).toEqual(['t-17']);
    expect(r.trail.count).toBe(t.entries.length);
    // the earlier job, asked for by its range
    const earlier = await buildJobReport(t.export(), { device: { serial: ids.serial }, until: first.seq - 1 });
    expect(earlier.status).toBe('finished');
    expect(earlier.entries).toHaveLength(5);
    // since: the app's job starts at its own first entry
    expect((await buildJobReport(t.export(), { device: ids, since: first.seq })).entries).toHaveLength(1);
  }, 30_000);

  it('a report is checked against its trail: the same report again, or what differs', async () => {
    const { d, t } = await fullJob();
    const r = await buildJobReport(t.export(), { device: d.ids });
    expect(await verifyJobReport(JSON.parse(JSON.stringify(r)), t.export())).toBeNull();
    const forged = structuredClone(r) as JobReport;
    forged.firmware.after = '2.0.0';
    expect(await verifyJobReport(forged, t.export())).toMatch(/firmware\.after/);
    const swapped = structuredClone(r) as JobReport;
    swapped.entries[0].hash = 'ee'.repeat(32);
    expect(await verifyJobReport(swapped, t.export())).toMatch(/entries/);
    const changed = structuredClone(t.export());
    (changed.entries[0].details as Record<string, unknown>).model = 'other';
    expect(await verifyJobReport(r, changed)).toMatch(/does not verify/);
    expect(await verifyJobReport({ format: 'something' }, t.export())).toBe('not a fieldbench job report');
  }, 30_000);
});

describe('job report PDF', () => {
  it('parses back: one or two A4 pages with every item in words, the entry hashes, the report embedded, the covered hash in the keywords', async () => {
    const { d, t } = await fullJob({ label: { serial: 'NOT-THIS-ONE' }, override: 'label was reprinted, checked by supervisor' });
    const r = await buildJobReport(t.export(), { device: d.ids, trustedKeys: [tech.publicKey] });
    const bytes = await reportPdf(r, { now: T0 + 3600_000 });
    if (process.env.FIELDBENCH_REPORT_PDF_OUT) (await import('node:fs')).writeFileSync(process.env.FIELDBENCH_REPORT_PDF_OUT, bytes);
    expect(new TextDecoder().decode(bytes.subarray(0, 5))).toBe('%PDF-');
    const doc = await PDFDocument.load(bytes, { updateMetadata: false });
    expect(doc.getPageCount()).toBeGreaterThanOrEqual(1);
    expect(doc.getPageCount()).toBeLessThanOrEqual(2);
    expect(doc.getPage(0).getSize().width).toBeCloseTo(595.28, 1);
    expect(doc.getTitle()).toBe(`Job report: ${d.ids.serial}`);
    expect(doc.getSubject()).toBe('OK to deploy');
    expect(doc.getAuthor()).toBe('t-17');
    expect(doc.getKeywords()).toContain(`hash ${r.covers!.hash}`);
    // the embedded report is the report, and it checks against the trail
    const embedded = await readReportPdf(bytes);
    expect(embedded).toEqual(r);
    expect(await verifyJobReport(embedded, t.export())).toBeNull();
    // what a reader sees
    // wrapped lines joined again as a reader reads them
    const text = (await pdfPagesText(bytes)).join('\n').replace(/\s+/g, ' ');
    for (const s of [
      `Job report: ${d.ids.serial}`,
      'OK to deploy',
      r.device.keyFingerprint!,
      'DOES NOT MATCH (entered: serial NOT-THIS-ONE)',
      'Holds the certified key',
      'Fresh (answers our challenge)',
      'Lifecycle',
      'secured',
      'Firmware before',
      '1.0.0',
      'updated from 1.0.0 to 1.1.0, confirmed',
      'configuration #3 applied over #2',
      'Reason: “label was reprinted, checked by supervisor”',
      't-17 (key ',
      `This report covers the audit trail up to entry #${r.covers!.seq}, hash ${r.covers!.hash}.`,
      'fieldbench audit verify',
    ]) expect(text, s).toContain(s);
    for (const e of r.entries) expect(text).toContain(e.hash);
    // no raw check ids or JSON
    expect(text).not.toMatch(/instance-id|"verdict"|debugStatus/);
  }, 30_000);

  it('a partial report says so on its first page; text outside WinAnsi is replaced, not refused', async () => {
    const d = await device();
    const t = new Trail();
    await t.add(identifyRecord(d.id, { time: T0 }));
    const r = await buildJobReport(t.export(), { device: d.ids });
    const [first] = await pdfPagesText(await reportPdf(r));
    expect(first).toContain('PARTIAL REPORT: the job is not finished');
    expect(first).toContain('Not decided yet');
    expect(pdfSafe('ok ✓ → 漢字')).toBe('ok ok -> ??');
    // a reason with characters the standard fonts cannot draw still makes a PDF
    await t.add(skipRecord('update', 'firmware is current ✓ 漢字', { device: d.ids, time: T0 + 1 }));
    const r2 = await buildJobReport(t.export(), { device: d.ids });
    expect((await pdfPagesText(await reportPdf(r2))).join(' ').replace(/\s+/g, ' ')).toContain('firmware is current ok ??');
    expect(await readReportPdf(await (await PDFDocument.create()).save())).toBeNull();
  }, 30_000);
});

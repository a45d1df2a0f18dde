/**
 * The job report (issue 14): one device's job as a document a supervisor or a
 * customer can read and check, built from the AUDIT TRAIL alone, so the app
 * (its own trail) and the CLI (`fieldbench report`, an export or a records
 * log) make the same report, and every line in it is backed by a signed,
 * hash-chained entry.
 *
 * buildJobReport verifies the whole trail first (verifyAuditExport: chain,
 * sequence, signatures; with trusted technician keys, who signed) and refuses
 * a tampered one. It then picks the device's entries of the job (after
 * `since`, up to `until`, and after the device's previous finished job) and
 * rebuilds the job's facts from them (factsFromEntries), so the overall
 * verdict is jobVerdict's, the same function the job bar uses. The report
 * names the hash of the last entry it covers (`covers`): `fieldbench audit
 * verify` prints the head of the trail, and the entry with that hash must be
 * in it; verifyJobReport rebuilds a report from a trail and compares.
 *
 * Framework-free and locale-free: times are ms since the epoch (the PDF and
 * the page render them in local time); words come from the shared word lists
 * (attestation check names, claims, blockers).
 */
import { FieldbenchError } from '../../base/errors.ts';
import { fromHex } from '../../base/bytes.ts';
import { auditedClaimsInWords, checkName, type ClaimLine } from '../../trust/attestation-words.ts';
import { keyFingerprint } from '../../factory/label-code.ts';
import { type AuditExport, type AuditExportEntry, verifyAuditExport } from '../../store/audit.ts';
import { idKeys, normaliseIds, type DeviceIdentifiers, type DeviceIdentifiersInput } from '../../store/ids.ts';
import { plainVersion } from '../update/record.ts';
import { JOB_OP, jobEntryWords } from './record.ts';
import { BLOCKER_TEXT, jobVerdict, JOB_STEPS, type Blocker, type JobFacts, type JobStep, type JobVerdict, type StepStatus } from './verdict.ts';

export const REPORT_FORMAT = 'fieldbench-job-report';

/** A proof: the audit entries (by seq) an item of the report rests on. */
export type Proof = number[];

export interface ReportEntry {
  seq: number;
  hash: string;
  op: string;
  outcome: string;
  time: number;
  /** What the entry records, in words. */
  what: string;
}

export interface ReportCheck {
  check: string;
  /** The check's name in words. */
  name: string;
  result: string;
  detail: string;
}

export interface JobReport {
  format: typeof REPORT_FORMAT;
  version: 1;
  /** finished: the job's Finish is recorded; partial: a report of the job so far. */
  status: 'finished' | 'partial';
  verdict: { verdict: JobVerdict['verdict']; headline: string; reason: string; proof: Proof };
  device: {
    ids: DeviceIdentifiers;
    serial?: string;
    model?: string;
    hwRev?: string;
    /** keyFingerprint() of the identity key: the fingerprint a unit label carries. */
    keyFingerprint?: string;
    /** 'verified' | 'unverified' | 'failed' | 'not identified' | 'not supported' */
    identity: string;
    badges: string[];
    label: { entered?: string; result: 'match' | 'mismatch' | 'not checked'; detail: string };
    certificate?: { serial?: string; issuer?: string; notAfter?: number; sha256?: string };
    checks: ReportCheck[];
    proof: Proof;
  };
  attestation: null | { verdict: string; checks: ReportCheck[]; claims: ClaimLine[]; evidenceSha256?: string; proof: Proof } | { verdict: 'failed' | 'cancelled' | 'not supported'; reason: string; checks: []; claims: []; proof: Proof };
  firmware: { before?: string; after?: string; changed: boolean; words: string; image?: string; imageHash?: string; proof: Proof };
  configuration: { before?: number; after?: number; changed: boolean; words: string; digest?: string; source?: string; proof: Proof };
  steps: { step: JobStep; status: StepStatus; words: string; proof: Proof }[];
  overrides: { blocker: Blocker; text: string; reason: string; time: number; seq: number }[];
  technicians: { id: string; keyId: string }[];
  started?: number;
  finished?: number;
  entries: ReportEntry[];
  /** The last audit entry this report covers: check it against `fieldbench audit verify` (its head, or an entry of the trail). */
  covers: { seq: number; hash: string } | null;
  /** The trail the report was built from, as verified. */
  trail: { count: number; head: { seq: number; hash: string } | null; authenticated: boolean; signers: string[] };
}

export class ReportError extends FieldbenchError<'tampered' | 'malformed' | 'no-device' | 'no-entries'> {}

export const STEP_WORDS: Record<StepStatus, string> = {
  done: 'done',
  failed: 'failed',
  skipped: 'not needed',
  unsupported: 'not supported by this device',
  next: 'not done yet',
  waiting: 'not done yet',
  blocked: 'blocked',
};

/** A check's result in words. */
export const RESULT_WORDS: Record<string, string> = { pass: 'passed', warn: 'warning', fail: 'failed', skip: 'not checked' };

const STEP_NAMES: Record<JobStep, string> = { connect: 'Connect', identify: 'Identify', attest: 'Attest', update: 'Update firmware', configure: 'Configure', finish: 'Finish' };
export const stepName = (s: JobStep) => STEP_NAMES[s];

const IDENTIFY_CHECK_NAMES: Record<string, string> = {
  certificate: 'Manufacturer certificate',
  binding: 'Certificate names this device',
  possession: 'Holds the certified key',
  label: 'Physical label',
  duplicates: 'Inventory duplicates',
};

export function verdictHeadline(v: JobVerdict['verdict']): string {
  return v === 'ok' ? 'OK to deploy' : v === 'do-not-deploy' ? 'Do not deploy' : 'Not decided yet';
}

// ------------------------------------------------------------------ which entries

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const det = (e: AuditExportEntry): Record<string, unknown> => (e.details ?? {}) as Record<string, unknown>;
const isJob = (e: AuditExportEntry, step?: string) => e.op === JOB_OP && (step === undefined || det(e).step === step);

/** Does the entry concern this device (any identifier in common)? */
function concerns(e: AuditExportEntry, keys: Set<string>): boolean {
  try {
    return idKeys(normaliseIds(e.device ?? {})).some((k) => keys.has(k));
  } catch {
    return false;
  }
}

/**
 * The job's entries for a device: its entries after `since` (seq, exclusive)
 * up to `until` (seq, inclusive); of those, the ones after its last Finish
 * when something follows it (a new job), else the last finished job.
 */
export function jobEntries(entries: readonly AuditExportEntry[], device: DeviceIdentifiersInput, opts: { since?: number; until?: number } = {}): AuditExportEntry[] {
  const keys = new Set(idKeys(normaliseIds(device)));
  if (!keys.size) throw new ReportError('no-device', 'name the device: its serial or identity key');
  const mine = entries.filter((e) => e.seq > (opts.since ?? 0) && (opts.until === undefined || e.seq <= opts.until) && concerns(e, keys));
  const finishes = mine.map((e, i) => (isJob(e, 'finish') ? i : -1)).filter((i) => i >= 0);
  const last = finishes.at(-1);
  if (last === undefined) return mine;
  if (last < mine.length - 1) return mine.slice(last + 1);
  const prev = finishes.at(-2);
  return mine.slice(prev === undefined ? 0 : prev + 1);
}

// ------------------------------------------------------------------ facts from entries

type Latest = Partial<Record<'identify' | 'attest' | 'update' | 'configure' | 'finish', AuditExportEntry>>;

function latest(job: readonly AuditExportEntry[]): Latest & { overrides: AuditExportEntry[]; firstAttest?: AuditExportEntry } {
  const out: Latest & { overrides: AuditExportEntry[]; firstAttest?: AuditExportEntry } = { overrides: [] };
  for (const e of job) {
    if (e.op === 'identify') {
      out.identify = e;
      out.overrides = []; // overrides hold for the identification they were recorded against
    } else if (e.op === 'attest') {
      out.attest = e;
      out.firstAttest ??= e;
    } else if (e.op === 'override') out.overrides.push(e);
    else if (e.op === 'update' || isJob(e, 'update')) out.update = e;
    else if (e.op === 'configure' || isJob(e, 'configure')) {
      // a cancelled or unsupported run changes nothing: the step stays as it was (as in the app)
      if (e.op === 'configure' && (e.outcome === 'cancelled' || e.outcome === 'unsupported')) continue;
      out.configure = e;
    } else if (isJob(e, 'finish')) out.finish = e;
  }
  return out;
}

const reasonOf = (e: AuditExportEntry) => str(det(e).reason) ?? e.outcome;

function unfinished(e: AuditExportEntry): { kind: 'failed' | 'cancelled' | 'unsupported'; reason: string } | undefined {
  if (e.outcome === 'failed') return { kind: 'failed', reason: reasonOf(e) };
  if (e.outcome === 'cancelled') return { kind: 'cancelled', reason: reasonOf(e) };
  if (e.outcome === 'not-supported' || e.outcome === 'unsupported') return { kind: 'unsupported', reason: reasonOf(e) };
  return undefined;
}

/** The job's facts as the entries record them (what the app held when it wrote them). */
export function factsFromEntries(job: readonly AuditExportEntry[]): JobFacts {
  const l = latest(job);
  const facts: JobFacts = { connected: job.length > 0 };
  if (l.identify) {
    const u = unfinished(l.identify);
    const badges = det(l.identify).badges;
    facts.identify = u ?? { kind: 'done', badges: Array.isArray(badges) ? badges.filter((b): b is string => typeof b === 'string') : [] };
  }
  if (l.attest) {
    const d = det(l.attest);
    const u = unfinished(l.attest);
    const reasons = Array.isArray(d.reasons) ? (d.reasons as { check?: unknown; result?: unknown }[]) : [];
    const v = d.verdict === 'trusted' || d.verdict === 'warning' || d.verdict === 'untrusted' ? d.verdict : undefined;
    facts.attest = u ?? { kind: 'done', verdict: v, failing: reasons.filter((r) => r.result === 'fail').map((r) => String(r.check)) };
  }
  if (l.update) {
    const d = det(l.update);
    if (isJob(l.update)) facts.update = { kind: 'skipped', reason: str(d.reason) ?? 'not needed' };
    else if (d.result === 'done') facts.update = { kind: 'done', confirmed: d.confirmed === true };
    else if (d.result === 'cancelled') facts.update = { kind: 'cancelled', reason: reasonOf(l.update) };
    else if (d.result === 'unsupported') facts.update = { kind: 'unsupported', reason: reasonOf(l.update) };
    else facts.update = { kind: 'failed', reason: reasonOf(l.update) };
  }
  if (l.configure) {
    const d = det(l.configure);
    if (isJob(l.configure)) facts.configure = { kind: 'skipped', reason: str(d.reason) ?? 'not needed' };
    else if (l.configure.outcome === 'ok' || l.configure.outcome === 'attention') facts.configure = { kind: 'done' };
    else facts.configure = { kind: 'failed', reason: reasonOf(l.configure) };
  }
  const overrides = l.overrides
    .map((e) => ({ blocker: det(e).blocker as Blocker, reason: str(det(e).reason) ?? '' }))
    .filter((o) => typeof o.blocker === 'string');
  if (overrides.length) facts.overrides = overrides;
  if (l.finish) facts.finished = true;
  return facts;
}

// ------------------------------------------------------------------ words for entries

const OP_WORDS: Record<string, string> = {
  identify: 'Identification',
  attest: 'Attestation',
  update: 'Firmware update',
  configure: 'Configuration',
  override: 'Override',
  events: 'Security event log read',
  interface: 'Interface change',
  wipe: 'Wipe',
  rotate: 'Rotation',
  backup: 'Configuration backup',
  restore: 'Configuration restore',
  job: 'Job',
};

/** One entry in words (the report's proof table). */
export function entryWords(e: AuditExportEntry): string {
  const d = det(e);
  const u = unfinished(e);
  const name = OP_WORDS[e.op] ?? e.op;
  if (e.op === JOB_OP) return jobEntryWords(d);
  if (u) return `${name} ${u.kind === 'unsupported' ? 'not supported' : u.kind}: ${u.reason}`;
  switch (e.op) {
    case 'identify': {
      const badges = Array.isArray(d.badges) ? (d.badges as string[]) : [];
      return `${name}: ${badges.join(', ').replace(/-/g, ' ') || e.outcome}`;
    }
    case 'attest':
      return `${name}: ${str(d.verdict) ?? e.outcome}`;
    case 'update':
      return d.result === 'done' ? `${name}: ${plainVersion(String(d.version ?? '?'))}${d.confirmed ? ', confirmed' : ', running as a test (not confirmed)'}` : `${name} ${e.outcome}: ${reasonOf(e)}`;
    case 'configure':
      return e.outcome === 'ok' || e.outcome === 'attention'
        ? `${name}${num(d.sequence) !== undefined ? ` #${d.sequence}` : ''} ${d.signed === false ? 'written unsigned' : 'applied'}`
        : `${name} ${e.outcome}: ${reasonOf(e)}`;
    case 'override':
      return `${name}: ${BLOCKER_TEXT[d.blocker as Blocker] ?? String(d.blocker)}; reason: ${str(d.reason) ?? ''}`;
    default:
      return `${name}: ${e.outcome}`;
  }
}

// ------------------------------------------------------------------ the report

function checksOf(list: unknown, names: (c: string) => string): ReportCheck[] {
  if (!Array.isArray(list)) return [];
  return (list as Record<string, unknown>[]).map((c) => {
    const check = String(c.check ?? '');
    return { check, name: names(check), result: String(c.result ?? ''), detail: String(c.detail ?? '') };
  });
}

function deviceSection(l: Latest, target: DeviceIdentifiersInput): JobReport['device'] {
  const idEntry = l.identify;
  // identifiers: the identification's (what the device presented), else the target's
  const ids: DeviceIdentifiers = normaliseIds(idEntry?.device && Object.keys(idEntry.device).length ? idEntry.device : target);
  const d = idEntry ? det(idEntry) : {};
  const u = idEntry ? unfinished(idEntry) : undefined;
  const badges = Array.isArray(d.badges) ? (d.badges as string[]) : [];
  const checks = checksOf(d.checks, (c) => IDENTIFY_CHECK_NAMES[c] ?? c);
  const labelCheck = checks.find((c) => c.check === 'label');
  const label: JobReport['device']['label'] = {
    ...(str(d.label) ? { entered: str(d.label) } : {}),
    result: labelCheck?.result === 'pass' ? 'match' : labelCheck?.result === 'fail' ? 'mismatch' : 'not checked',
    detail: labelCheck?.detail ?? 'no identification recorded',
  };
  let fp: string | undefined;
  if (ids.devicePublicKey) {
    try {
      fp = keyFingerprint(fromHex(ids.devicePublicKey));
    } catch {
      fp = undefined;
    }
  }
  const certificate =
    d.certSerial || d.issuer || d.notAfter || d.certificateSha256
      ? { ...(str(d.certSerial) ? { serial: str(d.certSerial) } : {}), ...(str(d.issuer) ? { issuer: str(d.issuer) } : {}), ...(num(d.notAfter) !== undefined ? { notAfter: num(d.notAfter) } : {}), ...(str(d.certificateSha256) ? { sha256: str(d.certificateSha256) } : {}) }
      : undefined;
  const identity = !idEntry ? 'not identified' : u ? (u.kind === 'unsupported' ? 'not supported' : u.kind) : badges.includes('unverified') ? 'unverified' : 'verified';
  return {
    ids,
    ...(ids.serial ? { serial: ids.serial } : {}),
    ...(str(d.model) ? { model: str(d.model) } : {}),
    ...(str(d.hwRev) ? { hwRev: str(d.hwRev) } : {}),
    ...(fp ? { keyFingerprint: fp } : {}),
    identity,
    badges,
    label,
    ...(certificate ? { certificate } : {}),
    checks,
    proof: idEntry ? [idEntry.seq] : [],
  };
}

function attestationSection(l: Latest): JobReport['attestation'] {
  const e = l.attest;
  if (!e) return null;
  const u = unfinished(e);
  if (u) return { verdict: u.kind === 'unsupported' ? 'not supported' : u.kind, reason: u.reason, checks: [], claims: [], proof: [e.seq] };
  const d = det(e);
  const claims = d.claims && typeof d.claims === 'object' ? auditedClaimsInWords(d.claims as Record<string, unknown>) : [];
  return { verdict: str(d.verdict) ?? e.outcome, checks: checksOf(d.reasons, checkName), claims, ...(str(d.evidenceSha256) ? { evidenceSha256: str(d.evidenceSha256) } : {}), proof: [e.seq] };
}

const claimedFirmware = (e: AuditExportEntry | undefined): string | undefined => {
  const sw = e && (det(e).claims as { software?: { version?: unknown }[] } | undefined)?.software;
  const v = Array.isArray(sw) ? sw[0]?.version : undefined;
  return typeof v === 'string' && v ? plainVersion(v) : undefined;
};

function firmwareSection(job: readonly AuditExportEntry[], l: ReturnType<typeof latest>): JobReport['firmware'] {
  const u = l.update;
  const updateDone = u && u.op === 'update' && det(u).result === 'done' ? u : undefined;
  // before: what the update ran over (preflight), else what the first attestation before it measured
  const firstAttest = job.find((e) => e.op === 'attest' && (!u || e.seq < u.seq) && claimedFirmware(e));
  const before = (u && u.op === 'update' ? str(det(u).fromVersion) : undefined) ?? claimedFirmware(firstAttest);
  const proof: Proof = [];
  if (firstAttest && (!u || !str(det(u).fromVersion))) proof.push(firstAttest.seq);
  if (u) proof.push(u.seq);
  let after: string | undefined;
  let words: string;
  if (updateDone) {
    after = plainVersion(String(det(updateDone).version ?? ''));
    words = det(updateDone).confirmed ? `updated from ${before ?? 'an unrecorded version'} to ${after}, confirmed` : `${after} installed but running as a test (not confirmed): it reverts at the next reboot`;
    // a later attestation measures what runs now
    const later = job.find((e) => e.op === 'attest' && e.seq > updateDone.seq && claimedFirmware(e));
    if (later) proof.push(later.seq);
  } else if (u && isJob(u)) {
    after = before;
    words = `not updated: ${str(det(u).reason) ?? 'not needed'}${before ? ` (runs ${before})` : ''}`;
  } else if (u) {
    after = before;
    words = `not updated: the update ${u.outcome === 'reverted' ? 'was reverted by the bootloader' : `${u.outcome}: ${reasonOf(u)}`}`;
  } else {
    after = undefined;
    words = before ? `runs ${before}; no update decided yet` : 'no firmware recorded yet';
  }
  return {
    ...(before ? { before } : {}),
    ...(after ? { after } : {}),
    changed: !!updateDone && after !== before,
    words,
    ...(updateDone && str(det(updateDone).image) ? { image: str(det(updateDone).image) } : {}),
    ...(updateDone && str(det(updateDone).hash) ? { imageHash: str(det(updateDone).hash) } : {}),
    proof,
  };
}

function configurationSection(l: ReturnType<typeof latest>): JobReport['configuration'] {
  const c = l.configure;
  if (!c) return { changed: false, words: 'no configuration decided yet', proof: [] };
  const d = det(c);
  if (isJob(c)) return { changed: false, words: `not changed: ${str(d.reason) ?? 'not needed'}`, proof: [c.seq] };
  const before = num(d.previousSequence);
  const seq = num(d.sequence);
  if (c.outcome === 'ok' || c.outcome === 'attention') {
    const words =
      d.signed === false
        ? `settings written unsigned (${Array.isArray(d.keys) ? (d.keys as string[]).join(', ') : 'keys not recorded'})`
        : `configuration #${seq ?? '?'} applied${before ? ` over #${before}` : before === 0 ? ' (none before)' : ''}`;
    return {
      ...(before !== undefined ? { before } : {}),
      ...(seq !== undefined ? { after: seq } : {}),
      changed: true,
      words,
      ...(str(d.digest) ? { digest: str(d.digest) } : {}),
      ...(str(d.source) ? { source: str(d.source) } : {}),
      proof: [c.seq],
    };
  }
  return { changed: false, words: `not applied: ${reasonOf(c)}`, proof: [c.seq] };
}

/**
 * The report of one device's job, from a trail already verified (see
 * buildJobReport, which verifies). `trail` says how it was verified.
 */
export function reportFromEntries(job: readonly AuditExportEntry[], target: DeviceIdentifiersInput, trail: JobReport['trail']): JobReport {
  const l = latest(job);
  const facts = factsFromEntries(job);
  const v = jobVerdict(facts);
  const bySeq = (e: AuditExportEntry | undefined) => (e ? [e.seq] : []);
  const stepProof: Record<JobStep, Proof> = {
    connect: [], // connecting is not audited: the entries that follow show the device was there
    identify: bySeq(l.identify),
    attest: bySeq(l.attest),
    update: bySeq(l.update),
    configure: bySeq(l.configure),
    finish: bySeq(l.finish),
  };
  const techs = new Map<string, { id: string; keyId: string }>();
  for (const e of job) techs.set(`${e.technician.id}\u0000${e.technician.keyId}`, { id: e.technician.id, keyId: e.technician.keyId });
  const last = job.at(-1);
  // what the verdict rests on: every entry that decides a step, and the overrides
  const verdictProof = [...new Set([...JOB_STEPS.flatMap((s) => (s === 'connect' ? [] : stepProof[s])), ...l.overrides.map((o) => o.seq)])].sort((a, b) => a - b);
  return {
    format: REPORT_FORMAT,
    version: 1,
    status: l.finish ? 'finished' : 'partial',
    verdict: { verdict: v.verdict, headline: verdictHeadline(v.verdict), reason: v.reason.replace(/^(OK to deploy|Do not deploy)[:.]?\s*/, '') || v.reason, proof: verdictProof },
    device: deviceSection(l, target),
    attestation: attestationSection(l),
    firmware: firmwareSection(job, l),
    configuration: configurationSection(l),
    steps: JOB_STEPS.map((s) => ({ step: s, status: v.steps[s], words: s === 'connect' && job.length ? 'done' : STEP_WORDS[v.steps[s]], proof: stepProof[s] })),
    overrides: l.overrides.map((e) => ({ blocker: det(e).blocker as Blocker, text: BLOCKER_TEXT[det(e).blocker as Blocker] ?? String(det(e).blocker), reason: str(det(e).reason) ?? '', time: e.time, seq: e.seq })),
    technicians: [...techs.values()],
    ...(job.length ? { started: job[0].time } : {}),
    ...(l.finish ? { finished: l.finish.time } : {}),
    entries: job.map((e) => ({ seq: e.seq, hash: e.hash, op: e.op, outcome: e.outcome, time: e.time, what: entryWords(e) })),
    covers: last ? { seq: last.seq, hash: last.hash } : null,
    trail,
  };
}

export interface BuildReportOptions {
  /** The device: its serial or identity key (any identifier it is recorded under). */
  device: DeviceIdentifiersInput;
  /** Only entries after this seq (the job started after it). */
  since?: number;
  /** Only entries up to this seq. */
  until?: number;
  /** Trusted technician keys: every entry must be signed by one (else integrity only). */
  trustedKeys?: Uint8Array[];
  expectedHead?: { seq: number; hash: string };
}

/** Verify the trail, then build the device's job report. Throws ReportError (tampered, malformed, no-entries). */
export async function buildJobReport(trail: AuditExport | string, opts: BuildReportOptions): Promise<JobReport> {
  const v = await verifyAuditExport(trail, opts.trustedKeys, { expectedHead: opts.expectedHead });
  if (!v.ok) {
    if (v.index < 0) throw new ReportError('malformed', `no report: the audit trail cannot be read (${v.reason})`);
    throw new ReportError('tampered', `no report: the audit trail does not verify (entry ${v.index}${v.seq !== undefined ? `, seq ${v.seq}` : ''}: ${v.code}: ${v.reason})`);
  }
  const doc = (typeof trail === 'string' ? JSON.parse(trail) : trail) as AuditExport;
  const job = jobEntries(doc.entries, opts.device, { since: opts.since, until: opts.until });
  if (!job.length) throw new ReportError('no-entries', 'no report: the audit trail holds no entry about this device in the range asked for');
  return reportFromEntries(job, opts.device, { count: v.count, head: v.head, authenticated: v.authenticated, signers: v.signers });
}

/**
 * Check a report against a trail: the trail verifies, and the report built
 * from it for the same device and entries is the same (every item, every
 * entry hash). Returns null when it matches, else what differs.
 */
export async function verifyJobReport(report: unknown, trail: AuditExport | string, opts: { trustedKeys?: Uint8Array[] } = {}): Promise<string | null> {
  const r = report as Partial<JobReport> | null;
  if (!r || r.format !== REPORT_FORMAT || r.version !== 1 || !Array.isArray(r.entries) || !r.entries.length || !r.device?.ids) return 'not a fieldbench job report';
  let again: JobReport;
  try {
    const seqs = r.entries.map((e) => e.seq);
    again = await buildJobReport(trail, { device: r.device.ids, since: Math.min(...seqs) - 1, until: Math.max(...seqs), trustedKeys: opts.trustedKeys });
  } catch (e) {
    return (e as Error).message;
  }
  const a = { ...r, trail: undefined };
  const b = { ...again, trail: undefined };
  const diff = firstDifference(a, b, '');
  return diff ? `the report does not match the audit trail at ${diff}` : null;
}

function firstDifference(a: unknown, b: unknown, path: string): string | null {
  if (a === b) return null;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return path || '(the report)';
  if (Array.isArray(a) !== Array.isArray(b)) return path;
  const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
  for (const k of keys) {
    const va = (a as Record<string, unknown>)[k];
    const vb = (b as Record<string, unknown>)[k];
    if (va === undefined && vb === undefined) continue;
    const d = firstDifference(va, vb, path ? `${path}.${k}` : k);
    if (d) return d;
  }
  return null;
}

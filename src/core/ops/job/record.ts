/**
 * The job's own audit entries (issue 14): a step the technician marked "not
 * needed" (the firmware is current, no configuration needed) and the Finish,
 * with the verdict it ended in. The other steps are audited by their ops'
 * records; these two are decisions of the technician, so they are audited
 * too, and the job report (report.ts) is built from the trail alone.
 *
 * Entry: op "job", details {step, decision: "not-needed", reason} or
 * {step: "finish", verdict, reason, blockers?}.
 */
import { FieldbenchError } from '../../base/errors.ts';
import type { DeviceIdentifiersInput } from '../../store/ids.ts';
import { seenUpdate } from '../record.ts';
import type { RecordPlan } from '../record-plan.ts';
import type { JobVerdict } from './verdict.ts';

export const JOB_OP = 'job';

/** The steps that may be marked not needed. */
export type SkippableStep = 'update' | 'configure';

/** A step marked not needed: an audit entry (the device was only seen). */
export function skipRecord(step: SkippableStep, reason: string, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  if (step !== 'update' && step !== 'configure') throw new FieldbenchError('job', `only the update and the configuration can be marked not needed, not "${String(step)}"`);
  const r = reason.trim();
  if (!r) throw new FieldbenchError('job', 'say why the step is not needed');
  const time = opts.time ?? Date.now();
  return { audit: { op: JOB_OP, device: opts.device ?? {}, outcome: 'ok', details: { step, decision: 'not-needed', reason: r }, time }, inventory: seenUpdate(opts.device, time) };
}

/** The Finish: the verdict the job ended in (ok, or rejected with the reason). Refused while steps are still open. */
export function finishRecord(v: JobVerdict, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  if (v.next !== 'finish') throw new FieldbenchError('job', `the job cannot finish yet: ${v.reason}`);
  const time = opts.time ?? Date.now();
  const blockers = v.blockers.map((b) => (b.overridden !== undefined ? `${b.blocker} (overridden)` : b.blocker));
  const details: Record<string, unknown> = { step: 'finish', verdict: v.verdict, reason: v.reason };
  if (blockers.length) details.blockers = blockers;
  return { audit: { op: JOB_OP, device: opts.device ?? {}, outcome: v.verdict === 'ok' ? 'ok' : 'rejected', details, time }, inventory: seenUpdate(opts.device, time) };
}

/** A job entry in words (the audit page and the job report). */
export function jobEntryWords(details: Record<string, unknown> | undefined): string {
  const d = details ?? {};
  if (d.step === 'finish') return `Job finished: ${d.verdict === 'ok' ? 'ok to deploy' : d.verdict === 'do-not-deploy' ? 'do not deploy' : String(d.verdict)}`;
  const what = d.step === 'update' ? 'Firmware update' : d.step === 'configure' ? 'Configuration' : `Step ${String(d.step)}`;
  return `${what} marked not needed${typeof d.reason === 'string' && d.reason ? `: ${d.reason}` : ''}`;
}

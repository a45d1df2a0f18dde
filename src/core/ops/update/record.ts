/**
 * The update op's record: its Outcome as an audit entry and an inventory update.
 */
import { toHex } from '../../base/bytes.ts';
import type { DeviceIdentifiersInput } from '../../store/ids.ts';
import type { PreflightReport } from './preflight.ts';
import type { UpdateOutcome } from './update.ts';
import { compact, type RecordPlan } from '../record-plan.ts';

export type { UpdateOutcome };

/** An MCUboot version as people write it: "1.1.0+0" is "1.1.0" (a build number other than 0 stays). */
export function plainVersion(v: string): string {
  return v.replace(/\+0$/, '');
}

export interface UpdateRun {
  /** The image's name as the technician chose it. */
  name: string;
  report: PreflightReport | null;
  /** Identifiers of the device, when known. */
  device?: DeviceIdentifiersInput;
  /** ms since the epoch; default now. */
  time?: number;
}

/**
 * One audit entry per firmware update run: ok (confirmed), attention (left as
 * a test, or running but its confirm failed), cancelled, reverted (the
 * bootloader did not run the new image) or failed.
 */
export function recordUpdate(outcome: UpdateOutcome, run: UpdateRun): RecordPlan {
  const time = run.time ?? Date.now();
  const details: Record<string, unknown> = { image: run.name, result: outcome.kind };
  const img = run.report?.image;
  if (img?.version) details.imageVersion = img.version;
  details.fileSha256 = img ? toHex(img.fileSha256) : undefined;
  // what it ran before (the report covers both: firmware before and after)
  if (run.report?.device.activeVersion) details.fromVersion = plainVersion(run.report.device.activeVersion);
  if (run.report && !run.report.ok) details.preflight = run.report.reason;
  let result = 'failed';
  /** What the device runs afterwards (the inventory's firmware), when the run says. */
  let firmware: string | undefined;
  if (outcome.kind === 'done') {
    const r = outcome.result;
    details.version = r.version;
    details.hash = toHex(r.hash);
    details.confirmed = r.confirmed;
    details.message = r.message;
    result = r.confirmed ? 'ok' : 'attention';
    firmware = plainVersion(r.version);
  } else if (outcome.kind === 'cancelled') {
    details.sent = outcome.details?.sent ?? 0;
    details.reason = outcome.reason;
    result = 'cancelled';
  } else if (outcome.kind === 'unsupported') {
    details.reason = outcome.reason;
    result = 'unsupported';
  } else {
    details.code = outcome.code;
    details.reason = outcome.reason;
    details.recoverable = outcome.retryable;
    // Classified by code, never by wording: only an image the bootloader did not run was reverted.
    // A failed confirm leaves the new image RUNNING, unconfirmed: it needs attention (it reverts at the next reboot).
    if (outcome.code === 'not-booted') result = 'reverted';
    else if (outcome.code === 'unconfirmed') {
      result = 'attention';
      details.running = 'new-unconfirmed';
    }
  }
  const device = run.device ?? {};
  return {
    audit: { op: 'update', device, outcome: result, details: compact(details), time },
    // The inventory says what the device runs now (issue 14, defect 4: it kept the old version).
    inventory: device.serial ? { ...device, seen: time, ...(firmware ? { firmware } : {}) } : null,
  };
}

/**
 * An override of a job blocker (verdict.ts): the technician says why a label
 * mismatch, a duplicate identity or an untrusted attestation should not stop
 * update and configuration on this device. Core decides whether it may be
 * recorded (overrideProblem) and what the audit entry holds; the UI only asks.
 * An override that was not recorded lifts nothing.
 */
import type { DeviceIdentifiersInput } from '../../store/ids.ts';
import { FieldbenchError } from '../../base/errors.ts';
import type { RecordPlan } from '../record-plan.ts';
import { BLOCKER_TEXT, type Blocker, overrideProblem } from './verdict.ts';

export interface JobOverride {
  blocker: Blocker;
  reason: string;
}

/** The audit entry for an override (the device is only "seen": the override changes nothing on it). Throws when it may not be recorded. */
export function overrideRecord(o: JobOverride, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  const problem = overrideProblem(o.blocker, o.reason);
  if (problem) throw new FieldbenchError('override', `override not recorded: ${problem}`);
  const time = opts.time ?? Date.now();
  const device = opts.device ?? {};
  return {
    audit: { op: 'override', device, outcome: 'attention', details: { blocker: o.blocker, blocks: BLOCKER_TEXT[o.blocker], reason: o.reason.trim() }, time },
    inventory: device.serial ? { ...device, seen: time } : null,
  };
}

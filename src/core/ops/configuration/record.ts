/**
 * The configuration ops' record (apply a signed configuration, write a stock
 * device's settings unsigned, restore a backup): one audit entry per run, with
 * keys and sequence only (never values, never secrets), and the inventory
 * update (the device was seen).
 */
import type { DeviceIdentifiersInput } from '../../store/ids.ts';
import { auditDetails } from './apply.ts';
import type { ConfigureState } from './read.ts';
import type { UnsignedState } from './unsigned.ts';
import { seenUpdate } from '../record.ts';
import type { RecordPlan } from '../record-plan.ts';

export interface ConfigRun {
  op: 'apply' | 'write' | 'restore';
  /** Where the configuration came from (library name, file, backup). */
  source?: string;
  device?: DeviceIdentifiersInput;
  time?: number;
}

/** The audit outcome of a configuration run: ok (applied), attention (written unsigned), cancelled, rejected (by the tool's checks or the device) or failed. */
export function configOutcome(st: ConfigureState | UnsignedState): string {
  if (st.kind === 'written') return 'attention';
  if (st.kind !== 'error') return 'ok';
  if (st.code === 'cancelled') return 'cancelled';
  if (st.code === 'transfer' || st.code === 'backup' || st.code === 'login') return 'failed';
  return st.by === 'device' || st.code !== 'device' ? 'rejected' : 'failed';
}

export function recordConfig(st: ConfigureState | UnsignedState, run: ConfigRun): RecordPlan {
  const time = run.time ?? Date.now();
  const details: Record<string, unknown> = { action: run.op, ...auditDetails(st) };
  if (run.source) details.source = run.source;
  return { audit: { op: 'configure', device: run.device ?? {}, outcome: configOutcome(st), details, time }, inventory: seenUpdate(run.device, time) };
}

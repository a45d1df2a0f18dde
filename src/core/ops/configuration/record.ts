/**
 * The configuration ops' record (apply a signed configuration, write a stock
 * device's settings unsigned, restore a backup): one audit entry per run, with
 * keys and sequence only (never values, never secrets), and the inventory
 * update (the device was seen).
 */
import type { DeviceIdentifiersInput } from '../../store/ids.ts';
import { auditDetails } from './apply.ts';
import type { ConfigRunState } from './restore.ts';
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
export function configOutcome(st: ConfigRunState): string {
  if (st.kind === 'done') return 'unsigned' in st.result ? 'attention' : 'ok';
  if (st.kind === 'cancelled') return 'cancelled';
  if (st.kind === 'unsupported') return 'unsupported';
  if (st.kind !== 'failed') return 'failed'; // not an outcome: the op did not end (a defect)
  if (st.code === 'transfer' || st.code === 'backup' || st.code === 'login' || st.code === 'link' || st.code === 'internal') return 'failed';
  return st.by === 'device' || st.code !== 'device' ? 'rejected' : 'failed';
}

export function recordConfig(st: ConfigRunState, run: ConfigRun): RecordPlan {
  const time = run.time ?? Date.now();
  const details: Record<string, unknown> = { action: run.op, ...auditDetails(st) };
  if (run.source) details.source = run.source;
  const seen = seenUpdate(run.device, time);
  // An applied signed configuration: the inventory carries its sequence (issue 14, defect 4).
  const inventory = seen && st.kind === 'done' && 'sequence' in st.result ? { ...seen, configSeq: st.result.sequence } : seen;
  return { audit: { op: 'configure', device: run.device ?? {}, outcome: configOutcome(st), details, time }, inventory };
}

/**
 * The job's facts (verdict.ts) from the ops' latest states: what the app and
 * the CLI hold after identify and attest. A state still in progress is no
 * fact yet.
 */
import type { IdentifyState } from '../identification/identify.ts';
import type { AttestState } from '../state-awareness/attest.ts';
import type { JobFacts } from './verdict.ts';

export function identifyFact(st: IdentifyState | null | undefined): JobFacts['identify'] {
  if (!st) return undefined;
  switch (st.kind) {
    case 'done':
      return { kind: 'done', badges: st.result.badges };
    case 'failed':
    case 'cancelled':
    case 'unsupported':
      return { kind: st.kind, reason: st.reason };
    default:
      return undefined;
  }
}

export function attestFact(st: AttestState | null | undefined): JobFacts['attest'] {
  if (!st) return undefined;
  switch (st.kind) {
    case 'done':
      return {
        kind: 'done',
        verdict: st.result.appraisal.verdict,
        failing: st.result.appraisal.reasons.filter((r) => r.result === 'fail').map((r) => r.check),
      };
    case 'failed':
    case 'cancelled':
    case 'unsupported':
      return { kind: st.kind, reason: st.reason };
    default:
      return undefined;
  }
}

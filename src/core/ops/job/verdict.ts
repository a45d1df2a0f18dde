/**
 * One device's job: Connect → Identify (with the label) → Attest → Update if
 * needed → Configure → Finish, and ONE overall verdict over what the ops
 * found: "OK to deploy", "Do not deploy" with the reason, or not decided yet
 * with the next action.
 *
 * A pure function over the ops' outcomes (facts), so the app, the CLI and the
 * job report decide the same way. A label mismatch, a duplicate identity, an
 * unverified identity or an untrusted attestation BLOCKS update and
 * configuration unless the technician recorded an override with a reason
 * (the override is audited by whoever records it).
 */

export type JobStep = 'connect' | 'identify' | 'attest' | 'update' | 'configure' | 'finish';
export const JOB_STEPS: readonly JobStep[] = ['connect', 'identify', 'attest', 'update', 'configure', 'finish'];

/** What blocks deployment (and update and configuration) until overridden. */
export type Blocker = 'unverified' | 'label-mismatch' | 'duplicate' | 'attestation-untrusted';
export const BLOCKERS: readonly Blocker[] = ['unverified', 'label-mismatch', 'duplicate', 'attestation-untrusted'];

export const BLOCKER_TEXT: Record<Blocker, string> = {
  unverified: "the device's identity could not be verified",
  'label-mismatch': 'the physical label does not match what the device reports',
  duplicate: 'the same identity is recorded for another device',
  'attestation-untrusted': 'the attestation is untrusted',
};

/**
 * The blockers a technician may override with a reason. An identity that did
 * not verify is never overridable: nothing the device says about itself can
 * be trusted then, so no reason makes updating or configuring it safe.
 */
export const OVERRIDABLE: readonly Blocker[] = ['label-mismatch', 'duplicate', 'attestation-untrusted'];

/** A reason must say something: at least this many letters, in at least two words. */
export const OVERRIDE_MIN_CHARS = 12;

/** Why this override cannot be recorded, or null. */
export function overrideProblem(blocker: Blocker, reason: string): string | null {
  if (!BLOCKERS.includes(blocker)) return `"${blocker}" is not something that blocks a job`;
  if (!OVERRIDABLE.includes(blocker)) return `${BLOCKER_TEXT[blocker]}: this cannot be overridden; identify the device again`;
  const r = reason.trim();
  if (r.length < OVERRIDE_MIN_CHARS || r.split(/\s+/).length < 2) return `say why in a few words (at least ${OVERRIDE_MIN_CHARS} characters): the reason is kept in the audit trail`;
  return null;
}

/** The outcome of one step as the job needs it (built from the op's outcome). */
export type StepFact =
  | { kind: 'done'; detail?: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'cancelled'; reason: string }
  | { kind: 'unsupported'; reason: string }
  /** The technician decided this step is not needed (e.g. the firmware is current). */
  | { kind: 'skipped'; reason: string };

export interface JobFacts {
  connected: boolean;
  identify?: StepFact & { badges?: readonly string[] };
  attest?: StepFact & { verdict?: 'trusted' | 'warning' | 'untrusted'; failing?: readonly string[] };
  update?: StepFact & { confirmed?: boolean };
  configure?: StepFact;
  /** Overrides the technician recorded (each audited), by blocker. */
  overrides?: readonly { blocker: Blocker; reason: string }[];
  finished?: boolean;
}

export type StepStatus = 'done' | 'failed' | 'skipped' | 'unsupported' | 'next' | 'waiting' | 'blocked';

export interface JobVerdict {
  /** 'pending': nothing says no yet, but the job is not complete. */
  verdict: 'ok' | 'do-not-deploy' | 'pending';
  /** One plain sentence: why, or what to do next. */
  reason: string;
  /** Every blocker found, and whether an override lifts it. */
  blockers: { blocker: Blocker; text: string; overridden?: string; overridable: boolean }[];
  /** May update and configuration run? */
  allowed: boolean;
  /** The next action (the first step still to do), or 'finish' when all are settled. */
  next: JobStep;
  steps: Record<JobStep, StepStatus>;
}

const settled = (f: StepFact | undefined) => !!f && (f.kind === 'done' || f.kind === 'skipped' || f.kind === 'unsupported');

/** The job's verdict over the facts. Pure and total. */
export function jobVerdict(facts: JobFacts): JobVerdict {
  // Without an identity service there is nothing to attest against.
  const f: JobFacts = facts.identify?.kind === 'unsupported' && !facts.attest ? { ...facts, attest: { kind: 'unsupported', reason: facts.identify.reason } } : facts;
  const found: Blocker[] = [];
  const badges = f.identify?.kind === 'done' ? (f.identify.badges ?? []) : [];
  if (badges.includes('unverified')) found.push('unverified');
  if (badges.includes('label-mismatch')) found.push('label-mismatch');
  if (badges.includes('duplicate')) found.push('duplicate');
  if (f.attest?.kind === 'done' && f.attest.verdict === 'untrusted') found.push('attestation-untrusted');
  const overrideOf = (b: Blocker) => f.overrides?.find((o) => o.blocker === b && overrideProblem(b, o.reason) === null)?.reason.trim();
  const blockers = found.map((b) => ({ blocker: b, text: BLOCKER_TEXT[b], overridden: overrideOf(b), overridable: OVERRIDABLE.includes(b) }));
  const open = blockers.filter((b) => b.overridden === undefined);
  // A failed identification is no identity at all: nothing may be changed on the device until it is identified.
  const allowed = f.connected && open.length === 0 && f.identify?.kind !== 'failed';

  const steps = {} as Record<JobStep, StepStatus>;
  steps.connect = f.connected ? 'done' : 'next';
  const status = (s: StepFact | undefined): StepStatus | undefined =>
    !s ? undefined : s.kind === 'done' ? 'done' : s.kind === 'skipped' ? 'skipped' : s.kind === 'unsupported' ? 'unsupported' : 'failed';
  steps.identify = status(f.identify) ?? 'waiting';
  steps.attest = status(f.attest) ?? 'waiting';
  steps.update = status(f.update) ?? (allowed ? 'waiting' : 'blocked');
  steps.configure = status(f.configure) ?? (allowed ? 'waiting' : 'blocked');
  // An update that runs as a test (not confirmed) is not finished.
  if (f.update?.kind === 'done' && f.update.confirmed === false) steps.update = 'failed';
  steps.finish = f.finished ? 'done' : 'waiting';

  let next: JobStep = 'finish';
  for (const s of JOB_STEPS) {
    if (steps[s] === 'waiting' || steps[s] === 'failed' || steps[s] === 'blocked' || (s === 'connect' && !f.connected)) {
      next = s;
      break;
    }
  }
  if (next !== 'connect' && steps[next] === 'blocked') next = found.includes('attestation-untrusted') ? 'attest' : 'identify';
  if (steps[next] === 'waiting' || steps[next] === 'failed') steps[next] = steps[next] === 'failed' ? 'failed' : 'next';

  const no = (reason: string): JobVerdict => ({ verdict: 'do-not-deploy', reason, blockers, allowed, next, steps });
  if (open.length) return no(`Do not deploy: ${open.map((b) => b.text).join('; ')}.`);
  if (f.identify?.kind === 'failed') return no(`Do not deploy: identification failed (${f.identify.reason}).`);
  if (f.attest?.kind === 'failed') return no(`Do not deploy: attestation failed (${f.attest.reason}).`);
  if (f.update?.kind === 'failed') return no(`Do not deploy: the firmware update failed (${f.update.reason}).`);
  if (f.update?.kind === 'done' && f.update.confirmed === false) return no('Do not deploy: the new firmware runs as a test and reverts at the next reboot; confirm it.');
  if (f.configure?.kind === 'failed') return no(`Do not deploy: the configuration was not applied (${f.configure.reason}).`);

  const pending = (reason: string): JobVerdict => ({ verdict: 'pending', reason, blockers, allowed, next, steps });
  if (!f.connected) return pending('Connect the device.');
  if (!f.identify || f.identify.kind === 'cancelled') return pending('Next: identify the device (enter its label first).');
  if (!f.attest || f.attest.kind === 'cancelled') return pending('Next: attest the device.');
  if (!settled(f.update)) return pending('Next: update the firmware if a newer image is needed, or mark it current.');
  if (!settled(f.configure)) return pending('Next: apply its configuration, or mark it as not needed.');
  const overridden = blockers.filter((b) => b.overridden !== undefined);
  const note = overridden.length ? ` (with ${overridden.length === 1 ? 'an override' : `${overridden.length} overrides`}: ${overridden.map((b) => b.overridden).join('; ')})` : '';
  if (f.identify.kind === 'unsupported') return { verdict: 'ok', reason: `OK to deploy${note}; this device cannot prove its identity.`, blockers, allowed, next, steps };
  return { verdict: 'ok', reason: `OK to deploy${note}.`, blockers, allowed, next, steps };
}

import { describe, expect, it } from 'vitest';
import { jobVerdict, overrideProblem, type JobFacts } from '../../src/core/ops/job/verdict.ts';
import { overrideRecord } from '../../src/core/ops/job/override.ts';

const good: JobFacts = {
  connected: true,
  identify: { kind: 'done', badges: ['verified'] },
  attest: { kind: 'done', verdict: 'trusted' },
  update: { kind: 'done', confirmed: true },
  configure: { kind: 'done' },
};

describe('job verdict', () => {
  it('all steps good: OK to deploy, nothing blocked', () => {
    const v = jobVerdict(good);
    expect(v.verdict).toBe('ok');
    expect(v.allowed).toBe(true);
    expect(v.next).toBe('finish');
    expect(v.blockers).toEqual([]);
  });

  it('nothing done yet: pending, next is identify once connected', () => {
    expect(jobVerdict({ connected: false })).toMatchObject({ verdict: 'pending', next: 'connect', allowed: false });
    const v = jobVerdict({ connected: true });
    expect(v).toMatchObject({ verdict: 'pending', next: 'identify', allowed: true });
    expect(v.steps.identify).toBe('next');
  });

  for (const [badge, blocker] of [['label-mismatch', 'label-mismatch'], ['duplicate', 'duplicate']] as const) {
    it(`${badge}: do not deploy, update and configuration blocked until an override with a reason`, () => {
      const f: JobFacts = { connected: true, identify: { kind: 'done', badges: [badge] } };
      const v = jobVerdict(f);
      expect(v.verdict).toBe('do-not-deploy');
      expect(v.allowed).toBe(false);
      expect(v.blockers.map((b) => b.blocker)).toEqual([blocker]);
      expect(v.steps.update).toBe('blocked');
      expect(v.steps.configure).toBe('blocked');
      // An empty reason is no override.
      expect(jobVerdict({ ...f, overrides: [{ blocker, reason: '   ' }] }).allowed).toBe(false);
      const o = jobVerdict({ ...f, overrides: [{ blocker, reason: 'label reprinted, ticket 42' }] });
      expect(o.allowed).toBe(true);
      expect(o.verdict).toBe('pending');
      const all = jobVerdict({ ...good, identify: { kind: 'done', badges: [badge] }, overrides: [{ blocker, reason: 'label reprinted, ticket 42' }] });
      expect(all.verdict).toBe('ok');
      expect(all.reason).toContain('label reprinted, ticket 42');
    });
  }

  it('an unverified identity cannot be overridden, whatever the reason; a reason of a word or two is no override', () => {
    const f: JobFacts = { connected: true, identify: { kind: 'done', badges: ['unverified'] } };
    const v = jobVerdict({ ...f, overrides: [{ blocker: 'unverified', reason: 'I know this device, ticket 42' }] });
    expect(v).toMatchObject({ verdict: 'do-not-deploy', allowed: false });
    expect(v.blockers).toEqual([expect.objectContaining({ blocker: 'unverified', overridable: false, overridden: undefined })]);
    expect(overrideProblem('unverified', 'I know this device, ticket 42')).toMatch(/cannot be overridden/);
    expect(() => overrideRecord({ blocker: 'unverified', reason: 'I know this device, ticket 42' })).toThrow(/not recorded/);
    const m: JobFacts = { connected: true, identify: { kind: 'done', badges: ['label-mismatch'] } };
    for (const reason of ['ok', 'fine', 'aaaaaaaaaaaaaaaa']) {
      expect(overrideProblem('label-mismatch', reason), reason).toMatch(/say why/);
      expect(jobVerdict({ ...m, overrides: [{ blocker: 'label-mismatch', reason }] }).allowed, reason).toBe(false);
    }
    expect(overrideProblem('nonsense' as never, 'a reason given here')).toMatch(/not something/);
  });

  it('an override is recorded as an audit entry with its blocker and reason (policy in core)', () => {
    const plan = overrideRecord({ blocker: 'attestation-untrusted', reason: '  debug port open on the bench unit, ticket 7 ' }, { device: { serial: 'SN-1' }, time: 5 });
    expect(plan.audit).toEqual({ op: 'override', device: { serial: 'SN-1' }, outcome: 'attention', details: { blocker: 'attestation-untrusted', blocks: 'the attestation is untrusted', reason: 'debug port open on the bench unit, ticket 7' }, time: 5 });
    expect(plan.inventory).toEqual({ serial: 'SN-1', seen: 5 });
    const v = jobVerdict({ ...good, attest: { kind: 'done', verdict: 'untrusted' }, overrides: [{ blocker: 'attestation-untrusted', reason: 'debug port open on the bench unit, ticket 7' }] });
    expect(v).toMatchObject({ verdict: 'ok', allowed: true });
  });

  it('an override for another blocker does not lift this one', () => {
    const v = jobVerdict({ connected: true, identify: { kind: 'done', badges: ['label-mismatch', 'duplicate'] }, overrides: [{ blocker: 'duplicate', reason: 'known swap of two boards' }] });
    expect(v.allowed).toBe(false);
    expect(v.blockers.find((b) => b.blocker === 'label-mismatch')?.overridden).toBeUndefined();
  });

  it('untrusted attestation blocks; a warning does not', () => {
    expect(jobVerdict({ ...good, attest: { kind: 'done', verdict: 'untrusted' } })).toMatchObject({ verdict: 'do-not-deploy', allowed: false });
    expect(jobVerdict({ ...good, attest: { kind: 'done', verdict: 'warning' } })).toMatchObject({ verdict: 'ok', allowed: true });
  });

  it('a failed step says do not deploy with its reason; an unconfirmed update too', () => {
    const u = jobVerdict({ ...good, update: { kind: 'failed', reason: 'the device reverted it' } });
    expect(u.verdict).toBe('do-not-deploy');
    expect(u.reason).toContain('the device reverted it');
    expect(jobVerdict({ ...good, update: { kind: 'done', confirmed: false } }).verdict).toBe('do-not-deploy');
    expect(jobVerdict({ ...good, configure: { kind: 'failed', reason: 'refused' } }).verdict).toBe('do-not-deploy');
  });

  it('a failed identification blocks update and configuration, with its reason', () => {
    const v = jobVerdict({ connected: true, identify: { kind: 'failed', reason: 'the device did not give its identity' } });
    expect(v).toMatchObject({ verdict: 'do-not-deploy', allowed: false, next: 'identify' });
    expect(v.reason).toContain('did not give its identity');
  });

  it('skipped update and configuration count as settled', () => {
    expect(jobVerdict({ ...good, update: { kind: 'skipped', reason: 'current' }, configure: { kind: 'skipped', reason: 'not needed' } }).verdict).toBe('ok');
  });

  it('a stock device without identity service: attest is not applicable, OK says it cannot prove its identity', () => {
    const v = jobVerdict({ connected: true, identify: { kind: 'unsupported', reason: 'no security group' }, update: { kind: 'skipped', reason: 'current' }, configure: { kind: 'done' } });
    expect(v.verdict).toBe('ok');
    expect(v.steps.attest).toBe('unsupported');
    expect(v.reason).toContain('cannot prove');
  });
});

describe('job facts from op states', () => {
  it('progress is no fact; outcomes carry badges, verdicts and reasons', async () => {
    const { identifyFact, attestFact } = await import('../../src/core/ops/job/facts.ts');
    expect(identifyFact(null)).toBeUndefined();
    expect(identifyFact({ kind: 'reading-identity' })).toBeUndefined();
    expect(identifyFact({ kind: 'failed', code: 'identity-unreadable', reason: 'no identity', retryable: false })).toEqual({ kind: 'failed', reason: 'no identity' });
    expect(attestFact({ kind: 'appraising', bytes: 3 })).toBeUndefined();
    const st = { kind: 'done', result: { appraisal: { verdict: 'untrusted', reasons: [{ check: 'signature', result: 'fail', detail: 'x' }, { check: 'nonce', result: 'pass', detail: '' }], claims: null }, nonce: new Uint8Array(), evidence: new Uint8Array() } } as const;
    expect(attestFact(st as never)).toEqual({ kind: 'done', verdict: 'untrusted', failing: ['signature'] });
  });
});

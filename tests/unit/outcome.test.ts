/**
 * The op contract's own pieces (src/core/ops/outcome.ts): the wrapper that
 * makes any op body end in exactly one outcome, runOp, and the reason rules.
 * The contract over every real op is tests/unit/op-contract.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SmpError } from '../../src/core/smp/errors.ts';
import {
  type Outcome, OpFailedError, because, cancellableClient, contract, done, failed, isOutcome, repeatedClause, resultOf, runOp, unsupported,
} from '../../src/core/ops/outcome.ts';
import type { SmpClient } from '../../src/core/smp/client.ts';

type S = { kind: 'step'; n: number } | Outcome<number, 'nope'>;

async function* body(steps: (() => S | Promise<S> | never)[]): AsyncGenerator<S> {
  for (const f of steps) yield await f();
}

async function collect<T>(g: AsyncGenerator<T, unknown, undefined>): Promise<T[]> {
  const out: T[] = [];
  for await (const s of g) out.push(s);
  return out;
}

describe('contract()', () => {
  it('passes progress and the one outcome, and stops after it', async () => {
    const out = await collect(contract(body([() => ({ kind: 'step', n: 1 }), () => done(7), () => ({ kind: 'step', n: 2 })])));
    expect(out.map((s) => s.kind)).toEqual(['step', 'done']);
  });

  it('turns a throw into failed: a lost link is link/retryable, anything else internal', async () => {
    const lost = await collect(contract(body([() => { throw new SmpError('closed', 'link closed'); }])));
    expect(lost).toEqual([expect.objectContaining({ kind: 'failed', code: 'link', retryable: true })]);
    const bug = await collect(contract(body([() => { throw new TypeError('x is undefined'); }])));
    expect(bug).toEqual([expect.objectContaining({ kind: 'failed', code: 'internal', retryable: false })]);
  });

  it('an op that ends without an outcome fails internal', async () => {
    const out = await collect(contract(body([() => ({ kind: 'step', n: 1 })])));
    expect(out.at(-1)).toMatchObject({ kind: 'failed', code: 'internal' });
  });

  it('a fired signal ends in cancelled and closes the body (its finally runs)', async () => {
    const ac = new AbortController();
    let closed = false;
    async function* b(): AsyncGenerator<S> {
      try {
        yield { kind: 'step', n: 1 };
        ac.abort();
        yield { kind: 'step', n: 2 };
        yield { kind: 'step', n: 3 };
        yield done(1);
      } finally {
        closed = true;
      }
    }
    const out = await collect(contract(b(), { signal: ac.signal }));
    expect(out.map((s) => s.kind)).toEqual(['step', 'step', 'cancelled']);
    expect(closed).toBe(true);
  });

  it('a failure after the signal fired is reported as cancelled', async () => {
    const ac = new AbortController();
    const out = await collect(contract(body([() => (ac.abort(), failed('nope', 'request cancelled', { retryable: true }))]), { signal: ac.signal }));
    expect(out).toEqual([{ kind: 'cancelled', reason: 'cancelled' }]);
  });
});

describe('runOp()', () => {
  it('returns the outcome, reports every state, never throws', async () => {
    const seen: string[] = [];
    const o = await runOp(body([() => ({ kind: 'step', n: 1 }), () => unsupported('no group')]), { onState: (s) => seen.push(s.kind) });
    expect(o).toEqual({ kind: 'unsupported', reason: 'no group' });
    expect(seen).toEqual(['step', 'unsupported']);
    const thrown = await runOp(body([() => { throw new Error('boom'); }]));
    expect(thrown).toMatchObject({ kind: 'failed', code: 'internal' });
    expect(await runOp(body([]))).toMatchObject({ kind: 'failed', code: 'internal' });
  });

  it('resultOf gives the result or throws OpFailedError with the code', async () => {
    expect(await resultOf(body([() => done(3)]))).toBe(3);
    await expect(resultOf(body([() => failed('nope', 'no')]))).rejects.toMatchObject({ code: 'nope' });
    await expect(resultOf(body([() => failed('nope', 'no')]))).rejects.toBeInstanceOf(OpFailedError);
  });

  it('isOutcome knows the four final kinds', () => {
    expect(['done', 'failed', 'cancelled', 'unsupported', 'error', 'step'].map((kind) => isOutcome({ kind }))).toEqual([true, true, true, true, false, false]);
  });
});

describe('reasons', () => {
  it('because() does not say the context twice', () => {
    expect(because('the device refused the configuration', 'bad signature')).toBe('the device refused the configuration: bad signature');
    expect(because('login failed', 'login failed: locked out')).toBe('login failed: locked out');
    expect(because('the device refused', 'refused: stale nonce')).toBe('the device refused: stale nonce');
    expect(because('not applied', new Error('backup failed'))).toBe('not applied: backup failed');
  });

  it('repeatedClause() finds the classic stutter', () => {
    expect(repeatedClause('rejected (bad-signature): the device refused the configuration: rejected: bad signature')).not.toBeNull();
    expect(repeatedClause('the device refused the login: the device refused the login')).not.toBeNull();
    expect(repeatedClause('the device refused the configuration: bad signature (the signature does not verify)')).toBeNull();
  });
});

describe('cancellableClient()', () => {
  it('adds the signal to every request and sends nothing once it fired', async () => {
    const calls: { signal?: AbortSignal }[] = [];
    const fake = {
      maxPacket: 512,
      read: async (_g: number, _i: number, _b?: unknown, o?: { signal?: AbortSignal }) => (calls.push({ signal: o?.signal }), {}),
      write: async () => ({}),
    } as unknown as SmpClient;
    const ac = new AbortController();
    const c = cancellableClient(fake, ac.signal);
    await c.read(0, 0, {});
    expect(calls[0].signal).toBe(ac.signal);
    expect(c.maxPacket).toBe(512);
    ac.abort();
    await expect(c.read(0, 0, {})).rejects.toMatchObject({ kind: 'closed' });
    expect(calls).toHaveLength(1);
  });
});

/**
 * The verification worker pool (src/hub/verify-pool.ts): batches are prepared
 * on a worker thread, with the same result as in the calling thread; refusals
 * cross the thread with their code and the entry they name; without workers
 * (size 0) the calling thread does the work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { threadId } from 'node:worker_threads';
import { prepareBatch } from '../../src/hub/batch.ts';
import { HubError } from '../../src/hub/errors.ts';
import { createVerifyPool, type VerifyPool } from '../../src/hub/verify-pool.ts';
import { deviceN, makeWorld, Trail } from '../helpers/hub-world.ts';

let t: Trail;
let pool: VerifyPool;

beforeAll(async () => {
  const world = await makeWorld();
  t = new Trail(await world.tech('alice'));
  await t.add(Array.from({ length: 50 }, (_, i) => ({ op: 'identify', device: deviceN(i), details: { model: 'fb-sensor' } })));
  pool = createVerifyPool(1);
}, 60_000);

afterAll(() => pool?.close());

describe('verification pool', () => {
  it('prepares a batch on a worker thread, the same as in this thread', async () => {
    expect(await pool.ready()).toBe(1);
    const raw = new TextEncoder().encode(JSON.stringify(t.push()));
    const r = await pool.run(raw, 'every');
    expect(r.threadId).not.toBe(threadId);
    expect(r.threadId).toBeGreaterThan(0);
    const { threadId: _, ...onWorker } = r;
    const here = await prepareBatch(t.push(), 'every');
    expect(onWorker).toEqual(here);
    expect(onWorker.hashes).toEqual(t.entries.map((e) => e.hash));
    expect(onWorker.badSignature).toBeUndefined();
  });

  it('carries refusals back with their code and entry, and a bad signature as a finding', async () => {
    const changed = t.push();
    changed.entries = changed.entries.map((e, i) => (i === 7 ? { ...e, outcome: 'rejected' } : e));
    const err = await pool.run(changed, 'chain').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect(err).toMatchObject({ code: 'modified', status: 422, extra: { index: 7, seq: 8 } });
    const forged = t.push();
    forged.entries = forged.entries.map((e, i) => (i === 20 ? { ...e, sig: '11'.repeat(64) } : e));
    // chain mode checks the last signature only; every mode finds entry 20
    expect((await pool.run(forged, 'chain')).badSignature).toBeUndefined();
    expect((await pool.run(forged, 'every')).badSignature).toEqual({ index: 20, seq: 21 });
    expect(await pool.run(new TextEncoder().encode('{not json'), 'chain').catch((e: HubError) => e.code)).toBe('bad-request');
  });

  it('many batches at once all come back, each to its caller', async () => {
    const bodies = Array.from({ length: 12 }, (_, k) => t.push(1 + k, 20 + k));
    const rs = await Promise.all(bodies.map((b) => pool.run(b, 'chain')));
    expect(rs.map((r) => r.first.seq)).toEqual(bodies.map((_, k) => 1 + k));
    expect(rs.map((r) => r.n)).toEqual(bodies.map(() => 20));
  });

  it('with no workers the calling thread prepares the batch', async () => {
    const none = createVerifyPool(0);
    expect(await none.ready()).toBe(0);
    const r = await none.run(t.push(), 'chain');
    expect(r.threadId).toBe(0);
    expect(r.n).toBe(50);
    await none.close();
  });
});

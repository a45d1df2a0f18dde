/**
 * Property-based fuzzing of every parser and of the reference device's handlers (targets in
 * tests/fuzz), for a bounded time per target so `npm test` stays fast; `npm run fuzz` runs the
 * same targets for 1,000,000 cases each. A failure prints fast-check's seed and the shrunk
 * counterexample: replay it with FIELDBENCH_FUZZ_SEED=<seed> npx vitest run tests/unit/fuzz.test.ts.
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { TARGETS } from '../fuzz/targets.ts';
import { DEVICE_TARGETS } from '../fuzz/device-target.ts';
import { SESSION_TARGETS } from '../fuzz/session-target.ts';

const MS = Number(process.env.FIELDBENCH_FUZZ_MS ?? 1500);
const seed = process.env.FIELDBENCH_FUZZ_SEED ? Number(process.env.FIELDBENCH_FUZZ_SEED) : undefined;

describe('fuzz (bounded; npm run fuzz for long runs)', () => {
  for (const t of [...TARGETS, ...DEVICE_TARGETS, ...SESSION_TARGETS]) {
    it(`${t.name}: ${t.what}`, async () => {
      const prop = await t.setup();
      await fc.assert(prop, { numRuns: 1_000_000, interruptAfterTimeLimit: MS, markInterruptAsFailure: false, seed });
    }, MS + 60_000);
  }
});

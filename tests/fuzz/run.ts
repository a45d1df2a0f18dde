/**
 * `npm run fuzz`: the fuzz targets of tests/fuzz for long runs.
 *
 *   npm run fuzz [-- --runs N] [--target NAME[,NAME]] [--seconds S] [--seed N] [--json]
 *
 * Defaults: 1,000,000 cases per target, no time cap. --seconds caps each target (the count
 * reached is reported). Exit 1 when a property fails (its seed and shrunk counterexample are
 * printed: replay with --seed and --target); 0 otherwise.
 */
import fc from 'fast-check';
import { TARGETS } from './targets.ts';
import { DEVICE_TARGETS } from './device-target.ts';
import { SESSION_TARGETS } from './session-target.ts';

const argv = process.argv.slice(2);
const opt = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const runs = Number(opt('runs') ?? 1_000_000);
const seconds = opt('seconds') ? Number(opt('seconds')) : undefined;
const seed = opt('seed') ? Number(opt('seed')) : undefined;
const only = opt('target')?.split(',');
const all = [...TARGETS, ...DEVICE_TARGETS, ...SESSION_TARGETS];
const chosen = only ? all.filter((t) => only.includes(t.name)) : all;
if (only && chosen.length !== only.length) {
  console.error(`unknown target: ${only.filter((n) => !all.some((t) => t.name === n)).join(', ')}; targets: ${all.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
if (!Number.isInteger(runs) || runs < 1) {
  console.error('--runs must be a positive whole number');
  process.exit(2);
}

const rows: { target: string; cases: number; seconds: number; perSecond: number; result: string }[] = [];
let failed = 0;
for (const t of chosen) {
  const prop = await t.setup();
  const t0 = performance.now();
  const r = await fc.check(prop, { numRuns: runs, seed, ...(seconds ? { interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false } : {}) });
  const s = (performance.now() - t0) / 1000;
  const result = r.failed ? `FAILED (seed ${r.seed}, path ${r.counterexamplePath})` : r.interrupted ? 'ok (time cap)' : 'ok';
  if (r.failed) {
    failed++;
    console.error(fc.defaultReportMessage(r));
  }
  rows.push({ target: t.name, cases: r.numRuns, seconds: Number(s.toFixed(1)), perSecond: Math.round(r.numRuns / s), result });
  if (!argv.includes('--json')) console.log(`${t.name.padEnd(20)} ${String(r.numRuns).padStart(9)} cases  ${s.toFixed(1).padStart(7)} s  ${String(Math.round(r.numRuns / s)).padStart(7)}/s  ${result}`);
}
if (argv.includes('--json')) console.log(JSON.stringify(rows, null, 2));
process.exit(failed ? 1 : 0);

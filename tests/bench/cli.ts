/**
 * CLI start-up: `fieldbench help` and `fieldbench info --help` through
 * src/cli/bin.mjs (the freshness check, then the built CLI), against the
 * physical floor measured in the same run: `node -e ''` (Node starting and
 * exiting with nothing to do). The goal is well under 200 ms; the ratio says
 * how much the CLI itself adds to Node's own start.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './types.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'src/cli/bin.mjs');

/** Best of `n` wall-clock runs, in ms (the least disturbed by other load). */
function best(args: string[], n = 15): number {
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    min = Math.min(min, ms);
  }
  return min;
}

export async function bench(): Promise<BenchRow[]> {
  best([BIN, 'help'], 1); // builds dist-cli when it is stale, outside the measurement
  const floor = best(['-e', '']);
  const help = best([BIN, 'help']);
  const verbHelp = best([BIN, 'info', '--help']);
  return [
    { name: "node -e '' (floor: Node's own start)", value: floor, unit: 'ms' },
    { name: 'fieldbench help', value: help, unit: 'ms', note: `goal < 200 ms: ${help < 200 ? 'met' : 'NOT met'}` },
    { name: 'fieldbench help / floor', value: help / floor, unit: 'x' },
    { name: 'fieldbench info --help', value: verbHelp, unit: 'ms', note: `${(verbHelp / floor).toFixed(2)}x the floor` },
  ];
}

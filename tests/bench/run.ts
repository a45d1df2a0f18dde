/**
 * npm run bench: every tests/bench/<area>.ts exporting bench(), in one run, so
 * that ratios against the physical limit and against baselines come from the
 * same machine at the same time. Prints a table; --json for machines.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchRow } from './types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'types.ts'].includes(f))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

const all: (BenchRow & { area: string })[] = [];
let failed = 0;
for (const f of files) {
  const area = f.replace(/\.ts$/, '');
  process.stderr.write(`bench ${area} ...\n`);
  try {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { bench?: () => Promise<BenchRow[]> };
    if (typeof mod.bench !== 'function') continue;
    const rows = await mod.bench();
    for (const r of rows) {
      all.push({ area, ...r });
      process.stdout.write(`${area.padEnd(9)} ${r.name.padEnd(58)} ${fmt(r.value).padStart(10)} ${r.unit.padEnd(8)} ${r.note ?? ''}\n`);
    }
  } catch (e) {
    failed++;
    process.stdout.write(`${area}: FAILED ${(e as Error)?.stack ?? e}\n`);
  }
}
if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(all, null, 2) + '\n');
process.exit(failed ? 1 : 0);

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

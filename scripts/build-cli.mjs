#!/usr/bin/env node
/**
 * Build the CLI ahead of time: src/cli/main.ts and, through its dynamic
 * imports, one chunk per verb area, bundled by esbuild into dist-cli/
 * (packages stay external: node_modules is read at run time, native modules
 * untouched). The hub's worker threads are entries of their own: its
 * verification worker (src/hub/verify-worker.ts) dist-cli/hub-verify-worker.mjs,
 * its PGlite thread (src/hub/pglite-worker.ts) dist-cli/hub-pglite-worker.mjs. Then the verb index (dist-cli/verbs.json: each verb's area,
 * summary and usage, read from the built areas' own `commands` records), so
 * `fieldbench help` loads no area at all.
 *
 * Run by `npm install` (prepare), `npm run build` and `npm run build:cli`;
 * src/cli/bin.mjs runs it too when the built files are missing or older than
 * the sources. Everything is written to a fresh folder and swapped in whole,
 * so a CLI started meanwhile never reads half a build.
 */
import { build } from 'esbuild';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist-cli');
export const CLI_OUT = join(OUT, 'main.mjs');

export async function buildCli({ quiet = false } = {}) {
  const t0 = performance.now();
  const tmp = `${OUT}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  await build({
    entryPoints: { main: join(ROOT, 'src/cli/main.ts'), 'hub-verify-worker': join(ROOT, 'src/hub/verify-worker.ts'), 'hub-pglite-worker': join(ROOT, 'src/hub/pglite-worker.ts') },
    outdir: tmp,
    outExtension: { '.js': '.mjs' },
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: quiet ? 'error' : 'warning',
    legalComments: 'none',
  });
  // The verb index, from the built areas themselves (nothing written twice).
  const built = await import(pathToFileURL(join(tmp, 'main.mjs')).href + `?t=${Date.now()}`);
  const index = {};
  for (const [name, v] of await built.allCommands()) index[name] = { area: v.area, summary: v.summary, usage: v.usage };
  writeFileSync(join(tmp, 'verbs.json'), JSON.stringify(index));
  mkdirSync(OUT, { recursive: true });
  const old = `${OUT}.${process.pid}.old`;
  try {
    renameSync(OUT, old);
  } catch {
    /* first build */
  }
  renameSync(tmp, OUT);
  rmSync(old, { recursive: true, force: true });
  if (!quiet) console.error(`fieldbench: CLI built in ${Math.round(performance.now() - t0)} ms -> dist-cli/ (${Object.keys(index).length} verbs)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildCli();
}

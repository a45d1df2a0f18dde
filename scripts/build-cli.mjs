#!/usr/bin/env node
/**
 * Build the CLI ahead of time: src/cli/main.ts and everything it imports,
 * bundled by esbuild into one ES module, dist-cli/main.mjs (packages stay
 * external: node_modules is read at run time, native modules untouched).
 * Run by `npm install` (prepare), `npm run build` and `npm run build:cli`;
 * src/cli/bin.mjs runs it too when the built file is missing or older than
 * the sources.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI_OUT = join(ROOT, 'dist-cli/main.mjs');

export async function buildCli({ quiet = false } = {}) {
  const t0 = performance.now();
  // written to a temporary name and renamed, so a CLI started meanwhile never reads half a file
  const r = await build({
    entryPoints: [join(ROOT, 'src/cli/main.ts')],
    outfile: CLI_OUT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: quiet ? 'error' : 'warning',
    legalComments: 'none',
    write: false,
  });
  mkdirSync(dirname(CLI_OUT), { recursive: true });
  for (const f of r.outputFiles) {
    const tmp = `${f.path}.${process.pid}.tmp`;
    writeFileSync(tmp, f.contents);
    renameSync(tmp, f.path);
  }
  if (!quiet) console.error(`fieldbench: CLI built in ${Math.round(performance.now() - t0)} ms -> dist-cli/main.mjs`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildCli();
}

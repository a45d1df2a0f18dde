#!/usr/bin/env node
// fieldbench CLI entry. Runs the CLI built ahead of time (dist-cli/main.mjs,
// made by `npm install` / `npm run build`). When that file is missing or older
// than any source under src/ (a fresh edit, a pull), it is rebuilt first with
// esbuild (a fraction of a second); only when esbuild itself is unavailable do
// the TypeScript sources run through tsx.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BUILT = join(ROOT, 'dist-cli/main.mjs');
const SOURCES = ['src/cli', 'src/core', 'src/device', 'src/hub'].map((d) => join(ROOT, d));

function newestSource(dir, t = 0) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return t;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = newestSource(p, t);
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

function builtIsFresh() {
  let built;
  try {
    built = statSync(BUILT).mtimeMs;
  } catch {
    return false;
  }
  let src = 0;
  for (const d of SOURCES) src = newestSource(d, src);
  return built >= src;
}

let main;
if (!builtIsFresh()) {
  try {
    const { buildCli } = await import(pathToFileURL(join(ROOT, 'scripts/build-cli.mjs')).href);
    await buildCli({ quiet: true });
  } catch (e) {
    // no esbuild (or an unwritable checkout): run the sources directly
    if (process.env.FIELDBENCH_DEBUG) console.error(`fieldbench: could not build the CLI (${e?.message ?? e}); running the sources`);
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await import('./main.ts'));
  }
}
main ??= (await import(pathToFileURL(BUILT).href)).main;
process.exitCode = await main(process.argv.slice(2));

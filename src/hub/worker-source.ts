/**
 * Where a hub worker thread's script is (src/hub/verify-pool.ts, src/hub/db.ts):
 * from the sources, the .ts module started through tsx's loader (registered
 * in the worker by an eval'd entry); in the built CLI (scripts/build-cli.mjs),
 * dist-cli/<built>, beside main.mjs or above its chunks. Undefined when
 * neither is found (the caller then works on its own thread).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export function workerSource(ts: string, built: string): { file: string; eval?: string } | undefined {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const target = new URL(`./${ts}`, here).href;
    let api: string;
    try {
      api = pathToFileURL(createRequire(here).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs')).href;
    } catch {
      return undefined;
    }
    return { file: '', eval: `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); })` };
  }
  for (const rel of [`./${built}`, `../${built}`]) {
    const f = fileURLToPath(new URL(rel, here));
    if (existsSync(f)) return { file: f };
  }
  return undefined;
}

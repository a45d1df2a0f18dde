/**
 * Builds a test-only harness page (a folder under tests/e2e with an index.html;
 * never part of the app build) and serves it with `vite preview` on a free
 * port. Each process builds into its own directory, removed on close, so
 * concurrent runs do not clash.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build, preview, type PreviewServer } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Harness {
  url: string;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function serveHarness(dir: string): Promise<Harness> {
  const outDir = path.join(root, 'node_modules', '.cache', `fieldbench-e2e-${path.basename(dir)}-${process.pid}`);
  const common = { configFile: false as const, root: dir, logLevel: 'error' as const, plugins: [svelte()], publicDir: false as const };
  await build({ ...common, build: { outDir, emptyOutDir: true, target: 'es2022', sourcemap: false } });
  const port = await freePort();
  const server: PreviewServer = await preview({ ...common, build: { outDir }, preview: { host: '127.0.0.1', port, strictPort: true } });
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}

/**
 * End-to-end tests: the built app served by `vite preview`, driven in Chromium with
 * fake navigator.serial / navigator.usb (tests/e2e/fixtures/*.js) whose far end is the
 * reference device in Node (tests/e2e/bridge.ts). `npm test` (tests/run.mjs) picks
 * the browser and a free port and passes them as FIELDBENCH_CHROMIUM_RESOLVED and
 * FIELDBENCH_E2E_PORT; run directly, this file looks for a browser itself.
 */
import { defineConfig } from '@playwright/test';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const port = Number(process.env.FIELDBENCH_E2E_PORT || 4173);
// one build per port, so concurrent runs (several developers in one tree) do not clobber each other
const outDir = path.join(root, 'node_modules', '.cache', `fieldbench-e2e-dist-${port}`);
const vite = `node ${JSON.stringify(path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'))}`;

function browser(): string | undefined {
  for (const c of [process.env.FIELDBENCH_CHROMIUM_RESOLVED, process.env.FIELDBENCH_CHROMIUM, process.env.CHROME_PATH]) if (c) return c;
  // Playwright's own download, when present, is found by Playwright itself.
  for (const c of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) if (existsSync(c)) return c;
  return undefined;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  outputDir: path.join(root, 'node_modules', '.cache', `fieldbench-e2e-results-${port}`),
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    headless: true,
    // The app's CSP stays on: the fakes' WebSockets are routed from Node (fixtures.ts), not opened by the page.
    bypassCSP: false,
    trace: 'off',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: browser(),
      args: [
        ...(isRoot ? ['--no-sandbox'] : []),
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
        '--disable-gpu',
      ],
    },
  },
  webServer: {
    command: `${vite} build --logLevel error --outDir ${JSON.stringify(outDir)} --emptyOutDir && ${vite} preview --outDir ${JSON.stringify(outDir)} --host 127.0.0.1 --port ${port} --strictPort`,
    cwd: root,
    url: `http://127.0.0.1:${port}/`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'ignore',
    stderr: 'pipe',
  },
});

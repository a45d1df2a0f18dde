#!/usr/bin/env node
/**
 * `npm test`: the unit tests (Vitest) and the end-to-end tests (Playwright in Chromium),
 * with one summary. The last line of output is exactly `N passed, N failed` (plus
 * `, N skipped` when some were skipped) over both runners; the exit status is non-zero
 * when anything failed.
 *
 *   node tests/run.mjs [--unit-only | --e2e-only] [extra args passed to the runner]
 *
 * Browser: $FIELDBENCH_CHROMIUM or $CHROME_PATH, else Playwright's own download, else
 * /usr/bin/chromium, chromium-browser or google-chrome; when none is found and we run as
 * root on Debian, `apt-get install -y chromium` is run; otherwise the e2e suite counts
 * as failed and what to do is printed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const argv = process.argv.slice(2);
const unitOnly = argv.includes('--unit-only');
const e2eOnly = argv.includes('--e2e-only');
const extra = argv.filter((a) => a !== '--unit-only' && a !== '--e2e-only');
if (unitOnly && e2eOnly) {
  console.error('run.mjs: --unit-only and --e2e-only exclude each other');
  process.exit(2);
}

const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s) => (tty ? `\x1b[1m${s}\x1b[22m` : s);
const red = (s) => (tty ? `\x1b[31m${s}\x1b[39m` : s);
const green = (s) => (tty ? `\x1b[32m${s}\x1b[39m` : s);
const heading = (s) => console.log(`\n${bold(`━━ ${s} ━━`)}\n`);

const work = mkdtempSync(path.join(tmpdir(), 'fieldbench-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Per-runner results: { name, passed, failed, skipped, note? } */
const results = [];

function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
    child.on('error', (e) => {
      console.error(red(`could not start ${cmd}: ${e.message}`));
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ unit (Vitest)

async function unit() {
  heading('Unit tests (Vitest)');
  const out = path.join(work, 'vitest.json');
  const code = await run(process.execPath, [
    path.join(root, 'node_modules', 'vitest', 'vitest.mjs'),
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${out}`,
    ...extra,
  ]);
  const j = readJson(out);
  if (!j) {
    results.push({ name: 'unit', passed: 0, failed: 1, skipped: 0, note: `Vitest exited with ${code} and wrote no report` });
    return;
  }
  let failed = j.numFailedTests ?? 0;
  // A test file that fails to load (syntax error, import error) has no tests but is a failure.
  for (const f of j.testResults ?? []) {
    const hasFailedTest = (f.assertionResults ?? []).some((a) => a.status === 'failed');
    if (f.status === 'failed' && !hasFailedTest) failed += 1;
  }
  const r = { name: 'unit', passed: j.numPassedTests ?? 0, failed, skipped: (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0) };
  if (code !== 0 && r.failed === 0) {
    r.failed = 1;
    r.note = `Vitest exited with ${code}`;
  }
  results.push(r);
}

// ------------------------------------------------------------------ browser

function which(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const p = r.status === 0 ? r.stdout.trim() : '';
  return p && existsSync(p) ? p : '';
}

function playwrightDownload() {
  try {
    const { chromium } = require('playwright-core');
    const p = chromium.executablePath();
    return p && existsSync(p) ? p : '';
  } catch {
    return '';
  }
}

function systemBrowser() {
  for (const n of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const p = which(n);
    if (p) return p;
  }
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) if (existsSync(p)) return p;
  return '';
}

function findBrowser() {
  for (const v of ['FIELDBENCH_CHROMIUM', 'CHROME_PATH']) {
    const p = process.env[v];
    if (p) {
      if (existsSync(p)) return { path: p, from: `$${v}` };
      console.log(red(`$${v} is set to ${p}, which does not exist; looking elsewhere.`));
    }
  }
  const pw = playwrightDownload();
  if (pw) return { path: pw, from: "Playwright's download" };
  const sys = systemBrowser();
  if (sys) return { path: sys, from: 'the system' };
  return null;
}

async function installBrowser() {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !existsSync('/etc/debian_version') || !which('apt-get')) return false;
  console.log('No Chromium found; installing it with apt-get (running as root on Debian).');
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  if ((await run('apt-get', ['update'], env)) !== 0) return false;
  return (await run('apt-get', ['install', '-y', 'chromium'], env)) === 0;
}

const BROWSER_HELP = `No Chromium-family browser was found for the end-to-end tests. Do one of:
  - install Chromium:   sudo apt-get install -y chromium      (Debian/Ubuntu)
  - or let Playwright download its own:   npx playwright install chromium
  - or point at a browser you have:   FIELDBENCH_CHROMIUM=/path/to/chrome npm test
Then run npm test again (npm test -- --unit-only skips the browser tests).`;

// ------------------------------------------------------------------ e2e (Playwright)

function freePort(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function pickPort() {
  for (let p = 4173; p < 4300; p++) if (await freePort(p)) return p;
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const PW_CLI = path.join(root, 'node_modules', '@playwright', 'test', 'cli.js');
const PW_CONFIG = path.join(root, 'tests', 'e2e', 'playwright.config.ts');

function countE2E() {
  const r = spawnSync(process.execPath, [PW_CLI, 'test', '--list', '-c', PW_CONFIG, '--reporter=list'], { cwd: root, encoding: 'utf8' });
  const m = /Total: (\d+) tests?/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : 1;
}

async function e2e() {
  heading('End-to-end tests (Playwright)');
  let browser = findBrowser();
  if (!browser && (await installBrowser())) browser = findBrowser();
  if (!browser) {
    console.log(red(BROWSER_HELP));
    const n = countE2E();
    results.push({ name: 'e2e', passed: 0, failed: n, skipped: 0, note: 'no browser' });
    return;
  }
  const port = await pickPort();
  console.log(`Browser: ${browser.path} (from ${browser.from}); app on http://127.0.0.1:${port}/\n`);
  const out = path.join(work, 'playwright.json');
  const code = await run(process.execPath, [PW_CLI, 'test', '-c', PW_CONFIG, '--reporter=list,json', ...extra], {
    FIELDBENCH_CHROMIUM_RESOLVED: browser.path,
    FIELDBENCH_E2E_PORT: String(port),
    PLAYWRIGHT_JSON_OUTPUT_FILE: out,
    PLAYWRIGHT_JSON_OUTPUT_NAME: out,
  });
  const j = readJson(out);
  const s = j?.stats;
  if (!s) {
    results.push({ name: 'e2e', passed: 0, failed: countE2E(), skipped: 0, note: `Playwright exited with ${code} and wrote no report` });
    return;
  }
  const r = { name: 'e2e', passed: (s.expected ?? 0) + (s.flaky ?? 0), failed: s.unexpected ?? 0, skipped: s.skipped ?? 0 };
  if ((j.errors ?? []).length && r.failed === 0) {
    // e.g. the web server did not start, or a spec file failed to load: nothing ran
    r.failed = Math.max(1, countE2E() - r.passed - r.skipped);
    r.note = j.errors.map((e) => String(e.message ?? e).split('\n')[0]).join('; ');
  } else if (code !== 0 && r.failed === 0) {
    r.failed = 1;
    r.note = `Playwright exited with ${code}`;
  }
  results.push(r);
}

// ------------------------------------------------------------------ types (svelte-check over src and tests)

async function types() {
  heading('Type check (svelte-check: src, tests)');
  const bin = path.join(root, 'node_modules', 'svelte-check', 'bin', 'svelte-check');
  const code = await run(process.execPath, [bin, '--tsconfig', './tsconfig.json', '--fail-on-warnings', '--output', 'human']);
  results.push({ name: 'types', passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, skipped: 0, note: code === 0 ? undefined : 'type errors above' });
}

// ------------------------------------------------------------------ main

if (!e2eOnly) await types();
if (!e2eOnly) await unit();
if (!unitOnly) await e2e();

heading('Summary');
const total = { passed: 0, failed: 0, skipped: 0 };
for (const r of results) {
  total.passed += r.passed;
  total.failed += r.failed;
  total.skipped += r.skipped;
  const line = `${r.name.padEnd(5)} ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}${r.note ? `  (${r.note})` : ''}`;
  console.log(r.failed ? red(line) : green(line));
}
console.log(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}`);
process.exitCode = total.failed > 0 ? 1 : 0;

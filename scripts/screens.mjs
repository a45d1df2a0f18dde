// Screenshots of every page and main state of the built app, light and dark, at 1280x800 and
// 1024x640, with a check for horizontal overflow and clipped text on each (issue 14: look at every
// screen as a new technician would). With --readme, only the README's picture
// (docs/images/device-page.png: the top of the Device page of the virtual device, identified and attested).
//
//   node scripts/screens.mjs [OUT_DIR] [--readme]       (ONLY=1280-light,1024-dark to pick)
//
// It builds the app into a temporary folder, serves it with `vite preview` and drives Chromium
// (FIELDBENCH_CHROMIUM, else /usr/bin/chromium) with the in-page virtual device and demo trust.
import { chromium } from '@playwright/test';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const readme = process.argv.includes('--readme');
const out = resolve(process.argv.slice(2).find((a) => !a.startsWith('--')) ?? join(tmpdir(), 'fieldbench-screens'));
mkdirSync(out, { recursive: true });
const only = readme ? ['1280-light'] : process.env.ONLY?.split(',');
const vite = join(root, 'node_modules/vite/bin/vite.js');
const dir = mkdtempSync(join(tmpdir(), 'fieldbench-screens-dist-'));
execFileSync(process.execPath, [vite, 'build', '--outDir', dir, '--emptyOutDir', '--logLevel', 'error'], { cwd: root, stdio: 'inherit' });
const port = await new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const server = spawn(process.execPath, [vite, 'preview', '--outDir', dir, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], { cwd: root, stdio: 'ignore' });
for (let i = 0; i < 100 && !(await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
const executablePath = process.env.FIELDBENCH_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const browser = await chromium.launch({ executablePath, args: [...(isRoot ? ['--no-sandbox'] : []), '--disable-gpu'] });
const report = [];
async function check(page, name) {
  const r = await page.evaluate(() => {
    const de = document.documentElement;
    const over = de.scrollWidth - de.clientWidth;
    const clipped = [];
    for (const el of document.querySelectorAll('main *')) {
      const cs = getComputedStyle(el); if (el.classList.contains('visually-hidden')) continue;
      if (el.scrollWidth > el.clientWidth + 1 && cs.overflowX !== 'auto' && cs.overflowX !== 'scroll' && cs.display !== 'inline' && el.clientWidth > 1 && !['svg','path','text'].includes(el.tagName.toLowerCase())) clipped.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')}[${el.getAttribute('data-testid') ?? ''}] ${el.scrollWidth}>${el.clientWidth}`);
    }
    const wide = [];
    for (const el of document.querySelectorAll('main *')) { const b = el.getBoundingClientRect(); if (b.right > de.clientWidth + 1 && b.width > 0) wide.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')}[${el.getAttribute('data-testid') ?? ''}] right=${Math.round(b.right)}`); }
    return { over, clipped: clipped.slice(0, 8), wide: wide.slice(0, 8), height: de.scrollHeight };
  });
  report.push(`${name}: page h=${r.height} hOverflow=${r.over}${r.clipped.length ? ' CLIPPED ' + r.clipped.join(' | ') : ''}${r.wide.length ? ' WIDE ' + r.wide.join(' | ') : ''}`);
}
async function shot(page, name, el) {
  if (el) { await el.scrollIntoViewIfNeeded().catch(() => {}); await page.evaluate(() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))); }
  await page.screenshot({ path: `${out}/${name}.png` });
  await check(page, name);
}
try {
  for (const [w, h] of [[1280, 800], [1024, 640]]) for (const scheme of ['light', 'dark']) {
    const tag = `${w}-${scheme}`;
    if (only && !only.includes(tag)) continue;
    const ctx = await browser.newContext({ viewport: { width: w, height: h }, colorScheme: scheme });
    const page = await ctx.newPage();
    page.on('pageerror', e => report.push(`${tag} PAGEERROR ${e}`));
    const base = `http://127.0.0.1:${port}`;
    await page.goto(base + '/#/'); await page.getByRole('button', { name: 'Try a virtual device' }).waitFor();
    await shot(page, `${tag}-01-connect`);
    await page.goto(base + '/#/trust'); await page.getByRole('heading', { name: 'Trust & keys' }).waitFor();
    await shot(page, `${tag}-02-trust-empty`);
    await page.getByRole('button', { name: 'Load demo trust' }).click();
    await page.getByTestId('bundle-version').filter({ hasText: 'DEMO' }).waitFor();
    await shot(page, `${tag}-03-trust-demo`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Device' }).click();
    await page.getByRole('button', { name: 'Try a virtual device' }).click();
    await page.getByTestId('job-bar').waitFor({ timeout: 30000 });
    await page.waitForTimeout(800);
    await shot(page, `${tag}-04-device-jobbar`);
    await page.getByRole('button', { name: 'Identify device' }).click();
    await page.getByTestId('identity-badges').locator('[data-badge="verified"]').waitFor({ timeout: 20000 });
    await shot(page, `${tag}-05-identity`, page.getByTestId('identity-card'));
    await page.getByRole('button', { name: 'Attest', exact: true }).click();
    await page.getByTestId('verdict').waitFor({ timeout: 20000 });
    if (readme) {
      // The README's picture: the top of the Device page, the job's verdict and steps, the verified identity.
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
      await page.waitForTimeout(300);
      await page.screenshot({ path: join(root, 'docs/images/device-page.png') });
      report.push(`wrote ${join(root, 'docs/images/device-page.png')}`);
      await ctx.close();
      break;
    }
    await shot(page, `${tag}-06-attestation`, page.getByTestId('attestation-panel'));
    await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
    await page.getByTestId('preflight-checking').waitFor({ state: 'detached', timeout: 20000 }).catch(() => {});
    await page.waitForTimeout(300);
    await shot(page, `${tag}-07-update-preflight`, page.getByTestId('update-upload'));
    await page.getByTestId('update-upload').click();
    await page.getByTestId('update-result').and(page.locator('[data-result="done"]')).waitFor({ timeout: 60000 });
    await page.waitForTimeout(500);
    await shot(page, `${tag}-08-update-done`, page.getByTestId('update-result'));
    const review = page.locator('section.config ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' });
    await review.click();
    await page.getByTestId('config-diff').waitFor();
    await shot(page, `${tag}-09-config-diff`, page.getByTestId('config-diff'));
    await page.getByTestId('config-diff').getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('config-state').filter({ hasText: 'Applied configuration #1' }).waitFor({ timeout: 20000 });
    await shot(page, `${tag}-10-config-done`, page.getByTestId('config-state'));
    await shot(page, `${tag}-11-interfaces`, page.getByTestId('interfaces'));
    await shot(page, `${tag}-12-wipe`, page.getByTestId('wipe-serial'));
    await page.getByTestId('rotation-value').fill('70b3d57ed0001234');
    await shot(page, `${tag}-13-rotation`, page.getByTestId('rotation-start'));
    await page.getByTestId('rotation-start').click();
    await page.getByTestId('rotation-confirm').waitFor();
    await shot(page, `${tag}-14-rotation-confirm`, page.getByTestId('rotation-confirm'));
    await page.getByTestId('rotation-confirm-yes').click();
    await page.getByTestId('rotation-result').waitFor({ timeout: 20000 });
    await shot(page, `${tag}-15-rotation-done`, page.getByTestId('rotation-result'));
    await page.getByRole('button', { name: 'Finish the job' }).scrollIntoViewIfNeeded();
    await shot(page, `${tag}-16-finish`, page.getByTestId('job-finish'));
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Inventory' }).click(); await page.getByTestId('inv-row').first().waitFor();
    await shot(page, `${tag}-17-inventory`);
    await page.getByRole('button', { name: /^History of/ }).first().click(); await page.waitForTimeout(400);
    await page.screenshot({ path: `${out}/${tag}-18-inventory-history.png`, fullPage: true }); await check(page, `${tag}-18-inventory-history`);
    await nav.getByRole('link', { name: 'Library' }).click(); await page.waitForTimeout(600);
    await shot(page, `${tag}-19-library`);
    await nav.getByRole('link', { name: 'Audit trail' }).click(); await page.waitForTimeout(800);
    await shot(page, `${tag}-20-audit`);
    await nav.getByRole('link', { name: 'Sync' }).click(); await page.waitForTimeout(600);
    await shot(page, `${tag}-21-sync`);
    await nav.getByRole('link', { name: 'Bench' }).click(); await page.waitForTimeout(1500);
    await shot(page, `${tag}-22-bench`);
    await ctx.close();
  }
} catch (e) { report.push('ERROR ' + (e?.stack ?? e)); }
finally { await browser.close(); server.kill(); rmSync(dir, { recursive: true, force: true }); console.log(report.join('\n')); console.log(`screenshots in ${out}`); }

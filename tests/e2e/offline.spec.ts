/**
 * The built app as a PWA (U's webServer: `vite build` + `vite preview`):
 * installable (manifest, icons, service worker in control), strict CSP with
 * no violations, and working offline after the first visit: reload, a new
 * tab and a deep link all render from the service worker's precache.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from '@playwright/test';
import { test, expect } from './fixtures.ts';

const CACHE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/.cache');

/** Where playwright.config.ts's webServer built the app for this port (served from disk on every request). */
function distDir(baseURL: string | undefined): string {
  const port = new URL(baseURL ?? 'http://127.0.0.1:4173').port;
  const dir = [path.join(CACHE, `fieldbench-e2e-dist-${port}`), path.join(CACHE, 'fieldbench-e2e-dist')].find((d) => existsSync(path.join(d, 'sw.js')));
  if (!dir) throw new Error(`no built app with sw.js under ${CACHE} for port ${port}`);
  return dir;
}

// No fakes (they talk to a WebSocket bridge on another port, which the CSP
// rightly blocks), and the page's CSP is enforced.
test.use({ fakes: false, bypassCSP: false, serviceWorkers: 'allow' });

async function watchCsp(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const list: string[] = [];
    (globalThis as unknown as { __csp: string[] }).__csp = list;
    document.addEventListener('securitypolicyviolation', (e) => list.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
}

async function firstVisit(page: Page): Promise<void> {
  await watchCsp(page);
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Connect to a device' })).toBeVisible();
  // The service worker installed (precache complete) and controls this page.
  await page.waitForFunction(() => navigator.serviceWorker?.controller !== null, undefined, { timeout: 20_000 });
  await expect(page.getByTestId('offline-ready')).toBeVisible();
  // Said in the header's line, in a polite live region: no toast over the page's controls.
  await expect(page.getByRole('banner').getByTestId('offline-ready')).toContainText('Ready to work offline');
  await expect(page.getByTestId('offline-ready').locator('xpath=..')).toHaveAttribute('aria-live', 'polite');
}

function pngSize(b: Buffer): [number, number] {
  expect(b.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(b.subarray(12, 16).toString('ascii')).toBe('IHDR');
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

test('installable: manifest, icons and a controlling service worker; strict CSP without violations', async ({ page, request }) => {
  await firstVisit(page);
  const href = await page.locator('link[rel="manifest"]').getAttribute('href');
  expect(href).toBe('/manifest.webmanifest');
  const res = await request.get(href!);
  expect(res.status()).toBe(200);
  const m = await res.json();
  expect(m).toMatchObject({ name: expect.stringContaining('fieldbench'), short_name: 'fieldbench', start_url: '/', display: 'standalone', scope: '/' });
  expect(m.theme_color).toMatch(/^#[0-9a-f]{6}$/i);
  expect(m.background_color).toMatch(/^#[0-9a-f]{6}$/i);
  const sizes = new Set<string>();
  for (const icon of m.icons as { src: string; sizes: string; type: string; purpose?: string }[]) {
    const r = await request.get(icon.src);
    expect(r.status(), icon.src).toBe(200);
    expect(r.headers()['content-type']).toContain('image/png');
    const [w, h] = pngSize(await r.body());
    expect(`${w}x${h}`).toBe(icon.sizes);
    sizes.add(`${icon.sizes} ${icon.purpose ?? 'any'}`);
  }
  expect([...sizes].sort()).toEqual(['192x192 any', '512x512 any', '512x512 maskable']);
  // The service worker is registered at the root scope and is the page's controller.
  const sw = await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    return { scope: reg?.scope, script: navigator.serviceWorker.controller?.scriptURL };
  });
  expect(new URL(sw.scope!).pathname).toBe('/');
  expect(new URL(sw.script!).pathname).toBe('/sw.js');
  // CSP: as a header and as a meta; no inline script, no eval, nothing blocked.
  const doc = await request.get('/');
  const header = doc.headers()['content-security-policy'];
  for (const csp of [header, await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content')]) {
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
  }
  expect(header).toContain("frame-ancestors 'none'");
  // The build ships the same headers for static hosts (_headers) and nginx, as the server sends them here.
  const hosting = await (await request.get('/_headers')).text();
  const nginx = await (await request.get('/security-headers.nginx.conf')).text();
  for (const name of ['content-security-policy', 'x-content-type-options', 'referrer-policy', 'permissions-policy', 'cross-origin-opener-policy']) {
    const value = doc.headers()[name];
    expect(value, name).toBeTruthy();
    expect(hosting.toLowerCase()).toContain(`${name}: ${value}`.toLowerCase());
    expect(nginx.toLowerCase()).toContain(`add_header ${name} "${value}" always;`.toLowerCase());
  }
  expect(await page.locator('script:not([src])').count()).toBe(0);
  // Run the app a little under the policy (virtual device: SMP, CBOR, crypto) and check nothing was blocked.
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expect(page.getByRole('heading', { name: 'Firmware slots' })).toBeVisible();
  await page.getByTestId('device-info').locator('summary').click();
  await expect(page.getByRole('heading', { name: 'Application and OS' })).toBeVisible();
  expect(await page.evaluate(() => (globalThis as unknown as { __csp: string[] }).__csp)).toEqual([]);
  // Control: an injected inline script really is refused, and the watcher sees it.
  const ran = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = '(globalThis).__inlineRan = true';
    document.head.append(s);
    await new Promise((r) => setTimeout(r, 50));
    return (globalThis as unknown as { __inlineRan?: boolean }).__inlineRan === true;
  });
  expect(ran).toBe(false);
  await expect.poll(() => page.evaluate(() => (globalThis as unknown as { __csp: string[] }).__csp.join('\n'))).toContain('script-src');
});

test('works offline after the first visit: reload, new tab, deep link', async ({ page, context }) => {
  await firstVisit(page);
  await context.setOffline(true);
  try {
    const res = await page.reload();
    expect(res?.fromServiceWorker()).toBe(true);
    await expect(page.getByRole('heading', { name: 'Connect to a device' })).toBeVisible();
    // The app works, not just its shell: the in-page virtual device connects and reads.
    await page.getByRole('button', { name: 'Try a virtual device' }).click();
    await expect(page.getByRole('heading', { name: 'Firmware slots' })).toBeVisible();
    await page.getByTestId('device-info').locator('summary').click();
    await expect(page.getByRole('heading', { name: 'Application and OS' })).toBeVisible();

    const tab = await context.newPage();
    await watchCsp(tab);
    const r2 = await tab.goto('/');
    expect(r2?.fromServiceWorker()).toBe(true);
    await expect(tab.getByRole('heading', { name: 'Connect to a device' })).toBeVisible();

    const deep = await context.newPage();
    const r3 = await deep.goto('/devices/SN-001/history?tab=audit#latest');
    expect(r3?.fromServiceWorker()).toBe(true);
    await expect(deep.getByRole('heading', { name: 'Connect to a device' })).toBeVisible();
    // Something never precached really is unreachable: the test is offline, not just cached.
    const miss = await deep.evaluate(() => fetch('/not-precached.txt').then((r) => r.status, (e) => String(e)));
    expect(String(miss)).toMatch(/TypeError|Failed to fetch/);
    for (const p of [tab, deep]) await p.close();
  } finally {
    await context.setOffline(false);
  }
});

test('a new version is announced and applied only when the user says so', async ({ page, baseURL }) => {
  await firstVisit(page);
  const swPath = path.join(distDir(baseURL), 'sw.js');
  const original = readFileSync(swPath, 'utf8');
  try {
    // Publish a "new version": any byte change of sw.js is a new service worker.
    writeFileSync(swPath, `${original}\n// e2e: new version ${Date.now()}\n`);
    const before = await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL);
    await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r?.update()));
    await expect(page.getByTestId('update-ready')).toBeVisible({ timeout: 20_000 });
    // Waiting, not taken over: the page still runs the old worker until the user agrees.
    expect(await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => !!r?.waiting))).toBe(true);
    await page.getByRole('button', { name: 'Later' }).click();
    await expect(page.getByTestId('update-ready')).toHaveCount(0);
    await page.waitForTimeout(500);
    expect(await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => !!r?.waiting))).toBe(true);
    // Ask again and accept this time.
    await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r?.update()));
    await page.reload();
    await expect(page.getByTestId('update-ready')).toBeVisible({ timeout: 20_000 });
    await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Reload and update' }).click()]);
    await expect(page.getByRole('heading', { name: 'Connect to a device' })).toBeVisible();
    await expect
      .poll(() => page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => ({ waiting: !!r?.waiting, active: !!r?.active }))))
      .toEqual({ waiting: false, active: true });
    await expect(page.getByTestId('update-ready')).toHaveCount(0);
    expect(before).toBeTruthy();
  } finally {
    writeFileSync(swPath, original);
  }
});

/**
 * Playwright fixtures: a per-worker WebSocket bridge to the reference device, and a
 * page that has the fake navigator.serial / navigator.usb injected before the app loads.
 */
import { test as base, expect, type Page } from '@playwright/test';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { WebSocket } from 'ws';
import { startBridge, type Bridge } from './bridge.ts';

/** Same-origin path the fakes' WebSockets use; routed to the bridge from Node. */
const BRIDGE_PATH = '/__fieldbench_e2e_bridge';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FAKE_SERIAL = path.join(here, 'fixtures', 'fake-serial.js');
export const FAKE_USB = path.join(here, 'fixtures', 'fake-usb.js');
/** A real device is behind the bridge: assert structure, not the reference device's values. */
export const REAL_PEER = !!process.env.FIELDBENCH_E2E_PEER;

export const test = base.extend<{ fakes: boolean }, { bridge: Bridge }>({
  bridge: [
    async ({}, use) => {
      const b = await startBridge();
      await use(b);
      await b.close();
    },
    { scope: 'worker' },
  ],
  fakes: [true, { option: true }],
  page: async ({ page, bridge, fakes, baseURL }, use) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // The app is offline-first: nothing but its own origin (the bridge is the fakes' WebSocket, not the app's).
    const foreign: string[] = [];
    const own = new URL(baseURL ?? 'http://127.0.0.1/').origin;
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.origin !== own && u.protocol !== 'data:' && u.protocol !== 'blob:') foreign.push(r.url());
    });
    if (fakes) {
      // The fakes open a same-origin WebSocket (allowed by the app's strict CSP, connect-src 'self');
      // Playwright takes it over and Node pipes it to the bridge, so the CSP stays in force.
      await routeBridge(page, bridge);
      await page.addInitScript((p: string) => {
        (globalThis as { __FIELDBENCH_E2E__?: unknown }).__FIELDBENCH_E2E__ = { bridge: p };
      }, BRIDGE_PATH);
      await page.addInitScript({ path: FAKE_SERIAL });
      await page.addInitScript({ path: FAKE_USB });
    }
    await use(page);
    expect(errors, 'uncaught errors in the page').toEqual([]);
    expect(foreign, 'requests to other origins').toEqual([]);
  },
});

export { expect };

/**
 * Route the fakes' same-origin WebSocket to `bridge` (the fixture does it for the worker's bridge;
 * a test with its own bridge calls it again: the route registered last wins).
 */
export async function routeBridge(page: Page, bridge: Pick<Bridge, 'url'>): Promise<void> {
  await page.routeWebSocket(
    (url) => url.pathname === BRIDGE_PATH,
    (route) => {
      const up = new WebSocket(bridge.url + new URL(route.url()).search);
      const early: (string | Buffer)[] = [];
      up.on('open', () => {
        for (const m of early.splice(0)) up.send(m);
      });
      up.on('message', (d: Buffer) => route.send(d));
      up.on('close', () => void route.close().catch(() => {}));
      up.on('error', () => void route.close().catch(() => {}));
      route.onMessage((m) => (up.readyState === WebSocket.OPEN ? up.send(m) : early.push(m)));
      route.onClose(() => up.close());
    },
  );
}

/** Wait until the device page shows what readDeviceInfo read. */
export async function expectDevicePage(page: Page): Promise<void> {
  await expect(page.getByTestId('connection-status')).toHaveAttribute('data-status', 'connected');
  // What the device reports sits behind a disclosure (issue 14): open it.
  const details = page.getByTestId('device-info');
  if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
  await expect(page.getByRole('heading', { name: 'Application and OS' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Bootloader' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'MCUmgr parameters' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'SMP groups' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Firmware slots' })).toBeVisible();
  const slots = page.getByTestId('section-slots');
  await expect(slots.getByTestId('slot-diagram')).toBeVisible();
  await expect(slots.locator('tbody tr')).not.toHaveCount(0);
  if (REAL_PEER) return;
  // The reference device's own values.
  await expect(page.getByTestId('section-os')).toContainText('fieldbench_ref');
  await expect(page.getByTestId('section-bootloader')).toContainText('MCUboot');
  await expect(page.getByTestId('section-params')).toContainText('384 bytes');
  const groups = page.getByTestId('section-groups');
  await expect(groups.getByRole('row', { name: /^0 os$/ })).toBeVisible();
  await expect(groups.getByRole('row', { name: /^1 img/ })).toBeVisible();
  await expect(slots).toContainText('1.0.0');
  await expect(slots).toContainText('active');
  await expect(slots).toContainText('confirmed');
  await expect(slots.locator('.hash').first()).toHaveText(/^[0-9a-f]{64}$/);
}

/**
 * Accessibility (issue 14, defects 9 and 10): axe on every page and on the Device page with the
 * DEMO virtual device connected, in light and dark mode; no serious or critical violation.
 */
import AxeBuilder from '@axe-core/playwright';
import { test, expect, expectDevicePage } from './fixtures.ts';

const PAGES = ['#/', '#/trust', '#/library', '#/inventory', '#/audit', '#/sync'];

async function serious(page: import('@playwright/test').Page) {
  const r = await new AxeBuilder({ page }).analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

for (const scheme of ['light', 'dark'] as const) {
  test(`axe, ${scheme}: every page and the connected Device page have no serious or critical violation`, async ({ page }) => {
    test.setTimeout(120_000);
    await page.emulateMedia({ colorScheme: scheme });
    const found: string[] = [];
    for (const p of PAGES) {
      await page.goto(`/${p}`);
      await expect(page.locator('h1').first()).toBeVisible();
      found.push(...(await serious(page)).map((v) => `${p}: ${v}`));
      if (p === '#/sync') {
        // The developer detail for the administrator, behind its disclosure.
        await page.getByTestId('sync-help').getByText('For your administrator').click();
        await expect(page.getByTestId('sync-help').getByText('FIELDBENCH_HUB_ORIGIN')).toBeVisible();
        found.push(...(await serious(page)).map((v) => `${p} (administrator detail open): ${v}`));
      }
    }
    // Without trust, the page points a new technician to the demo (far below at 1024x640): focus moves to it.
    await page.goto('/#/trust');
    await page.getByRole('button', { name: 'Practise with demo trust' }).click();
    await expect(page.getByRole('button', { name: 'Load demo trust' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
    await page.goto('/#/');
    await page.getByRole('button', { name: 'Try a virtual device' }).click();
    await expectDevicePage(page);
    await expect(page.getByTestId('interfaces')).toBeVisible({ timeout: 20_000 });
    found.push(...(await serious(page)).map((v) => `device (connected): ${v}`));
    // Identified, attested, and the configuration's diff before it is applied (its colours in dark mode: defect 9).
    await page.getByRole('button', { name: 'Identify device' }).click();
    await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Attest', exact: true }).click();
    await expect(page.getByTestId('verdict')).toBeVisible({ timeout: 20_000 });
    found.push(...(await serious(page)).map((v) => `device (identified, attested): ${v}`));
    await page.locator('section.config ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' }).click();
    await expect(page.getByTestId('config-diff')).toBeVisible({ timeout: 20_000 });
    found.push(...(await serious(page)).map((v) => `device (configuration diff): ${v}`));
    await page.getByTestId('config-diff').getByRole('button', { name: 'Cancel' }).click();
    await expect(page.getByTestId('config-diff')).toHaveCount(0);
    // The rotation's confirmation and its result.
    await page.getByTestId('rotation-value').fill('70b3d57ed0001234');
    await expect(page.getByTestId('rotation-start')).toBeEnabled();
    await page.getByTestId('rotation-start').click();
    await expect(page.getByTestId('rotation-confirm')).toBeFocused({ timeout: 20_000 });
    found.push(...(await serious(page)).map((v) => `device (rotation confirm): ${v}`));
    await page.getByTestId('rotation-confirm').getByRole('button', { name: 'Cancel' }).click();
    await expect(page.getByTestId('rotation-result')).toContainText('Not rotated');
    found.push(...(await serious(page)).map((v) => `device (rotation result): ${v}`));
    expect(found).toEqual([]);
  });
}

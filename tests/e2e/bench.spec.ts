/**
 * The factory Bench page (issue 13 item 5, app): the demo line, several units at
 * once, a large tile per port ending PASS; the next unit on a jig runs by itself;
 * axe finds no serious or critical violation on the page with its tiles.
 */
import AxeBuilder from '@axe-core/playwright';
import { test, expect } from './fixtures.ts';

test('Bench: two virtual units run at once to PASS, the next unit runs; axe clean', async ({ page }) => {
  test.setTimeout(120_000);
  await page.goto('/#/bench');
  await expect(page.getByRole('heading', { level: 1, name: 'Bench' })).toBeVisible();
  await page.getByRole('button', { name: 'Start demo line' }).click();
  await expect(page.getByTestId('bench-line')).toContainText('Demo line');
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  const tiles = page.getByTestId('bench-tile');
  await expect(tiles).toHaveCount(2);
  // both run concurrently: at some point both are running (or one already done while the other runs)
  await expect(tiles.nth(0)).toHaveAttribute('data-state', /running|pass/, { timeout: 20_000 });
  await expect(tiles.nth(1)).toHaveAttribute('data-state', /running|pass/, { timeout: 20_000 });
  for (const i of [0, 1]) {
    await expect(tiles.nth(i)).toHaveAttribute('data-state', 'pass', { timeout: 60_000 });
    await expect(tiles.nth(i).locator('.verdict')).toHaveText('PASS');
    await expect(tiles.nth(i)).toContainText(/S\/N DEMO-0000[12]/);
  }
  const serials = await tiles.locator('.serial .mono').allTextContents();
  expect(new Set(serials).size).toBe(2); // no identifier twice
  await expect(page.getByTestId('bench-summary')).toHaveText('2 passed, 0 failed, 2 recorded');

  // axe on the page with PASS and FAIL tiles, light and dark
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const r = await new AxeBuilder({ page }).analyze();
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${scheme} ${v.id}: ${v.help} ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
    expect(bad).toEqual([]);
  }

  // the operator swaps the unit on jig 1: the new factory-fresh unit runs by itself and gets the next serial
  await page.getByRole('button', { name: 'Next unit on virtual jig 1' }).click();
  await expect(tiles.nth(0)).toHaveAttribute('data-state', /waiting|running/, { timeout: 10_000 });
  await expect(tiles.nth(0)).toHaveAttribute('data-state', 'pass', { timeout: 60_000 });
  await expect(tiles.nth(0)).toContainText('S/N DEMO-00003');
  await expect(page.getByTestId('bench-summary')).toHaveText('3 passed, 0 failed, 3 recorded');
});

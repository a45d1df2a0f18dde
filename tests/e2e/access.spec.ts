/**
 * Interfaces and wipe in the app (issue 14 item 14): the DEMO virtual device's
 * interfaces with their states, a change behind the technician login, the wipe
 * behind the typed serial; both in the audit trail.
 */
import { test, expect, expectDevicePage } from './fixtures.ts';

test('interfaces: restrict the shell; wipe only after the serial is typed; both audited', async ({ page }) => {
  test.setTimeout(90_000);
  await page.goto('/#/trust');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await nav.getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);

  const table = page.getByTestId('interfaces');
  await expect(table.locator('tr[data-interface="shell"]')).toBeVisible({ timeout: 20_000 });
  const before = await table.locator('tr[data-interface="shell"]').getAttribute('data-state');
  const target = before === 'disabled' ? 'authenticated' : 'disabled';
  const words = target === 'disabled' ? 'off' : 'login required';
  // The interface and its states in words (the device's name beside them).
  await expect(table.locator('tr[data-interface="shell"] th')).toContainText('Command shell');
  await page.getByLabel('Set Command shell to').selectOption(target);
  await page.getByRole('button', { name: 'Change interfaces' }).click();
  await expect(page.getByTestId('interfaces-result')).toContainText(`Command shell is now ${words}`, { timeout: 20_000 });
  await expect(page.getByTestId('interfaces-result')).toBeFocused();
  await expect(table.locator('tr[data-interface="shell"]')).toHaveAttribute('data-state', target);
  await expect(table.locator('tr[data-interface="shell"] td').first()).toContainText(words, { ignoreCase: true });

  // The wipe stays disabled until the exact serial is typed.
  const wipe = page.getByRole('button', { name: 'Wipe this device' });
  await expect(wipe).toBeDisabled();
  await page.getByTestId('wipe-serial').fill('not-the-serial');
  await expect(wipe).toBeDisabled();
  const label = await page.getByText(/Type the device's serial \(/).innerText();
  const serial = /\(([^)]+)\)/.exec(label)![1];
  await page.getByTestId('wipe-serial').fill(serial);
  await expect(wipe).toBeEnabled();
  await wipe.click();
  await expect(page.getByTestId('wipe-result')).toContainText(`Wiped ${serial}`, { timeout: 20_000 });
  await expect(page.getByTestId('wipe-result')).toContainText('keeps its identity');

  await nav.getByRole('link', { name: 'Audit trail' }).click();
  const trail = page.locator('main');
  await expect(trail).toContainText('interface');
  await expect(trail).toContainText('wipe');
});

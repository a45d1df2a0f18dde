import { test, expect, expectDevicePage } from './fixtures.ts';

type Fake = { unplug(): void; replug(): void };

for (const t of [
  { name: 'Web Serial', button: 'Connect over USB serial', fake: '__fakeSerial' },
  { name: 'WebUSB', button: 'Connect over WebUSB', fake: '__fakeUsb' },
] as const) {
  test(`${t.name}: unplugging shows "disconnected", and Reconnect uses the granted device`, async ({ page }) => {
    await page.goto('/');
    await page.getByRole('button', { name: t.button }).click();
    await expectDevicePage(page);

    await page.evaluate((k) => (globalThis as unknown as Record<string, Fake>)[k]!.unplug(), t.fake);
    const status = page.getByTestId('connection-status');
    await expect(status).toHaveAttribute('data-status', 'disconnected');
    await expect(status).toContainText('Disconnected');
    const banner = page.getByTestId('disconnected');
    await expect(banner).toContainText('Disconnected.');
    await expect(banner).toContainText('disconnected'); // the reason
    // what was read stays on screen, marked as from before
    await expect(page.getByRole('heading', { name: 'Firmware slots' })).toBeVisible();

    // still unplugged: Reconnect explains instead of hanging
    await banner.getByRole('button', { name: 'Reconnect' }).click();
    await expect(page.getByTestId('problem')).toHaveAttribute('data-kind', 'gone');
    await expect(status).toHaveAttribute('data-status', 'disconnected');

    await page.evaluate((k) => (globalThis as unknown as Record<string, Fake>)[k]!.replug(), t.fake);
    await expect(page.getByTestId('device-back')).toBeVisible(); // the 'connect' event was noticed
    await page.getByTestId('disconnected').getByRole('button', { name: 'Reconnect' }).click();
    await expectDevicePage(page);
    await expect(page.getByTestId('disconnected')).toHaveCount(0);
    await expect(page.getByTestId('problem')).toHaveCount(0);
  });
}

test('the device side dropping the cable is noticed as a loss', async ({ page, bridge }) => {
  await page.goto('/');
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  await expectDevicePage(page);
  bridge.dropAll();
  await expect(page.getByTestId('connection-status')).toHaveAttribute('data-status', 'disconnected');
});

import { test, expect, expectDevicePage } from './fixtures.ts';

test('closing the chooser without a choice shows a calm message', async ({ page }) => {
  await page.goto('/');
  await page.evaluate(() => {
    (globalThis as unknown as { __fakeSerial: { chooser: unknown } }).__fakeSerial.chooser = { name: 'NotFoundError', message: 'No port selected by the user.' };
  });
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  const problem = page.getByTestId('problem');
  await expect(problem).toHaveAttribute('data-kind', 'cancelled');
  await expect(problem).toContainText('No device selected.');
  await expect(problem).toHaveClass(/info/); // not styled as an error
  await expect(page.getByRole('alert')).toHaveCount(0);
  await expect(page.getByTestId('connection-status')).toHaveAttribute('data-status', 'idle');
  // and the user can simply try again
  await page.evaluate(() => {
    (globalThis as unknown as { __fakeSerial: { chooser: unknown } }).__fakeSerial.chooser = 'pick';
  });
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  await expectDevicePage(page);
});

test('a port already in use explains the remedy', async ({ page }) => {
  await page.goto('/');
  await page.evaluate(() => {
    (globalThis as unknown as { __fakeSerial: { openError: unknown } }).__fakeSerial.openError = { name: 'InvalidStateError', message: 'The port is already open.' };
  });
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  const problem = page.getByRole('alert');
  await expect(problem).toContainText('The serial port is already in use.');
  await expect(problem).toContainText('another program or browser tab');
  await expect(page.getByTestId('problem')).toHaveAttribute('data-kind', 'busy');
});

test('a port held by another program (NetworkError) is also "in use"', async ({ page }) => {
  await page.goto('/');
  await page.evaluate(() => {
    (globalThis as unknown as { __fakeSerial: { openError: unknown } }).__fakeSerial.openError = { name: 'NetworkError', message: 'Failed to open serial port.' };
  });
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  await expect(page.getByTestId('problem')).toHaveAttribute('data-kind', 'busy');
});

test.describe('in a browser without Web Serial or WebUSB', () => {
  test.use({ fakes: false });
  test('says which browsers work and still offers the virtual device', async ({ page }) => {
    await page.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'serial', { configurable: true, get: () => undefined });
      Object.defineProperty(Navigator.prototype, 'usb', { configurable: true, get: () => undefined });
    });
    await page.goto('/');
    const msg = page.getByTestId('unsupported');
    await expect(msg).toContainText('This browser cannot reach USB or serial devices.');
    await expect(msg).toContainText('Firefox 151');
    await expect(msg).toContainText('Safari does not support it');
    await expect(page.getByRole('button', { name: 'Connect over USB serial' })).toBeDisabled();
    await expect(page.getByRole('button', { name: 'Connect over WebUSB' })).toBeDisabled();
    await expect(page.getByRole('button', { name: 'Try a virtual device' })).toBeEnabled();
  });
});

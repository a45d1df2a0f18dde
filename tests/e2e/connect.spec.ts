import { test, expect, expectDevicePage, REAL_PEER } from './fixtures.ts';

test('connects over Web Serial and shows the device page', async ({ page, bridge }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Connect to a device' })).toBeVisible();
  await expect(page.getByTestId('unsupported')).toHaveCount(0);
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('link-label')).toHaveText('WebSerial 2fe3:0100');
  // opened at 115200 baud with a receive buffer of at least 64 KiB
  const opens = await page.evaluate(() => (globalThis as unknown as { __fakeSerial: { opens: { baudRate: number; bufferSize: number }[] } }).__fakeSerial.opens);
  expect(opens).toHaveLength(1);
  expect(opens[0]!.baudRate).toBe(115200);
  expect(opens[0]!.bufferSize).toBeGreaterThanOrEqual(65536);
  expect(bridge.connections.at(-1)?.transport).toBe('serial');
  // the log pane shows the SMP traffic
  await expect(page.getByTestId('log')).toContainText('Opened WebSerial 2fe3:0100');
  await expect(page.getByTestId('log')).toContainText('Device information read.');
  // disconnecting on purpose is not a loss
  await page.getByRole('button', { name: 'Disconnect' }).click();
  await expect(page.getByTestId('connection-status')).toHaveAttribute('data-status', 'closed');
  await expect(page.getByTestId('disconnected')).toHaveCount(0);
});

test('the chosen baud rate is used to open the port', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('Baud rate').selectOption('921600');
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  await expectDevicePage(page);
  const opens = await page.evaluate(() => (globalThis as unknown as { __fakeSerial: { opens: { baudRate: number }[] } }).__fakeSerial.opens);
  expect(opens.map((o) => o.baudRate)).toEqual([921600]);
});

test('connects over WebUSB to a CDC-ACM device', async ({ page, bridge }) => {
  await page.goto('/');
  await page.getByRole('button', { name: 'Connect over WebUSB' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('link-label')).toContainText('WebUSB 2fe3:0100');
  const controls = await page.evaluate(
    () => (globalThis as unknown as { __fakeUsb: { controls: { request: number; value: number; index: number; data: number[] }[] } }).__fakeUsb.controls,
  );
  // SET_LINE_CODING 115200 8N1, then SET_CONTROL_LINE_STATE with DTR|RTS, on the communication interface
  expect(controls.slice(0, 2)).toEqual([
    expect.objectContaining({ request: 0x20, value: 0, index: 0, data: [0x00, 0xc2, 0x01, 0x00, 0, 0, 8] }),
    expect.objectContaining({ request: 0x22, value: 3, index: 0 }),
  ]);
  expect(bridge.connections.at(-1)?.transport).toBe('usb');
});

test('connects over WebUSB to a vendor-specific bulk interface', async ({ page, bridge }) => {
  await page.goto('/');
  await page.evaluate(() => {
    (globalThis as unknown as { __fakeUsb: { kind: string } }).__fakeUsb.kind = 'vendor';
  });
  await page.getByRole('button', { name: 'Connect over WebUSB' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('link-label')).toHaveText('WebUSB 2fe3:0100 Vendor bulk SMP');
  const controls = await page.evaluate(() => (globalThis as unknown as { __fakeUsb: { controls: unknown[] } }).__fakeUsb.controls);
  expect(controls).toEqual([]); // no CDC class requests on a vendor interface
  expect(bridge.connections.at(-1)?.transport).toBe('usb');
});

test('runs the virtual device inside the page', async ({ page, bridge }) => {
  test.skip(REAL_PEER, 'the virtual device is the reference device, not the peer');
  const before = bridge.connections.length;
  await page.goto('/');
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('link-label')).toHaveText('virtual device');
  expect(bridge.connections.length).toBe(before); // no bridge involved
});

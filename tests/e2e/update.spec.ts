/**
 * The firmware update panel in Chromium, mounted by a test-only harness page
 * (tests/e2e/update-harness) against an in-page virtual device whose
 * bootloader trusts the key this test signs images with (signImage in Node,
 * bytes passed to the page): preflight shown before anything is sent, upload
 * progress, test/reset/confirm, done; a bit-flipped image refused at
 * preflight with the reason; the link lost mid-upload and resumed.
 */
import type { Page } from '@playwright/test';
import { sha256 } from '@noble/hashes/sha2.js';
import { test as base, expect } from './fixtures.ts';
import { startUpdateHarness, type UpdateHarnessServer } from './update-harness/serve.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { signImage, signedImageHexSegments } from '../../src/core/trust/mcuboot/sign.ts';
import { writeIhex } from '../../src/core/trust/ihex.ts';

const test = base.extend<object, { harness: UpdateHarnessServer }>({
  harness: [
    async ({}, use) => {
      const h = await startUpdateHarness();
      await use(h);
      await h.close();
    },
    { scope: 'worker', timeout: 120_000 },
  ],
  baseURL: async ({ harness }, use) => use(harness.url),
});
test.use({ fakes: false });

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function payload(size: number, seed: number): Uint8Array {
  let x = seed >>> 0 || 1;
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function signed(seed: Uint8Array, version: string, counter: number, size: number): Promise<Uint8Array> {
  return (await signImage(payload(size, size + counter), { key: seed, version, headerSize: 32, padHeader: true, securityCounter: counter })).image;
}

interface PageHarness {
  start(o: { trustedKey: number[]; library?: { name: string; bytes: number[]; sha256: string }[]; writeUsPerByte?: number }): Promise<void>;
  unplug(): void;
  plugBack(): Promise<void>;
  deviceUploadOffset(): number;
}

async function open(page: Page, publicKey: Uint8Array, library: { name: string; bytes: Uint8Array }[], writeUsPerByte = 0): Promise<void> {
  await page.goto('/');
  await expect(page.locator('body[data-ready="1"]')).toHaveCount(1);
  const lib = library.map((l) => ({ name: l.name, bytes: Array.from(l.bytes), sha256: hex(sha256(l.bytes)) }));
  await page.evaluate(
    (a) => (globalThis as unknown as { __update: PageHarness }).__update.start({ trustedKey: a.key, library: a.lib, writeUsPerByte: a.w }),
    { key: Array.from(publicKey), lib, w: writeUsPerByte },
  );
  await expect(page.getByTestId('update-panel')).toBeVisible();
  // the device's slots before anything happens
  await expect(page.getByTestId('slots').locator('tr[data-slot="0"]')).toHaveAttribute('data-version', '1.0.0');
}

test('library image: preflight shown, upload progress, test, reset, confirm, done', async ({ page }) => {
  const signer = await generateEd25519();
  const img = await signed(signer.privateKey, '1.1.0', 2, 24000);
  await open(page, signer.publicKey, [{ name: 'app-1.1.0.bin', bytes: img }]);

  const upload = page.getByTestId('update-upload');
  await expect(upload).toBeDisabled(); // nothing chosen yet
  await page.getByTestId('fw-library-item').filter({ hasText: 'app-1.1.0.bin' }).click();
  await expect(page.getByTestId('fw-chosen')).toContainText('app-1.1.0.bin');

  // Pre-flight: every check with its result and reason, before anything is sent.
  const pre = page.getByTestId('preflight');
  await expect(pre).toHaveAttribute('data-ok', 'yes');
  await expect(pre.locator('tr[data-check="signature"]')).toHaveAttribute('data-result', 'pass');
  await expect(pre.locator('tr[data-check="signature"]')).toContainText('signature');
  await expect(pre.locator('tr[data-check="version"]')).toContainText('1.1.0 over running 1.0.0');
  await expect(pre.locator('tr[data-check="slot"]')).toHaveAttribute('data-result', 'pass');
  await expect(page.getByTestId('preflight-verdict')).toContainText('Nothing has been sent to the device yet');
  expect(await page.evaluate(() => (globalThis as unknown as { __update: PageHarness }).__update.deviceUploadOffset())).toBe(0);

  await expect(upload).toBeEnabled();
  await upload.click();
  // Progress: bytes sent of total, a rate and time left while it runs.
  const progress = page.getByTestId('upload-progress');
  await expect(progress).toBeVisible();
  await expect(progress).toHaveAttribute('data-total', String(img.length));
  await expect(page.getByTestId('upload-bytes')).toContainText(/of 23\.\d KiB/);
  await expect(page.getByTestId('update-cancel')).toBeVisible();
  // A rate and time left once measured; until then one plain "measuring the speed…", never a dash.
  await expect(page.getByTestId('upload-eta')).toHaveText(/^(\d+ s|\d+ min \d+ s) left$|^measuring the speed…$/);
  await expect(progress).not.toContainText('—');

  // The flow's steps, then done.
  const result = page.getByTestId('update-result');
  await expect(result).toHaveAttribute('data-result', 'done', { timeout: 25_000 });
  await expect(result).toContainText('running 1.1.0, confirmed');
  await expect(result).not.toContainText('+0');
  await expect(progress).toHaveAttribute('data-sent', String(img.length));
  const steps = page.getByTestId('update-steps');
  for (const id of ['upload', 'verify', 'test', 'reset', 'wait', 'confirm', 'done']) await expect(steps.locator(`li[data-step="${id}"]`)).toHaveAttribute('data-status', 'done');
  await expect(page.getByTestId('harness-outcomes')).toHaveText('done');

  // Both slots as the device now reports them: the new image runs, confirmed.
  const slot0 = page.getByTestId('slots').locator('tr[data-slot="0"]');
  await expect(slot0).toHaveAttribute('data-version', '1.1.0');
  await expect(slot0.locator('td[data-flag="active"]')).toHaveText('yes');
  await expect(slot0.locator('td[data-flag="confirmed"]')).toHaveText('yes');
  await expect(page.getByTestId('slots').locator('tr[data-slot="1"]')).toHaveAttribute('data-version', '1.0.0');
});

test('a bit-flipped image from a file is refused at preflight with the reason; Upload stays disabled; a good .hex dropped in passes', async ({ page }) => {
  const signer = await generateEd25519();
  const img = (await signed(signer.privateKey, '1.1.0', 2, 8000)).slice();
  img[500] ^= 0x04;
  await open(page, signer.publicKey, []);
  await expect(page.getByTestId('fw-library-empty')).toBeVisible();
  await page.getByTestId('fw-file').setInputFiles({ name: 'flipped.bin', mimeType: 'application/octet-stream', buffer: Buffer.from(img) });
  await expect(page.getByTestId('fw-chosen')).toContainText('flipped.bin');
  const pre = page.getByTestId('preflight');
  await expect(pre).toHaveAttribute('data-ok', 'no');
  const sig = pre.locator('tr[data-check="signature"]');
  await expect(sig).toHaveAttribute('data-result', 'fail');
  await expect(sig).toContainText(/hash/i);
  await expect(page.getByTestId('preflight-verdict')).toContainText('This image will not be uploaded.');
  await expect(page.getByTestId('update-upload')).toBeDisabled();
  expect(await page.evaluate(() => (globalThis as unknown as { __update: PageHarness }).__update.deviceUploadOffset())).toBe(0);
  await expect(page.getByTestId('slots').locator('tr[data-slot="0"]')).toHaveAttribute('data-version', '1.0.0');

  // Drag and drop an Intel HEX file of a good image: converted, checked afresh, Upload enabled.
  const good = await signed(signer.privateKey, '1.1.0', 2, 8000);
  const hexText = writeIhex(signedImageHexSegments(good, 0x10000, { version: '1.1.0', headerSize: 32 }));
  await page.getByTestId('fw-drop').evaluate((el, a) => {
    const dt = new DataTransfer();
    dt.items.add(new File([a.text], a.name, { type: 'text/plain' }));
    el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { text: hexText, name: 'app-1.1.0.hex' });
  await expect(page.getByTestId('fw-chosen')).toContainText('app-1.1.0.hex');
  await expect(page.getByTestId('fw-chosen')).toContainText('Intel HEX, converted');
  await expect(pre).toHaveAttribute('data-ok', 'yes');
  await expect(sig).toHaveAttribute('data-result', 'pass');
  await expect(page.getByTestId('update-upload')).toBeEnabled();
});

test('link lost mid-upload: the panel says so, offers Resume once the device is back, and continues from the device offset', async ({ page }) => {
  const signer = await generateEd25519();
  const img = await signed(signer.privateKey, '1.2.0', 3, 40000);
  await open(page, signer.publicKey, [{ name: 'app-1.2.0.bin', bytes: img }], 20);
  await page.getByTestId('fw-library-item').click();
  await expect(page.getByTestId('preflight')).toHaveAttribute('data-ok', 'yes');
  await page.getByTestId('update-upload').click();
  const progress = page.getByTestId('upload-progress');
  await expect.poll(async () => Number(await progress.getAttribute('data-sent')), { timeout: 20_000 }).toBeGreaterThan(8000);
  await page.evaluate(() => (globalThis as unknown as { __update: PageHarness }).__update.unplug());

  await expect(page.getByTestId('link-lost')).toContainText('The link to the device was lost during the upload');
  await expect(page.getByTestId('update-resume')).toBeDisabled();
  const devOffset = await page.evaluate(() => (globalThis as unknown as { __update: PageHarness }).__update.deviceUploadOffset());
  expect(devOffset).toBeGreaterThan(8000);

  await page.evaluate(() => (globalThis as unknown as { __update: PageHarness }).__update.plugBack());
  await expect(page.getByTestId('link-lost')).toContainText('Press Resume');
  await page.getByTestId('update-resume').click();
  await expect(page.getByTestId('upload-resumed')).toBeVisible();
  await expect(page.getByTestId('update-result')).toHaveAttribute('data-result', 'done', { timeout: 25_000 });
  await expect(page.getByTestId('slots').locator('tr[data-slot="0"]')).toHaveAttribute('data-version', '1.2.0');
  await expect(page.getByTestId('harness-outcomes')).toHaveText('failed,done');
});

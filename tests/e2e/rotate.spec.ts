/**
 * Key and identifier rotation in the app (issue 14 item 14): the DEMO virtual
 * device gets a new DevEUI, keyboard only, behind the confirmation and the
 * technician login; the new DevEUI is shown, recorded in the inventory (the
 * same record, not a second one) and in the audit trail. Then as an attacker
 * has it, against a provisioned device in Node: a credential without
 * rotate-keys is refused before anything is sent, and a credential the device
 * itself has revoked is refused by the device, with the reason in words.
 */
import { test, expect, expectDevicePage } from './fixtures.ts';
import type { Page } from '@playwright/test';
import { readFile } from 'node:fs/promises';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { decodeCredentialUnverified, issueCredential, PERMISSIONS } from '../../src/core/trust/credential.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';

const NEW_EUI = '70b3d57ed0001234';

/** Tab (forward) until the target has focus; the number of presses, or fails after `max`. */
async function tabTo(page: Page, testId: string, max = 40): Promise<number> {
  const target = page.getByTestId(testId);
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement)) return i;
  }
  throw new Error(`${testId} not reached in ${max} Tab presses`);
}

test('rotation: a new DevEUI, keyboard only, shown, in the same inventory record and in the audit trail; a new network key saved before it is sent and in no record', async ({ page }) => {
  test.setTimeout(90_000);
  await page.goto('/#/trust');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await nav.getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);

  // Identified first: the rotation then insists on the identified device key, and the identity card says what changed.
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  const panel = page.getByTestId('rotation');
  await expect(panel.getByRole('heading', { name: 'Key and identifier rotation' })).toBeVisible({ timeout: 20_000 });
  await expect(page.getByTestId('rotation-deveui')).toHaveText('none');
  const serial = (await page.getByTestId('rotation-now').locator('.mono').first().innerText()).trim();
  // What it changes and what it keeps, in words.
  await expect(panel).toContainText('takes the new DevEUI in place of the old one');
  await expect(panel).toContainText('does not give the device a new identity key or certificate');
  await panel.getByRole('radio', { name: /Network key \(AppKey\)/ }).check();
  await expect(panel).toContainText('never stores or records it, only its key id');
  await panel.getByRole('radio', { name: /^DevEUI/ }).check();

  // A value the device cannot take is refused in the form (the button stays disabled).
  const start = page.getByTestId('rotation-start');
  await page.getByTestId('rotation-value').fill('0011');
  await expect(panel).toContainText('8 bytes (16 hex digits), not 2');
  await expect(start).toBeDisabled();

  // Keyboard only from here: type, Tab to the button, Enter; the confirmation takes focus; Tab, Enter.
  await page.getByTestId('rotation-value').fill('');
  await page.getByTestId('rotation-value').focus();
  await page.keyboard.type(NEW_EUI);
  await tabTo(page, 'rotation-start', 5);
  await page.keyboard.press('Enter');
  const confirm = page.getByTestId('rotation-confirm');
  await expect(confirm).toBeFocused({ timeout: 20_000 });
  await expect(confirm).toContainText(`Replace the LoRaWAN DevEUI (identifier) of ${serial}?`);
  await expect(confirm).toContainText('From no DevEUI to 70:B3:D5:7E:D0:00:12:34');
  await tabTo(page, 'rotation-confirm-yes', 3);
  await page.keyboard.press('Enter');
  const result = page.getByTestId('rotation-result');
  await expect(result).toContainText(`Rotated: ${serial} now has DevEUI 70:B3:D5:7E:D0:00:12:34.`, { timeout: 20_000 });
  await expect(result).toBeFocused();
  await expect(result).toContainText('signed a receipt with its identity key');
  await expect(page.getByTestId('rotation-deveui')).toHaveText('70:B3:D5:7E:D0:00:12:34');
  await expect(page.getByTestId('identity-deveui-rotated')).toContainText('70:b3:d5:7e:d0:00:12:34');
  await expect(page.getByTestId('identity-deveui-rotated')).toContainText('rotated after this identification');

  // A new network key: made here, saved to a file before the confirmation can be given; only its key id is shown.
  await panel.getByRole('radio', { name: /Network key \(AppKey\)/ }).check();
  await start.click();
  await expect(confirm).toBeFocused({ timeout: 20_000 });
  const yes = page.getByTestId('rotation-confirm-yes');
  await expect(yes).toBeDisabled();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('rotation-save-key').click()]);
  const key = (await readFile(await download.path(), 'utf8')).trim();
  expect(key).toMatch(/^[0-9a-f]{32}$/);
  await yes.click();
  await expect(result).toContainText(`Rotated: ${serial} has a new network key (key id`, { timeout: 20_000 });
  await expect(page.locator('body')).not.toContainText(key);

  // The inventory: one record for the device, with the new DevEUI.
  await nav.getByRole('link', { name: 'Inventory' }).click();
  const rows = page.getByTestId('inv-row');
  await expect(rows).toHaveCount(1, { timeout: 10_000 });
  await expect(rows.first()).toHaveAttribute('data-serial', serial);
  await expect(rows.first()).toContainText(`DevEUI ${NEW_EUI}`);

  // The audit trail: the rotation in words.
  await nav.getByRole('link', { name: 'Audit trail' }).click();
  await expect(page.locator('main')).toContainText('DevEUI replaced: none → 70:B3:D5:7E:D0:00:12:34; receipt signed by the device');
  await expect(page.locator('main')).toContainText('network key replaced: key id none →');
  // The key itself is in no record, not even in the recorded details.
  expect(await page.locator('main').textContent()).not.toContain(key);
});

test('rotation refused: without rotate-keys the app says so and sends nothing; a credential the device revoked is refused by the device', async ({ page, bridge }) => {
  test.setTimeout(90_000);
  // Authorities of this test; the technician's credential grants everything but rotate-keys.
  const auth = await makeAuthorities({ permissions: PERMISSIONS.filter((p) => p !== 'rotate-keys') });
  // A second credential for the same technician key, with rotate-keys, that the device has revoked.
  const revoked = await issueCredential(
    { technicianId: auth.technicianId, name: 'Demo Technician', publicKey: auth.technician.publicKey, permissions: [...PERMISSIONS], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + 86400_000) },
    auth.owner.privateKey,
  );
  const { device, security } = await createSecureDevice(auth, { security: { revokedCredentialIds: [decodeCredentialUnverified(revoked).credentialId] } });
  bridge.useDevice(device);
  try {
    await page.goto('/#/trust');
    const nav = page.getByRole('navigation', { name: 'Main' });
    await page.getByTestId('trust-file').setInputFiles([
      { name: 'owner.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(publicKeyPem(auth.owner.publicKey)) },
      { name: 'bundle.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.bundle) },
      { name: 'credential.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.credential) },
      { name: 'tech.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(privateKeyPem(auth.technician.privateKey)) },
    ]);
    await expect(page.getByTestId('trust-missing')).toHaveCount(0);
    await nav.getByRole('link', { name: 'Device' }).click();
    await page.getByRole('button', { name: 'Connect over USB serial' }).click();
    await expectDevicePage(page);

    const panel = page.getByTestId('rotation');
    await expect(panel).toBeVisible({ timeout: 20_000 });
    await page.getByTestId('rotation-value').fill(NEW_EUI);
    await expect(page.getByTestId('rotation-not-permitted')).toContainText('does not allow rotation');
    await expect(page.getByTestId('rotation-not-permitted')).toContainText('not rotate-keys');
    await expect(page.getByTestId('rotation-start')).toBeDisabled();

    // The revoked credential: the app has no way to know, the device refuses the login.
    await nav.getByRole('link', { name: 'Trust & keys' }).click();
    await page.getByTestId('trust-file').setInputFiles({ name: 'credential-2.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(revoked) });
    await expect(page.getByTestId('permissions')).toContainText('rotate-keys');
    await nav.getByRole('link', { name: 'Device' }).click();
    await expect(panel).toBeVisible({ timeout: 20_000 });
    await page.getByTestId('rotation-value').fill(NEW_EUI);
    await page.getByTestId('rotation-start').click();
    await page.getByTestId('rotation-confirm-yes').click();
    const result = page.getByTestId('rotation-result');
    await expect(result).toContainText('Not rotated', { timeout: 20_000 });
    await expect(result).toContainText(/revoked/i);
    await expect(result).toContainText('The device refused.');
    await expect(result).toBeFocused();
    await expect(page.getByTestId('rotation-deveui')).toHaveText('none');
    expect(security.opts.devEui).toBeUndefined();

    await nav.getByRole('link', { name: 'Audit trail' }).click();
    await expect(page.locator('main')).toContainText('rotation failed');
  } finally {
    bridge.useDevice(null);
  }
});

/**
 * The whole app (the real build, not a harness): navigation, the Trust & keys
 * page (demo trust and file imports), the DEMO virtual device through
 * identify and attest into the audit trail, and a stock device over the fake
 * WebSerial that has no identity service.
 */
import { test, expect, expectDevicePage, REAL_PEER } from './fixtures.ts';
import { makeAuthorities } from '../../src/device/provisioning.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';

const DAY = 86400_000;

test('demo trust, DEMO virtual device: identify verified, attest with reasons, audit trail lists both', async ({ page }) => {
  await page.goto('/');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: /Trust & keys/ }).click();
  await expect(page.getByRole('heading', { name: 'Trust & keys', level: 1 })).toBeVisible();
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('demo-trust')).toContainText('DEMO trust is loaded');
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  const perms = page.getByTestId('permissions');
  for (const p of ['identify', 'attest', 'configure', 'update']) await expect(perms.getByText(p, { exact: true })).toBeVisible();
  await expect(page.getByTestId('credential-validity')).toHaveText(/^\d{4}-\d{2}-\d{2} until \d{4}-\d{2}-\d{2}$/);
  await expect(page.getByTestId('trust-missing')).toHaveCount(0);

  await nav.getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('demo-hint')).toContainText('Demo trust is loaded');
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await page.getByRole('button', { name: 'Attest' }).click();
  const verdict = page.getByTestId('verdict');
  await expect(verdict).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  const reasons = page.getByTestId('attestation-panel').locator('li[data-check]');
  expect(await reasons.count()).toBeGreaterThan(0);
  await expect(reasons.first()).toHaveAttribute('data-result', /^(pass|warn|fail)$/);

  await nav.getByRole('link', { name: 'Audit trail' }).click();
  const trail = page.locator('main');
  await expect(trail).toContainText('identify');
  await expect(trail).toContainText('attest');
});

test('trust files: owner key pinned, bundle and credential shown; an older bundle is refused; no trust = panels say what is missing', async ({ page }) => {
  const auth = await makeAuthorities({ bundleVersion: 5 });
  const older = await issueBundle(
    { version: 4, expires: new Date(Date.now() + 30 * DAY), anchors: { manufacturer: [auth.manufacturer.publicKey], firmware: [auth.firmware.publicKey], owner: [auth.owner.publicKey] } },
    auth.owner.privateKey,
  );
  await page.goto('/#/trust');
  await expect(page.getByRole('heading', { name: 'Trust & keys', level: 1 })).toBeVisible();
  const file = page.getByTestId('trust-file');
  // The bundle alone is refused: the owner key must be given first.
  await file.setInputFiles({ name: 'bundle.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.bundle) });
  await expect(page.getByTestId('trust-results')).toContainText("owner public key (PEM) first");
  await file.setInputFiles([
    { name: 'owner.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(publicKeyPem(auth.owner.publicKey)) },
    { name: 'bundle.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.bundle) },
    { name: 'credential.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.credential) },
    { name: 'tech.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(privateKeyPem(auth.technician.privateKey)) },
  ]);
  await expect(page.getByTestId('bundle-version')).toHaveText('v5');
  await expect(page.getByTestId('owner-pin')).toBeVisible();
  await expect(page.getByTestId('permissions')).toContainText('rotate-keys');
  await expect(page.getByTestId('trust-credential')).toContainText('Demo Technician');
  await expect(page.getByTestId('trust-key')).toContainText(/non-extractable|encrypted/);
  await expect(page.getByTestId('trust-missing')).toHaveCount(0);

  await file.setInputFiles({ name: 'bundle-v4.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(older) });
  const refused = page.getByTestId('trust-results').locator('li').first();
  await expect(refused).toHaveAttribute('data-ok', 'false');
  await expect(refused).toContainText('older than the held version 5');
  await expect(page.getByTestId('bundle-version')).toHaveText('v5');

  // Held across a reload (IndexedDB), and forgetting it makes the device page say what is missing.
  await page.reload();
  await expect(page.getByTestId('bundle-version')).toHaveText('v5');
  await page.getByRole('button', { name: 'Forget held trust…' }).click();
  await page.getByTestId('forget-confirm').getByRole('button', { name: 'Forget it' }).click();
  await expect(page.getByTestId('trust-missing')).toContainText("owner's public key and the trust bundle");
});

test('a stock device over WebSerial: identity not supported, info still shown', async ({ page }) => {
  test.skip(REAL_PEER, 'the peer may support identity');
  await page.goto('/');
  await page.getByRole('button', { name: 'Connect over USB serial' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('trust-needed')).toContainText('trust bundle');
  // With trust loaded, identify runs and finds no identity service.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Trust & keys/ }).click();
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('demo-trust')).toBeVisible();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Device' }).click();
  await expectDevicePage(page);
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-unsupported')).toContainText('identity and attestation not supported by this device');
  await expect(page.getByTestId('section-os')).toContainText('fieldbench_ref');
});

test('demo trust, DEMO virtual device: configure from the library, update to 1.1.0, attest after; the audit trail lists configure, update and event reads', async ({ page }) => {
  test.setTimeout(120_000);
  await page.goto('/#/trust');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await expect(page.getByTestId('trust-missing')).toHaveCount(0);
  await nav.getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);

  // Configure: the demo signed configuration from the library, diff first, backup kept, sequence shown.
  const config = page.locator('section.config');
  // The device shows its configuration only to a logged-in technician: the reason in words, and a login to read it.
  const needed = config.getByTestId('config-login-needed');
  await expect(needed).toContainText('only to a logged-in technician');
  await expect(config.getByTestId('config-current')).toHaveCount(0);
  await needed.getByRole('button', { name: 'Log in and read the configuration' }).click();
  await expect(config.getByTestId('config-current')).toContainText('No configuration applied yet');
  // The virtual device was provisioned with bundle v1; the login handed it the held v2 (issue 11: bundle push).
  await expect(config.getByTestId('config-login-note')).toContainText('The device now holds trust bundle v2');
  const item = config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' });
  await item.getByRole('button', { name: 'Review and apply' }).click();
  const diff = config.getByTestId('config-diff');
  await expect(diff).toContainText('interval');
  await expect(diff).toContainText('"demo-sensor"');
  await expect(diff).toContainText('A backup of the current configuration is kept');
  await diff.getByRole('button', { name: 'Apply' }).click();
  await expect(config.getByTestId('config-state')).toContainText('Applied configuration #1', { timeout: 20_000 });
  await expect(config.getByTestId('config-current')).toContainText('Signed configuration #1');
  await expect(config.getByRole('heading', { name: 'Backups' })).toBeVisible();
  // The backup holds what the device had before (no signed configuration): restoring it needs the owner, and says so.
  await expect(config.getByTestId('backup-item')).toHaveAttribute('data-plan', 'needs-owner');
  // The same configuration again is not above the device's sequence: offered as refused.
  await expect(config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' })).toContainText('the device refuses it');

  // Update: the demo image from the library; preflight, progress, confirmed at 1.1.0.
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  const pre = page.getByTestId('preflight');
  await expect(pre).toHaveAttribute('data-ok', 'yes');
  await expect(pre.locator('tr[data-check="signature"]')).toHaveAttribute('data-result', 'pass');
  await expect(pre.locator('tr[data-check="version"]')).toContainText('1.1.0');
  await page.getByTestId('update-upload').click();
  await expect(page.getByTestId('upload-progress')).toBeVisible();
  const result = page.getByTestId('update-result');
  await expect(result).toHaveAttribute('data-result', 'done', { timeout: 60_000 });
  await expect(result).toContainText('1.1.0');
  await expect(result).toContainText('confirmed');
  await expect(page.getByTestId('slots').locator('tr[data-slot="0"]')).toHaveAttribute('data-version', '1.1.0');

  // Attestation after the update still appraises: the new image is in the bundle.
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await page.getByRole('button', { name: 'Attest' }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  await page.getByTestId('event-log').getByRole('button', { name: 'Read events' }).click();
  await expect(page.getByTestId('event-log')).toContainText(/\d+ events?, newest counter/);

  await nav.getByRole('link', { name: 'Audit trail' }).click();
  const op = (name: string) => page.getByTestId('audit-row').filter({ has: page.locator('td:nth-child(3)', { hasText: new RegExp(`^${name}$`) }) });
  await expect(op('configure')).toHaveCount(1);
  await expect(op('configure').locator('td:nth-child(4)')).toHaveText('ok');
  await expect(op('configure')).toContainText('sequence');
  await expect(op('update')).toHaveCount(1);
  await expect(op('update').locator('td:nth-child(4)')).toHaveText('ok');
  await expect(op('update')).toContainText('1.1.0');
  await expect(op('events')).toHaveCount(1);
  await expect(op('attest')).toHaveCount(1);
  await expect(op('attest').locator('td:nth-child(4)')).not.toHaveText('rejected');
  // No secret values in the trail: the configuration is named by sequence and digest only.
  await expect(page.getByTestId('audit-table')).not.toContainText('DEMO-site');
});

test('a cancelled configuration is audited with the reason', async ({ page }) => {
  await page.goto('/#/trust');
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('trust-missing')).toHaveCount(0);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
  const config = page.locator('section.config');
  await config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' }).click();
  await config.getByTestId('config-diff').getByRole('button', { name: 'Cancel' }).click();
  await expect(config.getByTestId('config-state')).toContainText('did not confirm');
  await nav.getByRole('link', { name: 'Audit trail' }).click();
  const row = page.getByTestId('audit-row').filter({ has: page.locator('td:nth-child(3)', { hasText: /^configure$/ }) });
  await expect(row).toHaveCount(1);
  await expect(row.locator('td:nth-child(4)')).toHaveText('cancelled');
  await expect(row).toContainText('did not confirm');
});

test('library: a newer trust bundle from the owner becomes the held bundle; an older one is refused with the reason', async ({ page }) => {
  const auth = await makeAuthorities({ bundleVersion: 5 });
  const anchors = { manufacturer: [auth.manufacturer.publicKey], firmware: [auth.firmware.publicKey], owner: [auth.owner.publicKey] };
  const newer = await issueBundle({ version: 6, expires: new Date(Date.now() + 30 * DAY), anchors }, auth.owner.privateKey);
  const older = await issueBundle({ version: 4, expires: new Date(Date.now() + 30 * DAY), anchors }, auth.owner.privateKey);
  await page.goto('/#/trust');
  await page.getByTestId('trust-file').setInputFiles([
    { name: 'owner.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(publicKeyPem(auth.owner.publicKey)) },
    { name: 'bundle.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.bundle) },
  ]);
  await expect(page.getByTestId('bundle-version')).toHaveText('v5');

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Library' }).click();
  const input = page.getByTestId('file-input');
  await input.setInputFiles({ name: 'bundle-v6.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(newer) });
  const notes = page.getByTestId('library-trust-results');
  await expect(notes.locator('li').first()).toHaveAttribute('data-ok', 'true');
  await expect(notes.locator('li').first()).toContainText('trust bundle v6 verified and held');
  await input.setInputFiles({ name: 'bundle-v4.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(older) });
  const refused = page.getByTestId('import-results').locator('li').first();
  await expect(refused).toHaveAttribute('data-ok', 'false');
  await expect(refused).toContainText(/older than the held version 6/);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Trust & keys/ }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v6');
});

test('demo trust from an earlier visit is detected and can be reloaded', async ({ page }) => {
  await page.goto('/#/trust');
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('demo-trust')).toContainText('DEMO trust is loaded');
  await expect(page.getByTestId('stale-demo')).toHaveCount(0);
  // A new visit: new demo keys in this page.
  await page.reload();
  await expect(page.getByTestId('stale-demo')).toContainText('from an earlier visit');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
  await expect(page.getByTestId('demo-hint')).toContainText('earlier visit');
  await page.getByTestId('reload-demo').click();
  await expect(page.getByTestId('demo-hint')).toContainText('Demo trust is loaded');
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
});

/**
 * Issue 14's defects, each as a new technician meets it in the real build with
 * the in-page virtual device and demo trust. Every test here failed before its fix.
 */
import { test, expect, expectDevicePage } from './fixtures.ts';
import type { Page } from '@playwright/test';

async function demoDevice(page: Page): Promise<void> {
  await page.goto('/#/trust');
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
}

test('defect 1: typing in a number field keeps the value, checks the range and reaches the request', async ({ page }) => {
  await demoDevice(page);
  const config = page.locator('section.config');
  const interval = config.getByLabel('Reporting interval (s)');
  await expect(interval).toHaveValue('60');
  await interval.fill('45');
  await config.getByRole('button', { name: 'Prepare request' }).click();
  await expect(config.getByLabel('Configuration request for the owner')).toHaveValue(/"interval": 45/);
  await interval.fill('99999');
  await expect(interval).toHaveAttribute('aria-invalid', 'true');
  await expect(config.getByTestId('field-issue-interval')).toContainText('3600');
  await expect(config.getByRole('button', { name: 'Prepare request' })).toBeDisabled();
});

test('defect 7: a backup that cannot be restored is not offered as restorable; the way to restore it is said', async ({ page }) => {
  await demoDevice(page);
  const config = page.locator('section.config');
  await config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' }).click();
  await config.getByTestId('config-diff').getByRole('button', { name: 'Apply' }).click();
  await expect(config.getByTestId('config-state')).toContainText('Applied configuration #1', { timeout: 20_000 });
  await expect(config.getByRole('heading', { name: 'Backups' })).toBeVisible();
  const item = config.getByTestId('backup-item');
  await expect(item).toHaveCount(1);
  await expect(item).toHaveAttribute('data-plan', 'needs-owner');
  await expect(item.getByRole('button', { name: /Restore/ })).toHaveCount(0);
  await expect(item).toContainText('owner');
  await expect(config.getByTestId('config-state')).not.toContainText('Not applied');
});

test('defect 8: attestation checks and claims are in words, dates local; no raw ids or JSON', async ({ page }) => {
  await demoDevice(page);
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await page.getByRole('button', { name: 'Attest' }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  const panel = page.getByTestId('attestation-panel');
  await expect(panel.locator('li[data-check="instance-id"]')).toContainText('Same device as identified');
  await expect(panel.locator('li[data-check="auth-failures"]')).toContainText('Failed logins');
  for (const raw of ['instance-id', 'auth-failures', 'issuedAt', 'lifecycleState']) await expect(panel).not.toContainText(raw);
  await panel.locator('summary', { hasText: /^Claims \(/ }).click();
  const claims = panel.getByTestId('claims');
  await expect(claims).toBeVisible();
  await expect(claims).not.toContainText('{');
  await expect(claims).not.toContainText('[');
  const year = String(new Date().getFullYear());
  await expect(claims.locator('tr', { hasText: 'Issued' })).toContainText(year);
  await expect(claims.locator('tr', { hasText: 'Lifecycle' })).toContainText('secured');
});

test('defect 12: forgetting held trust asks first; keeping it changes nothing', async ({ page }) => {
  await page.goto('/#/trust');
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await page.getByRole('button', { name: /Forget held trust/ }).click();
  const ask = page.getByTestId('forget-confirm');
  await expect(ask).toBeVisible();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await ask.getByRole('button', { name: 'Keep it' }).click();
  await expect(ask).toHaveCount(0);
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await expect(page.getByTestId('trust-missing')).toHaveCount(0);
  await page.getByRole('button', { name: /Forget held trust/ }).click();
  await page.getByTestId('forget-confirm').getByRole('button', { name: 'Forget it' }).click();
  await expect(page.getByTestId('trust-missing')).toContainText("owner's public key and the trust bundle");
});

test('defect 3: a wrong physical label blocks install and configuration with the reason; one verdict, no green "Verified" next to it', async ({ page }) => {
  await demoDevice(page);
  const verdict = page.getByTestId('job-verdict');
  await expect(verdict).toHaveAttribute('data-verdict', 'pending');
  await page.getByTestId('label-input').getByLabel('Serial').fill('NOT-THIS-DEVICE');
  await page.getByRole('button', { name: 'Identify device' }).click();
  const badges = page.getByTestId('identity-badges');
  await expect(badges.locator('[data-badge="label-mismatch"]')).toBeVisible({ timeout: 20_000 });
  await expect(badges.locator('.badge.ok')).toHaveCount(0);
  await expect(badges).not.toContainText('Verified');
  await expect(verdict).toHaveAttribute('data-verdict', 'do-not-deploy');
  await expect(verdict).toContainText('Do not deploy');
  await expect(verdict).toContainText('label does not match');
  // Update: the image is fine, the device is not.
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  await expect(page.getByTestId('preflight-checking')).toHaveCount(0, { timeout: 20_000 });
  await expect(page.getByTestId('update-upload')).toBeDisabled();
  await expect(page.getByTestId('update-blocked')).toContainText('label does not match');
  // Configuration: Review and apply is refused for the same reason.
  const config = page.locator('section.config');
  await expect(config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' })).toBeDisabled();
  await expect(config.getByTestId('config-blocked')).toContainText('label does not match');
  // The right label lifts it.
  await page.getByTestId('label-input').getByLabel('Serial').fill('');
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(badges.locator('[data-badge="verified"]')).toHaveText('Verified', { timeout: 20_000 });
  await expect(verdict).toHaveAttribute('data-allowed', 'true');
  await expect(page.getByTestId('update-upload')).toBeEnabled();
  await expect(page.getByTestId('update-blocked')).toHaveCount(0);
});

test('defect 2: the page keeps its panels while the device resets during an update; "Done" shows where the technician looks', async ({ page }) => {
  await demoDevice(page);
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  await expect(page.getByTestId('preflight-checking')).toHaveCount(0, { timeout: 20_000 });
  const upload = page.getByTestId('update-upload');
  await upload.scrollIntoViewIfNeeded();
  // Watch every frame: the page's height, the panel's presence and the scroll position.
  await page.evaluate(() => {
    const w = window as unknown as { __watch: { minHeight: number; panelGone: number; maxScrollJump: number } };
    w.__watch = { minHeight: document.documentElement.scrollHeight, panelGone: 0, maxScrollJump: 0 };
    let y = window.scrollY;
    const tick = () => {
      w.__watch.minHeight = Math.min(w.__watch.minHeight, document.documentElement.scrollHeight);
      if (!document.querySelector('[data-testid="update-panel"]')) w.__watch.panelGone++;
      w.__watch.maxScrollJump = Math.max(w.__watch.maxScrollJump, Math.abs(window.scrollY - y));
      y = window.scrollY;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const before = await page.evaluate(() => document.documentElement.scrollHeight);
  await upload.click();
  const result = page.getByTestId('update-result');
  await expect(result).toHaveAttribute('data-result', 'done', { timeout: 30_000 });
  const w = await page.evaluate(() => (window as unknown as { __watch: { minHeight: number; panelGone: number; maxScrollJump: number } }).__watch);
  expect(w.panelGone).toBe(0);
  expect(w.minHeight).toBeGreaterThan(before * 0.8);
  expect(w.maxScrollJump).toBeLessThan(400);
  await expect(result).toBeInViewport();
});

test('defect 5: the update check compares the model the device reports; no "model was not given" warning', async ({ page }) => {
  await demoDevice(page);
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  await expect(page.getByTestId('preflight-checking')).toHaveCount(0, { timeout: 20_000 });
  const panel = page.getByTestId('update-panel');
  await expect(panel).toContainText("model 'fieldbench-ref'");
  await expect(panel).not.toContainText('was not given');
  await expect(panel).not.toContainText('not compared');
});

test('defect 6: "Load demo trust" on the Device page loads it there; the first Identify is one click later', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
  await page.getByTestId('demo-hint').getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('demo-hint')).toContainText('Demo trust is loaded');
  await expect(page).not.toHaveURL(/#\/trust/);
  await expect(page.getByTestId('trust-needed')).toHaveCount(0);
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
});

test('defect 11: Disconnect during an upload cancels it and stays disconnected; the upload does not reconnect and finish', async ({ page }) => {
  await demoDevice(page);
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  await expect(page.getByTestId('preflight-checking')).toHaveCount(0, { timeout: 20_000 });
  await page.getByTestId('update-upload').click();
  await expect(page.getByTestId('update-panel')).toHaveAttribute('data-phase', 'uploading', { timeout: 20_000 });
  await page.getByRole('button', { name: 'Disconnect' }).click();
  const result = page.getByTestId('update-result');
  await expect(result).toHaveAttribute('data-result', 'cancelled', { timeout: 30_000 });
  await expect(result).toContainText('disconnected');
  await expect(page.getByText('Disconnected from the device.')).toBeVisible();
  // Nothing reopened the link behind the technician's back: no session, the slots were not read again, no "Done".
  await expect(page.getByRole('button', { name: 'Disconnect' })).toHaveCount(0);
  await expect(page.getByTestId('update-result')).not.toHaveAttribute('data-result', 'done');
});

test('override with a reason: a label mismatch blocks until the technician records why; the override is audited', async ({ page }) => {
  await demoDevice(page);
  await page.getByTestId('label-input').getByLabel('Serial').fill('NOT-THIS-DEVICE');
  await page.getByRole('button', { name: 'Identify device' }).click();
  const verdict = page.getByTestId('job-verdict');
  await expect(verdict).toHaveAttribute('data-verdict', 'do-not-deploy', { timeout: 20_000 });
  await expect(verdict).toHaveAttribute('data-allowed', 'false');
  const o = verdict.locator('[data-testid="override"][data-blocker="label-mismatch"]');
  await o.locator('summary').click();
  await o.getByRole('button', { name: 'Record override' }).click();
  await expect(o.getByRole('alert')).toContainText('say why');
  await expect(verdict).toHaveAttribute('data-allowed', 'false');
  await o.getByLabel(/Why is it safe/).fill('label misprinted at the factory, ticket 4711');
  await o.getByRole('button', { name: 'Record override' }).click();
  await expect(verdict).toHaveAttribute('data-allowed', 'true');
  await expect(verdict.getByTestId('override-recorded')).toContainText('ticket 4711');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit trail' }).click();
  await expect(page.locator('main')).toContainText('override');
});

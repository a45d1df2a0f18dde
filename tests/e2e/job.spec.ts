/**
 * Issue 14: the technician's day as one guided job (a stepper with the one
 * verdict always in view), the pictures (slot diagram, event timeline), and
 * defects 4, 9 and 10, in the real build with the in-page virtual device and
 * demo trust. Each test failed before its change.
 */
import { test, expect, expectDevicePage } from './fixtures.ts';
import type { Locator, Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

async function demoDevice(page: Page): Promise<void> {
  await page.goto('/#/trust');
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
}

/** The element's box lies wholly inside the viewport. */
async function expectInView(page: Page, l: Locator, what: string): Promise<void> {
  const box = await l.boundingBox();
  const vp = page.viewportSize()!;
  expect(box, `${what}: no box`).not.toBeNull();
  expect(box!.y, `${what}: above the viewport`).toBeGreaterThanOrEqual(0);
  expect(box!.x, `${what}: left of the viewport`).toBeGreaterThanOrEqual(0);
  expect(box!.y + box!.height, `${what}: below the viewport`).toBeLessThanOrEqual(vp.height);
  expect(box!.x + box!.width, `${what}: right of the viewport`).toBeLessThanOrEqual(vp.width);
}

/** Not hidden under the sticky job bar either. */
async function expectClearOfBar(page: Page, l: Locator, what: string): Promise<void> {
  const bar = await page.getByTestId('job-bar').boundingBox();
  const box = await l.boundingBox();
  expect(box!.y, `${what}: under the job bar`).toBeGreaterThanOrEqual(bar!.y + bar!.height - 1);
}

test('the guided job: one stepper, the verdict always in view, the next action in view at every step on a 1280x800 laptop', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await demoDevice(page);
  const bar = page.getByTestId('job-bar');
  const verdict = page.getByTestId('job-verdict');
  const next = page.getByTestId('job-next');
  const stepper = bar.getByRole('list', { name: "Steps of this device's job" });
  await expect(stepper.getByRole('listitem')).toHaveText([/Connect/, /Identify/, /Attest/, /Update/, /Configure/, /Finish/]);

  /** At each step: the verdict and the way on are in view; "Go to the next step" brings the step's control into view and focuses it. */
  async function step(name: string, control: Locator) {
    await expect(bar).toHaveAttribute('data-next', name);
    await expect(stepper.locator(`li[data-step="${name}"]`)).toHaveAttribute('aria-current', 'step');
    await expectInView(page, verdict, `verdict at ${name}`);
    await expectInView(page, next, `next at ${name}`);
    await next.click();
    await expect(control).toBeFocused();
    await expectInView(page, control, `${name} control`);
    await expectClearOfBar(page, control, `${name} control`);
  }

  await expect(stepper.locator('li[data-step="connect"]')).toHaveAttribute('data-status', 'done');
  await step('identify', page.getByTestId('label-input').getByLabel('Serial'));
  const identify = page.getByRole('button', { name: 'Identify device' });
  await expectInView(page, identify, 'Identify device');
  await identify.click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await expect(stepper.locator('li[data-step="identify"]')).toHaveAttribute('data-status', 'done');

  await step('attest', page.getByRole('button', { name: 'Attest', exact: true }));
  await page.getByRole('button', { name: 'Attest', exact: true }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });

  const skipUpdate = page.getByTestId('skip-update').getByRole('button');
  await step('update', skipUpdate);
  await expectInView(page, page.getByTestId('fw-library-item').first(), 'firmware library');
  await skipUpdate.click();
  await expect(page.getByTestId('skip-update')).toContainText('not needed');
  await expect(stepper.locator('li[data-step="update"]')).toHaveAttribute('data-status', 'skipped');

  await step('configure', page.getByTestId('skip-configure').getByRole('button'));
  const review = page.locator('section.config ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' });
  await expectInView(page, review, 'Review and apply');
  await review.click();
  const apply = page.getByTestId('config-diff').getByRole('button', { name: 'Apply' });
  await expectInView(page, apply, 'Apply');
  await apply.click();
  await expect(page.getByTestId('config-state')).toContainText('Applied configuration #1', { timeout: 20_000 });
  await expect(stepper.locator('li[data-step="configure"]')).toHaveAttribute('data-status', 'done');

  const finish = page.getByRole('button', { name: 'Finish the job' });
  await step('finish', finish);
  await finish.click();
  await expect(page.getByTestId('job-finished')).toContainText('OK to deploy');
  await expect(verdict).toHaveAttribute('data-verdict', 'ok');
  await expectInView(page, verdict, 'final verdict');
  // Details sit behind disclosures.
  await expect(page.getByTestId('device-info')).toHaveJSProperty('tagName', 'DETAILS');
  await expect(page.getByTestId('section-slots').locator('details')).toHaveCount(1);
});

test('the job bar on a 1024x640 laptop: one short bar (under 110 px), the verdict and the next action in view and not clipped at every step', async ({ page }) => {
  await page.setViewportSize({ width: 1024, height: 640 });
  await demoDevice(page);
  const bar = page.getByTestId('job-bar');
  const next = page.getByTestId('job-next');
  const stepper = bar.getByRole('list', { name: "Steps of this device's job" });
  async function compact(name: string) {
    await expect(bar).toHaveAttribute('data-next', name);
    const h = (await bar.boundingBox())!.height;
    expect(h, `job bar height at ${name}`).toBeLessThanOrEqual(110);
    await expectInView(page, page.getByTestId('job-verdict'), `verdict at ${name}`);
    await expectInView(page, next, `next at ${name}`);
    await expectInView(page, page.getByTestId('job-report-open'), `job report at ${name}`);
    await expectInView(page, page.getByTestId('job-next-text'), `next step in words at ${name}`);
    // Nothing in the bar cut off: each visible part shows all of its text.
    const clipped = await bar.evaluate((el) =>
      [...el.querySelectorAll<HTMLElement>('*')].filter((e) => e.clientWidth > 1 && e.scrollWidth > e.clientWidth + 1).map((e) => e.className || e.tagName),
    );
    expect(clipped, `clipped in the bar at ${name}`).toEqual([]);
    // The steps in one row: every step on the same line as the first.
    const tops = await stepper.getByRole('listitem').evaluateAll((li) => li.map((e) => Math.round(e.getBoundingClientRect().top)));
    expect(new Set(tops).size, `steps on one row at ${name}`).toBe(1);
    // The current step keeps its name on screen.
    await expect(stepper.locator(`li[data-step="${name}"] .name`)).toBeVisible();
  }
  await compact('identify');
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await compact('attest');
  await page.getByRole('button', { name: 'Attest', exact: true }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  await compact('update');
  await page.getByTestId('skip-update').getByRole('button').click();
  await compact('configure');
  await page.getByTestId('skip-configure').getByRole('button').click();
  await compact('finish');
  await next.click();
  await expect(page.getByRole('button', { name: 'Finish the job' })).toBeFocused();
  await expectClearOfBar(page, page.getByRole('button', { name: 'Finish the job' }), 'Finish the job');
});

test('defect 4: after an update the slot diagrams agree with the update panel, the inventory and its CSV say 1.1.0 and the configuration, the identity is checked again and says why', async ({ page }) => {
  test.setTimeout(90_000);
  await demoDevice(page);
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await page.getByRole('button', { name: 'Attest', exact: true }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  await expect(page.getByTestId('preflight-checking')).toHaveCount(0, { timeout: 20_000 });
  await page.getByTestId('update-upload').click();
  const result = page.getByTestId('update-result');
  await expect(result).toHaveAttribute('data-result', 'done', { timeout: 40_000 });
  // Plain words: no "+0" build suffix (defect 8).
  await expect(result).toContainText('running 1.1.0, confirmed');
  await expect(result).not.toContainText('+0');

  // The slots as pictures: the device information and the update panel agree (1.1.0 running AND confirmed).
  for (const where of [page.getByTestId('section-slots'), page.getByTestId('update-panel')]) {
    const primary = where.getByTestId('slot-diagram').locator('.slot[data-slot="0"]');
    await expect(primary).toHaveAttribute('data-version', '1.1.0', { timeout: 20_000 });
    await expect(primary).toHaveAttribute('data-states', /\bactive\b.*\bconfirmed\b/);
    await expect(primary).toContainText('running now');
    await expect(primary).toContainText('confirmed');
    await expect(where.getByTestId('slot-diagram').locator('.slot[data-slot="1"]')).toHaveAttribute('data-version', '1.0.0');
  }
  // The diagram has a text alternative in words.
  await expect(page.getByTestId('update-panel').getByTestId('slot-diagram').locator('figcaption')).toContainText('Primary slot: 1.1.0, running now, confirmed');

  // The identity is not silently "Not identified yet": it was checked again, and the page says why.
  await expect(page.getByTestId('identity-again')).toContainText('restarted');
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  await expect(page.getByTestId('identity-card')).not.toContainText('Not identified yet');

  // A configuration, then the records.
  const config = page.locator('section.config');
  await config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' }).click();
  await config.getByTestId('config-diff').getByRole('button', { name: 'Apply' }).click();
  await expect(config.getByTestId('config-state')).toContainText('Applied configuration #1', { timeout: 20_000 });

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Inventory' }).click();
  const row = page.getByTestId('inv-row').first();
  await expect(row.getByTestId('inv-row-firmware')).toHaveText('1.1.0');
  await expect(row.getByTestId('inv-config')).toHaveText('#1');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit trail' }).click();
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-inventory-csv').click()]);
  const text = readFileSync((await csv.path())!, 'utf8');
  const [head, first] = text.split('\r\n');
  const cols = head!.split(',');
  const cells = first!.split(',');
  expect(cells[cols.indexOf('firmware')]).toBe('1.1.0');
  expect(cells[cols.indexOf('configSeq')]).toBe('1');
});

test('the security events as a timeline, in words', async ({ page }) => {
  await demoDevice(page);
  const log = page.getByTestId('event-log');
  await log.getByRole('button', { name: 'Read events' }).click();
  const tl = log.getByTestId('event-timeline');
  await expect(tl).toBeVisible({ timeout: 20_000 });
  await expect(tl.locator('li.ev').first()).toBeVisible();
  await expect(tl.locator('li.ev[data-type="boot"]').first()).toContainText('Device started');
  await expect(tl).not.toContainText('auth-failure');
  // The scrollable timeline can be reached from the keyboard.
  await expect(tl).toHaveAttribute('tabindex', '0');
});

test('defect 9: the Library fits 1024 px; audit filters and the firmware file picker are full-size controls', async ({ page }) => {
  await page.setViewportSize({ width: 1024, height: 768 });
  await demoDevice(page);
  const fwFile = page.getByTestId('fw-file');
  expect((await fwFile.boundingBox())!.height).toBeGreaterThanOrEqual(44);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Library' }).click();
  await expect(page.getByTestId('library-row').first()).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow, 'the Library page is wider than the window').toBeLessThanOrEqual(0);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit trail' }).click();
  for (const id of ['audit-filter-op', 'audit-filter-outcome', 'audit-filter-device']) {
    expect((await page.getByTestId(id).boundingBox())!.height, id).toBeGreaterThanOrEqual(44);
  }
});

/** Press Tab until `target` has focus; at most `max` presses. Returns how many it took. */
async function tabTo(page: Page, target: Locator, max: number, what: string): Promise<number> {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement)) return i;
  }
  throw new Error(`${what}: not reached in ${max} Tab presses`);
}

test('defect 10: keyboard only, connect -> identify -> attest -> configure; focus moves to each result; Apply is a few Tabs away', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/');
  await tabTo(page, page.getByRole('button', { name: 'Try a virtual device' }), 12, 'Try a virtual device');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('connection-status')).toHaveAttribute('data-status', 'connected');
  const load = page.getByTestId('demo-hint').getByRole('button', { name: 'Load demo trust' });
  await tabTo(page, load, 12, 'Load demo trust');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('demo-hint')).toContainText('Demo trust is loaded');
  // The result of loading trust: focus lands on the way on, not on the page.
  const next = page.getByTestId('job-next');
  await expect(next).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('label-input').getByLabel('Serial')).toBeFocused();
  await tabTo(page, page.getByRole('button', { name: 'Identify device' }), 5, 'Identify device');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  // Focus is on the identity result; Attest is the next stop.
  await expect(page.getByTestId('identity-card')).toBeVisible();
  expect(await page.evaluate(() => !!document.activeElement?.querySelector('[data-testid="identity-card"]'))).toBe(true);
  await tabTo(page, page.getByRole('button', { name: 'Attest', exact: true }), 2, 'Attest');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  expect(await page.evaluate(() => !!document.activeElement?.querySelector('[data-testid="attestation-panel"]'))).toBe(true);
  // Update: not needed here (a skip); focus moves on to the job's next step, which leads to the configuration.
  await tabTo(page, page.getByTestId('skip-update').getByRole('button'), 6, 'firmware is current');
  await page.keyboard.press('Enter');
  await expect(next).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('skip-configure').getByRole('button')).toBeFocused();
  const review = page.locator('section.config ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' });
  await tabTo(page, review, 4, 'Review and apply');
  await page.keyboard.press('Enter');
  const n = await tabTo(page, page.getByTestId('config-diff').getByRole('button', { name: 'Apply' }), 3, 'Apply');
  expect(n).toBeLessThanOrEqual(3);
  await page.keyboard.press('Enter');
  const state = page.getByTestId('config-state');
  await expect(state).toContainText('Applied configuration #1', { timeout: 20_000 });
  await expect(state).toBeFocused();
});

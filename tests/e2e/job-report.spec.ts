/**
 * Issue 14: the job report. A job walked with the in-page virtual device and
 * demo trust to Finish, keyboard only where it matters: "not needed" and Finish
 * are audited, the report opens with focus on it, is printable (only the report
 * prints, one or two pages), downloads as a PDF whose embedded report checks
 * against the exported audit trail, and is axe clean in light and dark. A
 * partial report is there before Finish.
 */
import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { PDFDocument } from 'pdf-lib';
import { test, expect, expectDevicePage } from './fixtures.ts';
import { readReportPdf } from '../../src/core/ops/job/report-pdf.ts';
import { verifyJobReport, type JobReport } from '../../src/core/ops/job/report.ts';
import { pdfPagesText } from '../helpers/pdf-text.ts';

async function demoDevice(page: Page): Promise<void> {
  await page.goto('/#/trust');
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('bundle-version')).toHaveText('v2 (DEMO)');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Device' }).click();
  await page.getByRole('button', { name: 'Try a virtual device' }).click();
  await expectDevicePage(page);
}

async function serious(page: Page): Promise<string[]> {
  const r = await new AxeBuilder({ page }).include('[data-testid="job-report"]').analyze();
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

/** Screenshots for people to look at (FIELDBENCH_SHOTS=DIR); nothing is asserted on them. */
const shot = async (page: Page, name: string) => {
  const dir = process.env.FIELDBENCH_SHOTS;
  if (!dir) return;
  await page.screenshot({ path: `${dir}/${name}.png` });
  await page.getByTestId('job-report').screenshot({ path: `${dir}/${name}-whole.png` });
};

test('job report: walk a job to Finish (update 1.0.0 to 1.1.0, configuration #1), the report opens, prints clean, downloads as a PDF that checks against the audit trail; Finish is audited', async ({ page }) => {
  test.setTimeout(150_000);
  await page.setViewportSize({ width: 1280, height: 800 });
  await demoDevice(page);
  const report = page.getByTestId('job-report');

  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  const serial = (await page.getByTestId('identity-card').getByRole('row', { name: /^Serial/ }).locator('td').textContent())!.trim();
  expect(serial).not.toBe('');

  // A partial report at any time, from the job bar (keyboard: focus it, Enter), with focus on the report.
  const open = page.getByTestId('job-report-open');
  await expect(open).toHaveText('Job report so far');
  await open.focus();
  await page.keyboard.press('Enter');
  await expect(report).toHaveAttribute('data-status', 'partial', { timeout: 20_000 });
  await expect(report.getByRole('heading', { level: 2 })).toBeFocused();
  await expect(page.getByTestId('report-status')).toContainText('Partial report');
  await expect(page.getByTestId('report-verdict')).toContainText('Not decided yet');
  await expect(page.getByTestId('report-steps').locator('dd[data-step="attest"]')).toHaveText('not done yet');
  await report.getByRole('button', { name: 'Close report' }).click();
  await expect(report).toHaveCount(0);

  await page.getByRole('button', { name: 'Attest', exact: true }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  await page.getByTestId('fw-library-item').filter({ hasText: 'DEMO firmware 1.1.0' }).click();
  await expect(page.getByTestId('preflight-checking')).toHaveCount(0, { timeout: 20_000 });
  await page.getByTestId('update-upload').click();
  await expect(page.getByTestId('update-result')).toHaveAttribute('data-result', 'done', { timeout: 40_000 });
  await expect(page.getByTestId('identity-badges').locator('[data-badge="verified"]')).toBeVisible({ timeout: 20_000 });
  const config = page.locator('section.config');
  await config.locator('ul.library li').filter({ hasText: 'DEMO configuration #1' }).getByRole('button', { name: 'Review and apply' }).click();
  await config.getByTestId('config-diff').getByRole('button', { name: 'Apply' }).click();
  await expect(config.getByTestId('config-state')).toContainText('Applied configuration #1', { timeout: 20_000 });

  // Finish (keyboard): audited, then the report opens with focus on it.
  const finish = page.getByRole('button', { name: 'Finish the job' });
  await finish.focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('job-finished')).toContainText('OK to deploy');
  await expect(report).toHaveAttribute('data-status', 'finished', { timeout: 20_000 });
  await expect(report.getByRole('heading', { level: 2 })).toBeFocused();
  await expect(page.getByTestId('job-report-open')).toHaveText('Job report');
  await expect(page.getByTestId('report-verdict')).toContainText('OK to deploy');
  await expect(page.getByTestId('report-device')).toContainText('verified');
  await expect(page.getByTestId('report-device')).toContainText('Key fingerprint');
  await expect(page.getByTestId('report-fw-before')).toHaveText('1.0.0');
  await expect(page.getByTestId('report-fw-after')).toHaveText('1.1.0');
  await expect(page.getByTestId('report-config-after')).toHaveText('#1');
  await expect(report).toContainText('Fresh (answers our challenge)');
  await expect(report).not.toContainText('instance-id');
  const entries = page.getByTestId('report-entries').locator('tbody tr');
  // the update restarts the device, and the page identifies and attests it again (defect 4)
  await expect(entries.locator('td:nth-child(3)')).toHaveText([
    /^Identification: verified/,
    /^Attestation: (trusted|warning)/,
    'Firmware update: 1.1.0, confirmed',
    /^Identification: verified/,
    /^Attestation: (trusted|warning)/,
    /^Configuration #1 applied/,
    'Job finished: ok to deploy',
  ]);
  const covers = (await page.getByTestId('report-covers').locator('.hash').textContent())!.trim();
  expect(covers).toMatch(/^[0-9a-f]{64}$/);
  await expect(entries.last().locator('td.hash')).toHaveText(covers);
  await shot(page, 'report-page');

  // axe on the report, light and dark.
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    expect(await serious(page), scheme).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: 'light' });

  // Print: only the report (no navigation, no log pane, no job bar, no buttons), one or two A4 pages.
  await page.emulateMedia({ media: 'print' });
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeHidden();
  await expect(page.getByTestId('log')).toBeHidden();
  await expect(page.getByTestId('job-bar')).toBeHidden();
  await expect(page.getByTestId('job-finish')).toBeHidden();
  await expect(report.locator('button')).toHaveCount(3);
  for (const b of await report.locator('button').all()) await expect(b).toBeHidden();
  await expect(report).toBeVisible();
  await expect(page.getByTestId('report-entries')).toBeVisible();
  const printed = await page.pdf({ format: 'A4', printBackground: false });
  if (process.env.FIELDBENCH_SHOTS) (await import('node:fs')).writeFileSync(`${process.env.FIELDBENCH_SHOTS}/report-printed.pdf`, printed);
  const pages = (await PDFDocument.load(printed)).getPageCount();
  expect(pages, 'printed pages').toBeGreaterThanOrEqual(1);
  expect(pages, 'printed pages').toBeLessThanOrEqual(2);
  await page.emulateMedia({ media: 'screen' });

  // Download PDF, keyboard only (from the focused heading: Tab to Print, Tab to Download PDF, Enter):
  // its text says what the page says; the report is embedded.
  await report.getByRole('heading', { level: 2 }).focus();
  await page.keyboard.press('Tab');
  await expect(report.getByRole('button', { name: 'Print' })).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(report.getByTestId('report-pdf')).toBeFocused();
  const [dl] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  expect(dl.suggestedFilename()).toMatch(/^job-report-.+\.pdf$/);
  const pdf = new Uint8Array(readFileSync((await dl.path())!));
  if (process.env.FIELDBENCH_SHOTS) (await import('node:fs')).writeFileSync(`${process.env.FIELDBENCH_SHOTS}/report-download.pdf`, pdf);
  await expect(page.getByTestId('report-pdf-note')).toContainText('Saved');
  const embedded = (await readReportPdf(pdf)) as JobReport;
  expect(embedded.status).toBe('finished');
  expect(embedded.verdict.verdict).toBe('ok');
  expect(embedded.covers?.hash).toBe(covers);
  expect(embedded.entries.map((e) => e.op)).toEqual(['identify', 'attest', 'update', 'identify', 'attest', 'configure', 'job']);
  // before: what the update ran over; after: the update, and the attestation after it measured it
  expect(embedded.firmware).toMatchObject({ before: '1.0.0', after: '1.1.0', changed: true, words: 'updated from 1.0.0 to 1.1.0, confirmed' });
  expect(embedded.firmware.proof).toEqual([embedded.entries[2].seq, embedded.entries[4].seq]);
  expect(embedded.attestation?.claims.find((c) => c.label === 'Firmware')?.value).toMatch(/^version 1\.1\.0/);
  expect(embedded.device.serial).toBe(serial);
  const text = (await pdfPagesText(pdf)).join(' ').replace(/\s+/g, ' ');
  for (const s of [`Job report: ${serial}`, 'OK to deploy', 'Firmware before', 'updated from 1.0.0 to 1.1.0, confirmed', 'configuration #1 applied', covers, 'Fresh (answers our challenge)']) expect(text, s).toContain(s);
  expect((await PDFDocument.load(pdf)).getPageCount()).toBeLessThanOrEqual(2);

  // The audit trail: Finish is an entry; the exported trail holds the covered hash and the report checks against it.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit trail' }).click();
  const jobRows = page.getByTestId('audit-row').filter({ has: page.locator('td:nth-child(3)', { hasText: /^job$/ }) });
  await expect(jobRows.getByTestId('audit-summary')).toHaveText(['Job finished: ok to deploy']);
  const [exp] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-audit').click()]);
  const trail = readFileSync((await exp.path())!, 'utf8');
  if (process.env.FIELDBENCH_SHOTS) (await import('node:fs')).writeFileSync(`${process.env.FIELDBENCH_SHOTS}/audit-export.json`, trail);
  expect(JSON.parse(trail).entries.some((e: { hash: string }) => e.hash === covers)).toBe(true);
  expect(await verifyJobReport(embedded, trail)).toBeNull();
});

test('job report: the report of a job that cannot deploy says why; with an override and both steps marked not needed it finishes, and the audit trail holds both decisions and the Finish', async ({ page }) => {
  test.setTimeout(90_000);
  await demoDevice(page);
  // A label that does not match: the job cannot deploy.
  await page.getByTestId('label-input').getByLabel('Serial').fill('NOT-THIS-DEVICE');
  await page.getByRole('button', { name: 'Identify device' }).click();
  await expect(page.getByTestId('identity-badges').locator('[data-badge="label-mismatch"]')).toBeVisible({ timeout: 20_000 });
  await page.getByTestId('job-report-open').click();
  const report = page.getByTestId('job-report');
  await expect(report).toHaveAttribute('data-verdict', 'do-not-deploy', { timeout: 20_000 });
  await expect(page.getByTestId('report-verdict')).toContainText('Do not deploy: the physical label does not match what the device reports');
  await expect(page.getByTestId('report-device')).toContainText('does not match (entered: serial NOT-THIS-DEVICE)');
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    expect(await serious(page), scheme).toEqual([]);
  }
  await shot(page, 'report-do-not-deploy');
  await report.getByRole('button', { name: 'Close report' }).click();
  // Override, attest, then mark both steps not needed and finish.
  const ov = page.getByTestId('override').filter({ has: page.locator('summary') }).first();
  await ov.locator('summary').click();
  await ov.getByRole('textbox').fill('label was reprinted, checked by the supervisor');
  await ov.getByRole('button', { name: 'Record override' }).click();
  await expect(page.getByTestId('override-recorded')).toBeVisible();
  await page.getByRole('button', { name: 'Attest', exact: true }).click();
  await expect(page.getByTestId('verdict')).toHaveAttribute('data-verdict', /^(trusted|warning)$/, { timeout: 20_000 });
  await page.getByTestId('skip-update').getByRole('button').click();
  await expect(page.getByTestId('skip-update')).toContainText('not needed');
  await page.getByTestId('skip-configure').getByRole('button').click();
  await expect(page.getByTestId('skip-configure')).toContainText('not needed');
  await page.getByRole('button', { name: 'Finish the job' }).click();
  await expect(report).toHaveAttribute('data-status', 'finished', { timeout: 20_000 });
  await expect(page.getByTestId('report-verdict')).toContainText('OK to deploy');
  await expect(report).toContainText('label was reprinted, checked by the supervisor');
  await expect(page.getByTestId('report-changes')).toContainText('not changed: no configuration needed');
  await expect(page.getByTestId('report-entries').locator('tbody tr td:nth-child(3)')).toHaveText([
    /^Identification: verified, label mismatch/,
    /^Override: the physical label does not match/,
    /^Attestation: /,
    'Firmware update marked not needed: the firmware is current',
    'Configuration marked not needed: no configuration needed',
    'Job finished: ok to deploy',
  ]);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit trail' }).click();
  const jobRows = page.getByTestId('audit-row').filter({ has: page.locator('td:nth-child(3)', { hasText: /^job$/ }) });
  await expect(jobRows.getByTestId('audit-summary')).toHaveText(['Job finished: ok to deploy', 'Configuration marked not needed: no configuration needed', 'Firmware update marked not needed: the firmware is current']);
  await expect(page.getByTestId('audit-row').filter({ has: page.locator('td:nth-child(3)', { hasText: /^override$/ }) })).toHaveCount(1);
});

/**
 * The records components (inventory, library, audit, storage) in Chromium,
 * mounted by a test-only harness page (tests/e2e/harness) because the app
 * does not mount them yet: the harness is built and served separately, so
 * nothing test-only ends up in the production build.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from '@playwright/test';
import { test as base, expect } from './fixtures.ts';
import { startHarness, type Harness } from './harness/serve.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const test = base.extend<object, { harness: Harness }>({
  harness: [
    async ({}, use) => {
      const h = await startHarness();
      await use(h);
      await h.close();
    },
    { scope: 'worker', timeout: 120_000 },
  ],
  baseURL: async ({ harness }, use) => use(harness.url),
});
test.use({ fakes: false });

async function open(page: Page): Promise<void> {
  await page.goto('/');
  await expect(page.locator('body[data-ready="1"]')).toHaveCount(1);
}

async function seed(page: Page): Promise<void> {
  expect(await page.evaluate(() => (globalThis as unknown as { __records: { seed(): Promise<number> } }).__records.seed())).toBe(5);
}

test('inventory: search by any identifier, filters, duplicates, history; survives a reload', async ({ page }) => {
  await open(page);
  await expect(page.getByTestId('inv-empty')).toContainText('No devices recorded yet');
  await seed(page);
  await page.reload();
  const rows = page.getByTestId('inv-row');
  await expect(rows).toHaveCount(3);
  await expect(page.getByTestId('inv-count')).toHaveText('3 of 3 devices');
  // any identifier: DevEUI with separators, UEID, serial, MAC
  const search = page.getByTestId('inv-search');
  await search.fill('70-b3-d5-7e-d0-00-00-01');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-serial', 'SN-001');
  await search.fill('01' + 'AB'.repeat(16));
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-serial', 'SN-002');
  await search.fill('00:11:22:33:44:55');
  await expect(rows).toHaveCount(2); // SN-001 and SN-003 share the MAC
  await search.fill('');
  // filters
  await page.getByTestId('inv-verdict').selectOption('failed');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toHaveAttribute('data-serial', 'SN-002');
  await page.getByTestId('inv-verdict').selectOption('');
  await page.getByTestId('inv-model').selectOption('fieldbench-ref');
  await expect(rows).toHaveCount(2);
  await page.getByTestId('inv-firmware').selectOption('1.1.0');
  await expect(rows).toHaveCount(2);
  await page.getByTestId('inv-model').selectOption('');
  await page.getByTestId('inv-firmware').selectOption('');
  await page.getByTestId('inv-lastseen').selectOption('1d');
  await expect(rows).toHaveCount(1); // SN-001 was seen a second ago
  await page.getByTestId('inv-lastseen').selectOption('older30d');
  await expect(page.getByTestId('inv-empty')).toHaveText('No device matches.');
  await page.getByTestId('inv-lastseen').selectOption('any');
  // history of SN-001 from the audit trail
  await page.getByRole('button', { name: 'History of SN-001' }).click();
  const hist = page.getByTestId('history');
  // its own three entries, plus SN-003's identify: it shares SN-001's MAC (history is by any identifier)
  await expect(hist.getByTestId('history-row')).toHaveCount(4);
  await expect(hist).toContainText('downgrade');
  // A sentence per entry at the local time; the recorded JSON only behind "recorded details" (issue 14, defect 8).
  await expect(hist.getByTestId('history-row').first()).not.toContainText('{"', { useInnerText: true });
  await expect(hist.getByTestId('history-row').first().locator('time')).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  // duplicates
  await page.getByTestId('dup-tab').click();
  await expect(page.getByTestId('dup-list')).toContainText('MAC 001122334455 was recorded under 2 serials: SN-001, SN-003');
});

test('records survive a browser restart (persistent profile)', async ({ playwright, launchOptions, harness }) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldbench-profile-'));
  try {
    let ctx = await playwright.chromium.launchPersistentContext(dir, { ...launchOptions, baseURL: harness.url });
    let page = ctx.pages()[0] ?? (await ctx.newPage());
    await open(page);
    await seed(page);
    await ctx.close();
    ctx = await playwright.chromium.launchPersistentContext(dir, { ...launchOptions, baseURL: harness.url });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    await open(page);
    await expect(page.getByTestId('inv-row')).toHaveCount(3);
    await expect(page.getByTestId('audit-count')).toHaveText('5 entries');
    await ctx.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('library: files are verified before they are stored, once; bad files get clear errors', async ({ page }) => {
  const owner = await generateEd25519();
  const other = await generateEd25519();
  const tech = await generateEd25519();
  const now = Date.now();
  const bundle = await issueBundle({ version: 1, expires: now + 30 * 86400_000, anchors: { owner: [owner.publicKey] } }, owner.privateKey);
  const foreignBundle = await issueBundle({ version: 1, expires: now + 30 * 86400_000, anchors: { owner: [other.publicKey] } }, other.privateKey);
  const cred = await issueCredential({ technicianId: 't1', name: 'Ada', publicKey: tech.publicKey, permissions: ['identify'], models: ['*'], notAfter: now + 86400_000 }, owner.privateKey);
  const tampered = cred.slice();
  tampered[tampered.length - 3] ^= 1;
  const file = (name: string, bytes: Uint8Array | string) => ({ name, mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });

  await open(page);
  const input = page.getByTestId('file-input');
  const results = page.getByTestId('import-results').locator('li');
  // before any owner key: the bundle cannot be checked
  await input.setInputFiles([file('bundle.cbor', bundle)]);
  await expect(results.first()).toHaveAttribute('data-ok', 'false');
  await expect(results.first()).toContainText('no trust bundle is held yet');
  await expect(page.getByTestId('library-empty')).toBeVisible();
  // a private key is refused; the owner's public key is accepted (not stored)
  await input.setInputFiles([file('owner.pem', privateKeyPem(owner.privateKey))]);
  await expect(results.first()).toContainText('private key');
  await input.setInputFiles([file('owner.pub.pem', publicKeyPem(owner.publicKey))]);
  await expect(results.first()).toHaveAttribute('data-ok', 'true');
  // a bundle from another owner is refused, the right one stored
  await input.setInputFiles([file('foreign.cbor', foreignBundle), file('bundle.cbor', bundle)]);
  await expect(results.nth(1)).toHaveAttribute('data-ok', 'false');
  await expect(results.nth(0)).toHaveAttribute('data-ok', 'true');
  await expect(page.getByTestId('held-bundle')).toContainText('Trust bundle v1');
  // credential by drag and drop
  const dt = await page.evaluateHandle((b64: string) => {
    const d = new DataTransfer();
    d.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'cred.cbor'));
    return d;
  }, Buffer.from(cred).toString('base64'));
  await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer: dt });
  await expect(results.first()).toContainText('technician credential added');
  // tampered, unrecognised, and the same bundle again
  await input.setInputFiles([file('tampered.cbor', tampered), file('notes.txt', 'hello'), file('again.cbor', bundle)]);
  // refused, naming the file once (the reason is not repeated: issue 14, defect 8)
  await expect(results.nth(2)).toHaveAttribute('data-ok', 'false');
  await expect(results.nth(2)).toContainText('tampered.cbor');
  await expect(results.nth(2)).not.toContainText('was rejected');
  await expect(results.nth(1)).toContainText('is not a trust bundle');
  await expect(results.nth(0)).toContainText('already in the library');
  const lib = page.getByTestId('library-row');
  await expect(lib).toHaveCount(2);
  await page.reload();
  await expect(lib).toHaveCount(2);
  await expect(page.locator('[data-testid="library-row"][data-kind="credential"]')).toContainText('Ada');
});

test('audit trail: readable rows (device, outcome badge, summary, raw details on demand) and filters', async ({ page }) => {
  await open(page);
  await seed(page);
  await page.reload();
  const rows = page.getByTestId('audit-row');
  await expect(rows).toHaveCount(5);
  const update = rows.filter({ has: page.locator('td:nth-child(3)', { hasText: /^update$/ }) });
  await expect(update.getByTestId('audit-device')).toHaveText('SN-001');
  await expect(update.locator('td:nth-child(4) .badge.bad')).toHaveText('rejected');
  await expect(update.getByTestId('audit-summary')).toHaveText('firmware update rejected: downgrade');
  await expect(update.locator('pre')).toBeHidden();
  await update.locator('summary').click();
  await expect(update.locator('pre')).toContainText('"reason": "downgrade"');
  await page.getByTestId('audit-filter-outcome').selectOption('rejected');
  await expect(rows).toHaveCount(1);
  await expect(page.getByTestId('audit-count')).toHaveText('1 of 5 entries match');
  await page.getByTestId('audit-filter-outcome').selectOption('');
  await page.getByTestId('audit-filter-op').selectOption('identify');
  await expect(rows).toHaveCount(3);
  await page.getByTestId('audit-filter-device').fill('00-11-22-33-44-55'); // SN-001 and SN-003 share the MAC
  await expect(rows).toHaveCount(2);
  await page.getByTestId('audit-filter-device').fill('SN-404');
  await expect(page.getByTestId('audit-empty')).toBeVisible();
  await page.getByTestId('audit-filter-clear').click();
  await expect(rows).toHaveCount(5);
  await expect(page.getByTestId('audit-count')).toHaveText('5 entries');
});

test('audit export verifies with the CLI; an edited export is caught naming the entry', async ({ page }) => {
  await open(page);
  await seed(page);
  await page.reload();
  await expect(page.getByTestId('audit-row')).toHaveCount(5);
  await page.getByTestId('verify-audit').click();
  await expect(page.getByTestId('audit-check')).toContainText('Intact: 5 entries');
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldbench-audit-'));
  try {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-audit').click()]);
    expect(dl.suggestedFilename()).toMatch(/^fieldbench-audit-\d{4}-\d\d-\d\d\.json$/);
    const good = path.join(dir, 'audit.json');
    await dl.saveAs(good);
    const cli = (f: string) => spawnSync(process.execPath, [path.join(root, 'src/cli/bin.mjs'), 'audit', 'verify', f], { cwd: root, encoding: 'utf8' });
    const ok = cli(good);
    expect(ok.stdout + ok.stderr).toContain('intact');
    expect(ok.status).toBe(0);
    const doc = JSON.parse(readFileSync(good, 'utf8'));
    doc.entries[2].outcome = 'ok-edited';
    const bad = path.join(dir, 'edited.json');
    writeFileSync(bad, JSON.stringify(doc));
    const r = cli(bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('TAMPERED');
    expect(r.stderr).toContain('entry 2 (seq 3)');
    expect(r.stderr).toContain('modified');
    // inventory exports
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-inventory-csv').click()]);
    const csvPath = path.join(dir, 'inv.csv');
    await csv.saveAs(csvPath);
    const text = readFileSync(csvPath, 'utf8');
    expect(text.split('\r\n')[0]).toBe('id,serial,devicePublicKey,ueid,mac,devEui,model,firmware,configSeq,verdict,verdictTime,firstSeen,lastSeen,label');
    expect(text).toContain('SN-002');
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-inventory-json').click()]);
    const jsonPath = path.join(dir, 'inv.json');
    await json.saveAs(jsonPath);
    const inv = JSON.parse(readFileSync(jsonPath, 'utf8'));
    expect(inv.format).toBe('fieldbench-inventory');
    expect(inv.devices.map((d: { serial: string }) => d.serial).sort()).toEqual(['SN-001', 'SN-002', 'SN-003']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('storage status shows usage, quota and persistence', async ({ page }) => {
  await open(page);
  const s = page.getByTestId('storage-status');
  await expect(page.getByTestId('storage-usage')).toContainText(/used \(\d/);
  await expect(page.getByTestId('storage-persisted')).toContainText(/persistent/i);
  await expect(s).toHaveAttribute('data-level', 'ok');
});

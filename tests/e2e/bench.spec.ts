/**
 * The factory Bench page (issue 13 item 5, app): the demo line, several units at
 * once, a large tile per port ending PASS; the next unit on a jig runs by itself;
 * axe finds no serious or critical violation on the page with its tiles. The
 * control log is kept in the app's store: after a reload the inventory lists the
 * units, the downloaded log verifies with `fieldbench audit verify`, and a serial
 * imported again from another station's log is flagged as a duplicate.
 */
import AxeBuilder from '@axe-core/playwright';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect } from './fixtures.ts';
import { commands } from '../../src/cli/commands/audit.ts';
import { auditRecordToExport, chainEntries } from '../../src/core/store/audit.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { controlEntry, type UnitControlRecord } from '../../src/core/factory/control-log.ts';
import { stationRecordsLog } from '../../src/core/factory/station-log.ts';

test('Bench: two virtual units run at once to PASS, the next unit runs; axe clean', async ({ page }) => {
  test.setTimeout(120_000);
  await page.goto('/#/bench');
  await expect(page.getByRole('heading', { level: 1, name: 'Bench' })).toBeVisible();
  await page.getByRole('button', { name: 'Start demo line' }).click();
  await expect(page.getByTestId('bench-line')).toContainText('Demo line');
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  const tiles = page.getByTestId('bench-tile');
  await expect(tiles).toHaveCount(2);
  // both run concurrently: at some point both are running (or one already done while the other runs)
  await expect(tiles.nth(0)).toHaveAttribute('data-state', /running|pass/, { timeout: 20_000 });
  await expect(tiles.nth(1)).toHaveAttribute('data-state', /running|pass/, { timeout: 20_000 });
  for (const i of [0, 1]) {
    await expect(tiles.nth(i)).toHaveAttribute('data-state', 'pass', { timeout: 60_000 });
    await expect(tiles.nth(i).locator('.verdict')).toHaveText('PASS');
    await expect(tiles.nth(i)).toContainText(/S\/N DEMO-0000[12]/);
  }
  const serials = await tiles.locator('.serial .mono').allTextContents();
  expect(new Set(serials).size).toBe(2); // no identifier twice
  await expect(page.getByTestId('bench-summary')).toHaveText('2 passed, 0 failed, 2 recorded');

  // axe on the page with PASS and FAIL tiles, light and dark
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const r = await new AxeBuilder({ page }).analyze();
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${scheme} ${v.id}: ${v.help} ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
    expect(bad).toEqual([]);
  }

  // the operator swaps the unit on jig 1: the new factory-fresh unit runs by itself and gets the next serial
  await page.getByRole('button', { name: 'Next unit on virtual jig 1' }).click();
  await expect(tiles.nth(0)).toHaveAttribute('data-state', /waiting|running/, { timeout: 10_000 });
  await expect(tiles.nth(0)).toHaveAttribute('data-state', 'pass', { timeout: 60_000 });
  await expect(tiles.nth(0)).toContainText('S/N DEMO-00003');
  await expect(page.getByTestId('bench-summary')).toHaveText('3 passed, 0 failed, 3 recorded');
});

test('Bench: the control log survives a reload, fills the inventory, downloads as a log audit verify accepts; a serial from another log is a duplicate', async ({ page }) => {
  test.setTimeout(150_000);
  await page.goto('/#/bench');
  await page.getByRole('button', { name: 'Start demo line' }).click();
  await expect(page.getByTestId('bench-line')).toContainText('Demo line');
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  const tiles = page.getByTestId('bench-tile');
  for (const i of [0, 1]) await expect(tiles.nth(i)).toHaveAttribute('data-state', 'pass', { timeout: 60_000 });
  await expect(page.getByTestId('bench-summary')).toHaveText('2 passed, 0 failed, 2 recorded');
  const serials = (await tiles.locator('.serial .mono').allTextContents()).sort();
  expect(serials).toEqual(['DEMO-00001', 'DEMO-00002']);
  await expect(page.getByTestId('bench-log')).toContainText('2 provisioned, 0 failed');

  // the page goes (reload): nothing recorded is lost
  await page.reload();
  await expect(page.getByRole('heading', { level: 1, name: 'Bench' })).toBeVisible();
  const log = page.getByTestId('bench-log');
  await expect(log).toHaveCount(1);
  await expect(log).toContainText('2 provisioned, 0 failed');
  const station = await log.getAttribute('data-station');

  // downloaded JSON: `fieldbench audit verify FILE` (the CLI's verify) says intact, signed by the demo station key
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download control log (JSON)' }).click()]);
  expect(dl.suggestedFilename()).toMatch(new RegExp(`^fieldbench-control-log-${station}-\\d{4}-\\d\\d-\\d\\d\\.json$`));
  const dir = mkdtempSync(join(tmpdir(), 'fb-bench-log-'));
  const file = join(dir, dl.suggestedFilename());
  writeFileSync(file, readFileSync((await dl.path())!));
  let out = '';
  let err = '';
  expect(await commands['audit verify'].run([file], { out: (t) => void (out += t), err: (t) => void (err += t), cwd: dir })).toBe(0);
  expect(out).toContain('2 entries');
  expect(out).toContain(`signed by: ${station}`);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { entries: { op: string; outcome: string; device: { serial: string; devicePublicKey: string } }[] };
  expect(doc.entries.map((e) => [e.op, e.outcome, e.device.serial]).sort()).toEqual([['factory/unit', 'provisioned', 'DEMO-00001'], ['factory/unit', 'provisioned', 'DEMO-00002']]);
  // a tampered copy does not verify
  writeFileSync(join(dir, 'forged.json'), readFileSync(file, 'utf8').replace('DEMO-00002', 'DEMO-00009'));
  expect(await commands['audit verify'].run(['forged.json'], { out: () => {}, err: (t) => void (err += t), cwd: dir })).toBe(1);
  expect(err).toContain('TAMPERED');
  // CSV, as bench run exports it
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download control log (CSV)' }).click()]);
  const rows = readFileSync((await csv.path())!, 'utf8').split('\r\n');
  expect(rows[0]).toMatch(/^seq,time,port,verdict,model,serial,/);
  expect(rows.filter((r) => /,provisioned,.*,DEMO-0000[12],/.test(r))).toHaveLength(2);

  // the inventory lists both units with their identifiers
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Inventory' }).click();
  for (const sn of serials) await expect(page.locator(`[data-testid="inv-row"][data-serial="${sn}"]`)).toHaveCount(1);
  await expect(page.getByTestId('inv-table')).toContainText('trusted');
  await page.getByTestId('dup-tab').click();
  await expect(page.getByTestId('dup-none')).toBeVisible();

  // another station's log names DEMO-00001 with another device key: imported, it is flagged
  const other = await seedSigner('station:other', crypto.getRandomValues(new Uint8Array(32)));
  const unit: UnitControlRecord = {
    port: 'jig 7', verdict: 'provisioned', profileDigest: 'ab'.repeat(32), model: 'demo', serial: 'DEMO-00001', devicePublicKey: '99'.repeat(32),
    certificateDigest: '33'.repeat(32), firmwareDigest: '44'.repeat(32), attestation: 'trusted', steps: [],
  };
  const [foreign] = await chainEntries([controlEntry(unit)], other, null);
  await nav.getByRole('link', { name: /Trust & keys/ }).click();
  await page.getByRole('button', { name: 'Load demo trust' }).click();
  await expect(page.getByTestId('demo-trust')).toContainText('DEMO trust is loaded');
  await nav.getByRole('link', { name: 'Audit trail' }).click();
  await page.getByTestId('import-records-file').setInputFiles({ name: 'other-station.jsonl', mimeType: 'text/plain', buffer: Buffer.from(stationRecordsLog([auditRecordToExport(foreign)])) });
  await expect(page.getByTestId('audit-check')).toContainText('Imported 1 entry from other-station.jsonl');
  await nav.getByRole('link', { name: 'Inventory' }).click();
  await page.getByTestId('dup-tab').click();
  await expect(page.getByTestId('dup-list')).toContainText('Serial DEMO-00001 was recorded with 2 different device keys');

  // axe on the Bench page with its stored log
  await nav.getByRole('link', { name: 'Bench' }).click();
  await expect(page.getByTestId('bench-log')).toHaveCount(1);
  const r = await new AxeBuilder({ page }).analyze();
  expect(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`)).toEqual([]);

  // the demo line again after the reload: new demo keys (a second log), but the identifiers journaled in the store go on
  await page.getByRole('button', { name: 'Start demo line' }).click();
  await page.getByRole('button', { name: 'Add virtual unit' }).click();
  await expect(tiles.nth(0)).toHaveAttribute('data-state', 'pass', { timeout: 60_000 });
  await expect(tiles.nth(0)).toContainText('S/N DEMO-00003');
  await expect(page.getByTestId('bench-log')).toHaveCount(2);
  await expect(page.getByTestId('bench-log').first()).toContainText('(this line): 1 provisioned, 0 failed');
});

/**
 * The Bench page with a real station and USB serial ports (issue 13, app): the operator loads a
 * signed station profile, the firmware image, the trust bundle, the owner key and the wrapped
 * manufacturer and station keys from files; a wrong passphrase and an altered profile are refused
 * and named; two ports of the fake navigator.serial (tests/e2e/fixtures/fake-serial.js), bridged
 * over the same-origin WebSocket to factory-fresh reference devices in Node (one unit per port,
 * kept across the station's reconnects, as a unit on a jig), reach PASS with distinct serials.
 *
 * Why an earlier attempt hung at "Test boot": the fake port unplugged itself when the station
 * reconnected after the unit's reset. The close event of the cable the station had just closed
 * arrived after the quick reopen and was taken for the current cable's loss; the port went `gone`,
 * the run waited its 30 s boot timeout for a unit that could not come back, and the tile then showed
 * "waiting for a unit" forever. fake-serial.js now only unplugs on the current cable's close.
 */
import { createBlankDevice } from '../../src/device/provisioning.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicKeyPem } from '../../src/core/trust/keys.ts';
import { keyIdHex } from '../../src/core/store/sig.ts';
import { commands } from '../../src/cli/commands/audit.ts';
import { wrapKey } from '../../src/core/trust/wrapped-key.ts';
import { factoryWorld } from '../helpers/factory-world.ts';
import { startBridge, type Bridge } from './bridge.ts';
import { expect, routeBridge, test } from './fixtures.ts';

const PASS = 'line one passphrase';

test('Bench: a station from files, two USB serial units to PASS; wrong passphrase and altered profile refused', async ({ page }) => {
  test.setTimeout(180_000);
  const w = await factoryWorld();
  const units = new Map<string, Promise<ReferenceDevice>>();
  const bridge: Bridge = await startBridge({
    serve: (link, q) => {
      const id = q.get('port') ?? '?';
      if (!units.has(id)) {
        units.set(
          id,
          createBlankDevice({ manufacturerKeys: [w.auth.manufacturer.publicKey], ownerKeys: [w.auth.owner.publicKey] }, { bufSize: 512, image: { trustedKeys: [w.auth.firmware.publicKey] } }).then((d) => d.device),
        );
      }
      void units.get(id)!.then((d) => d.serve(link)).catch(() => {});
    },
  });
  try {
    await routeBridge(page, bridge);
    await page.addInitScript(() => {
      (globalThis as unknown as { __fakeSerial: { chooser: string } }).__fakeSerial.chooser = 'new'; // every request grants another jig
    });
    const files = {
      profile: { name: 'line-1.profile', mimeType: 'application/cose', buffer: Buffer.from(w.profileBytes) },
      'owner-key': { name: 'owner.pub.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(publicKeyPem(w.auth.owner.publicKey)) },
      bundle: { name: 'bundle.cose', mimeType: 'application/cose', buffer: Buffer.from(w.auth.bundle) },
      image: { name: 'app.signed.bin', mimeType: 'application/octet-stream', buffer: Buffer.from(w.image) },
      'manufacturer-key': { name: 'manufacturer.wrapped', mimeType: 'text/plain', buffer: Buffer.from(await wrapKey(w.auth.manufacturer.privateKey, PASS)) },
      'station-key': { name: 'station.wrapped', mimeType: 'text/plain', buffer: Buffer.from(await wrapKey(w.station.privateKey, PASS)) },
    };
    await page.goto('/#/bench');
    await expect(page.getByRole('heading', { level: 1, name: 'Bench' })).toBeVisible();
    for (const [k, f] of Object.entries(files)) await page.getByTestId(`station-file-${k}`).setInputFiles(f);
    const load = page.getByRole('button', { name: 'Load station' });
    const error = page.getByTestId('bench-line-error');

    // a wrong passphrase: refused, the manufacturer key named
    await page.getByTestId('station-passphrase').fill('not the passphrase');
    await load.click();
    await expect(error).toHaveAttribute('data-file', 'manufacturer-key', { timeout: 30_000 });
    await expect(error).toContainText(/wrong passphrase/);
    // an altered profile: refused before any key is unwrapped
    const altered = Buffer.from(w.profileBytes);
    altered[altered.length - 80] ^= 1;
    await page.getByTestId('station-file-profile').setInputFiles({ ...files.profile, buffer: altered });
    await page.getByTestId('station-passphrase').fill(PASS);
    await load.click();
    await expect(error).toHaveAttribute('data-file', 'profile', { timeout: 30_000 });
    await expect(error).toContainText(/Station profile: station profile refused/);

    // the right files: the line is loaded
    await page.getByTestId('station-file-profile').setInputFiles(files.profile);
    await load.click();
    await expect(page.getByTestId('bench-line')).toContainText('fieldbench-ref line 1', { timeout: 60_000 });
    await expect(page.getByTestId('bench-line')).toContainText('unwrapped in this page');
    await expect(page.getByRole('button', { name: 'Add virtual unit' })).toHaveCount(0);

    // two jigs on USB serial
    await page.getByRole('button', { name: 'Add USB serial port…' }).click();
    await page.getByRole('button', { name: 'Add USB serial port…' }).click();
    const tiles = page.getByTestId('bench-tile');
    await expect(tiles).toHaveCount(2);
    for (const i of [0, 1]) {
      await expect(tiles.nth(i)).toHaveAttribute('data-state', 'pass', { timeout: 120_000 });
      await expect(tiles.nth(i)).toContainText(/S\/N FB-00000[12]/);
    }
    const serials = await tiles.locator('.serial .mono').allTextContents();
    expect(new Set(serials).size).toBe(2);
    await expect(page.getByTestId('bench-summary')).toHaveText('2 passed, 0 failed, 2 recorded');
    expect(units.size).toBe(2);
    // the control log in the store is signed by the station key loaded from its wrapped file: audit verify --key station.pub.pem authenticates it
    await expect(page.getByTestId('bench-log')).toContainText('2 provisioned, 0 failed');
    await expect(page.getByTestId('bench-log')).toHaveAttribute('data-station', keyIdHex(w.station.publicKey));
    const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download control log (JSON)' }).click()]);
    const dir = mkdtempSync(join(tmpdir(), 'fb-bench-serial-'));
    writeFileSync(join(dir, 'log.json'), readFileSync((await dl.path())!));
    writeFileSync(join(dir, 'station.pub.pem'), publicKeyPem(w.station.publicKey));
    let out = '';
    expect(await commands['audit verify'].run(['log.json', '--key', 'station.pub.pem'], { out: (t) => void (out += t), err: () => {}, cwd: dir })).toBe(0);
    expect(out).toContain('authenticated: every entry is signed by one of 1 trusted key(s)');
  } finally {
    await bridge.close();
  }
});

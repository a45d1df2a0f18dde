/**
 * The Sync page against a real fleet hub started by the test (embedded
 * PostgreSQL in a temp dir, port 0). The app's CSP allows only its own origin,
 * so the hub is reached the way a same-origin deployment reaches it: under a
 * path of the app's origin (/__hub), which the test forwards to the hub (a
 * reverse proxy that strips the prefix). The test then checks what the hub
 * holds, independently of the page.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { test, expect } from './fixtures.ts';
import { makeAuthorities } from '../../src/device/provisioning.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { issueCampaign } from '../../src/core/sync/campaign.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { openPglite, type HubDb } from '../../src/hub/db.ts';
import { publishCampaign } from '../../src/hub/campaigns.ts';
import { ingest, sourceHead } from '../../src/hub/ingest.ts';
import { startHub, type RunningHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { deviceN, Trail } from '../helpers/hub-world.ts';
import { seedSigner, keyIdHex } from '../../src/core/store/sig.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../../src/core/base/bytes.ts';

test.use({ fakes: false });

const PREFIX = '/__hub';

async function proxyHub(page: Page, hubUrl: string, seen: { requests: number }): Promise<void> {
  await page.route((u) => u.pathname.startsWith(PREFIX + '/'), async (route) => {
    seen.requests++;
    const u = new URL(route.request().url());
    try {
      const response = await route.fetch({ url: hubUrl + u.pathname.slice(PREFIX.length) + u.search });
      await route.fulfill({ response });
    } catch {
      // what a reverse proxy answers when the hub behind it is down
      await route.fulfill({ status: 502, contentType: 'text/html', body: '<h1>502 Bad Gateway</h1>' });
    }
  });
}

test('sync page: hub address, offline shown plainly, sync now, sync when back online, campaigns with per-device status', async ({ page, context, baseURL }) => {
  test.setTimeout(120_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldbench-e2e-hub-'));
  let db: HubDb | undefined;
  let hub: RunningHub | undefined;
  try {
    const auth = await makeAuthorities({ bundleVersion: 5 });
    db = await openPglite(path.join(dir, 'data'));
    const trust = await HubTrust.open(db, [auth.owner.publicKey], auth.bundle);
    hub = await startHub({ db, trust, log: () => undefined }, { host: '127.0.0.1', port: 0 });
    const seen = { requests: 0 };
    await proxyHub(page, hub.url, seen);

    // trust and key: every import is audited, so the trail has entries to sync
    await page.goto('/#/trust');
    await page.getByTestId('trust-file').setInputFiles([
      { name: 'owner.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(publicKeyPem(auth.owner.publicKey)) },
      { name: 'bundle.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.bundle) },
      { name: 'credential.cbor', mimeType: 'application/octet-stream', buffer: Buffer.from(auth.credential) },
      { name: 'tech.pem', mimeType: 'application/x-pem-file', buffer: Buffer.from(privateKeyPem(auth.technician.privateKey)) },
    ]);
    await expect(page.getByTestId('trust-missing')).toHaveCount(0);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sync' }).click();
    const status = page.getByTestId('sync-status');
    await expect(status).toHaveAttribute('data-phase', 'unconfigured');
    await expect(page.getByTestId('sync-campaigns')).toBeVisible();
    // the help in a technician's words; the build and hub settings only behind the administrator's disclosure
    const help = page.getByTestId('sync-help');
    await expect(help).toContainText('ask your administrator');
    await expect(help).toContainText('Without a connection everything keeps working');
    await expect(help.getByText('FIELDBENCH_HUB_ORIGIN')).toBeHidden();
    await expect(help.getByText('--cors')).toBeHidden();
    // a bad address is refused with what to do
    await page.getByLabel('Hub address').fill('hub.example.com');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(page.getByTestId('sync-address-error')).toContainText('https://');
    expect(seen.requests).toBe(0);

    // offline: a normal state, shown plainly, no request made
    await context.setOffline(true);
    await page.getByLabel('Hub address').fill(`${baseURL}${PREFIX}`);
    await page.getByRole('button', { name: 'Save' }).click();
    await expect(status).toHaveAttribute('data-phase', 'offline');
    await expect(page.getByTestId('sync-online')).toHaveText('offline');
    await expect(page.getByTestId('sync-phase')).toContainText('Everything works');
    const queued = Number(await page.getByTestId('sync-queued').textContent());
    expect(queued).toBeGreaterThan(0);
    await page.getByTestId('sync-now').click();
    await expect(status).toHaveAttribute('data-phase', 'offline');
    expect(seen.requests).toBe(0);

    // back online: it syncs by itself
    await context.setOffline(false);
    await expect(page.getByTestId('sync-queued')).toHaveText('0');
    await expect(status).toHaveAttribute('data-phase', 'idle');
    await expect(page.getByTestId('sync-last')).not.toHaveText('never');
    // the hub holds the app's trail, seq 1..queued
    const techKid = keyIdHex((await seedSigner('t', auth.technician.privateKey)).publicKey);
    const src = await db.query<{ genesis: Uint8Array; head_seq: string; last_pusher: string }>('SELECT genesis, head_seq, last_pusher FROM sources');
    expect(src).toHaveLength(1);
    expect(Number(src[0].head_seq)).toBe(queued);
    expect(src[0].last_pusher).toBe(techKid);

    // a campaign for two devices another station reported; one has its result
    const station = await makeStation(auth);
    const t = new Trail(station);
    await t.add([
      { op: 'identify', device: deviceN(1), details: { model: 'demo-sensor' } },
      { op: 'identify', device: deviceN(2), details: { model: 'demo-sensor' } },
    ]);
    await ingest(db, trust, t.push(), { pusher: 'station' });
    const cfg = await issueConfig({ target: { kind: 'model', model: 'demo-sensor' }, sequence: 3, settings: { 'app/interval': 30 }, notAfter: Date.now() + 86400_000 }, auth.owner.privateKey);
    const c = await issueCampaign({ name: 'demo interval 30', target: { model: 'demo-sensor' }, configuration: { sha256: sha256(cfg), name: 'interval-30.cbor' }, notAfter: Date.now() + 86400_000 }, auth.owner.privateKey);
    await publishCampaign(db, trust, { campaign: Buffer.from(c).toString('base64'), artifacts: [Buffer.from(cfg).toString('base64')] }, Date.now());
    await page.getByTestId('sync-now').click();
    const card = page.getByTestId('campaign');
    await expect(card).toHaveCount(1);
    await expect(card).toContainText('demo interval 30');
    await expect(card.getByTestId('campaign-counts')).toHaveText('2 devices: 0 done, 0 failed, 2 pending');
    // its configuration into the library: checked against the signed digest, then by the library under the held bundle
    await card.getByTestId('campaign-take').click();
    await expect(card.getByTestId('campaign-take-results')).toContainText('interval-30.cbor');
    await expect(card.locator('[data-testid="campaign-take-results"] li[data-ok="true"]')).toHaveCount(1);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Library' }).click();
    await expect(page.locator('[data-testid="library-row"][data-kind="config"]')).toHaveCount(1);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sync' }).click();
    await t.add([
      { op: 'configure', device: deviceN(1), details: { action: 'apply', sequence: 3, digest: toHex(sha256(cfg)) } },
      { op: 'configure', device: deviceN(2), outcome: 'rejected', details: { action: 'apply', code: 'device', by: 'device', reason: 'sequence' } },
    ]);
    await ingest(db, trust, t.push(3, 4), { pusher: 'station' });
    await page.getByTestId('sync-now').click();
    await expect(card.getByTestId('campaign-counts')).toHaveText('2 devices: 1 done, 1 failed, 0 pending');
    await expect(card.locator('[data-testid="campaign-device"][data-state="failed"]')).toContainText(deviceN(2).serial!);

    // the hub goes away: the page says the hub is unreachable, as offline; the app keeps working
    const genesis = toHex(new Uint8Array(src[0].genesis));
    await hub.close();
    hub = undefined;
    await page.getByTestId('sync-now').click();
    await expect(status).toHaveAttribute('data-phase', 'offline');
    await expect(page.getByTestId('sync-message')).toContainText('unreachable');
    // after a reload the saved state is shown: hub, last sync, campaigns
    await page.reload();
    await expect(page.getByTestId('campaign-counts')).toHaveText('2 devices: 1 done, 1 failed, 0 pending');
    await expect(page.getByLabel('Hub address')).toHaveValue(`${baseURL}${PREFIX}`);
    // the configuration taken into the library was an audited import, pushed by the later sync
    expect((await sourceHead(db, genesis))!.seq).toBe(queued + 1);
  } finally {
    await hub?.close();
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A station key with an owner-signed credential, in the shape hub-world's Trail signs with. */
async function makeStation(auth: Awaited<ReturnType<typeof makeAuthorities>>) {
  const { generateEd25519 } = await import('../../src/core/trust/ed25519.ts');
  const { issueCredential } = await import('../../src/core/trust/credential.ts');
  const k = await generateEd25519();
  const credential = await issueCredential(
    { technicianId: 'station-1', name: 'Station 1', publicKey: k.publicKey, permissions: ['sync'], models: ['*'], notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 86400_000) },
    auth.owner.privateKey,
  );
  return {
    id: 'station-1',
    seed: k.privateKey,
    publicKey: k.publicKey,
    keyId: keyIdHex(k.publicKey),
    signer: await seedSigner('station-1', k.privateKey),
    credential,
    credentialId: new Uint8Array(16),
    credentialB64: Buffer.from(credential).toString('base64'),
  };
}

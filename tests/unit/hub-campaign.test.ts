/**
 * Campaigns: the signed artifact (tampered, unsigned, wrong type, revoked
 * key, expired), targeting by model, version range, device group and tag
 * (property tests against an independent oracle), publication on the hub
 * (PGlite and PostgreSQL) and status per device moving pending -> done /
 * failed as update and configure records are pushed; then over HTTP and the
 * CLI: issue, publish, list, status, pull (artifacts checked by digest).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, Tag } from '../../src/core/base/cbor.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import {
  campaignResult, compareVersions, deviceState, inVersionRange, issueCampaign, parseVersionRange, targets, verifyCampaign,
  type CampaignTarget,
} from '../../src/core/sync/campaign.ts';
import { HubClient, HubRequestError } from '../../src/core/sync/client.ts';
import { issueBundle, verifyBundle, type TrustBundle } from '../../src/core/trust/bundle.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { keyId, privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { decodeSign1 } from '../../src/core/trust/cose.ts';
import { campaignStatus, listCampaigns, publishCampaign, setTags } from '../../src/hub/campaigns.ts';
import type { HubDb } from '../../src/hub/db.ts';
import { openPglite } from '../../src/hub/db.ts';
import { HubError } from '../../src/hub/errors.ts';
import { ingest } from '../../src/hub/ingest.ts';
import { startHub, type RunningHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { backends } from '../helpers/hub-backends.ts';
import { deviceN, makeWorld, Trail, type Tech, type World } from '../helpers/hub-world.ts';

const DAY = 86400_000;
let world: World;
let alice: Tech;
let owner2: { privateKey: Uint8Array; publicKey: Uint8Array };
/** Bundle v2: owner keys [owner, owner2]; v3: owner2 revoked. */
let bundle2: Uint8Array;
let bundle3: Uint8Array;
let held2: TrustBundle;
let held3: TrustBundle;
const IMAGE = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff);
const IMAGE_SHA = toHex(sha256(IMAGE));
let configBytes: Uint8Array;

beforeAll(async () => {
  world = await makeWorld();
  alice = await world.tech('alice');
  owner2 = await generateEd25519();
  const expires = new Date(Date.now() + 365 * DAY);
  bundle2 = await issueBundle({ version: 2, expires, anchors: { owner: [world.owner.publicKey, owner2.publicKey] } }, world.owner.privateKey);
  bundle3 = await issueBundle({ version: 3, expires, anchors: { owner: [world.owner.publicKey] }, revocations: { keyIds: [keyId(owner2.publicKey)] } }, world.owner.privateKey);
  const v2 = await verifyBundle(bundle2, { ownerKeys: [world.owner.publicKey] });
  const v3 = await verifyBundle(bundle3, { ownerKeys: [world.owner.publicKey] });
  if (!v2.ok || !v3.ok) throw new Error('bundles');
  held2 = v2.value;
  held3 = v3.value;
  configBytes = await issueConfig({ target: { kind: 'model', model: 'fb-sensor' }, sequence: 7, settings: { 'app/interval': 60 }, notAfter: new Date(Date.now() + 30 * DAY) }, world.owner.privateKey);
});

const campaign = (over: Partial<Parameters<typeof issueCampaign>[0]> = {}, key = world.owner.privateKey) =>
  issueCampaign({ name: 'fb-sensor 1.3', target: { model: 'fb-sensor', versions: { min: '1.0.0', below: '1.3.0' } }, image: { sha256: sha256(IMAGE), version: '1.3.0' }, notAfter: new Date(Date.now() + 30 * DAY), ...over }, key);

async function resignPayload(bytes: Uint8Array, seed: Uint8Array, edit: (p: Map<unknown, unknown>) => void): Promise<Uint8Array> {
  const { signSign1 } = await import('../../src/core/trust/cose.ts');
  const { encodeDeterministic } = await import('../../src/core/base/cbor.ts');
  const m = decodeSign1(bytes);
  const p = decodeCbor(m.payload!) as Map<unknown, unknown>;
  edit(p);
  return signSign1({ payload: encodeDeterministic(p), privateKey: seed, alg: -8, kid: keyId(owner2.publicKey), protectedExtra: new Map<number | string, unknown>([[3, m.protected.get(3)]]), tagged: true });
}

describe('the campaign artifact', () => {
  it('round-trips and is refused when tampered, unsigned, of another type, from a stranger, a revoked key or expired', async () => {
    const b = await campaign();
    const v = await verifyCampaign(b, { bundle: held2 });
    if (!v.ok) throw new Error(v.reason);
    expect(v.value).toMatchObject({ name: 'fb-sensor 1.3', target: { model: 'fb-sensor', versions: { min: '1.0.0', below: '1.3.0' } }, image: { version: '1.3.0' } });
    expect(v.value.id).toHaveLength(32);
    // one flipped byte in the signed name
    const m = decodeSign1(b);
    const tampered = b.slice();
    const i = Buffer.from(b).indexOf(Buffer.from('fb-sensor 1.3'));
    expect(i).toBeGreaterThan(0);
    tampered[i] ^= 0x20;
    expect(await code(verifyCampaign(tampered, { bundle: held2 }))).toBe('bad-signature');
    // unsigned: the payload in a COSE_Sign1 with an empty signature, and plain CBOR
    const unsigned = encodeCbor(new Tag([encodeCbor(m.protected), new Map(), m.payload, new Uint8Array(0)], 18));
    expect(await code(verifyCampaign(unsigned, { bundle: held2 }))).toMatch(/^(bad-signature|malformed)$/);
    expect(await code(verifyCampaign(m.payload!, { bundle: held2 }))).toBe('malformed');
    expect(await code(verifyCampaign(configBytes, { bundle: held2 }))).toBe('wrong-type');
    const stranger = await generateEd25519();
    expect(await code(verifyCampaign(await campaign({}, stranger.privateKey), { bundle: held2 }))).toBe('wrong-issuer');
    // owner2 is an owner key of bundle 2 and revoked by bundle 3
    const by2 = await campaign({}, owner2.privateKey);
    expect(await code(verifyCampaign(by2, { bundle: held2 }))).toBe('accepted');
    expect(await code(verifyCampaign(by2, { bundle: held3 }))).toBe('revoked');
    const old = await campaign({ notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    expect(await code(verifyCampaign(old, { bundle: held2 }))).toBe('expired');
    // a re-signed payload with a critical unknown field is a schema failure
    const crit = await resignPayload(by2, owner2.privateKey, (p) => p.set(-1, 1));
    expect(await code(verifyCampaign(crit, { bundle: held2 }))).toBe('schema');
  });

  it('refuses at issue time what it would refuse at verification', async () => {
    await expect(campaign({ target: {} })).rejects.toMatchObject({ code: 'schema' });
    await expect(campaign({ image: undefined })).rejects.toMatchObject({ code: 'schema' });
    await expect(campaign({ target: { model: 'x', versions: { min: '2.0.0', below: '1.0.0' } } })).rejects.toMatchObject({ code: 'schema' });
    await expect(campaign({ target: { model: 'x', versions: { min: '1.x' } } })).rejects.toMatchObject({ code: 'schema' });
    expect(parseVersionRange('>=1.2.0 <2.0.0')).toEqual({ min: '1.2.0', below: '2.0.0' });
    expect(() => parseVersionRange('~1.2')).toThrow();
  });
});

// ---------------------------------------------------------------- targeting, as properties

// mostly from a tiny space, so equal versions and range boundaries come up often
const tiny = fc.integer({ min: 0, max: 1 });
const ver = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(tiny, tiny, tiny, tiny) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 20 })) },
);
const text = ([a, b, c, d]: number[]) => `${a}.${b}.${c}+${d}`;
/** The oracle: tuples compared lexicographically, independent of parseVersion. */
const lex = (x: number[], y: number[]) => {
  for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
};

describe('targeting', () => {
  it('version comparison and ranges agree with a tuple oracle', () => {
    fc.assert(
      fc.property(ver, ver, ver, fc.boolean(), fc.boolean(), (v, lo, hi, useLo, useHi) => {
        expect(Math.sign(compareVersions(text(v), text(lo)))).toBe(Math.sign(lex(v, lo)));
        const r = { ...(useLo ? { min: text(lo) } : {}), ...(useHi ? { below: text(hi) } : {}) };
        const want = (!useLo || lex(v, lo) >= 0) && (!useHi || lex(v, hi) < 0);
        expect(inVersionRange(text(v), r)).toBe(want);
        // short forms mean .0: 1.2 == 1.2.0+0
        expect(compareVersions(`${v[0]}.${v[1]}`, `${v[0]}.${v[1]}.0+0`)).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('every criterion given must hold; model, serials and tags exactly; unknown versions are never in a range', () => {
    const tagA = fc.constantFrom('north', 'south', 'pilot', 'spare');
    const dev = fc.record({ model: fc.constantFrom('fb-sensor', 'fb-gw', null), firmware: fc.option(ver, { nil: null }), serial: fc.constantFrom('SN-1', 'SN-2', 'SN-3'), tags: fc.uniqueArray(tagA, { maxLength: 3 }) });
    const tgt = fc.record(
      { model: fc.constantFrom('fb-sensor', 'fb-gw'), versions: fc.record({ min: ver, below: ver }, { requiredKeys: [] }), devices: fc.uniqueArray(fc.constantFrom('SN-1', 'SN-2', 'SN-3'), { minLength: 1 }), tags: fc.uniqueArray(tagA, { minLength: 1 }) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(tgt, dev, (g, d) => {
        const want =
          (g.model === undefined || g.model === d.model) &&
          (g.versions === undefined || (d.firmware !== null && (g.versions.min === undefined || lex(d.firmware, g.versions.min) >= 0) && (g.versions.below === undefined || lex(d.firmware, g.versions.below) < 0))) &&
          (g.devices === undefined || g.devices.includes(d.serial)) &&
          (g.tags === undefined || d.tags.some((x) => g.tags!.includes(x)));
        const versions = g.versions && { ...(g.versions.min ? { min: text(g.versions.min) } : {}), ...(g.versions.below ? { below: text(g.versions.below) } : {}) };
        const t: CampaignTarget = { ...g, versions };
        if (!versions) delete t.versions;
        expect(targets(t, { ...d, firmware: d.firmware && text(d.firmware) })).toBe(want);
      }),
      { numRuns: 3000 },
    );
  });

  it('results: the entry must name the campaign or its artifact; failures without an artifact count; cancelled is no result', () => {
    const c = { id: 'ab'.repeat(16), notBefore: Math.floor(Date.now() / 1000), image: { sha256: IMAGE_SHA }, configuration: { sha256: 'cd'.repeat(32) } };
    const t = Date.now();
    expect(campaignResult(c, { op: 'update', outcome: 'ok', time: t, details: { fileSha256: IMAGE_SHA } })).toEqual({ part: 'image', state: 'done' });
    expect(campaignResult(c, { op: 'update', outcome: 'ok', time: t, details: { fileSha256: 'ee'.repeat(32) } })).toBeUndefined();
    expect(campaignResult(c, { op: 'update', outcome: 'ok', time: t - 2 * DAY, details: { fileSha256: IMAGE_SHA } })).toBeUndefined();
    expect(campaignResult(c, { op: 'update', outcome: 'failed', time: t, details: { reason: 'x' } })).toEqual({ part: 'image', state: 'failed' });
    expect(campaignResult(c, { op: 'update', outcome: 'cancelled', time: t, details: { fileSha256: IMAGE_SHA } })).toBeUndefined();
    expect(campaignResult(c, { op: 'configure', outcome: 'ok', time: t, details: { digest: 'cd'.repeat(32) } })).toEqual({ part: 'configuration', state: 'done' });
    expect(campaignResult(c, { op: 'configure', outcome: 'attention', time: t, details: {} })).toBeUndefined();
    expect(campaignResult(c, { op: 'identify', outcome: 'ok', time: t, details: { campaign: c.id } })).toBeUndefined();
    expect(deviceState(c, { image: 'done' })).toBe('pending');
    expect(deviceState(c, { image: 'done', configuration: 'done' })).toBe('done');
    expect(deviceState(c, { image: 'done', configuration: 'failed' })).toBe('failed');
  });
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    const r = (await p) as { ok?: boolean; code?: string } | undefined;
    if (r && r.ok === false) return r.code!;
  } catch (e) {
    if (e instanceof HubError || e instanceof HubRequestError) return e.code;
    if (e && typeof e === 'object' && 'code' in e) return String((e as { code: unknown }).code);
    throw e;
  }
  return 'accepted';
}

// ---------------------------------------------------------------- on the hub, both backends

const attest = (n: number, version: string, extra: Partial<ReturnType<typeof deviceN>> = {}) => ({
  op: 'attest',
  device: { ...deviceN(n), ...extra },
  details: { verdict: 'trusted', claims: { software: [{ version, measurement: String(n % 10).repeat(64) }] } },
});
const identify = (n: number, model: string) => ({ op: 'identify', device: deviceN(n), details: { model } });

describe.each(backends())('campaigns on $name', (backend) => {
  let db: HubDb;
  let trust: HubTrust;
  beforeAll(() => backend.open().then(() => undefined), 240_000);
  const open = async () => {
    db = await backend.open();
    trust = await HubTrust.open(db, [world.owner.publicKey], bundle2);
  };
  afterAll(async () => {
    await db?.close();
  });
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

  it('verifies before storing: tampered, unsigned, wrong type, revoked key, missing artifact, conflicting id', async () => {
    await open();
    const good = await campaign();
    const flipped = good.slice();
    flipped[flipped.length - 70] ^= 4;
    const e = await errorOf(publishCampaign(db, trust, { campaign: b64(flipped), artifacts: [b64(IMAGE)] }, Date.now()));
    expect(e.code).toBe('bad-campaign');
    expect(e.extra?.trust).toMatch(/bad-signature|schema|malformed/);
    expect((await errorOf(publishCampaign(db, trust, { campaign: b64(decodeSign1(good).payload!) }, Date.now()))).extra?.trust).toBe('malformed');
    expect((await errorOf(publishCampaign(db, trust, { campaign: b64(configBytes) }, Date.now()))).extra?.trust).toBe('wrong-type');
    expect((await errorOf(publishCampaign(db, trust, { campaign: '!!' }, Date.now()))).code).toBe('bad-request');
    expect((await errorOf(publishCampaign(db, trust, { campaign: b64(good) }, Date.now()))).code).toBe('missing-artifact');
    expect((await errorOf(publishCampaign(db, trust, { campaign: b64(good), artifacts: [b64(configBytes)] }, Date.now()))).code).toBe('bad-request');
    // owner2's campaign: accepted under bundle 2; after bundle 3 (owner2 revoked) a new one is refused
    expect(await publishCampaign(db, trust, { campaign: b64(await campaign({}, owner2.privateKey)), artifacts: [b64(IMAGE)] }, Date.now())).toMatchObject({ published: true, artifacts: 1 });
    await trust.update(db, bundle3);
    expect((await errorOf(publishCampaign(db, trust, { campaign: b64(await campaign({ name: 'later' }, owner2.privateKey)) }, Date.now()))).code).toBe('revoked');
    expect(await publishCampaign(db, trust, { campaign: b64(good) }, Date.now())).toMatchObject({ published: true, artifacts: 0 });
    expect(await publishCampaign(db, trust, { campaign: b64(good) }, Date.now())).toMatchObject({ published: false });
    const clash = await campaign({ campaignId: decodeCampaignId(good), name: 'other' });
    expect((await errorOf(publishCampaign(db, trust, { campaign: b64(clash) }, Date.now()))).extra?.trust).toBe('conflict');
    const n = await db.query<{ n: string }>('SELECT count(*) AS n FROM campaigns');
    expect(Number(n[0].n)).toBe(2);
    expect((await listCampaigns(db)).map((c) => c.name).sort()).toEqual(['fb-sensor 1.3', 'fb-sensor 1.3']);
  });

  it('targets by model and version range; status moves pending -> done / failed as results are pushed', async () => {
    await open();
    const t = new Trail(alice);
    // devices 1..6: fb-sensor on 1.0.0, 1.2.9, 1.3.0 (outside), 0.9.0 (outside), unknown version (outside); 6 is another model
    await t.add([identify(1, 'fb-sensor'), identify(2, 'fb-sensor'), identify(3, 'fb-sensor'), identify(4, 'fb-sensor'), identify(5, 'fb-sensor'), identify(6, 'fb-gw')]);
    await t.add([attest(1, '1.0.0'), attest(2, '1.2.9+7'), attest(3, '1.3.0'), attest(4, '0.9.0'), attest(6, '1.1.0')]);
    await ingest(db, trust, t.push(), { pusher: 'x' });
    const bytes = await campaign({ configuration: { sha256: sha256(configBytes) } });
    const { id } = await publishCampaign(db, trust, { campaign: b64(bytes), artifacts: [b64(IMAGE), b64(configBytes)] }, Date.now());
    let s = await campaignStatus(db, id);
    expect(s.devices.map((d) => d.serial)).toEqual([deviceN(1).serial, deviceN(2).serial]);
    expect(s.counts).toEqual({ targeted: 2, done: 0, failed: 0, pending: 2 });
    // device 1: image done, configuration done -> done. Device 2: update fails -> failed. Then a retry succeeds.
    await t.add([
      { op: 'update', device: deviceN(1), details: { fileSha256: IMAGE_SHA, version: '1.3.0', hash: 'aa'.repeat(32) } },
      attest(1, '1.3.0'),
      { op: 'update', device: deviceN(2), outcome: 'failed', details: { reason: 'the device did not confirm', fileSha256: IMAGE_SHA } },
      // an unrelated update on device 3 (not targeted) and an update of another image on device 1: no result
      { op: 'update', device: deviceN(3), details: { fileSha256: IMAGE_SHA } },
      { op: 'update', device: deviceN(1), outcome: 'failed', details: { fileSha256: 'ee'.repeat(32) } },
    ]);
    await ingest(db, trust, t.push(), { pusher: 'x' });
    s = await campaignStatus(db, id);
    expect(s.counts).toEqual({ targeted: 2, done: 0, failed: 1, pending: 1 });
    const d1 = s.devices.find((d) => d.serial === deviceN(1).serial)!;
    // device 1 is now on 1.3.0 (outside the range) and still listed: it has a result
    expect(d1).toMatchObject({ firmware: '1.3.0', state: 'pending', parts: { image: { state: 'done', reporter: 'alice' } } });
    await t.add([
      { op: 'configure', device: deviceN(1), details: { action: 'apply', sequence: 7, digest: toHex(sha256(configBytes)) } },
      { op: 'update', device: deviceN(2), details: { fileSha256: IMAGE_SHA } },
      { op: 'configure', device: deviceN(2), details: { action: 'apply', digest: toHex(sha256(configBytes)) } },
    ]);
    await ingest(db, trust, t.push(), { pusher: 'x' });
    s = await campaignStatus(db, id);
    expect(s.counts).toEqual({ targeted: 2, done: 2, failed: 0, pending: 0 });
    // a result pushed twice (retry) changes nothing; an older failure pushed later by another source does not override
    await ingest(db, trust, t.push(), { pusher: 'x' });
    const late = new Trail(alice);
    await late.add([{ op: 'update', device: deviceN(2), outcome: 'failed', details: { fileSha256: IMAGE_SHA }, time: Date.now() - 60_000 }]);
    await ingest(db, trust, late.push(), { pusher: 'x' });
    expect((await campaignStatus(db, id)).counts).toEqual({ targeted: 2, done: 2, failed: 0, pending: 0 });
  });

  it('targets by tag and by device group', async () => {
    await open();
    const t = new Trail(alice);
    await t.add([identify(10, 'fb-sensor'), identify(11, 'fb-sensor'), identify(12, 'fb-gw')]);
    await ingest(db, trust, t.push(), { pusher: 'x' });
    await setTags(db, { kind: 'serial', value: deviceN(11).serial!, tags: ['pilot', 'north'] });
    await setTags(db, { kind: 'serial', value: deviceN(12).serial!, tags: ['pilot'] });
    expect((await errorOf(setTags(db, { kind: 'serial', value: 'SN-NOPE', tags: ['x'] }))).code).toBe('not-found');
    expect((await errorOf(setTags(db, { kind: 'serial', value: deviceN(11).serial!, tags: ['bad tag'] }))).code).toBe('bad-request');
    const byTag = await publishCampaign(db, trust, { campaign: b64(await campaign({ target: { model: 'fb-sensor', tags: ['pilot'] } })), artifacts: [b64(IMAGE)] }, Date.now());
    expect((await campaignStatus(db, byTag.id)).devices.map((d) => d.serial)).toEqual([deviceN(11).serial]);
    const anyModel = await publishCampaign(db, trust, { campaign: b64(await campaign({ target: { tags: ['pilot'] } })) }, Date.now());
    expect((await campaignStatus(db, anyModel.id)).devices.map((d) => d.serial)).toEqual([deviceN(11).serial, deviceN(12).serial]);
    const group = await publishCampaign(db, trust, { campaign: b64(await campaign({ target: { devices: [deviceN(10).serial!, deviceN(12).serial!, 'SN-NEVER-SEEN'] } })) }, Date.now());
    expect((await campaignStatus(db, group.id)).devices.map((d) => d.serial)).toEqual([deviceN(10).serial, deviceN(12).serial]);
    // the tag is read at the time of the entry: a device tagged after its update has no result until it updates again
    await setTags(db, { kind: 'serial', value: deviceN(10).serial!, tags: [] });
    expect((await errorOf(campaignStatus(db, 'zz'))).code).toBe('bad-request');
    expect((await errorOf(campaignStatus(db, '00'.repeat(16)))).code).toBe('not-found');
  });
});

function decodeCampaignId(bytes: Uint8Array): Uint8Array {
  const p = decodeCbor(decodeSign1(bytes).payload!) as Map<number, unknown>;
  return p.get(1) as Uint8Array;
}

async function errorOf(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HubError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

// ---------------------------------------------------------------- over HTTP and the CLI

describe('campaigns over HTTP and the CLI', () => {
  let db: HubDb;
  let hub: RunningHub;
  let dir: string;
  beforeAll(async () => {
    db = await openPglite();
    const trust = await HubTrust.open(db, [world.owner.publicKey], bundle2);
    hub = await startHub({ db, trust, perKey: { rate: 1000, burst: 1000 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
    dir = mkdtempSync(join(tmpdir(), 'fieldbench-campaign-'));
  }, 240_000);
  afterAll(async () => {
    await hub?.close();
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('issue, publish, list, status, pull; a sync-only caller cannot publish; a swapped artifact is refused on pull', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const fleet = await world.tech('ops', ['sync', 'fleet']);
    const tech = await world.tech('tech', ['sync']);
    writeFileSync(join(dir, 'owner.pem'), privateKeyPem(world.owner.privateKey));
    writeFileSync(join(dir, 'owner.pub.pem'), publicKeyPem(world.owner.publicKey));
    writeFileSync(join(dir, 'ops.cbor'), fleet.credential);
    writeFileSync(join(dir, 'ops.pem'), privateKeyPem(fleet.seed));
    writeFileSync(join(dir, 'cfg.cbor'), configBytes);
    const run = async (...argv: string[]) => {
      let out = '';
      let err = '';
      const c = await main(argv, { out: (x) => (out += x), err: (x) => (err += x), cwd: dir });
      return { code: c, out, err };
    };
    const conn = ['--hub', hub.url, '--credential', 'ops.cbor', '--key', 'ops.pem'];
    // an image that is not MCUboot is refused at issue time
    writeFileSync(join(dir, 'junk.bin'), IMAGE);
    expect((await run('hub', 'campaign', 'issue', '--owner-key', 'owner.pem', '--name', 'x', '--model', 'fb-sensor', '--image', 'junk.bin', '--out', 'c.cbor')).code).toBe(2);
    const iss = await run('hub', 'campaign', 'issue', '--owner-key', 'owner.pem', '--name', 'cfg 7', '--model', 'fb-sensor', '--versions', '>=1.0.0 <2.0.0', '--config', 'cfg.cbor', '--out', 'c.cbor');
    expect(iss.code).toBe(0);
    expect((await run('hub', 'campaign', 'issue', '--owner-key', 'owner.pem', '--name', 'x', '--versions', '>=1', '--config', 'cfg.cbor', '--out', 'd.cbor')).code).toBe(2);
    // a sync-only technician cannot publish
    const asTech = new HubClient({ url: hub.url, credential: tech.credential, signer: tech.signer });
    expect(await code(asTech.publishCampaign(readFileSync(join(dir, 'c.cbor')), [configBytes]))).toBe('permission');
    const pub = await run('hub', 'campaign', 'publish', 'c.cbor', '--artifact', 'cfg.cbor', ...conn);
    expect(pub.code).toBe(0);
    const list = await run('hub', 'campaign', 'list', '--json', ...conn);
    const [c] = JSON.parse(list.out);
    expect(c).toMatchObject({ name: 'cfg 7', target: { model: 'fb-sensor', versions: { min: '1.0.0', below: '2.0.0' } } });
    // a device pushes its result; status shows it (exit 0), then a failure elsewhere (exit 1)
    const t = new Trail(tech);
    await t.add([identify(30, 'fb-sensor'), attest(30, '1.1.0'), identify(31, 'fb-sensor'), attest(31, '1.2.0')]);
    await t.add([{ op: 'configure', device: deviceN(30), details: { digest: toHex(sha256(configBytes)) } }]);
    await asTech.push(t.export());
    const st = await run('hub', 'campaign', 'status', c.id, ...conn);
    expect(st.code).toBe(0);
    expect(st.out).toMatch(/2 devices: 1 done, 0 failed, 1 pending/);
    await t.add([{ op: 'configure', device: deviceN(31), outcome: 'rejected', details: { code: 'device', by: 'device', reason: 'sequence' } }]);
    await asTech.push(t.export());
    expect((await run('hub', 'campaign', 'status', c.id, ...conn)).code).toBe(1);
    // pull: bundle, campaign and its configuration, verified under the owner key
    const pull = await run('hub', 'pull', '--out', 'lib', '--owner-key', 'owner.pub.pem', ...conn);
    expect(pull.code).toBe(0);
    const files = readdirSync(join(dir, 'lib')).sort();
    expect(files).toContain('bundle.cbor');
    expect(files.some((f) => f.startsWith('config-') && readFileSync(join(dir, 'lib', f)).equals(Buffer.from(configBytes)))).toBe(true);
    expect(readdirSync(join(dir, 'lib', 'campaigns'))).toEqual([`${c.id}.cbor`]);
    // a hub that serves other bytes under the digest is caught by the client
    await db.query('UPDATE artifacts SET bytes = $1', [new Uint8Array([1, 2, 3])]);
    expect(await code(new HubClient({ url: hub.url, credential: fleet.credential, signer: fleet.signer }).pullCampaigns())).toBe('modified');
    // a campaign the puller's bundle does not trust is reported as refused, not returned
    const other = await makeWorld();
    const ob = await verifyBundle(other.bundle, { ownerKeys: [other.owner.publicKey] });
    if (!ob.ok) throw new Error('bundle');
    await db.query('UPDATE artifacts SET bytes = $1', [configBytes]);
    const p = await new HubClient({ url: hub.url, credential: fleet.credential, signer: fleet.signer }).pullCampaigns({ bundle: ob.value });
    expect(p.campaigns).toEqual([]);
    expect(p.refused.map((r) => r.code)).toEqual(['wrong-issuer']);
  }, 180_000);
});

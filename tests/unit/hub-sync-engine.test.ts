/**
 * The app's sync state machine (src/core/sync/engine.ts) against a real hub
 * (in-memory PGlite): unconfigured, no credential, offline (no request made),
 * sync now, one run at a time, an unreachable hub, refusals kept with their
 * code and cleared by a later sync, a rewritten trail (fork), sync when the
 * platform comes online, state kept across restarts, and entries recorded
 * during a sync left queued (a sync never holds up a job).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../../src/core/base/bytes.ts';
import { issueCampaign } from '../../src/core/sync/campaign.ts';
import { SyncEngine, checkHubAddress, onlineEvents, type SyncSaved, type SyncStore } from '../../src/core/sync/engine.ts';
import { openPglite, type HubDb } from '../../src/hub/db.ts';
import { publishCampaign } from '../../src/hub/campaigns.ts';
import { startHub, type RunningHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { deviceN, makeWorld, Trail, type Tech, type World } from '../helpers/hub-world.ts';

let world: World;
let alice: Tech;
let db: HubDb;
let trust: HubTrust;
let hub: RunningHub;

beforeAll(async () => {
  world = await makeWorld();
  alice = await world.tech('alice', ['sync']);
  db = await openPglite();
  trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
  hub = await startHub({ db, trust, perKey: { rate: 1000, burst: 1000 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
}, 240_000);

afterAll(async () => {
  await hub?.close();
  await db?.close();
});

function memoryStore(): SyncStore & { value?: SyncSaved } {
  const s: SyncStore & { value?: SyncSaved } = {
    load: async () => (s.value ? JSON.parse(JSON.stringify(s.value)) : undefined),
    save: async (v) => {
      s.value = JSON.parse(JSON.stringify(v));
    },
  };
  return s;
}

interface Rig {
  engine: SyncEngine;
  trail: Trail;
  store: ReturnType<typeof memoryStore>;
  net: { online: boolean; requests: number; delay: number };
  who: { tech: Tech | null };
}

async function rig(opts: { store?: ReturnType<typeof memoryStore>; trail?: Trail; tech?: Tech | null } = {}): Promise<Rig> {
  const trail = opts.trail ?? new Trail(alice);
  const store = opts.store ?? memoryStore();
  const net = { online: true, requests: 0, delay: 0 };
  const who = { tech: opts.tech === undefined ? alice : opts.tech };
  const engine = new SyncEngine({
    store,
    trail: async () => trail.export(),
    identity: () => (who.tech ? { credential: who.tech.credential, signer: who.tech.signer } : null),
    online: () => net.online,
    batch: 50,
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
      net.requests++;
      if (net.delay) await new Promise((r) => setTimeout(r, net.delay));
      return fetch(input, init);
    }) as typeof fetch,
  });
  await engine.ready();
  return { engine, trail, store, net, who };
}

describe('sync state machine', () => {
  it('checks the hub address', () => {
    expect(checkHubAddress('https://hub.example.com/')).toEqual({ ok: true, url: 'https://hub.example.com' });
    expect(checkHubAddress('http://127.0.0.1:8640')).toEqual({ ok: true, url: 'http://127.0.0.1:8640' });
    expect(checkHubAddress('https://proxy.example/hub/')).toEqual({ ok: true, url: 'https://proxy.example/hub' });
    expect(checkHubAddress('')).toEqual({ ok: true, url: '' });
    for (const bad of ['hub.example.com', 'ftp://x', 'http://hub.example.com', 'https://u@hub.example', 'https://hub.example/?a=1']) expect(checkHubAddress(bad).ok).toBe(false);
  });

  it('unconfigured, then no credential, then offline: states only, no request', async () => {
    const r = await rig({ tech: null });
    await r.trail.add([{ op: 'identify', device: deviceN(1) }]);
    await r.engine.recorded();
    expect(r.engine.snapshot()).toMatchObject({ phase: 'unconfigured', queued: 1, lastSync: null });
    expect((await r.engine.syncNow()).phase).toBe('unconfigured');
    expect((await r.engine.setHub('nope')).ok).toBe(false);
    expect(await r.engine.setHub(hub.url)).toEqual({ ok: true });
    expect(r.engine.snapshot().phase).toBe('no-credential');
    r.who.tech = alice;
    r.net.online = false;
    const s = await r.engine.syncNow();
    expect(s).toMatchObject({ phase: 'offline', online: false, queued: 1, lastSync: null });
    expect(r.net.requests).toBe(0);
  });

  it('syncs now: pushes the queue, reads campaigns with their status, one run at a time', async () => {
    const r = await rig();
    await r.engine.setHub(hub.url);
    await r.trail.add(Array.from({ length: 120 }, (_, i) => ({ op: 'identify', device: deviceN(100 + i), details: { model: 'fb-sensor' } })));
    const image = new Uint8Array(64).fill(3);
    const c = await issueCampaign({ name: 'to 2.0', target: { model: 'fb-sensor' }, image: { sha256: sha256(image), version: '2.0.0' }, notAfter: Date.now() + 86400_000 }, world.owner.privateKey);
    const { id } = await publishCampaign(db, trust, { campaign: Buffer.from(c).toString('base64'), artifacts: [Buffer.from(image).toString('base64')] }, Date.now());
    await r.trail.add([{ op: 'update', device: deviceN(100), details: { fileSha256: toHex(sha256(image)) } }]);
    const seen: string[] = [];
    r.engine.subscribe((s) => seen.push(s.phase));
    const [a, b] = [r.engine.syncNow(), r.engine.syncNow()];
    expect(a).toBe(b);
    const s = await a;
    expect(s).toMatchObject({ phase: 'idle', queued: 0, hubHead: { seq: 121 } });
    expect(s.lastSync).toBeGreaterThan(0);
    expect(seen).toContain('syncing');
    const camp = s.campaigns.find((x) => x.id === id)!;
    expect(camp.counts).toMatchObject({ targeted: 120, done: 1, pending: 119 });
    expect(camp.devices.find((d) => d.serial === deviceN(100).serial)?.state).toBe('done');
    // again: nothing new to push
    const before = r.net.requests;
    expect((await r.engine.syncNow()).message).toMatch(/already held/);
    expect(r.net.requests).toBeGreaterThan(before);
  });

  it('an unreachable hub is offline, not an error, and nothing is lost', async () => {
    const r = await rig();
    const gone = await startHub({ db, trust, log: () => undefined }, { host: '127.0.0.1', port: 0 });
    const url = gone.url;
    await gone.close();
    await r.engine.setHub(url);
    await r.trail.add([{ op: 'identify', device: deviceN(2) }]);
    const s = await r.engine.syncNow();
    expect(s).toMatchObject({ phase: 'offline', queued: 1, problems: [] });
    expect(r.trail.entries).toHaveLength(1);
    // behind a reverse proxy, a hub that is down is the proxy's 502 page: offline too
    const proxied = new SyncEngine({
      store: memoryStore(),
      trail: async () => r.trail.export(),
      identity: () => ({ credential: alice.credential, signer: alice.signer }),
      online: () => true,
      fetch: (async () => new Response('<h1>502 Bad Gateway</h1>', { status: 502, headers: { 'content-type': 'text/html' } })) as typeof fetch,
    });
    await proxied.setHub('https://app.example/hub');
    expect(await proxied.syncNow()).toMatchObject({ phase: 'offline', queued: 1, problems: [] });
    // a reply that is not the hub's (a wrong address) is an error with its code
    const wrong = new SyncEngine({
      store: memoryStore(),
      trail: async () => r.trail.export(),
      identity: () => ({ credential: alice.credential, signer: alice.signer }),
      online: () => true,
      fetch: (async () => new Response('<html>not a hub</html>', { status: 200 })) as typeof fetch,
    });
    await wrong.setHub('https://example.org');
    const w = await wrong.syncNow();
    expect(w.phase).toBe('error');
    expect(w.problems.map((p) => p.code)).toEqual(['bad-reply']);
  });

  it('a refusal is kept with its code until a later sync succeeds; a rewritten trail is a fork', async () => {
    const store = memoryStore();
    const bob = await world.tech('bob', ['sync']);
    const r = await rig({ store, tech: bob, trail: new Trail(bob) });
    await r.engine.setHub(hub.url);
    await r.trail.add([{ op: 'identify', device: deviceN(3) }]);
    // a credential without 'sync' is refused by permission
    const noSync = await world.tech('carol', ['identify']);
    r.who.tech = noSync;
    let s = await r.engine.syncNow();
    expect(s.phase).toBe('error');
    expect(s.problems.map((p) => p.code)).toEqual(['permission']);
    r.who.tech = bob;
    s = await r.engine.syncNow();
    expect(s).toMatchObject({ phase: 'idle', problems: [], queued: 0 });
    // the local trail is replaced by another history with the same genesis: the hub reports a fork
    const other = new Trail(bob);
    other.entries = r.trail.entries.slice(0, 1);
    await other.add([{ op: 'wipe', device: deviceN(3) }]);
    r.trail.entries = other.entries;
    await r.engine.syncNow();
    await r.trail.add([{ op: 'identify', device: deviceN(4) }]);
    const forked = new Trail(bob);
    forked.entries = r.trail.entries.slice(0, 1);
    await forked.add([{ op: 'identify', device: deviceN(9) }, { op: 'identify', device: deviceN(9) }]);
    r.trail.entries = forked.entries;
    s = await r.engine.syncNow();
    expect(s.phase).toBe('error');
    expect(s.problems[0].code).toBe('fork');
    // restarted while offline: the saved state is shown
    const again = await rig({ store, tech: bob, trail: r.trail });
    again.net.online = false;
    await again.engine.connectivityChanged();
    expect(again.engine.snapshot()).toMatchObject({ phase: 'offline', hub: hub.url, problems: [{ code: 'fork' }] });
    expect(again.engine.snapshot().lastSync).toBe(s.lastSync);
    expect(again.net.requests).toBe(0);
  });

  it('syncs when the platform comes online', async () => {
    const r = await rig();
    await r.engine.setHub(hub.url);
    await r.trail.add([{ op: 'identify', device: deviceN(5) }]);
    r.net.online = false;
    const target = new EventTarget();
    const off = onlineEvents(r.engine, target);
    target.dispatchEvent(new Event('offline'));
    await new Promise((x) => setTimeout(x, 10));
    expect(r.engine.snapshot()).toMatchObject({ phase: 'offline', queued: 1 });
    r.net.online = true;
    const done = new Promise<void>((resolve) => {
      const un = r.engine.subscribe((s) => {
        if (s.phase === 'idle' && s.queued === 0 && s.lastSync) {
          queueMicrotask(() => un());
          resolve();
        }
      });
    });
    target.dispatchEvent(new Event('online'));
    await done;
    off();
  });

  it('entries recorded during a sync wait for the next one (a sync never holds up a job)', async () => {
    const r = await rig();
    await r.engine.setHub(hub.url);
    await r.trail.add(Array.from({ length: 100 }, (_, i) => ({ op: 'identify', device: deviceN(300 + i) })));
    r.net.delay = 50;
    const running = r.engine.syncNow();
    // the "job" records while the push is under way
    await r.trail.add([{ op: 'attest', device: deviceN(300) }, { op: 'attest', device: deviceN(301) }]);
    const s = await running;
    expect(s.phase).toBe('idle');
    await r.engine.recorded();
    expect(r.engine.snapshot().queued).toBe(2);
    r.net.delay = 0;
    expect((await r.engine.syncNow()).queued).toBe(0);
  });
});

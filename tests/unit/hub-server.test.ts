/**
 * The hub over HTTP, as a client, an attacker and an operator see it:
 * signed requests (replay, skew, forged signature, foreign and revoked
 * credentials, permissions), rate limits, errors without internals, CORS,
 * resumable pushes through HubClient, identifier blocks that never overlap,
 * and a hub SIGKILLed in the middle of a push (spawned CLI, embedded storage).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../src/core/sync/auth.ts';
import { HubClient, HubRequestError } from '../../src/core/sync/client.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { configurePools } from '../../src/hub/blocks.ts';
import { openPglite, type HubDb } from '../../src/hub/db.ts';
import { startHub, type RunningHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { deviceN, makeWorld, Trail, type Tech, type World } from '../helpers/hub-world.ts';

let world: World;
let alice: Tech;
let reader: Tech;
let db: HubDb;
let trust: HubTrust;
let hub: RunningHub;
const logs: string[] = [];

beforeAll(async () => {
  world = await makeWorld();
  alice = await world.tech('alice', ['sync']);
  reader = await world.tech('reader', ['sync', 'fleet']);
  db = await openPglite();
  trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
  await configurePools(db, { serial: { pattern: 'FB-{n}', first: 1000, last: 1999 }, devEui: { first: '70b3d57ed0000000', count: 4096 } });
  hub = await startHub({ db, trust, cors: ['https://app.example'], perKey: { rate: 1000, burst: 1000 }, log: (l) => logs.push(l) }, { host: '127.0.0.1', port: 0 });
}, 240_000);

afterAll(async () => {
  await hub?.close();
  await db?.close();
});

const clientOf = (t: Tech, batch?: number) => new HubClient({ url: hub.url, credential: t.credential, signer: t.signer, batch });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HubRequestError) return e.code;
    throw e;
  }
  return 'ok';
}

async function raw(path: string, init: RequestInit = {}) {
  const r = await fetch(hub.url + path, init);
  return { status: r.status, body: (await r.json().catch(() => null)) as { error?: { code: string; message: string } } | null, headers: r.headers };
}

describe('hub API', () => {
  it('pushes through the client, resumes and never duplicates', async () => {
    const t = new Trail(alice);
    await t.add(Array.from({ length: 50 }, (_, i) => ({ op: 'identify', device: deviceN(i) })));
    const c = clientOf(alice, 20);
    const r1 = await c.push(t.export());
    expect(r1).toMatchObject({ accepted: 50, duplicates: 0, head: { seq: 50 }, requests: 4 });
    await t.add([{ op: 'attest', device: deviceN(3) }]);
    const r2 = await c.push(t.export());
    expect(r2).toMatchObject({ accepted: 1, duplicates: 0, head: { seq: 51 }, requests: 2 });
    expect(await c.push(t.export())).toMatchObject({ accepted: 0, requests: 1 });
    expect(await c.head(t.genesis)).toEqual(t.head);
  });

  it('pipelines a push: the next batch is in flight while the hub stores one, and everything is stored once, in order', async () => {
    const t = new Trail(alice);
    await t.add(Array.from({ length: 100 }, (_, i) => ({ op: 'identify', device: deviceN(2000 + i) })));
    let inFlight = 0;
    let most = 0;
    const f: typeof fetch = async (u, init) => {
      most = Math.max(most, ++inFlight);
      try {
        return await fetch(u, init);
      } finally {
        inFlight--;
      }
    };
    const c = new HubClient({ url: hub.url, credential: alice.credential, signer: alice.signer, batch: 10, fetch: f });
    const r = await c.push(t.export());
    expect(r).toMatchObject({ accepted: 100, duplicates: 0, head: t.head });
    // one head request and ten pushes (more only if a batch overtook the one before it, and was sent again)
    expect(r.requests).toBeGreaterThanOrEqual(11);
    expect(most).toBe(2);
    const src = ((await clientOf(reader).sources()).sources as { source: string; problem: unknown }[]).find((s) => s.source === t.genesis);
    expect(src).toMatchObject({ problem: null });
    // one at a time, when asked
    const t2 = new Trail(alice);
    await t2.add(Array.from({ length: 30 }, (_, i) => ({ op: 'identify', device: deviceN(2200 + i) })));
    most = 0;
    expect(await new HubClient({ url: hub.url, credential: alice.credential, signer: alice.signer, batch: 10, pipeline: 1, fetch: f }).push(t2.export())).toMatchObject({ accepted: 30 });
    expect(most).toBe(1);
  });

  it('a pipelined batch that reaches the hub before the one it follows is refused as a gap and sent again; a refused batch stops the push with its own reason', async () => {
    const t = new Trail(alice);
    await t.add(Array.from({ length: 30 }, (_, i) => ({ op: 'identify', device: deviceN(2300 + i) })));
    // the first batch's request is held back (on its way) until the second has been answered
    let first: (() => void) | undefined;
    const codes: number[] = [];
    const f: typeof fetch = async (u, init) => {
      const url = String(u);
      const n = !url.includes('/v1/records') ? 0 : url.includes(`after=${'0'.repeat(64)}`) ? 1 : url.includes(`after=${t.entries[9].hash}`) ? 2 : 3;
      if (n === 1) await new Promise<void>((r) => (first = r));
      const res = await fetch(u, init);
      if (n) codes.push(res.status);
      if (n === 2) first?.();
      return res;
    };
    const c = new HubClient({ url: hub.url, credential: alice.credential, signer: alice.signer, batch: 10, fetch: f });
    expect(await c.push(t.export())).toMatchObject({ accepted: 30, duplicates: 0, head: t.head });
    expect(codes.slice(0, 2)).toEqual([409, 200]);
    expect(await c.head(t.genesis)).toEqual(t.head);
    // a tampered entry in the first of three batches: the push fails with 'modified', not with its followers' refusals
    const t2 = new Trail(alice);
    await t2.add(Array.from({ length: 30 }, (_, i) => ({ op: 'identify', device: deviceN(2400 + i) })));
    const bad = t2.export();
    bad.entries = bad.entries.map((e, i) => (i === 4 ? { ...e, outcome: 'failed' } : e));
    expect(await code(new HubClient({ url: hub.url, credential: alice.credential, signer: alice.signer, batch: 10, pipeline: 3 }).push(bad))).toBe('modified');
    expect(await c.head(t2.genesis)).toBeNull();
  });

  it('refuses unsigned, forged, replayed, skewed and foreign requests with codes that say what to do', async () => {
    expect((await raw('/v1/status')).body?.error?.code).toBe('unauthenticated');
    const h = await signRequest(alice.signer, alice.credential, 'GET', '/v1/status', new Uint8Array(0));
    expect((await raw('/v1/status', { headers: h })).status).toBe(200);
    const again = await raw('/v1/status', { headers: h });
    expect([again.status, again.body?.error?.code]).toEqual([409, 'replayed']);
    // signed for another path
    const other = await signRequest(alice.signer, alice.credential, 'GET', '/v1/bundle', new Uint8Array(0));
    expect((await raw('/v1/status', { headers: other })).body?.error?.code).toBe('unauthenticated');
    // signed by another key than the credential's
    const forged = await signRequest(reader.signer, alice.credential, 'GET', '/v1/status', new Uint8Array(0));
    expect((await raw('/v1/status', { headers: forged })).body?.error?.code).toBe('unauthenticated');
    const old = await signRequest(alice.signer, alice.credential, 'GET', '/v1/status', new Uint8Array(0), Date.now() - 3_600_000);
    expect((await raw('/v1/status', { headers: old })).body?.error?.code).toBe('clock-skew');
    // a body other than the one signed
    const hb = await signRequest(alice.signer, alice.credential, 'POST', '/v1/records', new TextEncoder().encode('{"entries":[]}'));
    expect((await raw('/v1/records', { method: 'POST', headers: hb, body: '{"entries":[1]}' })).body?.error?.code).toBe('unauthenticated');
    const foreign = await (await makeWorld()).tech('mallory');
    expect(await code(clientOf(foreign).status())).toBe('bad-credential');
    expect((await raw('/v1/nope')).body?.error?.code).toBe('not-found');
  });

  it('takes permissions from the credential', async () => {
    expect(await code(clientOf(alice).duplicates())).toBe('permission');
    expect(await code(clientOf(reader).duplicates())).toBe('ok');
    const s = await clientOf(reader).status();
    expect(s).toMatchObject({ storage: 'pglite', caller: { technician: 'reader' } });
  });

  it('answers a bad body and an internal failure without internals', async () => {
    const c = clientOf(alice);
    expect(await code(c.request('POST', '/v1/records', { nope: 1 }))).toBe('bad-request');
    const before = logs.length;
    // break the database underneath one request: the caller gets an id, the log the details
    await db.query('ALTER TABLE sources RENAME TO sources_x');
    let err: HubRequestError | undefined;
    try {
      const t = new Trail(alice);
      await t.add([{ op: 'identify', device: deviceN(1) }]);
      await c.request('POST', '/v1/records', { ...t.export(), credentials: [alice.credentialB64] });
    } catch (e) {
      err = e as HubRequestError;
    } finally {
      await db.query('ALTER TABLE sources_x RENAME TO sources');
    }
    expect(err?.code).toBe('internal');
    expect(err?.message).not.toMatch(/sources|relation|SQL|postgres/i);
    expect(logs.length).toBe(before + 1);
    expect(logs.at(-1)).toContain(String(err?.extra.id));
  });

  it('rate-limits per key with Retry-After', async () => {
    const limited = await startHub({ db, trust, perKey: { rate: 1, burst: 3 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
    try {
      const c = new HubClient({ url: limited.url, credential: alice.credential, signer: alice.signer });
      const codes = [];
      for (let i = 0; i < 5; i++) codes.push(await code(c.status()));
      expect(codes.slice(0, 3)).toEqual(['ok', 'ok', 'ok']);
      expect(codes.at(-1)).toBe('rate-limited');
    } finally {
      await limited.close();
    }
  });

  it('CORS only for the configured origin', async () => {
    const ok = await fetch(hub.url + '/v1/status', { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const no = await fetch(hub.url + '/v1/status', { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
    expect(no.status).toBe(403);
    expect(no.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('a revoked pusher is refused once the hub holds the revoking bundle', async () => {
    const bob = await world.tech('bob', ['sync']);
    const t = new Trail(bob);
    await t.add([{ op: 'identify', device: deviceN(77) }]);
    expect(await code(clientOf(bob).push(t.export()))).toBe('ok');
    const revoking = await world.revoke([bob.credentialId]);
    expect(await code(clientOf(alice).putBundle(revoking))).toBe('permission');
    expect(await clientOf(reader).putBundle(revoking)).toEqual({ version: world.bundleVersion });
    await t.add([{ op: 'identify', device: deviceN(78) }]);
    expect(await code(clientOf(bob).push(t.export()))).toBe('revoked');
    // bob's entries pushed by someone else are refused too
    expect(await code(clientOf(alice).push(t.export(), [bob.credential]))).toBe('revoked');
  });

  it('hands out identifier blocks that never overlap, and the same block again on a retry', async () => {
    const c = clientOf(alice);
    const req = (i: number) => ({ station: `st-${i}`, request: i.toString(16).padStart(32, '0'), serial: 100, devEui: 256 });
    const got = (await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => c.block(req(i))))) as { serial: { first: number; last: number; pattern: string }; devEui: { first: string; count: number } }[];
    const serials = got.map((g) => [g.serial.first, g.serial.last]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < serials.length; i++) expect(serials[i][0]).toBeGreaterThan(serials[i - 1][1]);
    expect(serials[0][0]).toBe(1000);
    expect(got[0].serial.pattern).toBe('FB-{n}');
    const eui = got.map((g) => BigInt('0x' + g.devEui.first)).sort((a, b) => (a < b ? -1 : 1));
    for (let i = 1; i < eui.length; i++) expect(eui[i] - eui[i - 1]).toBeGreaterThanOrEqual(256n);
    expect(await c.block(req(3))).toEqual(got[3]);
    expect(await code(c.block({ ...req(99), serial: 500 }))).toBe('exhausted');
    expect(await code(c.block({ station: 'x', request: 'ab'.repeat(16), mac: 1 }))).toBe('not-found');
  });
});

describe('fieldbench hub verbs', () => {
  it('push, status, duplicates, lookup, block: exit codes and output', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const dir = mkdtempSync(join(tmpdir(), 'fieldbench-hub-cli-'));
    try {
      const carol = await world.tech('carol', ['sync', 'fleet']);
      writeFileSync(join(dir, 'cred.cbor'), carol.credential);
      writeFileSync(join(dir, 'key.pem'), privateKeyPem(carol.seed));
      const t = new Trail(carol);
      await t.add([{ op: 'identify', device: deviceN(500, { devEui: '70b3d5aaaaaa0001' }) }, { op: 'identify', device: deviceN(501, { devEui: '70b3d5aaaaaa0001' }) }]);
      writeFileSync(join(dir, 'trail.json'), JSON.stringify(t.export()));
      const run = async (...argv: string[]) => {
        let out = '';
        let err = '';
        const code = await main([...argv, '--hub', hub.url, '--credential', join(dir, 'cred.cbor'), '--key', join(dir, 'key.pem')], { out: (x) => (out += x), err: (x) => (err += x), cwd: dir });
        return { code, out, err };
      };
      const p = await run('hub', 'push', 'trail.json');
      expect(p.code).toBe(0);
      expect(p.out).toContain('2 new');
      expect((await run('hub', 'push', 'trail.json')).out).toContain('0 new');
      const d = await run('hub', 'duplicates');
      expect(d.code).toBe(1);
      expect(d.out).toContain('70b3d5aaaaaa0001');
      expect(d.out).toContain('carol');
      const l = await run('hub', 'lookup', 'devEui', '70b3d5aaaaaa0001');
      expect(JSON.parse(l.out).collision).toBe(true);
      const s = await run('hub', 'status', '--json');
      expect(JSON.parse(s.out).caller.technician).toBe('carol');
      const b = await run('hub', 'block', '--station', 'line-1', '--serial', '5');
      expect(JSON.parse(b.out).serial.last - JSON.parse(b.out).serial.first).toBe(4);
      expect((await run('hub', 'push', 'missing.json')).code).toBe(2);
      // refused by the hub: exit 1 with the code
      const foreign = await (await makeWorld()).tech('mallory');
      writeFileSync(join(dir, 'cred.cbor'), foreign.credential);
      const r = await run('hub', 'status');
      expect(r.err + r.out).toContain('bad-credential');
      expect(r.code).toBe(1);
      expect(r.err).toContain('bad-credential');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('a hub killed in the middle of a push', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function spawnHub(): Promise<{ url: string; proc: ChildProcess; banner: string }> {
    const proc = spawn(process.execPath, ['src/cli/bin.mjs', 'hub', '--listen', '127.0.0.1:0', '--data', join(dir, 'data'), '--owner-key', join(dir, 'owner.pem'), '--bundle', join(dir, 'bundle.cbor')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let out = '';
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const url = await new Promise<string>((resolve, reject) => {
      proc.stdout!.on('data', (d) => {
        out += d;
        const m = /listening on (http:\/\/[^\s]+).*\n/.exec(out);
        if (m) resolve(m[1]);
      });
      proc.once('exit', (c) => reject(new Error(`hub exited ${c}: ${err}`)));
    });
    return { url, proc, banner: out };
  }

  it('loses nothing and duplicates nothing after a restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'fieldbench-hub-kill-'));
    writeFileSync(join(dir, 'owner.pem'), publicKeyPem(world.owner.publicKey));
    writeFileSync(join(dir, 'bundle.cbor'), world.bundle);
    const t = new Trail(alice);
    const N = 6000;
    await t.add(Array.from({ length: N }, (_, i) => ({ op: 'identify', device: deviceN(i % 500), details: { model: 'fb-sensor' } })));
    const first = await spawnHub();
    // the built CLI finds its verification worker (dist-cli/hub-verify-worker.mjs) and its PGlite worker (dist-cli/hub-pglite-worker.mjs)
    expect(first.banner).toMatch(/verifying on [1-9]\d* worker thread/);
    expect(first.banner).toMatch(/\(pglite in .* on its own thread,/);
    const c1 = new HubClient({ url: first.url, credential: alice.credential, signer: alice.signer, batch: 500 });
    let killedAt = -1;
    const pushing = c1.push(t.export(), [], (done) => {
      if (done >= 1500 && killedAt < 0) {
        killedAt = done;
        first.proc.kill('SIGKILL');
      }
    });
    expect(await code(pushing)).toBe('offline');
    // (it may have exited already: the push failed only once its connections closed)
    if (first.proc.exitCode === null && first.proc.signalCode === null) await new Promise((r) => first.proc.once('exit', r));
    expect(killedAt).toBeGreaterThan(0);
    const second = await spawnHub();
    const c2 = new HubClient({ url: second.url, credential: alice.credential, signer: alice.signer, batch: 2000 });
    const head = await c2.head(t.genesis);
    // what the hub acknowledged survived
    expect(head!.seq).toBeGreaterThanOrEqual(killedAt);
    expect(head!.hash).toBe(t.entries[head!.seq - 1].hash);
    const r = await c2.push(t.export());
    expect(r.head).toEqual(t.head);
    expect(r.accepted).toBe(N - head!.seq);
    // every entry once: the head is N and the chain was checked link by link on arrival
    const again = await c2.push(t.export());
    expect(again).toMatchObject({ accepted: 0, requests: 1 });
    second.proc.kill('SIGTERM');
    await new Promise((r2) => second.proc.once('exit', r2));
  }, 300_000);

  it('an idle hub stops on SIGTERM (its verification worker and PGlite thread end with it)', async () => {
    // (before, an idle hub's process outlived SIGTERM: the process-wide verification pool was never closed)
    if (!dir) {
      dir = mkdtempSync(join(tmpdir(), 'fieldbench-hub-kill-'));
      writeFileSync(join(dir, 'owner.pem'), publicKeyPem(world.owner.publicKey));
      writeFileSync(join(dir, 'bundle.cbor'), world.bundle);
    }
    const idle = await spawnHub();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => idle.proc.once('exit', (code, signal) => r({ code, signal })));
    idle.proc.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
  }, 120_000);
});

/**
 * A station fed by the fleet hub's identifier blocks (src/core/factory/hub-blocks.ts, on disk
 * through fileHubAllocator): two stations allocating at once, across several blocks each, never
 * issue the same serial, DevEUI or MAC; a station restarted at any point (a request journaled and
 * its reply lost, a torn ledger line, a block half used) never takes a second block for one request
 * and never reissues an identifier; offline, a station works inside its block and says so when it
 * runs out; `bench run --hub` takes its first block before any unit.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AllocatedIds, type IdentifierBlock, type IdentifierPolicy, compilePolicy } from '../../src/core/factory/identifiers.ts';
import { type BlockSource, type HubAllocator } from '../../src/core/factory/hub-blocks.ts';
import { fileHubAllocator } from '../../src/core/factory/journal-node.ts';
import { HubClient } from '../../src/core/sync/client.ts';
import { listBlocks } from '../../src/hub/blocks.ts';
import type { HubDb } from '../../src/hub/db.ts';
import type { RunningHub } from '../../src/hub/server.ts';
import type { Tech, World } from '../helpers/hub-world.ts';
import { stationsHub, type StationsHub } from '../helpers/hub-stations.ts';

const POLICY: IdentifierPolicy = { serial: { pattern: 'FB-{n:06}', first: 1, last: 999 }, devEui: { first: '70b3d57ed0000000', count: 900 }, mac: { first: '02fb00000000', count: 900 } };
let world: World;
let st1: Tech;
let st2: Tech;
let db: HubDb;
let hub: RunningHub;
const dirs: string[] = [];

let stations: StationsHub | undefined;
beforeAll(async () => {
  stations = await stationsHub(POLICY);
  ({ world, st1, st2, db, hub } = stations);
}, 240_000);

afterAll(async () => {
  await stations?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'fb-hub-station-'));
  dirs.push(d);
  return d;
};
const source = (t: Tech): BlockSource => {
  const c = new HubClient({ url: hub.url, credential: t.credential, signer: t.signer });
  return async (req) => ((await c.block(req)) as { block: IdentifierBlock }).block;
};
const station = (t: Tech, dir: string, extra: { source?: BlockSource; units?: number; lowWater?: number } = {}): HubAllocator =>
  fileHubAllocator(POLICY, dir, { station: t.id, units: extra.units ?? 5, source: extra.source ?? source(t), ...(extra.lowWater !== undefined ? { lowWater: extra.lowWater } : {}) });

/** Every identifier of every allocation, with who got it; a second issue fails the test. */
function ledger() {
  const issued = new Map<string, string>();
  return {
    issued,
    take(ids: AllocatedIds, who: string) {
      for (const k of [`serial:${ids.serial}`, `devEui:${ids.devEui}`, `mac:${ids.mac}`]) {
        expect(issued.get(k), `${k} issued to ${who} and to ${issued.get(k)}`).toBeUndefined();
        issued.set(k, who);
      }
    },
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return String((e as { code?: string }).code ?? e);
  }
}

describe('a station on hub blocks', () => {
  it('two stations allocating at once, over several blocks each, never issue an identifier twice', async () => {
    const a = station(st1, tmp());
    const b = station(st2, tmp());
    const l = ledger();
    // 8 ports per station allocating together: 23 units each, blocks of 5
    await Promise.all(
      [a, b].flatMap((alloc, s) =>
        Array.from({ length: 8 }, async (_, port) => {
          for (let k = port; k < 23; k += 8) {
            const ids = await alloc.allocate(`station-${s + 1} port ${port} unit ${k}`);
            l.take(ids, `station-${s + 1}`);
            await alloc.commit(ids, k % 7 === 0 ? 'failed' : 'provisioned');
          }
        }),
      ),
    );
    expect(l.issued.size).toBe(3 * 46);
    // close first: it waits for a next-block request still in flight (granted by the hub, not yet in the ledger)
    await a.close();
    await b.close();
    const [ba, bb] = [await a.blocks(), await b.blocks()];
    expect(ba.length).toBeGreaterThanOrEqual(5);
    expect(bb.length).toBeGreaterThanOrEqual(5);
    // the hub's record of who holds what is the stations' ledgers
    const held = (await listBlocks(db)).filter((x) => x.kind === 'units');
    expect(held.filter((x) => x.station === 'station-1').map((x) => Number(x.first)).sort((x, y) => x - y)).toEqual(ba.map((x) => x.start).sort((x, y) => x - y));
  });

  it('a restart never takes a second block for one request and never reissues an identifier', async () => {
    const dir = tmp();
    const l = ledger();
    // the hub grants, but the reply is lost (the station crashed, the network dropped it)
    let lose = true;
    const real = source(st1);
    const lossy: BlockSource = async (req) => {
      const blk = await real(req);
      if (lose) throw new Error('connection reset by peer');
      return blk;
    };
    const first = station(st1, dir, { source: lossy });
    expect(await codeOf(first.allocate('u0'))).toBe('exhausted');
    await first.close();
    const before = (await listBlocks(db)).filter((x) => x.station === 'station-1').length;
    lose = false;
    // restarted: the pending request is asked again with the same id: the same block
    const second = station(st1, dir);
    for (let i = 0; i < 3; i++) {
      const ids = await second.allocate(`u${i}`);
      l.take(ids, 'run 2');
      if (i < 2) await second.commit(ids, 'provisioned'); // the third is left uncommitted: the station "crashes"
    }
    expect((await listBlocks(db)).filter((x) => x.station === 'station-1').length).toBe(before);
    const blocks2 = await second.blocks();
    await second.close();
    // a torn ledger line (a crash in the middle of journaling the next request) is cut off
    appendFileSync(join(dir, 'hub-blocks.jsonl'), '{"t":"r","request":"00');
    const third = station(st1, dir);
    for (let i = 3; i < 14; i++) {
      const ids = await third.allocate(`u${i}`);
      l.take(ids, 'run 3');
      await third.commit(ids, 'provisioned');
    }
    const entries = await third.entries();
    // the allocation the crash left open is failed ('interrupted'), never reissued (ledger() checks every issue)
    expect(entries.filter((e) => e.detail === 'interrupted')).toHaveLength(1);
    const blocks3 = await third.blocks();
    expect(blocks3.slice(0, blocks2.length)).toEqual(blocks2);
    expect(blocks3.length).toBeGreaterThanOrEqual(3);
    await third.close();
  });

  it('offline, a station works inside its block and says so when it runs out', async () => {
    const dir = tmp();
    let online = true;
    const real = source(st2);
    const flaky: BlockSource = async (req) => {
      if (!online) throw new Error('hub unreachable (ECONNREFUSED)');
      return real(req);
    };
    const alloc = station(st2, dir, { source: flaky, units: 4, lowWater: 0 });
    await alloc.takeBlock();
    online = false;
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push((await alloc.allocate(`u${i}`)).serial);
    expect(new Set(got).size).toBe(4);
    const err = await alloc.allocate('u4').catch((e) => e);
    expect(err.code).toBe('exhausted');
    expect(err.message).toMatch(/hub unreachable/);
    online = true;
    expect(got).not.toContain((await alloc.allocate('u4')).serial);
    await alloc.close();
  });

  it('a ledger of another station or policy is refused', async () => {
    const dir = tmp();
    const a = station(st1, dir);
    await a.takeBlock();
    await a.close();
    expect(await codeOf(station(st2, dir).remaining())).toBe('journal-mismatch');
    const lines = readFileSync(join(dir, 'hub-blocks.jsonl'), 'utf8').split('\n');
    lines[1] = lines[1].replace('"t":"r"', '"t":"R"');
    writeFileSync(join(dir, 'hub-blocks.jsonl'), lines.join('\n'));
    expect(await codeOf(station(st1, dir).remaining())).toBe('journal-corrupt');
  });
});

describe('fieldbench bench run --hub', () => {
  it('takes a block before the first unit, the next before it runs out, and keeps them across runs', async () => {
    const { spawn } = await import('node:child_process');
    const { issueCredential } = await import('../../src/core/trust/credential.ts');
    const { privateKeyPem, publicKeyPem } = await import('../../src/core/trust/keys.ts');
    const { factoryWorld } = await import('../helpers/factory-world.ts');
    const { main } = await import('../../src/cli/main.ts');
    // the line's authorities are the hub's: its owner signs the station's credential (with 'sync')
    const w = await factoryWorld({ policy: POLICY, auth: await lineAuthorities() });
    const dir = tmp();
    const f = (n: string) => join(dir, n);
    writeFileSync(f('profile.cose'), w.profileBytes);
    writeFileSync(f('bundle.cose'), w.auth.bundle);
    writeFileSync(f('image.bin'), w.image);
    writeFileSync(f('manufacturer.pem'), privateKeyPem(w.auth.manufacturer.privateKey));
    writeFileSync(f('manufacturer.pub.pem'), publicKeyPem(w.auth.manufacturer.publicKey));
    writeFileSync(f('owner.pub.pem'), publicKeyPem(w.auth.owner.publicKey));
    writeFileSync(f('firmware.pub.pem'), publicKeyPem(w.auth.firmware.publicKey));
    writeFileSync(f('station.pem'), privateKeyPem(w.station.privateKey));
    const cred = await issueCredential(
      { technicianId: 'line-3', name: 'Line 3 station', publicKey: w.station.publicKey, permissions: ['configure', 'interfaces', 'attest', 'identify', 'sync'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + 86400_000) },
      w.auth.owner.privateKey,
    );
    writeFileSync(f('station.cred'), cred);
    const bin = join(__dirname, '../../src/cli/bin.mjs');
    const devices = spawn(process.execPath, [bin, 'device', '--listen', 'tcp://127.0.0.1:0', '--count', '3', '--unprovisioned', '--manufacturer-pub', f('manufacturer.pub.pem'), '--owner-key', f('owner.pub.pem'), '--trust-key', f('firmware.pub.pem')], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const ports = await new Promise<string[]>((resolve, reject) => {
        let out = '';
        devices.stdout!.on('data', (d) => {
          out += d;
          const found = [...out.matchAll(/reference device on (tcp:\S+)/g)].map((m) => m[1]);
          if (found.length === 3) resolve(found);
        });
        devices.on('exit', (code) => reject(new Error(`devices exited ${code}: ${out}`)));
      });
      const common = ['--owner-key', f('owner.pub.pem'), '--bundle', f('bundle.cose'), '--image', f('image.bin'), '--manufacturer-key', f('manufacturer.pem'), '--station-key', f('station.pem'), '--credential', f('station.cred')];
      const bench = async (args: string[]) => {
        let out = '';
        let err = '';
        const rc = await main(['bench', 'run', f('profile.cose'), '--records', f('records'), ...common, '--once', '--json', ...args], { out: (x) => (out += x), err: (x) => (err += x), cwd: dir });
        return { rc, err, lines: out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
      };
      // the hub is down: nothing starts
      const down = await bench(['--port', ports[0], '--hub', 'http://127.0.0.1:1', '--block-units', '2']);
      expect(down.rc).toBe(1);
      expect(down.err).toMatch(/no identifiers/);
      expect(down.lines.filter((l) => l.event === 'unit-start')).toHaveLength(0);
      // blocks of 2 units: one at the start, the next when one unit is left
      const r = await bench([...ports.slice(0, 2).flatMap((p) => ['--port', p]), '--hub', hub.url, '--block-units', '2']);
      expect(r.rc, r.err).toBe(0);
      const granted = r.lines.filter((l) => l.event === 'hub-block-granted');
      expect(granted.length).toBeGreaterThanOrEqual(1);
      const ends = r.lines.filter((l) => l.event === 'unit-end');
      expect(ends.map((e) => e.verdict)).toEqual(['provisioned', 'provisioned']);
      const held = (await listBlocks(db)).filter((b) => b.station === 'line-3');
      const inHeld = (serial: string) => held.some((b) => { const n = Number(serial.slice(3)) - POLICY.serial.first; return n >= Number(b.first) && n < Number(b.first) + b.count; });
      expect(ends.every((e) => inHeld(String(e.serial)))).toBe(true);
      // a second run (a restart) on the third unit: the blocks it holds first, nothing reissued
      const r2 = await bench(['--port', ports[2], '--hub', hub.url, '--block-units', '2']);
      expect(r2.rc, r2.err).toBe(0);
      const end3 = r2.lines.find((l) => l.event === 'unit-end')!;
      expect(end3.verdict).toBe('provisioned');
      expect(ends.map((e) => e.serial)).not.toContain(end3.serial);
      // ... from the block taken ahead of time in the first run
      expect(inHeld(String(end3.serial))).toBe(true);
      // every block the hub gave this station is in its ledger, once (no request got two)
      const grants = readFileSync(f('records/hub-blocks.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l.split('\t')[0])).filter((x) => x.t === 'g');
      expect(new Set(grants.map((g) => g.request)).size).toBe(grants.length);
      expect(grants.map((g) => g.block.start).sort()).toEqual((await listBlocks(db)).filter((b) => b.station === 'line-3').map((b) => Number(b.first)).sort());
    } finally {
      devices.kill();
    }
  }, 240_000);
});

/** The hub's owner as the line's owner (the hub pins world.owner), with fresh manufacturer and firmware keys. */
async function lineAuthorities() {
  const { makeAuthorities } = await import('../../src/device/provisioning.ts');
  return makeAuthorities({ owner: world.owner });
}

describe('the clone check across hub blocks', () => {
  // blocks of 2 from a stand-in source: the second unit lands in a block whose own journal never saw the first
  const localSource = (): BlockSource => {
    let start = 0;
    const digest = compilePolicy(POLICY).digest;
    return async (req) => {
      const b = { id: `b${start}`, start, count: req.units, policy: digest };
      start += req.units;
      return b;
    };
  };
  const U = 'a1b2c3d4e5f60718';
  const K1 = '11'.repeat(32);
  const K2 = '22'.repeat(32);

  it('a chip UID certified in one block is refused for another key in the next block, also after a restart', async () => {
    const dir = tmp();
    const src = localSource();
    const a = fileHubAllocator(POLICY, dir, { station: 'st', units: 2, lowWater: 0, source: src });
    const first = await a.allocate('jig-1', { uid: U, key: K1 });
    await a.commit(first, 'provisioned');
    const filler = await a.allocate('jig-2', { uid: 'ffee'.repeat(4), key: '33'.repeat(32) });
    await a.commit(filler, 'provisioned');
    // block b0 is used up: the clone's allocation goes to a new block
    expect(await codeOf(a.allocate('jig-3', { uid: U, key: K2 }))).toBe('duplicate-uid');
    expect((await a.blocks()).length).toBe(2);
    // the original's retry (same key) and a unit that is not a clone still go through
    const other = await a.allocate('jig-3', { uid: '0102030405060708', key: '44'.repeat(32) });
    await a.commit(other, 'provisioned');
    expect(await codeOf(a.hold({ uid: U, key: K2, serial: other.serial }))).toBe('duplicate-uid');
    await a.close();

    const b = fileHubAllocator(POLICY, dir, { station: 'st', units: 2, lowWater: 0, source: src });
    expect(await codeOf(b.allocate('jig-1', { uid: U, key: K2 }))).toBe('duplicate-uid');
    expect((await b.certifiedChips()).filter((c) => c.uid === U).map((c) => c.key)).toEqual([K1]);
    await b.close();
  });

  it('two ports certifying one chip UID at once in different blocks: the second is refused', async () => {
    const a = fileHubAllocator(POLICY, tmp(), { station: 'st', units: 1, lowWater: 0, source: localSource() });
    const one = await a.allocate('jig-1', { uid: U, key: K1 });
    // block of 1 is used up; this allocation would go to the next block while the first is uncommitted
    expect(await codeOf(a.allocate('jig-2', { uid: U, key: K2 }))).toBe('duplicate-uid');
    await a.commit(one, 'provisioned');
    await a.close();
  });
});

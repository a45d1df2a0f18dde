/**
 * Identifier blocks from the hub, used by stations' allocators as they are:
 * `fieldbench hub block --units N` answers an IdentifierBlock of the hub's
 * policy; two stations allocating every unit of their blocks (plus per-kind
 * blocks taken in between) never issue the same serial, DevEUI or MAC; a
 * block of another policy is refused by the station; a retry gets the same
 * block; an exhausted policy says how many are left.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockAllocator, type IdentifierBlock, type IdentifierPolicy } from '../../src/core/factory/identifiers.ts';
import { HubClient, HubRequestError } from '../../src/core/sync/client.ts';
import { privateKeyPem } from '../../src/core/trust/keys.ts';
import type { HubDb } from '../../src/hub/db.ts';
import type { RunningHub } from '../../src/hub/server.ts';
import type { Tech, World } from '../helpers/hub-world.ts';
import { stationsHub, type StationsHub } from '../helpers/hub-stations.ts';

const POLICY: IdentifierPolicy = { serial: { pattern: 'FB-{n:06}', first: 1000, last: 1999 }, devEui: { first: '70b3d57ed0000000', count: 800 }, mac: { first: 'f412fa000000', count: 900 } };
let world: World;
let st1: Tech;
let st2: Tech;
let db: HubDb;
let hub: RunningHub;

let stations: StationsHub | undefined;
beforeAll(async () => {
  stations = await stationsHub(POLICY);
  ({ world, st1, st2, db, hub } = stations);
}, 240_000);

afterAll(async () => {
  await stations?.close();
});

const client = (t: Tech) => new HubClient({ url: hub.url, credential: t.credential, signer: t.signer });
const req = (station: string, i: number, body: Record<string, number>) => ({ station, request: i.toString(16).padStart(32, '0'), ...body });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HubRequestError) return e.code;
    if (e && typeof e === 'object' && 'code' in e) return String((e as { code: unknown }).code);
    throw e;
  }
  return 'ok';
}

describe('hub blocks for station allocators', () => {
  it('two stations never issue the same serial, DevEUI or MAC', async () => {
    const [a, b] = (await Promise.all([client(st1).block(req('station-1', 1, { units: 120 })), client(st2).block(req('station-2', 2, { units: 150 }))])) as { block: IdentifierBlock }[];
    // a per-kind block taken in between, then more unit blocks
    const perKind = (await client(st1).block(req('station-1', 3, { serial: 10, devEui: 5 }))) as { serial: { first: number; last: number }; devEui: { first: string; count: number } };
    const c = (await client(st2).block(req('station-2', 4, { units: 30 }))) as { block: IdentifierBlock };
    const issued = new Map<string, string>();
    const take = (what: string, who: string) => {
      expect(issued.get(what), `${what} issued to ${who} and ${issued.get(what)}`).toBeUndefined();
      issued.set(what, who);
    };
    for (const [who, g] of [['station-1', a], ['station-2', b], ['station-2', c]] as const) {
      const alloc = blockAllocator(POLICY, g.block);
      for (let i = 0; i < g.block.count; i++) {
        const ids = await alloc.allocate(`${who}-unit-${i}`);
        await alloc.commit(ids, 'provisioned');
        take(`serial:${ids.serial}`, who);
        take(`devEui:${ids.devEui}`, who);
        take(`mac:${ids.mac}`, who);
      }
      // the allocator never leaves its block
      expect(await code(alloc.allocate('one-more'))).toBe('exhausted');
    }
    for (let s = perKind.serial.first; s <= perKind.serial.last; s++) take(`serial:FB-${String(s).padStart(6, '0')}`, 'per-kind');
    for (let i = 0n; i < BigInt(perKind.devEui.count); i++) take(`devEui:${(BigInt('0x' + perKind.devEui.first) + i).toString(16).padStart(16, '0')}`, 'per-kind');
    expect(issued.size).toBe(3 * 300 + 15);
    // a retry gets the same block; an exhausted policy says what is left (800 DevEUIs limit it)
    expect(await client(st1).block(req('station-1', 1, { units: 120 }))).toEqual(a);
    const left = await code(client(st1).block(req('station-1', 5, { units: 700 })));
    expect(left).toBe('exhausted');
    expect(await code(client(st1).block(req('station-1', 6, { units: 1, serial: 1 })))).toBe('bad-request');
  });

  it('a station refuses a block cut from another policy', async () => {
    const g = (await client(st1).block(req('station-1', 7, { units: 5 }))) as { block: IdentifierBlock };
    const other: IdentifierPolicy = { ...POLICY, serial: { ...POLICY.serial, pattern: 'XX-{n:06}' } };
    expect(() => blockAllocator(other, g.block)).toThrow(expect.objectContaining({ code: 'invalid-block' }));
  });

  it('fieldbench hub block --units prints the block the station uses as it is', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const dir = mkdtempSync(join(tmpdir(), 'fieldbench-hub-block-'));
    try {
      writeFileSync(join(dir, 'cred.cbor'), st2.credential);
      writeFileSync(join(dir, 'key.pem'), privateKeyPem(st2.seed));
      let out = '';
      const rc = await main(['hub', 'block', '--station', 'station-2', '--units', '4', '--hub', hub.url, '--credential', 'cred.cbor', '--key', 'key.pem'], { out: (x) => (out += x), err: () => undefined, cwd: dir });
      expect(rc).toBe(0);
      const g = JSON.parse(out) as { block: IdentifierBlock };
      const alloc = blockAllocator(POLICY, g.block);
      expect((await alloc.allocate('u')).serial).toMatch(/^FB-\d{6}$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

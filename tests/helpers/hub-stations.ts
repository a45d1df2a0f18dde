/**
 * A hub (in-memory PGlite, on a free port) with identifier pools and two
 * stations holding 'sync' credentials: the setup of the identifier-block
 * tests (hub-blocks, factory-hub-blocks).
 */
import type { IdentifierPolicy } from '../../src/core/factory/identifiers.ts';
import { configurePools } from '../../src/hub/blocks.ts';
import { openPglite, type HubDb } from '../../src/hub/db.ts';
import { startHub, type RunningHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { makeWorld, type Tech, type World } from './hub-world.ts';

export interface StationsHub {
  world: World;
  st1: Tech;
  st2: Tech;
  db: HubDb;
  hub: RunningHub;
  close(): Promise<void>;
}

export async function stationsHub(policy: IdentifierPolicy): Promise<StationsHub> {
  const world = await makeWorld();
  const st1 = await world.tech('station-1', ['sync']);
  const st2 = await world.tech('station-2', ['sync']);
  const db = await openPglite();
  const trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
  await configurePools(db, policy);
  const hub = await startHub({ db, trust, perKey: { rate: 1000, burst: 1000 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
  return {
    world, st1, st2, db, hub,
    close: async () => {
      await hub.close();
      await db.close();
    },
  };
}

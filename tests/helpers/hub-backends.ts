/**
 * The hub's two storage backends for a test file: embedded PGlite and a real
 * PostgreSQL (a throwaway cluster per file, a fresh database per test).
 * `describe.each(backends())` runs the same suite against both; without
 * PostgreSQL binaries its half reports why (one failing-to-skip note, not a pass).
 */
import { afterAll } from 'vitest';
import { openPglite, openPostgres, type HubDb } from '../../src/hub/db.ts';
import { startPostgres, type PgCluster } from './pg-cluster.ts';

export interface Backend {
  name: 'pglite' | 'postgres';
  open(): Promise<HubDb>;
  /** Set when this backend cannot run here. */
  skip?: string;
}

let cluster: Promise<PgCluster | { skip: string }> | undefined;
let n = 0;

function pgCluster(): Promise<PgCluster | { skip: string }> {
  cluster ??= startPostgres();
  return cluster;
}

afterAll(async () => {
  const c = await cluster;
  if (c && 'stop' in c) c.stop();
});

const TABLES = ['device_tags', 'campaign_results', 'campaigns', 'artifacts', 'blocks', 'block_pools', 'drift', 'collisions', 'sightings', 'devices', 'nonces', 'trust', 'entries', 'sources'];

/** A database shared by the file's tests (starting one is slow), emptied for each test; close() keeps it open. */
function shared(make: () => Promise<HubDb>): () => Promise<HubDb> {
  let db: Promise<HubDb> | undefined;
  afterAll(async () => {
    if (db) await (await db).close();
  });
  return async () => {
    db ??= make();
    const d = await db;
    await d.query(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY CASCADE`);
    return { kind: d.kind, query: d.query, transaction: d.transaction, close: async () => undefined };
  };
}

export function backends(): Backend[] {
  return [
    { name: 'pglite', open: shared(() => openPglite()) },
    {
      name: 'postgres',
      open: shared(async () => {
        const c = await pgCluster();
        if ('skip' in c) throw new Error(c.skip);
        const url = await c.createDatabase(`t${process.pid}_${++n}`);
        return openPostgres(url, { max: 4 });
      }),
    },
  ];
}

/** The URL of a fresh database on the file's cluster, or the reason there is none. */
export async function freshPostgresUrl(): Promise<string | { skip: string }> {
  const c = await pgCluster();
  if ('skip' in c) return c;
  return c.createDatabase(`t${process.pid}_${++n}`);
}

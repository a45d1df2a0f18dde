/**
 * The hub's storage: PostgreSQL, either embedded (PGlite, PostgreSQL compiled
 * to WebAssembly, in a data folder) or a PostgreSQL server (node-postgres).
 * Both speak the same SQL; the hub only uses this small interface, so the same
 * code and the same tests run against both.
 *
 * Values cross the interface as text, numbers, JSON and bytes (bytea columns
 * come back as Uint8Array from PGlite and as Buffer, a Uint8Array, from pg).
 */
import { MIGRATIONS } from './schema.ts';

export interface Sql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

export interface HubDb extends Sql {
  readonly kind: 'pglite' | 'postgres';
  /** Run fn in one transaction (BEGIN ... COMMIT, ROLLBACK on throw). */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export class HubDbError extends Error {
  readonly code = 'database';
  constructor(message: string) {
    super(message);
    this.name = 'HubDbError';
  }
}

/** Embedded PostgreSQL (PGlite) in `dir` (created when missing); `undefined` = in memory. */
export async function openPglite(dir?: string): Promise<HubDb> {
  const { PGlite } = await import('@electric-sql/pglite');
  const pg = dir ? await PGlite.create({ dataDir: dir }) : await PGlite.create();
  // PGlite runs one query at a time; transactions must not interleave with
  // other queries, so every use goes through one queue.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const q = async <T>(text: string, params?: unknown[]): Promise<T[]> => (await pg.query<T>(text, params as never[])).rows;
  const db: HubDb = {
    kind: 'pglite',
    query: (text, params) => serial(() => q(text, params)),
    transaction: (fn) => serial(() => pg.transaction(async (tx) => fn({ query: async (t, p) => (await tx.query(t, p as never[])).rows as never })) as never),
    close: () => serial(() => pg.close()),
  };
  await migrate(db);
  return db;
}

/** A PostgreSQL server, e.g. postgres://user:pass@host:5432/db or postgres://user@/db?host=/socket/dir. */
export async function openPostgres(url: string, opts: { max?: number } = {}): Promise<HubDb> {
  const pgmod = await import('pg');
  const Pool = (pgmod.default ?? pgmod).Pool;
  const pool = new Pool({ connectionString: url, max: opts.max ?? 8 });
  pool.on('error', () => undefined); // an idle client's error is reported by the next query
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new HubDbError(`cannot reach the PostgreSQL server (${(e as Error).message}); check --database`);
  }
  const db: HubDb = {
    kind: 'postgres',
    query: async (text, params) => (await pool.query(text, params)).rows,
    transaction: async (fn) => {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const r = await fn({ query: async (t, p) => (await c.query(t, p)).rows });
        await c.query('COMMIT');
        return r;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  };
  await migrate(db);
  return db;
}

export function openHubDb(opts: { database?: string; data?: string }): Promise<HubDb> {
  return opts.database ? openPostgres(opts.database) : openPglite(opts.data);
}

/**
 * Apply every migration the database has not seen, each in its own
 * transaction, recorded in hub_migrations. An advisory lock keeps two hubs
 * starting on one server from migrating at once.
 */
export async function migrate(db: HubDb): Promise<number> {
  await db.query('CREATE TABLE IF NOT EXISTS hub_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
  let applied = 0;
  for (const m of MIGRATIONS) {
    const did = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(7151)');
      const seen = await tx.query('SELECT 1 FROM hub_migrations WHERE version = $1', [m.version]);
      if (seen.length) return false;
      for (const stmt of m.sql) await tx.query(stmt);
      await tx.query('INSERT INTO hub_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (did) applied++;
  }
  const newest = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM hub_migrations');
  const known = MIGRATIONS.at(-1)!.version;
  if ((newest[0]?.v ?? 0) > known) {
    throw new HubDbError(`the database was written by a newer hub (schema ${newest[0].v}, this hub knows ${known}); upgrade the hub`);
  }
  return applied;
}

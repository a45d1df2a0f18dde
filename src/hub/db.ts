/**
 * The hub's storage: PostgreSQL, either embedded (PGlite, PostgreSQL compiled
 * to WebAssembly, in a data folder) or a PostgreSQL server (node-postgres).
 * Both speak the same SQL; the hub only uses this small interface, so the same
 * code and the same tests run against both.
 *
 * Values cross the interface as text, numbers, JSON and bytes (bytea columns
 * come back as Uint8Array from PGlite and as Buffer, a Uint8Array, from pg).
 *
 * PGlite in a data folder runs on a worker thread of its own
 * (src/hub/pglite-worker.ts): statements and rows cross as messages, in the
 * same order and with the same values and errors as PGlite in this thread
 * (tests/unit/hub-pglite-worker.test.ts), so the hub's main thread (HTTP,
 * registry) and PostgreSQL run on two cores.
 */
import { Worker } from 'node:worker_threads';
import type { PgliteErrorData, PgliteReply, PgliteRequest } from './pglite-worker.ts';
import { MIGRATIONS } from './schema.ts';
import { workerSource } from './worker-source.ts';

export interface Sql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

export interface HubDb extends Sql {
  readonly kind: 'pglite' | 'postgres';
  /** PGlite only: the thread its SQL runs on (its own worker thread, or the caller's). */
  readonly thread?: 'worker' | 'main';
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

export interface PgliteOptions {
  /**
   * Where PGlite runs: 'worker' (default with a data folder): its own worker
   * thread (src/hub/pglite-worker.ts), beside the main thread that serves
   * HTTP and runs the registry; 'main': in the calling thread. In memory
   * (no folder) the default is 'main' (tests: nothing to win, a thread to
   * start). FIELDBENCH_HUB_PGLITE_THREAD=main|worker overrides the default.
   */
  thread?: 'worker' | 'main';
  /** Where to say that the worker could not start (PGlite then runs in this thread). */
  log?: (line: string) => void;
  /** Called with the worker thread once it runs (tests stop it to see pending queries fail). */
  onWorker?: (w: Worker) => void;
  /** The worker script to run instead of pglite-worker's (tests: one that cannot start). */
  workerScript?: URL;
}

/** Embedded PostgreSQL (PGlite) in `dir` (created when missing); `undefined` = in memory. */
export async function openPglite(dir?: string, opts: PgliteOptions = {}): Promise<HubDb> {
  const env = process.env.FIELDBENCH_HUB_PGLITE_THREAD;
  const thread = opts.thread ?? (env === 'main' || env === 'worker' ? env : dir ? 'worker' : 'main');
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let db: HubDb | undefined;
  if (thread === 'worker') {
    const src = opts.workerScript ? { file: opts.workerScript } : workerSource('pglite-worker.ts', 'hub-pglite-worker.mjs');
    if (!src) log('[hub] PGlite worker script not found: PGlite runs on the main thread');
    else db = await openPgliteWorker(src, dir, log, opts.onWorker);
  }
  db ??= await openPgliteHere(dir);
  try {
    await migrate(db);
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
  return db;
}

/** One queue for every use: PGlite runs one query at a time and a transaction must not interleave with other queries. */
function serialQueue(): <T>(fn: () => Promise<T>) => Promise<T> {
  let queue: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
}

async function openPgliteHere(dir?: string): Promise<HubDb> {
  const { PGlite } = await import('@electric-sql/pglite');
  const pg = dir ? await PGlite.create({ dataDir: dir }) : await PGlite.create();
  const serial = serialQueue();
  const q = async <T>(text: string, params?: unknown[]): Promise<T[]> => (await pg.query<T>(text, params as never[])).rows;
  return {
    kind: 'pglite',
    thread: 'main',
    query: (text, params) => serial(() => q(text, params)),
    transaction: (fn) => serial(() => pg.transaction(async (tx) => fn({ query: async (t, p) => (await tx.query(t, p as never[])).rows as never })) as never),
    close: () => serial(() => pg.close()),
  };
}

/** An error from the worker as this thread throws it: PostgreSQL's message and fields (code, detail, ...). */
function errorFrom(d: PgliteErrorData): Error {
  const e = new Error(d.message);
  Object.assign(e, d.fields);
  e.name = d.name;
  return e;
}

/**
 * PGlite on its worker thread, or undefined when the worker could not start
 * (logged; the caller then opens PGlite here). PGlite itself failing to open
 * (a damaged folder, one held by another process) is thrown, as in one thread.
 */
async function openPgliteWorker(src: { file: string | URL; eval?: string }, dir: string | undefined, log: (line: string) => void, onWorker?: (w: Worker) => void): Promise<HubDb | undefined> {
  const workerData = { fieldbenchPglite: true, dataDir: dir };
  const w = src.eval ? new Worker(src.eval, { eval: true, workerData }) : new Worker(src.file, { workerData });
  const pending = new Map<number, { resolve: (rows: unknown[]) => void; reject: (e: unknown) => void }>();
  let nextId = 1;
  /** Set once the worker is gone (crashed, or closed): every later use fails with it. */
  let gone: HubDbError | undefined;
  let closing = false;
  const opened = await new Promise<{ ok: true } | { failed: Error } | { noStart: string }>((resolve) => {
    let started = false;
    w.on('message', (m: PgliteReply) => {
      if ('ready' in m) {
        started = true;
        resolve({ ok: true });
        return;
      }
      if ('openFailed' in m) {
        started = true;
        resolve({ failed: errorFrom(m.openFailed) });
        return;
      }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (!pending.size) w.unref();
      if ('err' in m) p.reject(errorFrom(m.err));
      else {
        const { fields, rows } = m;
        p.resolve(rows.map((r) => Object.fromEntries(fields.map((f, i) => [f, r[i]]))));
      }
    });
    const stop = (why: string) => {
      if (gone) return; // said already (an 'error' is followed by an 'exit')
      if (!started) {
        started = true;
        gone = new HubDbError(`the PGlite worker thread did not start (${why})`);
        resolve({ noStart: why });
        return;
      }
      gone = new HubDbError(closing ? 'the database is closed' : `the PGlite worker thread stopped (${why}): the hub cannot reach its database; restart the hub`);
      if (!closing) log(`[hub] ${gone.message}`);
      for (const p of pending.values()) p.reject(gone);
      pending.clear();
    };
    w.on('error', (e) => stop((e as Error).message));
    w.on('exit', (code) => stop(`exit ${code}`));
  });
  if ('noStart' in opened) {
    log(`[hub] the PGlite worker thread did not start (${opened.noStart}): PGlite runs on the main thread`);
    await w.terminate();
    return undefined;
  }
  if ('failed' in opened) {
    closing = true;
    await w.terminate();
    throw opened.failed;
  }
  w.unref();
  onWorker?.(w);

  const send = (m: DistributiveOmit<PgliteRequest, 'id'>, transfer?: ArrayBuffer[]): Promise<unknown[]> => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ ...m, id }, transfer);
    });
  };
  // Long strings (a push's body, the registry's rows) go encoded, their bytes moved, not copied:
  // the encoding is done here rather than on PGlite's thread (src/hub/pglite-worker.ts).
  const sendQuery = (text: string, params: unknown[] | undefined, tx: boolean): Promise<unknown[]> => {
    let encoded: number[] | undefined;
    let transfer: ArrayBuffer[] | undefined;
    let ps = params;
    for (let i = 0; ps && i < ps.length; i++) {
      const v = ps[i];
      if (typeof v !== 'string' || v.length < LONG_TEXT) continue;
      if (ps === params) ps = [...params];
      const bytes = encoder.encode(v);
      ps[i] = bytes;
      (encoded ??= []).push(i);
      (transfer ??= []).push(bytes.buffer as ArrayBuffer);
    }
    return send({ op: 'query', text, params: ps, ...(tx ? { tx } : {}), ...(encoded ? { encoded } : {}) }, transfer);
  };
  const serial = serialQueue();
  const db: HubDb = {
    kind: 'pglite',
    thread: 'worker',
    query: <T>(text: string, params?: unknown[]) => serial(() => sendQuery(text, params, false) as Promise<T[]>),
    transaction: <T>(fn: (tx: Sql) => Promise<T>) =>
      serial(async () => {
        await send({ op: 'begin' });
        let open = true;
        const tx: Sql = {
          query: <R>(text: string, params?: unknown[]) => (open ? (sendQuery(text, params, true) as Promise<R[]>) : Promise.reject(new HubDbError('the transaction is over'))),
        };
        let r: T;
        try {
          r = await fn(tx);
        } catch (e) {
          open = false;
          await send({ op: 'end', commit: false }).catch(() => undefined);
          throw e;
        }
        open = false;
        await send({ op: 'end', commit: true });
        return r;
      }),
    close: () =>
      serial(async () => {
        if (gone) return;
        closing = true;
        try {
          await send({ op: 'close' });
        } finally {
          await w.terminate();
          gone ??= new HubDbError('the database is closed');
        }
      }),
  };
  return db;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Text parameters from this length on cross to PGlite's thread as UTF-8 bytes. */
const LONG_TEXT = 16 * 1024;
const encoder = new TextEncoder();

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

export function openHubDb(opts: { database?: string; data?: string } & PgliteOptions): Promise<HubDb> {
  return opts.database ? openPostgres(opts.database) : openPglite(opts.data, opts);
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

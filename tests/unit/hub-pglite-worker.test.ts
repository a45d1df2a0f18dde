/**
 * PGlite on its own worker thread (src/hub/db.ts, src/hub/pglite-worker.ts):
 * the same values and errors as PGlite in this thread, a transaction that
 * nothing interleaves with and that rolls back on a throw, pending queries
 * failing with a HubDbError when the thread dies (not hanging), and a data
 * folder that closes cleanly and opens again, on the worker and in this thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { HubDbError, openPglite, type HubDb } from '../../src/hub/db.ts';

let dir: string;
let db: HubDb;
let here: HubDb;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fieldbench-pglite-worker-'));
  [db, here] = await Promise.all([openPglite(join(dir, 'main'), { thread: 'worker' }), openPglite(undefined, { thread: 'main' })]);
  for (const d of [db, here]) await d.query('CREATE TABLE t (k text PRIMARY KEY, b bytea, n bigint, j jsonb, at timestamptz)');
}, 120_000);

afterAll(async () => {
  await db?.close();
  await here?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('PGlite on a worker thread', () => {
  it('runs on its worker, with the values PGlite gives in this thread', async () => {
    expect(db).toMatchObject({ kind: 'pglite', thread: 'worker' });
    expect(here).toMatchObject({ kind: 'pglite', thread: 'main' });
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const at = new Date('2026-01-02T03:04:05.678Z');
    const big = 'x'.repeat(1 << 20); // a push body's size, as one text parameter
    const results = [];
    for (const d of [db, here]) {
      await d.query('INSERT INTO t VALUES ($1, $2, $3, $4, $5)', ['a', bytes, 9007199254740993n, JSON.stringify({ x: [1, 'two', null] }), at]);
      await d.query('INSERT INTO t (k, b) VALUES ($1, $2)', ['buf', Buffer.from([9, 8, 7])]);
      const rows = await d.query('SELECT k, b, n, j, at, length($1::text) AS len, 42::bigint AS small, 1.5::float8 AS f, NULL AS z FROM t ORDER BY k', [big]);
      // a long json text (sent as its bytes from the worker) with text beyond ASCII in it
      const doc = JSON.stringify({ pad: 'p'.repeat(40_000), name: 'Zoë 🚀 データ' });
      const [fromJson] = await d.query<{ name: string; n: number }>("SELECT ($1::json)->>'name' AS name, length($1::text) AS n", [doc]);
      expect(fromJson).toEqual({ name: 'Zoë 🚀 データ', n: [...doc].length });
      // a long string for a parameter of another type is that type's text, as in one thread; the caller's array is left alone
      const ps = [` 42${' '.repeat(20_000)}`];
      expect(await d.query('SELECT $1::int AS n', ps)).toEqual([{ n: 42 }]);
      expect(ps[0].length).toBe(20_003);
      expect(await d.query('SELECT $1::bytea AS b', ['x'.repeat(20_000)]).catch((e: Error) => e.message)).toBe('Invalid input for bytea type');
      // rows cross as arrays and become objects again: a repeated column name keeps its last value, as in PGlite
      expect(await d.query('SELECT 1 AS a, 2 AS a, 3 AS "__proto__"')).toEqual([JSON.parse('{"a": 2, "__proto__": 3}')]);
      expect(await d.query('SELECT FROM t LIMIT 1')).toEqual([{}]);
      results.push(rows);
    }
    const [onWorker, inThread] = results;
    expect(onWorker).toEqual(inThread);
    expect(onWorker[0].b).toBeInstanceOf(Uint8Array);
    expect(onWorker[0]).toMatchObject({ k: 'a', b: bytes, n: 9007199254740993n, j: { x: [1, 'two', null] }, at, len: 1 << 20, small: 42, f: 1.5, z: null });
    expect(onWorker[0].at).toBeInstanceOf(Date);
    expect(onWorker[1].b).toEqual(Uint8Array.of(9, 8, 7));
  });

  it("carries PostgreSQL's errors across with their code and message", async () => {
    const errs = [];
    for (const d of [db, here]) {
      await d.query("INSERT INTO t (k) VALUES ('dup') ON CONFLICT DO NOTHING");
      const dup = await d.query("INSERT INTO t (k) VALUES ('dup')").catch((e: unknown) => e);
      const zero = await d.query('SELECT 1 / $1::int', [0]).catch((e: unknown) => e);
      const syntax = await d.query('SELEC 1').catch((e: unknown) => e);
      errs.push([dup, zero, syntax]);
    }
    const [onWorker, inThread] = errs;
    expect(onWorker.map((e) => (e as { code: string }).code)).toEqual(['23505', '22012', '42601']);
    for (let i = 0; i < 3; i++) {
      expect(onWorker[i]).toBeInstanceOf(Error);
      expect(onWorker[i]).toMatchObject({ message: (inThread[i] as Error).message, code: (inThread[i] as { code: string }).code, severity: 'ERROR' });
    }
    expect(onWorker[0]).toMatchObject({ constraint: 't_pkey', detail: 'Key (k)=(dup) already exists.' });
    // the parameters do not come back with the error (a push's is its whole body)
    expect((onWorker[1] as { params?: unknown }).params).toBeUndefined();
  });

  it('runs a transaction alone: a query issued meanwhile waits for its end, and a throw rolls it back', async () => {
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const boom = new Error('changed my mind');
    const tx = db.transaction(async (t) => {
      await t.query("INSERT INTO t (k) VALUES ('uncommitted')");
      order.push('tx inserted');
      await held;
      order.push('tx throws');
      throw boom;
    });
    // issued while the transaction is open: it must neither see its row nor run inside it
    const meanwhile = db.query<{ n: number }>("SELECT count(*)::int AS n FROM t WHERE k = 'uncommitted'").then((r) => {
      order.push('query ran');
      return r[0].n;
    });
    while (!order.length) await new Promise((r) => setTimeout(r, 5));
    release();
    expect(await tx.catch((e: unknown) => e)).toBe(boom);
    expect(await meanwhile).toBe(0);
    expect(order).toEqual(['tx inserted', 'tx throws', 'query ran']);
    // committed transactions stay, and return their value; a failed statement fails the transaction
    expect(await db.transaction(async (t) => (await t.query<{ k: string }>("INSERT INTO t (k) VALUES ('kept') RETURNING k"))[0].k)).toBe('kept');
    const failed = await db.transaction(async (t) => {
      await t.query("INSERT INTO t (k) VALUES ('half')");
      await t.query("INSERT INTO t (k) VALUES ('kept')");
    }).catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: '23505' });
    expect((await db.query<{ k: string }>("SELECT k FROM t WHERE k IN ('kept', 'half', 'uncommitted') ORDER BY k")).map((r) => r.k)).toEqual(['kept']);
    // the transaction's handle is dead once it ended
    let leaked: { query: HubDb['query'] } | undefined;
    await db.transaction(async (t) => {
      leaked = t;
    });
    await expect(leaked!.query('SELECT 1')).rejects.toThrow(/transaction is over/);
    // and the database goes on
    expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('closes cleanly: the data folder opens again, on a worker and in this thread', async () => {
    const folder = join(dir, 'reopen');
    const a = await openPglite(folder, { thread: 'worker' });
    await a.query('CREATE TABLE kept (v bytea)');
    await a.transaction((t) => t.query('INSERT INTO kept VALUES ($1)', [Uint8Array.of(1, 2)]));
    await a.close();
    await expect(a.query('SELECT 1')).rejects.toBeInstanceOf(HubDbError);
    const b = await openPglite(folder, { thread: 'main' });
    expect(await b.query('SELECT v FROM kept')).toEqual([{ v: Uint8Array.of(1, 2) }]);
    await b.close();
    const c = await openPglite(folder, { thread: 'worker' });
    expect(c.thread).toBe('worker');
    expect(await c.query('SELECT v FROM kept')).toEqual([{ v: Uint8Array.of(1, 2) }]);
    await c.close();
  }, 120_000);

  it('runs PGlite in this thread, and says so, when its worker cannot start', async () => {
    const logs: string[] = [];
    const folder = join(dir, 'fallback');
    const f = await openPglite(folder, { thread: 'worker', workerScript: new URL('data:text/javascript,throw new Error("no such worker")'), log: (l) => logs.push(l) });
    expect(f.thread).toBe('main');
    expect(logs).toEqual([expect.stringMatching(/^\[hub\] the PGlite worker thread did not start \(no such worker\): PGlite runs on the main thread$/)]);
    expect(await f.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await f.close();
  }, 120_000);

  it('throws, without falling back, when PGlite itself cannot open the folder', async () => {
    const logs: string[] = [];
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    const e = await openPglite(file, { thread: 'worker', log: (l) => logs.push(l) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toMatch(/^ErrnoError \(errno \d+\)$/);
    expect(logs).toEqual([]);
  }, 120_000);

  it('fails the pending queries with a HubDbError when the worker dies, and every later one', async () => {
    const folder = join(dir, 'killed');
    let worker: Worker | undefined;
    const logs: string[] = [];
    const k = await openPglite(folder, { thread: 'worker', onWorker: (w) => (worker = w), log: (l) => logs.push(l) });
    await k.query('CREATE TABLE c (v int)');
    await k.query('INSERT INTO c VALUES (1)');
    let inTx = false;
    // one query running (a long one), one in a transaction waiting behind it, one plain query queued
    const running = k.query('SELECT count(*) FROM generate_series(1, 100000000)');
    const tx = k.transaction(async (t) => {
      inTx = true;
      await t.query('INSERT INTO c VALUES (2)');
    });
    const queued = k.query('SELECT 1');
    await new Promise((r) => setTimeout(r, 200));
    await worker!.terminate();
    for (const p of [running, tx, queued]) {
      const e = await p.catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HubDbError);
      expect((e as Error).message).toMatch(/PGlite worker thread stopped/);
    }
    expect(inTx).toBe(false);
    expect(logs).toEqual([expect.stringMatching(/^\[hub\] the PGlite worker thread stopped \(exit 1\)/)]);
    await expect(k.query('SELECT 1')).rejects.toThrow(/PGlite worker thread stopped/);
    await k.close(); // nothing left to close
    // what was committed before is there after a restart on the same folder
    const again = await openPglite(folder, { thread: 'worker' });
    expect(await again.query('SELECT v FROM c ORDER BY v')).toEqual([{ v: 1 }]);
    await again.close();
  }, 120_000);
});

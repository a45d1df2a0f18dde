/**
 * Where one ingest batch's time goes (docs/HUB.md, "Performance"): runs
 * pushes of 2,000 signed entries (each about a new device) straight into
 * ingest() on a durable throwaway PostgreSQL (and PGlite), and prints the
 * milliseconds per 1,000 entries of each phase: parse + hash + links +
 * signatures (prepareBatch), the signer checks, every SQL statement of the
 * push's transaction (by its first words) and the COMMIT. Each line gives the
 * CPU time (this process, from process.cpuUsage; the PostgreSQL backend that
 * ran it, from /proc/PID/schedstat) beside the wall-clock time, which on a
 * shared machine also counts waiting for a core.
 *   npx tsx scripts/hub-profile.ts [batches=10] [pglite]
 */
import { readFileSync } from 'node:fs';
import { openPglite, openPostgres, type HubDb, type Sql } from '../src/hub/db.ts';
import { prepareBatch } from '../src/hub/batch.ts';
import { ingest } from '../src/hub/ingest.ts';
import { HubTrust } from '../src/hub/trust.ts';
import { deviceN, makeWorld, Trail } from '../tests/helpers/hub-world.ts';
import { startPostgres } from '../tests/helpers/pg-cluster.ts';

const BATCHES = Number(process.argv[2] ?? 10);
const N = 2000;
const usePglite = process.argv.includes('pglite');
const world = await makeWorld();
const tech = await world.tech('prof');
const tr = new Trail(tech);
for (let b = 0; b < BATCHES + 1; b++) await tr.add(Array.from({ length: N }, (_, j) => ({ op: 'identify', outcome: 'ok', device: deviceN(b * N + j), details: { model: 'fb-sensor', badges: [] } })));

let cluster: { stop(): void } | undefined;
let db: HubDb;
if (usePglite) db = await openPglite();
else {
  const c = await startPostgres({ durable: true });
  if ('skip' in c) throw new Error(c.skip);
  cluster = c;
  db = await openPostgres(c.url, { max: 8 });
}
const trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
type T = { wall: number; cpu: number; server: number };
const times = new Map<string, T>();
const add = (k: string, t: T) => {
  const o = times.get(k) ?? { wall: 0, cpu: 0, server: 0 };
  times.set(k, { wall: o.wall + t.wall, cpu: o.cpu + t.cpu, server: o.server + t.server });
};
const label = (t: string) => t.replace(/\s+/g, ' ').trim().slice(0, 60);
/** CPU ms of one PostgreSQL backend so far (0 for PGlite: it runs in this process). */
const backendMs = (pid: number) => (pid ? Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6 : 0);
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
const now = () => ({ wall: performance.now(), cpu: cpuMs() });
const timed: HubDb = {
  kind: db.kind,
  query: db.query,
  close: db.close,
  transaction: (fn) => {
    const t0 = now();
    let pid = 0;
    const inner: T = { wall: 0, cpu: 0, server: 0 };
    let b0 = 0;
    return db.transaction(async (tx) => {
      if (db.kind === 'postgres') pid = (await tx.query<{ p: number }>('SELECT pg_backend_pid() AS p'))[0].p;
      b0 = backendMs(pid);
      const ttx: Sql = {
        query: async (t, p) => {
          const s = now();
          const bs = backendMs(pid);
          try {
            return await tx.query(t, p);
          } finally {
            const d = { wall: performance.now() - s.wall, cpu: cpuMs() - s.cpu, server: backendMs(pid) - bs };
            inner.wall += d.wall;
            inner.cpu += d.cpu;
            inner.server += d.server;
            add('sql: ' + label(t), d);
          }
        },
      };
      const r = await fn(ttx);
      const e = now();
      add('js inside the transaction (fold, JSON)', { wall: e.wall - t0.wall - inner.wall, cpu: e.cpu - t0.cpu - inner.cpu, server: 0 });
      inner.wall = e.wall - t0.wall;
      inner.cpu = e.cpu - t0.cpu;
      inner.server = backendMs(pid) - b0;
      return r;
    }).finally(() => {
      const e = now();
      add('BEGIN + COMMIT (incl. WAL flush)', { wall: e.wall - t0.wall - inner.wall, cpu: e.cpu - t0.cpu - inner.cpu, server: backendMs(pid) - b0 - inner.server });
    });
  },
};
// warm-up batch (not counted)
await ingest(db, trust, tr.push(1, N), { pusher: 'p' });
const total: T = { wall: 0, cpu: 0, server: 0 };
for (let b = 1; b <= BATCHES; b++) {
  const body = Buffer.from(JSON.stringify(tr.push(b * N + 1, (b + 1) * N)));
  const t0 = now();
  const p = await prepareBatch(new Uint8Array(body), 'chain');
  const t1 = now();
  add('prepareBatch (JSON.parse, CBOR + SHA-256 per entry, links, registry view, 1 Ed25519)', { wall: t1.wall - t0.wall, cpu: t1.cpu - t0.cpu, server: 0 });
  const s0 = [...times.values()].reduce((a, t) => a + t.server, 0);
  await ingest(timed, trust, new Uint8Array(body), { pusher: 'p', pool: { threads: 1, ready: async () => 1, run: async () => ({ ...p, threadId: 0 }), close: async () => undefined } });
  const t2 = now();
  const server = [...times.values()].reduce((a, t) => a + t.server, 0) - s0;
  add('ingest after prepare, in all (signers + store)', { wall: t2.wall - t1.wall, cpu: t2.cpu - t1.cpu, server });
  total.wall += t2.wall - t0.wall;
  total.cpu += t2.cpu - t0.cpu;
  total.server += server;
}
const per = (ms: number) => ((ms / BATCHES / N) * 1000).toFixed(1).padStart(7);
console.log(`${'wall'.padStart(7)} ${'cpu'.padStart(7)} ${'server'.padStart(7)}  ms per 1000 entries (${db.kind}, batches of ${N}, one pusher, no HTTP)`);
for (const [k, v] of [...times].sort((a, b) => b[1].cpu + b[1].server - a[1].cpu - a[1].server)) console.log(`${per(v.wall)} ${per(v.cpu)} ${per(v.server)}  ${k}`);
console.log(`${per(total.wall)} ${per(total.cpu)} ${per(total.server)}  TOTAL: ${Math.round((BATCHES * N) / (total.wall / 1000))} entries/s wall clock; CPU ${((total.cpu + total.server) / BATCHES / N * 1000).toFixed(0)} µs per entry`);
await db.close();
cluster?.stop();

/**
 * Where one ingest batch's time goes (docs/HUB.md, "Performance"): runs
 * pushes of 2,000 signed entries (each about a new device) straight into
 * ingest() on a durable throwaway PostgreSQL (and PGlite), and prints the
 * milliseconds per 1,000 entries of each phase: parse + hash + links +
 * signatures (prepareBatch), the signer checks, every SQL statement of the
 * push's transaction (by its first words) and the COMMIT.
 *   npx tsx scripts/hub-profile.ts [batches=10] [pglite]
 */
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
const times = new Map<string, number>();
const add = (k: string, ms: number) => times.set(k, (times.get(k) ?? 0) + ms);
const label = (t: string) => t.replace(/\s+/g, ' ').trim().slice(0, 60);
const timed: HubDb = {
  kind: db.kind,
  query: db.query,
  close: db.close,
  transaction: (fn) => {
    const t0 = performance.now();
    let inner = 0;
    return db.transaction(async (tx) => {
      const ttx: Sql = {
        query: async (t, p) => {
          const s = performance.now();
          try { return await tx.query(t, p); } finally { const d = performance.now() - s; inner += d; add('sql: ' + label(t), d); }
        },
      };
      const r = await fn(ttx);
      add('js inside the transaction (fold, JSON)', performance.now() - t0 - inner);
      inner = performance.now() - t0;
      return r;
    }).finally(() => add('BEGIN + COMMIT (incl. WAL flush)', performance.now() - t0 - inner));
  },
};
// warm-up batch (not counted)
await ingest(db, trust, tr.push(1, N), { pusher: 'p' });
let total = 0;
for (let b = 1; b <= BATCHES; b++) {
  const body = Buffer.from(JSON.stringify(tr.push(b * N + 1, (b + 1) * N)));
  const t0 = performance.now();
  const p = await prepareBatch(new Uint8Array(body), 'chain');
  add('prepareBatch (JSON.parse, CBOR + SHA-256 per entry, links, rows, 1 Ed25519)', performance.now() - t0);
  const t1 = performance.now();
  await ingest(timed, trust, new Uint8Array(body), { pusher: 'p', pool: { threads: 1, ready: async () => 1, run: async () => ({ ...p, threadId: 0 }), close: async () => undefined } });
  add('ingest after prepare (signers + store)', performance.now() - t1);
  total += performance.now() - t0;
}
const per = (ms: number) => (ms / BATCHES / N) * 1000;
for (const [k, v] of [...times].sort((a, b) => b[1] - a[1])) console.log(`${per(v).toFixed(1).padStart(7)} ms/1000  ${k}`);
console.log(`${per(total).toFixed(1).padStart(7)} ms/1000  TOTAL (${Math.round((BATCHES * N) / (total / 1000))} entries/s, one pusher, no HTTP)`);
await db.close();
cluster?.stop();

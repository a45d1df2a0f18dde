/**
 * Hub benches: ingest of signed entries over HTTP with verification, batched,
 * with 1 and 8 concurrent pushers, on PGlite and on a throwaway PostgreSQL;
 * a registry of 1M devices and the duplicate look-up of one identifier.
 * Baseline in the same run: the verification alone (no storage, no HTTP),
 * which bounds what the hub can ingest on one core.
 */
import { HubClient } from '../../src/core/sync/client.ts';
import { openPglite, openPostgres, type HubDb } from '../../src/hub/db.ts';
import { verifyBatch } from '../../src/hub/ingest.ts';
import { lookupIdentifier } from '../../src/hub/registry.ts';
import { startHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { deviceN, makeWorld, Trail, type Tech } from '../helpers/hub-world.ts';
import { startPostgres } from '../helpers/pg-cluster.ts';
import type { BenchRow } from './types.ts';

const PER_PUSHER = Number(process.env.FIELDBENCH_HUB_BENCH_ENTRIES ?? 10000);
const DEVICES = Number(process.env.FIELDBENCH_HUB_BENCH_DEVICES ?? 1_000_000);

async function trails(techs: Tech[], n: number): Promise<Trail[]> {
  return Promise.all(
    techs.map(async (t, k) => {
      const tr = new Trail(t);
      for (let i = 0; i < n; i += 2000) {
        await tr.add(Array.from({ length: Math.min(2000, n - i) }, (_, j) => ({ op: 'identify', outcome: 'ok', device: deviceN(k * n + i + j), details: { model: 'fb-sensor', badges: [] } })));
      }
      return tr;
    }),
  );
}

async function ingestRate(db: HubDb, trust: HubTrust, ts: Trail[]): Promise<number> {
  const hub = await startHub({ db, trust, perAddress: { rate: 1e6, burst: 1e6 }, perKey: { rate: 1e6, burst: 1e6 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
  try {
    const t0 = performance.now();
    const rs = await Promise.all(ts.map((t) => new HubClient({ url: hub.url, credential: t.tech.credential, signer: t.tech.signer, batch: 2000 }).push(t.export())));
    const dt = (performance.now() - t0) / 1000;
    const n = rs.reduce((a, r) => a + r.accepted, 0);
    if (n !== ts.reduce((a, t) => a + t.entries.length, 0)) throw new Error(`pushed ${n} entries, expected all`);
    return Math.round(n / dt);
  } finally {
    await hub.close();
  }
}

async function registry(db: HubDb, n: number): Promise<{ lookupMs: number; loadS: number }> {
  const t0 = performance.now();
  await db.query(`INSERT INTO sources (genesis, head_seq, head_hash, label, last_pusher) VALUES ('\\x01', 0, '\\x00', 'bench-a', ''), ('\\x02', 0, '\\x00', 'bench-b', '')`);
  const CH = 250_000;
  for (let s = 0; s < n; s += CH) {
    const e = Math.min(n, s + CH) - 1;
    await db.query(
      `INSERT INTO devices (anchor, serial, device_public_key, dev_eui, first_seen, last_seen, entries)
       SELECT 'key:' || md5(i::text) || md5((i + 1)::text), 'SN-' || i, md5(i::text) || md5((i + 1)::text), lpad(to_hex(i), 16, '0'), 0, 0, 1 FROM generate_series($1::int, $2::int) i`,
      [s, e],
    );
    // every 1000th device shares its DevEUI with the next one: a collision seen by the other source
    await db.query(
      `INSERT INTO sightings (kind, value, anchor, source_id, first_seen, last_seen)
       SELECT k.kind, CASE k.kind WHEN 'serial' THEN 'SN-' || i WHEN 'devEui' THEN lpad(to_hex(CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END), 16, '0') ELSE md5(i::text) || md5((i + 1)::text) END,
              'key:' || md5(i::text) || md5((i + 1)::text), 1 + (i % 2), 0, 0
       FROM generate_series($1::int, $2::int) i, (VALUES ('serial'), ('devEui'), ('devicePublicKey')) AS k(kind)`,
      [s, e],
    );
  }
  await db.query('ANALYZE');
  const loadS = (performance.now() - t0) / 1000;
  // warm up, then time look-ups of random identifiers (some colliding)
  for (let i = 0; i < 20; i++) await lookupIdentifier(db, 'devEui', (i * 7919).toString(16).padStart(16, '0'));
  const K = 300;
  let collisions = 0;
  const t1 = performance.now();
  for (let i = 0; i < K; i++) {
    const x = Math.floor(Math.random() * n);
    const sides = await lookupIdentifier(db, i % 3 === 0 ? 'devEui' : 'serial', i % 3 === 0 ? (x - (x % 1000)).toString(16).padStart(16, '0') : `SN-${x}`);
    if (sides.length > 1) collisions++;
  }
  const lookupMs = (performance.now() - t1) / K;
  if (collisions === 0) throw new Error('the look-ups found no collision: the bench data is wrong');
  return { lookupMs, loadS };
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const world = await makeWorld();
  const techs = await Promise.all(Array.from({ length: 8 }, (_, i) => world.tech(`pusher-${i}`)));
  const eight = await trails(techs, PER_PUSHER);
  const one = await trails([await world.tech('solo')], PER_PUSHER * 2);

  // Baseline: verification alone (chain mode and every-signature mode), no storage.
  {
    const db = await openPglite();
    const trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
    const body = one[0].push(1, 2000);
    for (const mode of ['chain', 'every'] as const) {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < 1500) {
        await verifyBatch(body, trust, mode);
        n += 2000;
      }
      rows.push({ name: `verify only (${mode} mode), entries/s`, value: Math.round(n / ((performance.now() - t0) / 1000)), unit: 'entries/s', note: 'baseline: no HTTP, no storage' });
    }
    await db.close();
  }

  const backends: { name: string; open: () => Promise<{ db: HubDb; done: () => Promise<void> }> }[] = [
    { name: 'PGlite', open: async () => { const db = await openPglite(); return { db, done: () => db.close() }; } },
    {
      name: 'PostgreSQL',
      open: async () => {
        const c = await startPostgres();
        if ('skip' in c) throw new Error(c.skip);
        const db = await openPostgres(c.url, { max: 8 });
        return { db, done: async () => { await db.close(); c.stop(); } };
      },
    },
  ];
  for (const b of backends) {
    let h: { db: HubDb; done: () => Promise<void> };
    try {
      h = await b.open();
    } catch (e) {
      rows.push({ name: `${b.name}: not measured`, value: 0, unit: '', note: (e as Error).message });
      continue;
    }
    try {
      const trust = await HubTrust.open(h.db, [world.owner.publicKey], world.bundle);
      // each figure on its own: one failing measurement does not hide the others
      const measure = async (name: string, unit: string, note: string, fn: () => Promise<number>) => {
        try {
          rows.push({ name, value: await fn(), unit, note });
        } catch (e) {
          rows.push({ name: `${name}: FAILED`, value: 0, unit, note: (e as Error).message });
        }
      };
      await measure(`${b.name}: ingest, 1 pusher, ${PER_PUSHER * 2} entries`, 'entries/s', 'goal >= 10000; HTTP, verified, batches of 2000', () => ingestRate(h.db, trust, one));
      await measure(`${b.name}: ingest, 8 pushers, ${PER_PUSHER * 8} entries`, 'entries/s', 'goal >= 10000', () => ingestRate(h.db, trust, eight));
      await h.db.query('TRUNCATE sightings, devices, collisions, drift, entries, sources RESTART IDENTITY CASCADE');
      let load = 0;
      await measure(`${b.name}: duplicate look-up in ${DEVICES} devices`, 'ms', 'goal <= 5 ms', async () => {
        const r = await registry(h.db, DEVICES);
        load = r.loadS;
        return r.lookupMs;
      });
      rows.at(-1)!.note += `; loading took ${load.toFixed(0)} s`;
    } finally {
      await h.done();
    }
  }
  return rows;
}

/**
 * Hub benches: ingest of signed entries over HTTP with verification, batched,
 * with 1 and 8 concurrent pushers, on PGlite and on a throwaway PostgreSQL;
 * a registry of 1M devices and the duplicate look-up of one identifier.
 * Each figure is given as a ratio to its goal (>= 10,000 entries/s; <= 5 ms)
 * and to baselines measured in the same run on the same backend:
 *  - verification alone (no storage, no HTTP), both modes: what one core can check;
 *  - raw INSERT of the same rows (the hub's own multi-row insert, batches of
 *    2000, one transaction each, no verification, no registry, no HTTP): what
 *    the storage alone takes;
 *  - for the look-up, one primary-key probe of the sightings index.
 * PGlite is measured twice: on its own worker thread (as the hub runs it with
 * a data folder) and, for ingest only, on the main thread (as before it had a
 * thread), so the ratio of the two comes from one run.
 * Each figure is measured on its own: one failing does not hide the others.
 *
 * The machine is shared, so entries/s move with everyone else's load. Each
 * ingest figure therefore also gives the CPU time it cost per entry (this
 * process: hub, verification workers, bench pushers, PGlite; plus every
 * process of the PostgreSQL server, from /proc), and from it the rate the same
 * work would reach on this machine's cores if they were idle: cores / CPU
 * time per entry. That figure, not the wall-clock one, says whether the goal
 * is reachable here. With PGlite (all in this process) the CPU of each thread
 * (/proc/self/task) is given too: a thread's work is done by that one thread,
 * so the busiest one bounds the rate whatever the cores.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { openPglite, openPostgres, type HubDb } from '../../src/hub/db.ts';
import { insertEntries, verifyBatch } from '../../src/hub/ingest.ts';
import { lookupIdentifier } from '../../src/hub/registry.ts';
import { startHub } from '../../src/hub/server.ts';
import { HubTrust } from '../../src/hub/trust.ts';
import { exportEntryHash } from '../../src/core/store/audit.ts';
import { fromHex } from '../../src/core/base/bytes.ts';
import { createHash } from 'node:crypto';
import { deviceN, makeWorld, Trail, type Tech } from '../helpers/hub-world.ts';
import { startPostgres } from '../helpers/pg-cluster.ts';
import type { BenchRow } from './types.ts';

const PER_PUSHER = Number(process.env.FIELDBENCH_HUB_BENCH_ENTRIES ?? 10000);
const DEVICES = Number(process.env.FIELDBENCH_HUB_BENCH_DEVICES ?? 1_000_000);
const GOAL = 10_000;
const LOOKUP_GOAL_MS = 5;

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

const TICK_S = 0.01; // USER_HZ on Linux

/** CPU seconds used so far by the PostgreSQL server behind `db` (postmaster and its children), or undefined (PGlite, no /proc). */
async function serverCpu(db: HubDb): Promise<number | undefined> {
  if (db.kind !== 'postgres') return undefined;
  try {
    const [{ pid }] = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const stat = (p: string) => {
      const t = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
      // utime + stime, and for the postmaster also its exited children's (a pool's idle connections close)
      return { ppid: f[1], cpu: (Number(f[11]) + Number(f[12])) * TICK_S, children: (Number(f[13]) + Number(f[14])) * TICK_S };
    };
    const postmaster = stat(String(pid)).ppid;
    const pm = stat(postmaster);
    let cpu = pm.cpu + pm.children;
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const s = stat(p);
        if (s.ppid === postmaster) cpu += s.cpu;
      } catch {
        /* gone */
      }
    }
    return cpu;
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by each thread of this process (/proc/self/task), by thread id; empty without /proc. */
function threadCpu(): Map<string, number> {
  const m = new Map<string, number>();
  try {
    for (const t of readdirSync('/proc/self/task')) {
      try {
        const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        m.set(t, (Number(f[11]) + Number(f[12])) * TICK_S);
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no /proc */
  }
  return m;
}

interface IngestFigure {
  rate: number;
  /** CPU microseconds per entry: this process, and the PostgreSQL server (undefined for PGlite, in this process). */
  cpuUs: number;
  serverUs?: number;
  /** CPU microseconds per entry of this process's main thread, and of its two busiest other threads (undefined without /proc). */
  mainUs?: number;
  busiestUs?: number[];
}

/** Start one pusher thread per trail (tests/helpers/hub-pusher-worker.ts), each ready to push when told. */
async function pushers(url: string, ts: Trail[], pipeline: number): Promise<{ go: () => Promise<{ accepted: number }[]>; close: () => Promise<void> }> {
  const api = pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs')).href;
  const target = new URL('../helpers/hub-pusher-worker.ts', import.meta.url).href;
  const ws = ts.map(() => new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); })`, { eval: true }));
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await Promise.all(ws.map((w, i) => {
    const t = ts[i];
    const ready = next(w);
    w.postMessage({ url, id: t.tech.id, seed: t.tech.seed, credential: t.tech.credential, entries: t.entries, batch: 2000, pipeline });
    return ready;
  }));
  return {
    go: () => Promise.all(ws.map(async (w) => {
      const done = next(w);
      w.postMessage('go');
      const r = (await done) as { accepted: number } | { error: string };
      if ('error' in r) throw new Error(`a pusher failed: ${r.error}`);
      return r;
    })),
    close: async () => void (await Promise.all(ws.map((w) => w.terminate()))),
  };
}

async function ingestRate(db: HubDb, trust: HubTrust, ts: Trail[], pipeline = Number(process.env.FIELDBENCH_HUB_BENCH_PIPELINE ?? 2)): Promise<IngestFigure> {
  const hub = await startHub({ db, trust, perAddress: { rate: 1e6, burst: 1e6 }, perKey: { rate: 1e6, burst: 1e6 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
  const ps = await pushers(hub.url, ts, pipeline);
  try {
    const s0 = await serverCpu(db);
    const th0 = threadCpu();
    const c0 = process.cpuUsage(); // the whole process: hub, its verification worker, the pusher threads
    const t0 = performance.now();
    const rs = await ps.go();
    const dt = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const th1 = threadCpu();
    const s1 = await serverCpu(db);
    const n = rs.reduce((a, r) => a + r.accepted, 0);
    if (n !== ts.reduce((a, t) => a + t.entries.length, 0)) throw new Error(`pushed ${n} entries, expected all`);
    const per = (id: string) => (((th1.get(id) ?? 0) - (th0.get(id) ?? 0)) * 1e6) / n;
    const main = String(process.pid);
    const others = [...th1.keys()].filter((id) => id !== main).map(per).sort((a, b) => b - a);
    return {
      rate: Math.round(n / dt),
      cpuUs: (c.user + c.system) / n,
      serverUs: s0 !== undefined && s1 !== undefined ? ((s1 - s0) * 1e6) / n : undefined,
      mainUs: th1.has(main) ? per(main) : undefined,
      busiestUs: th1.has(main) ? others.slice(0, 2) : undefined,
    };
  } finally {
    await ps.close();
    await hub.close();
  }
}

/**
 * The rate on idle cores, from CPU time per entry, and how that time splits.
 * Pushers run on threads of their own (a real pusher is another machine);
 * the process's CPU time counts them with the hub. With one pusher, two
 * batches are in flight: the hub verifies the next while it stores one, and
 * on a PostgreSQL server stores it beside the one before (committing after
 * it); PGlite stores one batch at a time, so there cores / CPU time is an
 * upper bound.
 */
function cpuNote(f: IngestFigure, pushers: number, verifyUs?: number, thread?: 'worker' | 'main'): string {
  const cores = availableParallelism();
  if (f.serverUs === undefined && pushers > 1 && (f.mainUs !== undefined || verifyUs)) {
    // PGlite, in this process: each thread's work is done by that one thread, so the busiest
    // thread bounds the rate, whatever the cores; and all of them together share the cores
    const main = f.mainUs ?? f.cpuUs - verifyUs!;
    const busiest = Math.max(main, ...(f.busiestUs ?? []));
    const bound = Math.min(1e6 / busiest, (cores * 1e6) / f.cpuUs);
    const others = thread === 'worker' ? "PGlite's worker, the verification worker, a pusher thread" : 'the verification worker, a pusher thread';
    const threads = f.mainUs !== undefined ? `${main.toFixed(0)} on the hub's main thread (HTTP, registry${thread === 'worker' ? '' : ', PGlite'}), the busiest other threads ${f.busiestUs!.map((u) => u.toFixed(0)).join(' and ')} (of ${others})` : `at most about ${main.toFixed(0)} on the hub's main thread with PGlite (verification, about ${verifyUs!.toFixed(0)}, runs on a worker)`;
    return `; CPU ${f.cpuUs.toFixed(0)} µs per entry (all in this process: hub, pusher threads, PGlite), of which ${threads}: at most ${Math.round(bound)} entries/s on ${cores} idle cores (the busiest thread, or all threads over the cores), ${(bound / GOAL).toFixed(2)}x the goal; the run got ${((f.rate * f.cpuUs) / 1e6).toFixed(2)} of ${cores} cores`;
  }
  const total = f.cpuUs + (f.serverUs ?? 0);
  const threads = f.mainUs !== undefined ? `: ${f.mainUs.toFixed(0)} on its main thread (HTTP, registry), the busiest other threads ${f.busiestUs!.map((u) => u.toFixed(0)).join(' and ')}` : '';
  const split = f.serverUs !== undefined ? ` (${f.cpuUs.toFixed(0)} in the hub process with its pusher threads${threads}; ${f.serverUs.toFixed(0)} in PostgreSQL)` : ' (all in this process: hub, pusher threads, PGlite)';
  // how much of the machine this run got: its CPU time over wall time (the rest went to other processes)
  const got = (f.rate * total) / 1e6;
  const bound = pushers === 1 && f.serverUs === undefined ? `at most ${Math.round((cores * 1e6) / total)} entries/s on ${cores} idle cores (an upper bound: PGlite stores one batch at a time)` : `${Math.round((cores * 1e6) / total)} entries/s on ${cores} idle cores`;
  return `; CPU ${total.toFixed(0)} µs per entry${split}: ${bound}, ${((cores * 1e6) / total / GOAL).toFixed(2)}x the goal; the run got ${got.toFixed(2)} of ${cores} cores`;
}

/** Baseline: the same rows stored with the hub's INSERT, batches of 2000 in one transaction each, nothing else. */
async function rawInsertRate(db: HubDb, ts: Trail[], cpu: { us?: number }): Promise<number> {
  await db.query('TRUNCATE sightings, devices, collisions, drift, campaign_results, entries, sources RESTART IDENTITY CASCADE');
  const s0 = await serverCpu(db);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  await Promise.all(
    ts.map(async (t, k) => {
      const [src] = await db.query<{ id: string }>(`INSERT INTO sources (genesis, head_seq, head_hash, label, last_pusher) VALUES ($1, 0, '\\x00', 'raw', '') RETURNING id`, [Uint8Array.of(0xee, k)]);
      for (let i = 0; i < t.entries.length; i += 2000) {
        const part = t.entries.slice(i, i + 2000);
        await db.transaction((tx) => insertEntries(tx, src.id, part));
        n += part.length;
      }
    }),
  );
  const rate = Math.round(n / ((performance.now() - t0) / 1000));
  const c = process.cpuUsage(c0);
  const s1 = await serverCpu(db);
  cpu.us = (c.user + c.system + (s0 !== undefined && s1 !== undefined ? (s1 - s0) * 1e6 : 0)) / n;
  await db.query('TRUNCATE entries, sources RESTART IDENTITY CASCADE');
  return rate;
}

async function registry(db: HubDb, n: number): Promise<{ lookupMs: number; probeMs: number; loadS: number }> {
  const t0 = performance.now();
  await db.query(`INSERT INTO sources (genesis, head_seq, head_hash, label, last_pusher) VALUES ('\\x01', 0, '\\x00', 'bench-a', ''), ('\\x02', 0, '\\x00', 'bench-b', '')`);
  const CH = 250_000;
  for (let s = 0; s < n; s += CH) {
    const e = Math.min(n, s + CH) - 1;
    await db.query(
      `INSERT INTO devices (id, anchor, serial, device_public_key, dev_eui, first_seen, last_seen, entries)
       SELECT i + 1, 'key:' || md5(i::text) || md5((i + 1)::text), 'SN-' || i, md5(i::text) || md5((i + 1)::text), lpad(to_hex(i), 16, '0'), 0, 0, 1 FROM generate_series($1::int, $2::int) i`,
      [s, e],
    );
    // every 1000th device shares its DevEUI with the next one: a collision seen by the other source
    await db.query(
      `INSERT INTO sightings (kind, value, device, source_id, first_seen, last_seen)
       SELECT k.kind, CASE k.kind WHEN 'serial' THEN 'SN-' || i WHEN 'devEui' THEN lpad(to_hex(CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END), 16, '0') ELSE md5(i::text) || md5((i + 1)::text) END,
              i + 1, 1 + (i % 2), 0, 0
       FROM generate_series($1::int, $2::int) i, (VALUES ('serial'), ('devEui'), ('devicePublicKey')) AS k(kind)`,
      [s, e],
    );
  }
  await db.query(`SELECT setval(pg_get_serial_sequence('devices', 'id'), $1)`, [n]);
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
  // baseline: one index probe of the same table per query (the floor of a round trip to this backend)
  const t2 = performance.now();
  for (let i = 0; i < K; i++) await db.query(`SELECT 1 FROM sightings WHERE kind = 'serial' AND value = $1 LIMIT 1`, [`SN-${Math.floor(Math.random() * n)}`]);
  const probeMs = (performance.now() - t2) / K;
  return { lookupMs, probeMs, loadS };
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const physical: { sig?: number; hash?: number } = {};
  // rows are also printed as they are finished (a long run shows what it has so far)
  let printed = 0;
  const flush = () => {
    for (; printed < rows.length; printed++) process.stderr.write(`  hub: ${rows[printed].name}: ${rows[printed].value} ${rows[printed].unit}  ${rows[printed].note ?? ''}\n`);
  };
  const world = await makeWorld();
  const techs = await Promise.all(Array.from({ length: 8 }, (_, i) => world.tech(`pusher-${i}`)));
  const eight = await trails(techs, PER_PUSHER);
  const one = await trails([await world.tech('solo')], PER_PUSHER * 2);

  // Physical limits of verification on this machine, each for one core, then times the cores:
  //  - one Ed25519 verification through OpenSSL (node:crypto's one-shot verify), per entry;
  //  - one entry's hash: deterministic CBOR of its body, then SHA-256 (what every mode recomputes).
  const cores = availableParallelism();
  {
    const es = one[0].entries.slice(0, 2000);
    const pubs = new Map<string, ReturnType<typeof createPublicKey>>();
    const keyOf = (hex: string) => {
      let k = pubs.get(hex);
      if (!k) pubs.set(hex, (k = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(hex, 'hex')]), format: 'der', type: 'spki' })));
      return k;
    };
    const items = es.map((e) => ({ sig: Buffer.from(e.sig, 'hex'), msg: Buffer.from(e.hash, 'hex'), key: keyOf(e.signer) }));
    const per = (fn: () => void, each: number) => {
      const c0 = process.cpuUsage();
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 1000) {
        fn();
        n += each;
      }
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / n; // CPU µs per item
    };
    const sigUs = per(() => {
      for (const it of items) if (!nodeVerify(null, it.msg, it.key, it.sig)) throw new Error('a bench signature does not verify');
    }, items.length);
    const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
    const hashUs = per(() => {
      for (const e of es) if (exportEntryHash(e, sha) !== e.hash) throw new Error('a bench hash does not match');
    }, es.length);
    void fromHex;
    physical.sig = (cores * 1e6) / sigUs;
    physical.hash = (cores * 1e6) / hashUs;
    rows.push({ name: 'physical limit: Ed25519 verify (OpenSSL), all cores', value: Math.round(physical.sig), unit: 'sigs/s', note: `${sigUs.toFixed(1)} µs CPU per signature, ${Math.round(1e6 / sigUs)}/s per core x ${cores} cores: the ceiling of --verify every; ${(physical.sig / GOAL).toFixed(2)}x the ingest goal` });
    rows.push({ name: 'physical limit: entry hash (CBOR + SHA-256), all cores', value: Math.round(physical.hash), unit: 'entries/s', note: `${hashUs.toFixed(1)} µs CPU per entry, ${Math.round(1e6 / hashUs)}/s per core x ${cores} cores: every mode recomputes every entry's hash; ${(physical.hash / GOAL).toFixed(2)}x the ingest goal` });
  }

  // Baseline: verification alone (chain mode and every-signature mode), no storage.
  let verifyChain: number | undefined;
  let verifyChainUs: number | undefined;
  {
    const db = await openPglite();
    const trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
    const body = one[0].push(1, 2000);
    const raw = Buffer.from(JSON.stringify(body));
    for (const mode of ['chain', 'every'] as const) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < 1500) {
        // the raw body, as the hub's route hands it to a verification worker
        await verifyBatch(raw, trust, mode);
        n += 2000;
      }
      const v = Math.round(n / ((performance.now() - t0) / 1000));
      const c = process.cpuUsage(c0);
      const us = (c.user + c.system) / n;
      if (mode === 'chain') {
        verifyChain = v;
        verifyChainUs = us;
      }
      rows.push({ name: `baseline verify only (${mode} mode)`, value: v, unit: 'entries/s', note: `one thread, no HTTP, no storage; ${(v / GOAL).toFixed(2)}x the ingest goal; CPU ${us.toFixed(0)} µs per entry (${Math.round(1e6 / us)} entries/s per idle core)` });
    }
    await db.close();
  }

  flush();
  const backends: { name: string; ingestOnly?: boolean; open: () => Promise<{ db: HubDb; done: () => Promise<void> }> }[] = [
    {
      name: 'PostgreSQL',
      open: async () => {
        // durable: fsync, synchronous_commit and full_page_writes on, as a deployment runs it
        const c = await startPostgres({ durable: true });
        if ('skip' in c) throw new Error(c.skip);
        const db = await openPostgres(c.url, { max: 8 });
        return { db, done: async () => { await db.close(); c.stop(); } };
      },
    },
    // Baseline: PGlite on the hub's main thread (as before it had a thread of its own), ingest only
    {
      name: 'PGlite in-thread',
      ingestOnly: true,
      open: async () => {
        const dir = mkdtempSync(join(tmpdir(), 'fieldbench-pglite-'));
        const db = await openPglite(dir, { thread: 'main' });
        return { db, done: async () => { await db.close(); rmSync(dir, { recursive: true, force: true }); } };
      },
    },
    // PGlite last: its 1M-device load is the slow part of the run
    // in a data folder, as `fieldbench hub --data DIR` runs it (not in memory): on its own thread
    {
      name: 'PGlite',
      open: async () => {
        const dir = mkdtempSync(join(tmpdir(), 'fieldbench-pglite-'));
        const db = await openPglite(dir, { thread: 'worker' });
        if (db.thread !== 'worker') throw new Error('the PGlite worker thread did not start');
        return { db, done: async () => { await db.close(); rmSync(dir, { recursive: true, force: true }); } };
      },
    },
  ];
  // FIELDBENCH_HUB_BENCH_ONLY=postgres (or a comma-separated list of backend names, case-insensitive): only those, for a quicker look
  const only = process.env.FIELDBENCH_HUB_BENCH_ONLY?.toLowerCase().split(',').map((x) => x.trim());
  for (const b of backends.filter((x) => !only || only.includes(x.name.toLowerCase()))) {
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
      const measure = async (name: string, unit: string, note: string, fn: () => Promise<number>): Promise<number | undefined> => {
        flush();
        try {
          const value = await fn();
          rows.push({ name, value, unit, note });
          return value;
        } catch (e) {
          rows.push({ name: `${name}: FAILED`, value: 0, unit, note: (e as Error).message });
          return undefined;
        }
      };
      const rawNote = (c: { us?: number }) => `no verification, no registry, no HTTP; CPU ${c.us!.toFixed(0)} µs per row, server included (${Math.round((availableParallelism() * 1e6) / c.us!)} rows/s on ${availableParallelism()} idle cores)`;
      const rc1: { us?: number } = {};
      const rc8: { us?: number } = {};
      const raw1 = await measure(`${b.name}: baseline raw INSERT, 1 writer, ${PER_PUSHER * 2} rows`, 'rows/s', '', () => rawInsertRate(h.db, one, rc1));
      if (raw1 !== undefined) rows.at(-1)!.note = rawNote(rc1);
      const raw8 = await measure(`${b.name}: baseline raw INSERT, 8 writers, ${PER_PUSHER * 8} rows`, 'rows/s', '', () => rawInsertRate(h.db, eight, rc8));
      if (raw8 !== undefined) rows.at(-1)!.note = rawNote(rc8);
      const vs = (v: number, base: number | undefined, what: string) => (base ? `; ${(v / base).toFixed(2)}x ${what}` : '');
      // The floor of the work itself: what one entry's verification (chain mode, one thread) and
      // its bare INSERT cost in CPU, on all cores: no HTTP, no registry, no pushers.
      const floor = (c: { us?: number }) => (verifyChainUs && c.us ? (cores * 1e6) / (verifyChainUs + c.us) : undefined);
      const ingestNote = (v: number, raw: number | undefined, c: { us?: number }) => {
        const f = floor(c);
        return `${(v / GOAL).toFixed(2)}x the goal of ${GOAL}${vs(v, raw, 'raw INSERT')}${vs(v, verifyChain ? verifyChain * cores : undefined, `verify-only x ${cores} cores`)}${f ? `; ${(v / f).toFixed(2)}x the verify + bare INSERT floor (${Math.round(f)}/s on ${cores} idle cores)` : ''}; HTTP, chain verification, registry, batches of 2000`;
      };
      {
        const st = await h.db.query<{ name: string; setting: string; unit: string | null }>(`SELECT name, setting, unit FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'wal_sync_method', 'shared_buffers', 'max_wal_size', 'server_version') ORDER BY name`);
        rows.push({ name: `${b.name}: settings`, value: 0, unit: '', note: st.map((r) => `${r.name}=${r.setting}${r.unit ? ` (${r.unit})` : ''}`).join(' ') });
      }
      let f1: IngestFigure | undefined;
      let f8: IngestFigure | undefined;
      const i1 = await measure(`${b.name}: ingest, 1 pusher, ${PER_PUSHER * 2} entries`, 'entries/s', '', async () => (f1 = await ingestRate(h.db, trust, one)).rate);
      if (i1 !== undefined) rows.at(-1)!.note = ingestNote(i1, raw1, rc1) + cpuNote(f1!, 1);
      await h.db.query('TRUNCATE sightings, devices, collisions, drift, campaign_results, entries, sources RESTART IDENTITY CASCADE');
      // baseline: the same push one batch at a time (no pipelining)
      let f1s: IngestFigure | undefined;
      const i1s = await measure(`${b.name}: baseline ingest, 1 pusher, one batch at a time`, 'entries/s', '', async () => (f1s = await ingestRate(h.db, trust, one, 1)).rate);
      if (i1s !== undefined) rows.at(-1)!.note = `the same push without pipelining${i1 ? `: pipelined is ${(i1 / i1s).toFixed(2)}x it` : ''}; CPU ${(f1s!.cpuUs + (f1s!.serverUs ?? 0)).toFixed(0)} µs per entry; the run got ${((f1s!.rate * (f1s!.cpuUs + (f1s!.serverUs ?? 0))) / 1e6).toFixed(2)} of ${availableParallelism()} cores`;
      await h.db.query('TRUNCATE sightings, devices, collisions, drift, campaign_results, entries, sources RESTART IDENTITY CASCADE');
      const i8 = await measure(`${b.name}: ingest, 8 pushers, ${PER_PUSHER * 8} entries`, 'entries/s', '', async () => (f8 = await ingestRate(h.db, trust, eight)).rate);
      if (i8 !== undefined) rows.at(-1)!.note = ingestNote(i8, raw8, rc8) + cpuNote(f8!, 8, verifyChainUs, h.db.thread);
      await h.db.query('TRUNCATE sightings, devices, collisions, drift, campaign_results, entries, sources RESTART IDENTITY CASCADE');
      if (b.ingestOnly) continue;
      let extra = '';
      const lk = await measure(`${b.name}: duplicate look-up in ${DEVICES} devices`, 'ms', '', async () => {
        const r = await registry(h.db, DEVICES);
        extra = `; baseline index probe ${r.probeMs.toFixed(2)} ms (${(r.lookupMs / r.probeMs).toFixed(2)}x it); loading ${DEVICES} devices took ${r.loadS.toFixed(0)} s`;
        return r.lookupMs;
      });
      if (lk !== undefined) rows.at(-1)!.note = `goal <= ${LOOKUP_GOAL_MS} ms: ${(LOOKUP_GOAL_MS / lk).toFixed(2)}x within it (>= 1 meets it)${extra}`;
    } finally {
      await h.done();
    }
  }
  flush();
  // side by side: the same figure on both backends
  for (const fig of [`ingest, 1 pusher, ${PER_PUSHER * 2} entries`, `ingest, 8 pushers, ${PER_PUSHER * 8} entries`, `duplicate look-up in ${DEVICES} devices`]) {
    const of = (b: string) => rows.find((r) => r.name === `${b}: ${fig}`)?.value;
    const a = of('PGlite');
    const p = of('PostgreSQL');
    const unit = fig.startsWith('ingest') ? 'entries/s' : 'ms';
    rows.push({ name: `side by side: ${fig}`, value: a && p ? +(p / a).toFixed(2) : 0, unit: 'ratio', note: `PostgreSQL / PGlite; PGlite ${a ?? 'not measured'} ${unit}, PostgreSQL ${p ?? 'not measured'} ${unit}` });
    if (!fig.startsWith('ingest')) continue;
    const m = of('PGlite in-thread');
    rows.push({ name: `PGlite thread: ${fig}`, value: a && m ? +(a / m).toFixed(2) : 0, unit: 'ratio', note: `PGlite on its worker thread / PGlite on the main thread; worker ${a ?? 'not measured'} ${unit}, in-thread ${m ?? 'not measured'} ${unit}` });
  }
  return rows;
}

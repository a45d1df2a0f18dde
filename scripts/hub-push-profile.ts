/**
 * N pushers over HTTP into a hub on a durable throwaway PostgreSQL (or PGlite
 * with `pglite`), as `npm run bench hub` does, with the CPU each entry cost
 * in this process and in the server. Run under `node --cpu-prof --import tsx`
 * to see where the hub process spends it.
 *   npx tsx scripts/hub-push-profile.ts [pushers=8] [entries per pusher=10000] [pglite]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { HubClient } from '../src/core/sync/client.ts';
import { openPglite, openPostgres, type HubDb } from '../src/hub/db.ts';
import { startHub } from '../src/hub/server.ts';
import { HubTrust } from '../src/hub/trust.ts';
import { deviceN, makeWorld, Trail } from '../tests/helpers/hub-world.ts';
import { startPostgres } from '../tests/helpers/pg-cluster.ts';

const P = Number(process.argv[2] ?? 8);
const N = Number(process.argv[3] ?? 10000);
const world = await makeWorld();
const trails = await Promise.all(Array.from({ length: P }, async (_, k) => {
  const tr = new Trail(await world.tech(`p${k}`));
  for (let i = 0; i < N; i += 2000) await tr.add(Array.from({ length: Math.min(2000, N - i) }, (_, j) => ({ op: 'identify', outcome: 'ok', device: deviceN(k * N + i + j), details: { model: 'fb-sensor', badges: [] } })));
  return tr;
}));
let db: HubDb;
let stop = () => {};
if (process.argv.includes('pglite')) db = await openPglite();
else {
  const c = await startPostgres({ durable: true });
  if ('skip' in c) throw new Error(c.skip);
  stop = c.stop;
  db = await openPostgres(c.url, { max: 8 });
}
const serverCpu = async () => {
  if (db.kind !== 'postgres') return 0;
  const [{ pid }] = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const stat = (p: string) => { const t = readFileSync(`/proc/${p}/stat`, 'utf8'); const f = t.slice(t.lastIndexOf(')') + 2).split(' '); return { ppid: f[1], cpu: (Number(f[11]) + Number(f[12])) / 100, ch: (Number(f[13]) + Number(f[14])) / 100 }; };
  const pm = stat(String(pid)).ppid;
  let cpu = stat(pm).cpu + stat(pm).ch;
  for (const p of readdirSync('/proc')) if (/^\d+$/.test(p)) try { const s = stat(p); if (s.ppid === pm) cpu += s.cpu; } catch { /* gone */ }
  return cpu;
};
const trust = await HubTrust.open(db, [world.owner.publicKey], world.bundle);
const hub = await startHub({ db, trust, perAddress: { rate: 1e6, burst: 1e6 }, perKey: { rate: 1e6, burst: 1e6 }, log: () => undefined }, { host: '127.0.0.1', port: 0 });
const s0 = await serverCpu();
const c0 = process.cpuUsage();
const t0 = performance.now();
const rs = await Promise.all(trails.map((t) => new HubClient({ url: hub.url, credential: t.tech.credential, signer: t.tech.signer, batch: 2000 }).push(t.export())));
const dt = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
const s1 = await serverCpu();
const n = rs.reduce((a, r) => a + r.accepted, 0);
console.log(`${P} pushers, ${n} entries: ${Math.round(n / dt)} entries/s; CPU per entry: hub process ${((c.user + c.system) / n).toFixed(0)} µs, server ${(((s1 - s0) * 1e6) / n).toFixed(0)} µs`);
await hub.close();
await db.close();
stop();

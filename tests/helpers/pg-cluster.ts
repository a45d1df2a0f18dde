/**
 * A throwaway PostgreSQL cluster for tests and benches: initdb in a temp dir,
 * a free port, the unix socket in the temp dir, no TCP listener. PostgreSQL
 * refuses to run as root, so as root it runs as the `postgres` user (Debian's
 * package creates it). Without PostgreSQL binaries, startPostgres() returns
 * { skip: reason } and the caller says so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PgCluster {
  /** Connection string of the cluster's `postgres` database. */
  url: string;
  /** Connection string of another database on the cluster (created on demand by createDatabase). */
  urlFor(db: string): string;
  createDatabase(name: string): Promise<string>;
  stop(): void;
}

function binDir(): string | undefined {
  if (process.env.FIELDBENCH_PG_BIN) return process.env.FIELDBENCH_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const vs = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
    if (vs.length) return join(root, vs[0], 'bin');
  }
  const r = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (r.status === 0 && existsSync(join(r.stdout.trim(), 'initdb'))) return r.stdout.trim();
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * `durable`: PostgreSQL's defaults for what makes a commit survive a crash
 * (fsync, synchronous_commit, full_page_writes all on): what a deployment
 * runs and what the bench measures. Without it (tests), those three are off:
 * the tests check behaviour, not the disk, and run faster.
 */
export async function startPostgres(opts: { durable?: boolean } = {}): Promise<PgCluster | { skip: string }> {
  const bin = binDir();
  if (!bin) return { skip: 'PostgreSQL binaries not found (install postgresql, or set FIELDBENCH_PG_BIN): the PostgreSQL half of the hub tests did not run' };
  const asRoot = process.getuid?.() === 0;
  let uid: number | undefined;
  let gid: number | undefined;
  if (asRoot) {
    const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (r.status !== 0) return { skip: 'running as root and there is no "postgres" user to run PostgreSQL as: the PostgreSQL half of the hub tests did not run' };
    uid = Number(r.stdout.trim());
    gid = Number(g.stdout.trim());
  }
  const dir = mkdtempSync(join(tmpdir(), 'fieldbench-pg-'));
  if (asRoot) chownSync(dir, uid!, gid!);
  const run = (cmd: string, args: string[]) =>
    asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: 'pipe' }) : execFileSync(join(bin, cmd), args, { stdio: 'pipe' });
  const data = join(dir, 'data');
  const port = await freePort();
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', '-o', `-p ${port} -k ${dir} -c listen_addresses= ${opts.durable ? '-c fsync=on -c synchronous_commit=on -c full_page_writes=on' : '-c fsync=off -c synchronous_commit=off -c full_page_writes=off'}`, 'start']);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`could not start a throwaway PostgreSQL: ${err.stderr?.toString() || err.message}`);
  }
  const urlFor = (db: string) => `postgresql://postgres@/${db}?host=${encodeURIComponent(dir)}&port=${port}`;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  return {
    url: urlFor('postgres'),
    urlFor,
    async createDatabase(name: string) {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: urlFor('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
      } finally {
        await c.end();
      }
      return urlFor(name);
    },
    stop,
  };
}

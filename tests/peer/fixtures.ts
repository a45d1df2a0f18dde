/**
 * Launch the real Zephyr SMP servers (intercreate/smp-server-fixtures, as
 * vendored by intercreate/smpclient) for recording and live tests.
 *
 * The fixtures are NOT part of this repository. Extract them next to it:
 *   git --git-dir=<smpclient mirror> archive HEAD tests/fixtures/smp-server | tar -x -C /work/ext
 * or point FIELDBENCH_FIXTURES at a directory holding manifest.json and the artifacts.
 * See /work/notes/peer.md (or docs) for what each fixture does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LinkOpenError, type Link } from '../../src/core/link/link.ts';
import { openNodeLink } from '../../src/core/link/node.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURES_DIR = process.env.FIELDBENCH_FIXTURES ?? resolve(here, '../../../ext/tests/fixtures/smp-server');

export interface ManifestEntry {
  artifact: string;
  buf_count: number;
  buf_size: number;
  config: string;
  groups: string[];
  line_length_max: number | null;
  mcuboot: boolean;
  recovery_buf_size?: number;
  recovery_buf_count?: number;
  qemu_cmd: string | null;
  run: string | null;
  target: string;
  transport: string;
}

/** The fixtures fieldbench records and tests against: id = "<target>.<config>". */
export const PEER_FIXTURES = {
  'native_sim.serial': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_raw': { framing: 'raw', lineGapMs: 0 },
  'qemu_cortex_m0.serial': { framing: 'console', lineGapMs: 0 },
  /** The app resets into MCUboot serial recovery (os reset boot_mode 1); we record the bootloader's SMP server. */
  'mps2_an385.serial_recovery': { framing: 'console', lineGapMs: 0, recovery: true },
  // the serial-recovery builds, flashed through MCUboot's recovery (tests/peer/recovery-live.test.ts)
  'mps2_an385.serial_recovery_raw': { framing: 'raw', lineGapMs: 0, recovery: true },
  'mps2_an385.serial_recovery_buf400': { framing: 'console', lineGapMs: 0, recovery: true },
  'mps2_an385.serial_recovery_buf512': { framing: 'console', lineGapMs: 0, recovery: true },
  'mps2_an385.serial_recovery_buf1024': { framing: 'console', lineGapMs: 0, recovery: true },
  'mps2_an385.serial_recovery_buf2048': { framing: 'console', lineGapMs: 0, recovery: true },
} as const;
/** Every MCUboot serial-recovery fixture (console and raw, each buffer size). */
export const RECOVERY_FIXTURES = Object.keys(PEER_FIXTURES).filter((k) => k.startsWith('mps2_an385.serial_recovery')) as PeerFixtureId[];
export type PeerFixtureId = keyof typeof PEER_FIXTURES;

export function fixturesAvailable(): boolean {
  return existsSync(join(FIXTURES_DIR, 'manifest.json'));
}

export function manifestEntry(id: string): ManifestEntry {
  const entries = JSON.parse(readFileSync(join(FIXTURES_DIR, 'manifest.json'), 'utf8')) as ManifestEntry[];
  const e = entries.find((x) => `${x.target}.${x.config}` === id && existsSync(join(FIXTURES_DIR, x.artifact)));
  if (!e) throw new Error(`fixture ${id} is not in ${FIXTURES_DIR}/manifest.json or its artifact is missing`);
  return e;
}

/** "zephyr_4.4.0_smp_server_..." -> "4.4.0" ("zephyr_f33aa2bc4a43_..." -> "f33aa2bc4a43", a post-4.4.0 main commit) */
export function zephyrVersionOf(e: ManifestEntry): string {
  return /^zephyr_([^_]+)_/.exec(e.artifact)?.[1] ?? 'unknown';
}

function verifySha256(artifact: string): void {
  const sums = readFileSync(join(FIXTURES_DIR, 'SHA256SUMS'), 'utf8');
  const want = sums
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find(([, name]) => name === artifact)?.[0];
  if (!want) throw new Error(`${artifact} is not listed in SHA256SUMS`);
  const got = createHash('sha256').update(readFileSync(join(FIXTURES_DIR, artifact))).digest('hex');
  if (got !== want) throw new Error(`${artifact}: sha256 mismatch`);
}

/** A free local TCP port: from FIELDBENCH_PORT_RANGE ("47200-47299", for a shared machine) if set, else any. */
async function freePort(): Promise<number> {
  const range = /^(\d+)-(\d+)$/.exec(process.env.FIELDBENCH_PORT_RANGE ?? '');
  const candidates = range ? Array.from({ length: Number(range[2]) - Number(range[1]) + 1 }, (_, i) => Number(range[1]) + i) : [0];
  for (const want of candidates) {
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(want, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    return port;
  }
  throw new Error(`no free port in FIELDBENCH_PORT_RANGE ${process.env.FIELDBENCH_PORT_RANGE}`);
}

function splitCmd(cmd: string): string[] {
  return cmd.split(/\s+/).filter(Boolean);
}

export interface RunningFixture {
  id: string;
  entry: ManifestEntry;
  /** What openNodeLink takes: the pty path or tcp://127.0.0.1:PORT. */
  spec: string;
  framing: 'console' | 'raw';
  lineGapMs: number;
  /** The SMP server to talk to is MCUboot's serial recovery (reached via connectRecovery()). */
  recovery: boolean;
  /** The server's stdout/stderr so far (boot log, pty announcement). */
  output(): string;
  /** Open a link to it (retries while an emulator is still starting). */
  open(timeoutMs?: number): Promise<Link>;
  stop(): Promise<void>;
}

/** Launch fixture `id` from a scratch dir with the artifacts symlinked in; resolves once it is reachable. */
export interface LaunchOptions {
  readyTimeoutMs?: number;
  /**
   * Emulators: start the guest only once a client has connected (QEMU chardev
   * wait=on instead of the manifest's wait=off), so the boot log (MCUboot and
   * Zephyr banners) reaches the link instead of being discarded.
   */
  waitForClient?: boolean;
}

export async function launchFixture(id: PeerFixtureId, opts: LaunchOptions = {}): Promise<RunningFixture> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20000;
  const entry = manifestEntry(id);
  verifySha256(entry.artifact);
  const work = mkdtempSync(join(tmpdir(), 'fb-smp-server-'));
  for (const f of readdirSync(FIXTURES_DIR)) {
    if (/\.(exe|hex|bin|elf)$/.test(f)) symlinkSync(join(FIXTURES_DIR, f), join(work, f));
  }
  let argv: string[];
  let port: number | undefined;
  if (entry.run) argv = splitCmd(entry.run);
  else if (entry.qemu_cmd) {
    port = await freePort();
    let cmd = entry.qemu_cmd.replace('<PORT>', String(port));
    if (opts.waitForClient) cmd = cmd.replace('server=on,wait=off', 'server=on,wait=on');
    argv = splitCmd(cmd);
  } else throw new Error(`fixture ${id} has no launch command`);

  const proc: ChildProcess = spawn(argv[0], argv.slice(1), { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const spawnError = new Promise<never>((_, rej) => proc.once('error', (e) => rej(e)));

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(work, { recursive: true, force: true });
  };

  let spec: string;
  try {
    if (port === undefined) {
      spec = await Promise.race([
        spawnError,
        new Promise<string>((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`${id}: no pty announced within ${readyTimeoutMs} ms:\n${out}`)), readyTimeoutMs);
          const check = () => {
            const m = /connected to pseudotty: (\S+)/.exec(out);
            if (m) {
              clearTimeout(timer);
              res(m[1]);
            }
          };
          proc.stdout!.on('data', check);
          proc.once('exit', (code) => rej(new Error(`${id} exited (${code}) before announcing its pty:\n${out}`)));
          check();
        }),
      ]);
    } else {
      spec = `tcp://127.0.0.1:${port}`;
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const cfg = PEER_FIXTURES[id];
  return {
    id,
    entry,
    spec,
    framing: cfg.framing,
    lineGapMs: cfg.lineGapMs,
    recovery: 'recovery' in cfg && cfg.recovery,
    output: () => out,
    async open(timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          return await openNodeLink(spec);
        } catch (e) {
          // QEMU needs a few hundred ms before its chardev socket listens
          if (!(e instanceof LinkOpenError && e.kind === 'gone') || Date.now() > deadline || proc.exitCode !== null) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    stop,
  };
}

/**
 * Reboot the app into MCUboot serial recovery (os reset, boot_mode 1) over a
 * first, unrecorded connection, then return a fresh link to the bootloader.
 */
export async function connectRecovery(fx: RunningFixture, bootMs = 1500, recoveryMs = 2500): Promise<Link> {
  const { openSession } = await import('../../src/core/groups/session.ts');
  const { reset } = await import('../../src/core/groups/os.ts');
  const appLink = await fx.open();
  await new Promise((r) => setTimeout(r, bootMs));
  const app = await openSession(appLink, { framing: fx.framing, timeoutMs: 3000 });
  try {
    await reset(app.client, { bootMode: 1 });
  } catch {
    /* some servers reset before replying */
  }
  await app.close();
  await new Promise((r) => setTimeout(r, recoveryMs));
  return fx.open();
}

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
  serial_recovery?: boolean;
  ip_family?: 'ipv4' | 'ipv6' | null;
  udp_port?: number | null;
  recovery_buf_size?: number;
  recovery_buf_count?: number;
  qemu_cmd: string | null;
  run: string | null;
  target: string;
  transport: string;
}

/**
 * The fixtures fieldbench records and tests against: id = "<target>.<config>".
 * Every fixture of the snapshot that runs on a Linux host (native_sim, QEMU):
 * see NOT_RUNNABLE for the rest. native_sim's pty UART drops lines sent in a
 * burst (no baud pacing, a 2-line RX pool) unless the build enlarged it
 * (bigrx), so its console fixtures are recorded with a 30 ms line gap.
 */
export const PEER_FIXTURES = {
  'native_sim.serial': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_bigrx': { framing: 'console', lineGapMs: 0 },
  'native_sim.serial_buf96': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_buf256': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_buf400': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_buf512': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_buf1024': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_buf2048': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_fs': { framing: 'console', lineGapMs: 30 },
  'native_sim.serial_line512': { framing: 'console', lineGapMs: 30 },
  /** No MCUmgr params command: the session falls back to 256 x 2. */
  'native_sim.serial_noparams': { framing: 'console', lineGapMs: 30, noParams: true },
  'native_sim.serial_raw': { framing: 'raw', lineGapMs: 0 },
  /** SMP inside the Zephyr shell's UART (shell output interleaved with the frames). */
  'native_sim.shell': { framing: 'console', lineGapMs: 30 },
  /** SMP over UDP (native_sim offloaded sockets bind the host's port 1337). */
  'native_sim.udp': { framing: 'datagram', lineGapMs: 0 },
  'native_sim.udp6': { framing: 'datagram', lineGapMs: 0 },
  'qemu_cortex_m0.serial': { framing: 'console', lineGapMs: 0 },
  'qemu_cortex_m0.serial_buf256': { framing: 'console', lineGapMs: 0 },
  'qemu_cortex_m0.serial_buf512': { framing: 'console', lineGapMs: 0 },
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
/** The UDP fixtures. */
export const UDP_FIXTURES = Object.keys(PEER_FIXTURES).filter((k) => PEER_FIXTURES[k as PeerFixtureId].framing === 'datagram') as PeerFixtureId[];
/**
 * Fixtures of the manifest that do not run here, with why: the nRF52840 DK
 * builds need the board, and the snapshot leaves out some artifacts (the
 * manifest lists the whole release, the snapshot vendors a subset).
 */
export const NOT_RUNNABLE: Record<string, string> = {
  'nrf52840dk.ble': 'needs an nRF52840 DK (Bluetooth LE transport; no artifact in the snapshot)',
  'nrf52840dk.serial': 'needs an nRF52840 DK (no artifact in the snapshot)',
  'nrf52840dk.serial_recovery': 'needs an nRF52840 DK (no artifact in the snapshot)',
  'mps2_an385.serial': 'artifact not in the snapshot (listed in manifest.json only)',
  'mps2_an385.shell': 'artifact not in the snapshot (listed in manifest.json only)',
  'native_sim.serial_buf128': 'artifact not in the snapshot (listed in manifest.json only)',
  'native_sim.udp_buf256': 'artifact not in the snapshot (listed in manifest.json only)',
  'native_sim.udp_buf1024': 'artifact not in the snapshot (listed in manifest.json only)',
  'native_sim.udp_buf2048': 'artifact not in the snapshot (listed in manifest.json only)',
  'native_sim.udp_fs': 'artifact not in the snapshot (listed in manifest.json only)',
};
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

/** The UDP fixtures bind a fixed port (manifest udp_port, Zephyr's 1337): refuse to start a second one. */
async function udpPortFree(port: number, host: string): Promise<void> {
  const { createSocket } = await import('node:dgram');
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((res, rej) => {
    sock.once('error', (e) => rej(new Error(`UDP port ${port} on ${host} is in use (another UDP fixture still running?): ${e.message}`)));
    sock.bind(port, host, () => res());
  }).finally(() => sock.close());
}

function splitCmd(cmd: string): string[] {
  return cmd.split(/\s+/).filter(Boolean);
}

export interface RunningFixture {
  id: string;
  entry: ManifestEntry;
  /** What openNodeLink takes: the pty path, tcp://127.0.0.1:PORT or udp://HOST:1337. */
  spec: string;
  framing: 'console' | 'raw' | 'datagram';
  /** The path the fixture is reached on (for the bench). */
  path: 'pty' | 'tcp' | 'udp';
  /** The build has no MCUmgr params command. */
  noParams: boolean;
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
  if (entry.transport === 'udp') await udpPortFree(entry.udp_port ?? 1337, entry.ip_family === 'ipv6' ? '::1' : '127.0.0.1');
  if (entry.run) argv = splitCmd(entry.run);
  else if (entry.qemu_cmd) {
    port = await freePort();
    let cmd = entry.qemu_cmd.replace('<PORT>', String(port));
    if (opts.waitForClient) cmd = cmd.replace('server=on,wait=off', 'server=on,wait=on');
    // TCP_NODELAY on QEMU's side: without it, Nagle holds each reply's bytes after the first until our
    // delayed ACK (~40 ms a request on loopback, measured), which no UART has
    cmd = cmd.replace('server=on,', 'server=on,nodelay=on,');
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

  // One readiness wait for every transport: what the server prints once it can be reached, and the spec it gives.
  const host = entry.ip_family === 'ipv6' ? '[::1]' : '127.0.0.1';
  const ready: { what: string; match: (out: string) => string | undefined } =
    entry.transport === 'udp'
      ? { what: 'no "smp_udp: Started"', match: (o) => (/smp_udp: Started/.test(o) ? `udp://${host}:${entry.udp_port ?? 1337}` : undefined) }
      : port === undefined
        ? { what: 'no pty announced', match: (o) => /connected to pseudotty: (\S+)/.exec(o)?.[1] }
        : opts.waitForClient
          ? { what: 'no "waiting for connection"', match: (o) => (/waiting for connection/.test(o) ? `tcp://127.0.0.1:${port}` : undefined) }
          : { what: 'no socket', match: () => `tcp://127.0.0.1:${port}` }; // QEMU: open() retries until the chardev listens
  let spec: string;
  try {
    spec = await Promise.race([
      spawnError,
      new Promise<string>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`${id}: ${ready.what} within ${readyTimeoutMs} ms:\n${out}`)), readyTimeoutMs);
        const check = () => {
          const s = ready.match(out);
          if (s === undefined) return;
          clearTimeout(timer);
          res(s);
        };
        proc.stdout!.on('data', check);
        proc.stderr!.on('data', check);
        proc.once('exit', (code) => rej(new Error(`${id} exited (${code}) before it could be reached (${ready.what}):\n${out}`)));
        check();
      }),
    ]);
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
    path: spec.startsWith('udp://') ? 'udp' : spec.startsWith('tcp://') ? 'tcp' : 'pty',
    noParams: 'noParams' in cfg && cfg.noParams,
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
 * Start an emulator that waits for its first client (waitForClient) and let it boot on a first
 * connection that reads the boot log, then close it: later clients find a running device. Closing
 * that connection while the guest is still printing (or sending to the guest before its app runs)
 * leaves QEMU's nRF51 UART silent for good, an emulator artifact a real UART does not have.
 */
export async function bootEmulator(fx: RunningFixture, bootMs = 2500): Promise<string> {
  const link = await fx.open();
  const r = link.readable.getReader();
  const timer = setTimeout(() => void r.cancel().catch(() => {}), bootMs);
  let log = '';
  try {
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      log += Buffer.from(value).toString('latin1');
    }
  } catch {
    /* cancelled */
  } finally {
    clearTimeout(timer);
  }
  await link.close();
  return log;
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

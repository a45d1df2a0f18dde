/**
 * Throughput on the real Zephyr 4.4.0 SMP servers (the live part of npm run
 * bench; it runs only when the fixtures are extracted, see tests/peer/fixtures.ts,
 * and FIELDBENCH_BENCH_LIVE is not 0). KiB/s per fixture and path:
 *
 *  - TCP: QEMU's serial chardev socket (how the emulators are reached);
 *  - pty: the same QEMU UART through a socat pty bridge (a /dev/pts path, as
 *    smpclient was measured on), and native_sim's own pty UART;
 *  - UDP: native_sim's SMP UDP server on 127.0.0.1:1337.
 *
 * Image upload: the fixture's app re-signed (tests/peer/update-peer.ts), sent by
 * the upload engine in application mode, timed from the first chunk's reply to
 * the last (the slot erase is excluded, as for smpclient's figure). Echo: the
 * largest echo the path takes, request and reply payload counted once each way.
 * The session paces itself (no fixed line gap, no caps: window and packet size from
 * the device's params and its pacing), as the CLI does.
 * Reference: smpclient through a pty at 4.8 KiB/s (issue 12). smpclient itself is not
 * run here: it needs intercreate's `smp` package, which neither pip (no PyPI here) nor a
 * fetched snapshot provides, so the ratio is against that figure, and each row says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { sha256 } from '@noble/hashes/sha2.js';
import { openNodeLink } from '../../src/core/link/node.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { echo } from '../../src/core/groups/os.ts';
import { uploadImage, type UploadProgress } from '../../src/core/ops/update/engine.ts';
import type { Link } from '../../src/core/link/link.ts';
import { MAX_PACING_LEVEL } from '../../src/core/smp/pacing.ts';
import { fixturesAvailable, launchFixture, type PeerFixtureId, type RunningFixture } from '../peer/fixtures.ts';
import { UPDATE_SCENARIOS, appUpdateScenario, deriveUpdateImage } from '../peer/update-peer.ts';
import type { BenchRow } from './types.ts';

/** smpclient's image upload through a pty, as measured for issue 12. */
export const SMPCLIENT_PTY_KIBS = 4.8;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A socat pty bridged to a TCP serial: resolves with the /dev/pts path. */
async function socatPty(tcpSpec: string): Promise<{ pty: string; stop: () => Promise<void> }> {
  const target = tcpSpec.replace(/^tcp:\/\//, '');
  const p: ChildProcess = spawn('socat', ['-d', '-d', 'PTY,raw,echo=0', `TCP:${target}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const pty = await new Promise<string>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`socat announced no pty:\n${err}`)), 5000);
    p.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /PTY is (\S+)/.exec(err);
      if (m) {
        clearTimeout(t);
        res(m[1]);
      }
    });
    p.once('error', (e) => rej(e));
    p.once('exit', (c) => rej(new Error(`socat exited ${c}:\n${err}`)));
  });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  return {
    pty,
    stop: async () => {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM');
        await exited;
      }
    },
  };
}

async function withFixture<T>(id: PeerFixtureId, fn: (fx: RunningFixture) => Promise<T>): Promise<T> {
  const fx = await launchFixture(id, { waitForClient: true });
  try {
    return await fn(fx);
  } finally {
    await fx.stop();
  }
}

/** Upload the fixture's re-signed app over `link`; image KiB/s from the first reply to the last. */
async function uploadKiBs(link: Link, framing: 'console' | 'raw', image: Uint8Array): Promise<{ kibs: number; pacing: string; chunk: number }> {
  const s = await openSession(link, { framing, timeoutMs: 3000, readRetries: MAX_PACING_LEVEL });
  try {
    let t0 = 0;
    let b0 = 0;
    const onProgress = (p: UploadProgress) => {
      if (t0 === 0) {
        t0 = performance.now();
        b0 = p.sent;
      }
    };
    const r = await uploadImage(s.client, image, { sha: sha256(image), onProgress, firstChunkTimeoutMs: 20000 });
    const ms = performance.now() - t0;
    if (r.match === false) throw new Error('the device reports a different image hash after the upload'); // (the nRF51's img_mgmt reports no match)
    return { kibs: (image.length - b0) / 1024 / (ms / 1000), pacing: `pacing step ${s.pacing.level}, window ${s.client.windowFor(s.client.maxPacket)}, ${r.timeouts} timeouts`, chunk: s.client.maxPacket };
  } finally {
    await s.close();
  }
}

/** Echo the largest packet the path takes, `n` times: payload KiB/s (each direction). */
async function echoKiBs(link: Link, framing: 'console' | 'raw' | 'datagram', n = 40): Promise<{ kibs: number; bytes: number; pacing: string }> {
  const s = await openSession(link, { framing, timeoutMs: 3000, readRetries: MAX_PACING_LEVEL });
  try {
    // request: 8 header + a1 61 64 + text header (3 bytes over 255)
    const textLen = s.client.deviceMaxPacket - 8 - 3 - 3;
    const text = 'x'.repeat(textLen);
    await echo(s.client, text);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) if ((await echo(s.client, text)) !== text) throw new Error('echo came back different');
    const ms = performance.now() - t0;
    return { kibs: (n * textLen) / 1024 / (ms / 1000), bytes: s.client.deviceMaxPacket, pacing: `pacing step ${s.pacing.level}, ${s.pacing.lineGapMs} ms between lines` };
  } finally {
    await s.close();
  }
}

export async function bench(): Promise<BenchRow[]> {
  if (process.env.FIELDBENCH_BENCH_LIVE === '0' || !fixturesAvailable()) {
    return [{ name: 'live fixtures', value: 0, unit: 'skipped', note: 'fixtures not extracted (tests/peer/fixtures.ts) or FIELDBENCH_BENCH_LIVE=0' }];
  }
  const rows: BenchRow[] = [];
  const ref = (kibs: number) => `${(kibs / SMPCLIENT_PTY_KIBS).toFixed(2)}x smpclient's ${SMPCLIENT_PTY_KIBS} KiB/s through a pty (the issue's figure; smpclient cannot run here: no smp package)`;

  // image upload, application mode: every MCUboot build over QEMU's TCP serial; three of them through a socat pty too
  const uploads: [PeerFixtureId, ('tcp' | 'pty')[]][] = [
    ['qemu_cortex_m0.serial', ['tcp', 'pty']],
    ['mps2_an385.serial_recovery', ['tcp']],
    ['mps2_an385.serial_recovery_raw', ['tcp', 'pty']],
    ['mps2_an385.serial_recovery_buf400', ['tcp']],
    ['mps2_an385.serial_recovery_buf512', ['tcp']],
    ['mps2_an385.serial_recovery_buf1024', ['tcp']],
    ['mps2_an385.serial_recovery_buf2048', ['tcp', 'pty']],
  ];
  for (const [id, paths] of uploads) {
    const sc = id === 'qemu_cortex_m0.serial' ? UPDATE_SCENARIOS.swap : id === 'mps2_an385.serial_recovery' ? UPDATE_SCENARIOS.ramload : appUpdateScenario(id);
    const image = (await deriveUpdateImage(sc)).image;
    for (const path of paths) {
      const r = await withFixture(id, async (fx) => {
        const bridge = path === 'pty' ? await socatPty(fx.spec) : undefined;
        try {
          const link = bridge ? await openNodeLink(bridge.pty) : await fx.open();
          await sleep(1500); // MCUboot and the app boot once the socket is connected
          return await uploadKiBs(link, fx.framing as 'console' | 'raw', image);
        } finally {
          await bridge?.stop();
        }
      });
      rows.push({
        name: `${id} image upload, ${path === 'tcp' ? 'QEMU TCP serial' : 'pty (socat to QEMU)'}`,
        value: r.kibs,
        unit: 'KiB/s',
        note: `${(image.length / 1024).toFixed(0)} KiB, packets <= ${r.chunk} B, ${r.pacing}; ${ref(r.kibs)}`,
      });
    }
  }

  // echo of the largest packet: native_sim's own pty UART, QEMU TCP, UDP
  for (const id of ['native_sim.serial', 'native_sim.serial_bigrx', 'native_sim.serial_raw', 'native_sim.serial_buf2048', 'mps2_an385.serial_recovery_buf2048', 'native_sim.udp', 'native_sim.udp6'] as const) {
    const r = await withFixture(id, async (fx) => {
      const link = await fx.open();
      if (fx.path === 'tcp') await sleep(1500);
      return echoKiBs(link, fx.framing);
    });
    rows.push({ name: `${id} echo ${r.bytes} B, ${fx_path(id)}`, value: r.kibs, unit: 'KiB/s', note: `payload each way, ${r.pacing}` });
  }
  return rows;
}

function fx_path(id: string): string {
  return id.includes('udp6') ? 'UDP [::1]' : id.includes('udp') ? 'UDP' : id.startsWith('native_sim') ? 'pty' : 'TCP';
}

if (process.argv[1]?.endsWith('live.ts')) {
  for (const r of await bench()) console.log(`${r.name.padEnd(64)} ${r.value.toFixed(2).padStart(8)} ${r.unit}  ${r.note ?? ''}`);
}

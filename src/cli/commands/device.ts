/** Verbs that read a device or run the reference device: info, echo, reset, device. */
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echo } from '../../core/groups/os.ts';
import { type RestartOutcome, restartDevice } from '../../core/ops/update/restart.ts';
import { type DeviceInfo, readDeviceInfo } from '../../core/ops/identification/info.ts';
import { resultOf, runOp } from '../../core/ops/outcome.ts';
import { toHex } from '../../core/base/bytes.ts';
import type { Framing } from '../../core/smp/framing.ts';
import { SocketLink } from '../../core/link/node-socket.ts';
import { openTtyLink } from '../../core/link/node-tty.ts';
import { parseTcpSpec } from '../../core/link/node-tcp.ts';
import { listenUdp, parseUdpSpec } from '../../core/link/node-udp.ts';
import { ReferenceDevice } from '../../device/device.ts';
import type { BootMode } from '../../device/groups/image.ts';
import { createBlankDevice, provisionOverWire } from '../../device/provisioning.ts';
import { memorySigner } from '../../core/trust/signer.ts';
import { ed25519PublicKey } from '../../core/trust/ed25519.ts';
import { type CliCommand, type CliIo, UsageError, parseArgs } from '../command.ts';
import { CONNECT_OPTIONS, CONNECT_USAGE, connect } from '../connect.ts';
import { readEd25519Private, readEd25519Public } from '../files.ts';

export function jsonReplacer(_k: string, v: unknown): unknown {
  return v instanceof Uint8Array ? toHex(v) : v;
}

export function formatInfo(info: DeviceInfo): string {
  const lines: string[] = [];
  const row = (k: string, v: unknown) => lines.push(`  ${k.padEnd(18)} ${v}`);
  if (info.mode === 'serial-recovery') lines.push('MCUboot serial recovery (the bootloader answers: image list, upload, reset)');
  lines.push('MCUmgr parameters');
  row('buffer size', `${info.params.bufSize} bytes${info.params.reported ? '' : ' (assumed: device does not report params)'}`);
  row('buffer count', info.params.bufCount);
  if (info.os) {
    lines.push('Application / OS');
    for (const [k, v] of Object.entries(info.os)) row(k, v);
  }
  if (info.bootloader) {
    lines.push('Bootloader');
    row('name', info.bootloader.name);
    if (info.bootloader.modeName) row('mode', `${info.bootloader.modeName} (${info.bootloader.mode})`);
    if (info.bootloader.noDowngrade !== undefined) row('no downgrade', info.bootloader.noDowngrade);
  }
  if (info.groups) {
    lines.push('SMP groups');
    for (const g of info.groups) row(String(g.id), g.name + (g.handlers !== undefined ? ` (${g.handlers} handlers)` : ''));
  }
  if (info.slots) {
    lines.push('Firmware slots');
    for (const s of info.slots) {
      const flags = ['active', 'confirmed', 'pending', 'bootable', 'permanent'].filter((f) => s[f as keyof typeof s]);
      row(`image ${s.image} slot ${s.slot}`, `${s.version} ${flags.join(',')}${s.hash ? ` sha256:${toHex(s.hash)}` : ''}`);
    }
  }
  for (const u of info.unavailable) lines.push(`(${u.what} unavailable: ${u.reason})`);
  return lines.join('\n') + '\n';
}

const info: CliCommand = {
  summary: 'read what a device is: params, OS, bootloader, SMP groups, firmware slots',
  usage: `usage: fieldbench info --port PORT [--json] [options]\n${CONNECT_USAGE}\n  --json            machine-readable output`,
  async run(argv, io) {
    const args = parseArgs(argv, { booleans: ['json', 'verbose'], known: CONNECT_OPTIONS });
    if (args.positional.length) throw new UsageError(`unexpected argument ${args.positional[0]}`);
    const session = await connect(args, io);
    try {
      const result = await resultOf(readDeviceInfo(session));
      io.out(args.has('json') ? JSON.stringify(result, jsonReplacer, 2) + '\n' : formatInfo(result));
      return 0;
    } finally {
      await session.close();
    }
  },
};

const echoCmd: CliCommand = {
  summary: 'send text to a device and print its echo',
  usage: `usage: fieldbench echo TEXT --port PORT [options]\n${CONNECT_USAGE}`,
  async run(argv, io) {
    const args = parseArgs(argv, { booleans: ['verbose'], known: CONNECT_OPTIONS });
    if (args.positional.length !== 1) throw new UsageError('give exactly one TEXT');
    const session = await connect(args, io);
    try {
      io.out((await echo(session.client, args.positional[0])) + '\n');
      return 0;
    } finally {
      await session.close();
    }
  },
};

const resetCmd: CliCommand = {
  summary: 'reboot a device (--boot-mode bootloader: into MCUboot serial recovery, where supported)',
  usage: `usage: fieldbench reset --port PORT [--force] [--boot-mode normal|bootloader] [options]
  --boot-mode bootloader   os reset with boot_mode 1: the device restarts into its bootloader's serial
                           recovery (needs Zephyr's reset boot mode); checked by reconnecting
${CONNECT_USAGE}`,
  async run(argv, io) {
    const args = parseArgs(argv, { booleans: ['verbose', 'force'], known: [...CONNECT_OPTIONS, 'boot-mode'] });
    const mode = args.get('boot-mode') ?? 'normal';
    if (mode !== 'normal' && mode !== 'bootloader') throw new UsageError(`--boot-mode is normal or bootloader, not ${mode}`);
    const session = await connect(args, io);
    const o = (await runOp(
      restartDevice(session, { target: mode, force: args.has('force'), reconnect: mode === 'bootloader' ? () => connect(args, io) : undefined }),
    )) as RestartOutcome;
    await session.close().catch(() => {});
    if (o.kind === 'done') {
      io.out(o.result.message + '\n');
      return 0;
    }
    io.err(`fieldbench reset: ${o.reason}${o.kind === 'failed' ? ` [${o.code}]` : ''}\n`);
    return 1;
  },
};

async function makePtyPair(): Promise<{ devicePath: string; userPath: string; stop: () => void }> {
  const dir = await mkdtemp(join(tmpdir(), 'fieldbench-pty-'));
  const devicePath = join(dir, 'device');
  const userPath = join(dir, 'tty');
  const child = spawn('socat', [`pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${userPath}`], { stdio: 'ignore' });
  const failed = new Promise<never>((_, rej) => child.on('error', (e) => rej(new Error(`cannot start socat to make a pseudo-terminal (${e.message}); install it: apt-get install socat`))));
  const deadline = Date.now() + 5000;
  while (!(existsSync(devicePath) && existsSync(userPath))) {
    if (Date.now() > deadline) throw new Error('socat did not create the pseudo-terminals');
    await Promise.race([new Promise((r) => setTimeout(r, 20)), failed]);
  }
  return { devicePath, userPath, stop: () => child.kill() };
}

const BOOT_MODES: BootMode[] = ['swap-move', 'swap-scratch', 'overwrite', 'ram-load', 'direct-xip'];

export function deviceOptionsFrom(args: ReturnType<typeof parseArgs>) {
  const int = (name: string) => {
    const v = args.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer`);
    return n;
  };
  const framing: Framing = (args.get('framing') ?? 'console') as Framing;
  if (framing !== 'console' && framing !== 'raw') throw new UsageError('--framing must be console or raw');
  const bootMode = args.get('boot-mode') as BootMode | undefined;
  if (bootMode && !BOOT_MODES.includes(bootMode)) throw new UsageError(`--boot-mode must be one of ${BOOT_MODES.join(', ')}`);
  return { framing: framing as Framing, bufSize: int('buf-size'), bufCount: int('buf-count'), lineMax: int('line-max'), bootMode, settings: args.has('settings') };
}

/**
 * Build the i-th device the `device` verb serves: stock; factory-fresh (--unprovisioned: the security
 * group with no identity, trusting --manufacturer-pub); or provisioned at a simulated station
 * (--manufacturer-key: provisioned over SMP through an in-memory cable; the key stays on the station side).
 */
async function buildDevice(args: ReturnType<typeof parseArgs>, io: CliIo, index: number, count: number, framing?: Framing): Promise<ReferenceDevice> {
  const o = deviceOptionsFrom(args);
  if (framing) o.framing = framing;
  const trustedKeys = await Promise.all(args.all('trust-key').map((p) => readEd25519Public(io, p, { what: 'firmware signing key' })));
  const opts = { ...o, image: { bootMode: o.bootMode, trustedKeys } };
  const unprovisioned = args.has('unprovisioned');
  if (!unprovisioned && !args.has('manufacturer-key') && !args.has('owner-key')) return new ReferenceDevice(opts);
  if (unprovisioned && args.has('manufacturer-key')) throw new UsageError('--unprovisioned takes the manufacturer PUBLIC key (--manufacturer-pub), not --manufacturer-key');
  const ownerKeys = await Promise.all(args.all('owner-key').map((p) => readEd25519Public(io, p, { what: 'owner key' })));
  if (ownerKeys.length === 0) throw new UsageError(unprovisioned ? '--owner-key is required with --unprovisioned' : '--owner-key is required with --manufacturer-key');
  const model = args.get('model');
  if (unprovisioned) {
    const pubs = args.all('manufacturer-pub');
    if (pubs.length === 0) throw new UsageError('--unprovisioned needs --manufacturer-pub PUB.pem: the manufacturer key whose certificates the device accepts');
    const manufacturerKeys = await Promise.all(pubs.map((p) => readEd25519Public(io, p, { what: 'manufacturer key' })));
    const { device, security } = await createBlankDevice({ manufacturerKeys, ownerKeys }, { ...opts, security: { model } });
    if (index === 0 || count <= 8) io.out(`factory-fresh device (${security.opts.model}, chip ${toHex(security.chipUid)})\n`);
    return device;
  }
  const manufacturer = await readEd25519Private(io, args.require('manufacturer-key'), 'manufacturer key');
  const { device, security } = await createBlankDevice({ manufacturerKeys: [await ed25519PublicKey(manufacturer)], ownerKeys }, { ...opts, security: { model } });
  const base = args.get('serial') ?? 'FB-0001';
  const serial = count > 1 ? `${base}-${String(index + 1).padStart(3, '0')}` : base;
  await provisionOverWire(device, security, { signer: memorySigner(manufacturer), ids: { serial }, notAfter: new Date(Date.now() + 3650 * 86400_000) });
  io.out(`provisioned ${security.opts.serial} (${security.opts.model}); device key ${toHex(security.devicePublicKey)}\n`);
  return device;
}

const deviceCmd: CliCommand = {
  summary: 'run the reference device (or --count N of them) on a pseudo-terminal (--pty), a TCP port or a UDP port (--listen)',
  usage: `usage: fieldbench device (--pty | --listen tcp://127.0.0.1:PORT | --listen udp://127.0.0.1:PORT) [--count N] [options]
  --count N               start N devices: ports PORT .. PORT+N-1 (PORT 0: any free ports), or N pseudo-terminals
  --framing console|raw   serial framing (default console; over UDP one packet per datagram)
  --buf-size N            MCUmgr buffer size (default 384)     --buf-count N   buffer count (default 4)
  --line-max N            console line limit (default 127)
  --boot-mode M           ${BOOT_MODES.join(' | ')} (default swap-move)
  --trust-key PUB.pem     a firmware signing key the bootloader trusts (repeatable)
  --settings              add Zephyr's Settings group (a stock device's configuration)
  --unprovisioned --manufacturer-pub PUB.pem --owner-key PUB.pem [--model M]
                          a factory-fresh device with the security group and no identity: a station provisions it
                          over the wire (fieldbench bench run); it accepts certificates from that manufacturer key only
  --manufacturer-key PRIV.pem --owner-key PUB.pem [--serial S] [--model M]
                          add the security group, provisioned over the wire by a simulated station holding the
                          manufacturer key (with --count, serials S-001, S-002, ...); the owner key authorizes
                          technicians and configurations`,
  async run(argv, io: CliIo) {
    const args = parseArgs(argv, {
      booleans: ['pty', 'settings', 'unprovisioned'],
      known: ['listen', 'framing', 'buf-size', 'buf-count', 'line-max', 'boot-mode', 'trust-key', 'manufacturer-key', 'manufacturer-pub', 'owner-key', 'serial', 'model', 'count'],
    });
    if (args.has('pty') === args.has('listen')) throw new UsageError('give exactly one of --pty or --listen');
    const listen = args.get('listen') ?? '';
    const udp = /^udp:\/\//i.test(listen);
    if (udp && args.has('framing')) throw new UsageError('--framing does not apply to UDP: one SMP packet per datagram');
    const countArg = args.get('count');
    const count = countArg === undefined ? 1 : Number(countArg);
    if (!Number.isInteger(count) || count < 1 || count > 256) throw new UsageError('--count must be an integer from 1 to 256');
    const devices: ReferenceDevice[] = [];
    for (let i = 0; i < count; i++) devices.push(await buildDevice(args, io, i, count, udp ? 'datagram' : undefined));
    if (args.has('pty')) {
      const ptys = await Promise.all(devices.map(() => makePtyPair()));
      // The pseudo-terminals live as long as we do: socat goes with us, however we end.
      process.once('exit', () => ptys.forEach((p) => p.stop()));
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => process.exit(0));
      const serveForever = async (device: ReferenceDevice, pty: (typeof ptys)[number]) => {
        for (;;) {
          const link = await openTtyLink(pty.devicePath, { baudRate: 115200 });
          await device.serve(link);
          await link.close();
          if (!existsSync(pty.devicePath)) return;
        }
      };
      for (const p of ptys) io.out(`reference device on ${p.userPath}\n`);
      await Promise.all(devices.map((d, i) => serveForever(d, ptys[i])));
      return 0;
    }
    const stopOnSignal = (stop: () => Promise<void>) =>
      new Promise<void>((res) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void stop().then(res, res));
      });
    if (udp) {
      const { host: uhost, port: uport } = parseUdpSpec(listen, { listen: true });
      const where = uhost.includes(':') ? `[${uhost}]` : uhost;
      const listeners: Awaited<ReturnType<typeof listenUdp>>[] = [];
      for (const [i, device] of devices.entries()) {
        const l = await listenUdp(`udp://${where}:${uport === 0 ? 0 : uport + i}`, (link) => void device.serve(link));
        listeners.push(l);
      }
      // handlers first, then the banner: a caller that stops the device as soon as it is announced gets a clean stop
      const stopped = stopOnSignal(async () => void (await Promise.all(listeners.map((l) => l.close()))));
      for (const l of listeners) io.out(`reference device on ${l.url}\n`);
      await stopped;
      return 0;
    }
    const { host, port } = parseTcpSpec(args.require('listen'), { listen: true });
    if (port !== 0 && port + count - 1 > 65535) throw new UsageError(`ports ${port}..${port + count - 1} go past 65535`);
    const servers = await Promise.all(
      devices.map(async (device, i) => {
        const server = createServer((sock) => {
          void device.serve(new SocketLink(sock, `tcp client ${sock.remoteAddress}:${sock.remotePort}`));
        });
        await new Promise<void>((res, rej) => {
          server.once('error', (e) => rej(new Error(`cannot listen on ${host}:${port === 0 ? 0 : port + i}: ${e.message}`)));
          server.listen(port === 0 ? 0 : port + i, host, () => res());
        });
        return server;
      }),
    );
    const stopped = new Promise<void>((res) => {
      const stop = () => {
        let left = servers.length;
        for (const s of servers) s.close(() => --left === 0 && res());
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    for (const server of servers) {
      const addr = server.address();
      io.out(`reference device on tcp://${host}:${typeof addr === 'object' && addr ? addr.port : port}\n`);
    }
    await stopped;
    return 0;
  },
};

export const commands: Record<string, CliCommand> = { info, echo: echoCmd, reset: resetCmd, device: deviceCmd };

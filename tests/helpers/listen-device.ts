/**
 * A real `fieldbench device --listen tcp://127.0.0.1:0` process, provisioned by
 * fresh authorities, and raw SMP connections to it: what an attacker on the
 * network side of a serial-to-TCP bridge (or a second program on the laptop) has.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { openTcpLink } from '../../src/core/link/node-tcp.ts';
import { type SmpSession, openSession } from '../../src/core/groups/session.ts';
import { encodeFrames, createDecoder } from '../../src/core/smp/framing.ts';
import { Op } from '../../src/core/smp/header.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { type Authorities, makeAuthorities } from '../../src/device/provisioning.ts';

const BIN = join(import.meta.dirname, '../../src/cli/bin.mjs');

export interface ListeningDevice {
  addr: string;
  auth: Authorities;
  dir: string;
  child: ChildProcess;
  stop(): void;
}

export async function startListeningDevice(extra: string[] = [], auth?: Authorities): Promise<ListeningDevice> {
  const a = auth ?? (await makeAuthorities());
  const dir = mkdtempSync(join(tmpdir(), 'fb-listen-'));
  writeFileSync(join(dir, 'm.pem'), privateKeyPem(a.manufacturer.privateKey));
  writeFileSync(join(dir, 'o.pub.pem'), publicKeyPem(a.owner.publicKey));
  const child = spawn(process.execPath, [BIN, 'device', '--listen', 'tcp://127.0.0.1:0', '--manufacturer-key', join(dir, 'm.pem'), '--owner-key', join(dir, 'o.pub.pem'), ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const addr = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/reference device on (tcp:\S+)/);
      if (m) resolve(m[1]);
    });
    child.stderr!.on('data', (d) => (out += d));
    child.on('exit', (code) => reject(new Error(`device exited ${code}: ${out}`)));
  });
  return { addr, auth: a, dir, child, stop: () => child.kill() };
}

/** An SMP session over a fresh TCP connection (console framing). */
export async function connectTcp(addr: string): Promise<SmpSession> {
  return openSession(await openTcpLink(addr), { timeoutMs: 3000 });
}

/**
 * A raw TCP connection that sends SMP packets as framed bytes and collects
 * the reply packets: for captured-frame replays and malformed input.
 */
export async function rawConnection(addr: string): Promise<{
  send(packet: Uint8Array): void;
  sendBytes(b: Uint8Array): void;
  next(timeoutMs?: number): Promise<Uint8Array | null>;
  close(): void;
}> {
  const u = new URL(addr);
  const sock = new Socket();
  await new Promise<void>((res, rej) => {
    sock.once('error', rej);
    sock.connect(Number(u.port), u.hostname, () => res());
  });
  const q = packetQueue();
  const dec = createDecoder('console', q.push, { acceptOps: [Op.ReadRsp, Op.WriteRsp] });
  sock.on('data', (d) => dec.push(new Uint8Array(d)));
  sock.on('error', () => {});
  return {
    send: (packet) => {
      for (const f of encodeFrames('console', packet, 127)) sock.write(f);
    },
    sendBytes: (b) => void sock.write(b),
    next: q.next,
    close: () => sock.destroy(),
  };
}

/** Packets as they arrive, and a wait for the next one (null after `timeoutMs`). */
export function packetQueue(): { push(p: Uint8Array): void; next(timeoutMs?: number): Promise<Uint8Array | null> } {
  const queue: Uint8Array[] = [];
  const waiters: ((p: Uint8Array) => void)[] = [];
  return {
    push: (p) => {
      const w = waiters.shift();
      if (w) w(p);
      else queue.push(p);
    },
    next: (timeoutMs = 2000) =>
      queue.length
        ? Promise.resolve(queue.shift()!)
        : new Promise((res) => {
            const t = setTimeout(() => {
              const i = waiters.indexOf(w);
              if (i >= 0) waiters.splice(i, 1);
              res(null);
            }, timeoutMs);
            const w = (p: Uint8Array) => {
              clearTimeout(t);
              res(p);
            };
            waiters.push(w);
          }),
  };
}

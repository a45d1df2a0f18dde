import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadStream } from 'node:tty';
import { openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LinkOpenError } from '../../src/core/link/link.ts';
import { openNodeLink } from '../../src/core/link/node.ts';
import { parseTcpSpec, tcpOpenError } from '../../src/core/link/node-tcp.ts';
import { ttyOpenError } from '../../src/core/link/node-tty.ts';
import { linkContract, within, type LinkUnderTest } from '../helpers/link-contract.ts';

/** The far end as plain web streams over a Node socket, independent of the code under test. */
function peerStreams(sock: Socket): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> } {
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      sock.on('data', (d: Buffer) => c.enqueue(new Uint8Array(d)));
      const end = () => {
        try {
          c.close();
        } catch {
          /* already closed or cancelled */
        }
      };
      sock.on('end', end);
      sock.on('close', end);
      sock.on('error', () => {});
    },
    cancel() {
      sock.destroy();
    },
  });
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => new Promise<void>((res, rej) => sock.write(chunk, (e) => (e ? rej(e) : res()))),
    abort() {
      sock.destroy();
    },
  });
  return { readable, writable };
}

// ---------------------------------------------------------------- TCP

async function tcpServer(): Promise<{ server: Server; port: number; next(): Promise<Socket> }> {
  const server = createServer();
  const waiting: ((s: Socket) => void)[] = [];
  const queued: Socket[] = [];
  server.on('connection', (s) => {
    s.on('error', () => {});
    const w = waiting.shift();
    if (w) w(s);
    else queued.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, port, next: () => (queued.length ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r))) };
}

function makeTcp(unplugHow: 'fin' | 'rst'): () => Promise<LinkUnderTest> {
  return async () => {
    const { server, port, next } = await tcpServer();
    const accepted = next();
    const link = await openNodeLink(`tcp://127.0.0.1:${port}`);
    const sock = await accepted;
    return {
      link,
      peer: {
        ...peerStreams(sock),
        async unplug() {
          const gone = new Promise((r) => sock.once('close', r));
          if (unplugHow === 'rst') sock.resetAndDestroy();
          else sock.destroy();
          await gone;
        },
      },
      async cleanup() {
        sock.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  };
}

linkContract('node tcp (peer closes)', makeTcp('fin'));
linkContract('node tcp (peer resets)', makeTcp('rst'));

describe('node tcp link: opening', () => {
  it('labels the link with its address', async () => {
    const { server, port } = await tcpServer();
    const link = await openNodeLink(`tcp://127.0.0.1:${port}`);
    expect(link.label).toBe(`tcp://127.0.0.1:${port}`);
    expect(link.baudRate).toBeUndefined();
    await link.close();
    await new Promise((r) => server.close(r));
  });

  it('connection refused is LinkOpenError "gone" with a clear message', async () => {
    const { server, port } = await tcpServer();
    await new Promise((r) => server.close(r)); // now nothing listens on port
    const err = await openNodeLink(`tcp://127.0.0.1:${port}`).catch((e) => e);
    expect(err).toBeInstanceOf(LinkOpenError);
    expect(err.kind).toBe('gone');
    expect(err.message).toContain(`tcp://127.0.0.1:${port}`);
    expect(err.message).toMatch(/refused/);
    expect(err.remedy).toMatch(/Start the device/);
  });

  it('parses tcp specs strictly', () => {
    expect(parseTcpSpec('tcp://127.0.0.1:5556')).toEqual({ host: '127.0.0.1', port: 5556 });
    expect(parseTcpSpec('tcp://[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseTcpSpec('tcp://localhost:1/')).toEqual({ host: 'localhost', port: 1 });
    for (const bad of ['tcp://127.0.0.1', 'tcp://:5', 'udp://1.2.3.4:5', 'tcp://h:70000', 'tcp://h:5/x', 'tcp://h:0', 'nonsense']) {
      expect(() => parseTcpSpec(bad), bad).toThrow(LinkOpenError);
    }
  });

  it('maps connect errors to kinds', () => {
    const e = (code: string) => tcpOpenError('tcp://h:1', Object.assign(new Error(code), { code }));
    expect(e('ENOTFOUND').kind).toBe('gone');
    expect(e('EHOSTUNREACH').kind).toBe('gone');
    expect(e('EACCES').kind).toBe('permission');
    expect(e('EWHATEVER').kind).toBe('failed');
  });

  it('rejects unrecognised specs', async () => {
    const err = await openNodeLink('ttyACM0').catch((e) => e);
    expect(err).toBeInstanceOf(LinkOpenError);
    expect(err.kind).toBe('unsupported');
    expect(err.remedy).toMatch(/\/dev\/ttyACM0/);
  });
});

// ---------------------------------------------------------------- tty

describe('node tty link: opening', () => {
  it('a missing device is "gone"', async () => {
    const err = await openNodeLink('/dev/ttyDOESNOTEXIST9').catch((e) => e);
    expect(err).toBeInstanceOf(LinkOpenError);
    expect(err.kind).toBe('gone');
    expect(err.message).toContain('/dev/ttyDOESNOTEXIST9');
  });

  it('a file that is not a tty is refused with kind "protocol"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fb-tty-'));
    const f = join(dir, 'notatty');
    writeFileSync(f, 'x');
    try {
      const err = await openNodeLink(f).catch((e) => e);
      expect(err).toBeInstanceOf(LinkOpenError);
      expect(err.kind).toBe('protocol');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('maps open errors to kinds with remedies (EACCES mentions the dialout group)', () => {
    const e = (code: string) => ttyOpenError('/dev/ttyACM0', Object.assign(new Error(code), { code }));
    expect(e('ENOENT').kind).toBe('gone');
    expect(e('EACCES').kind).toBe('permission');
    expect(e('EACCES').remedy).toMatch(/dialout/);
    expect(e('EBUSY').kind).toBe('busy');
    expect(e('EIO').kind).toBe('failed');
  });

  it('refuses a baud rate stty cannot set', async () => {
    const err = await openNodeLink('/dev/null', { baudRate: 12345 }).catch((e) => e);
    expect(err).toBeInstanceOf(LinkOpenError);
    expect(err.message).toMatch(/baud/);
  });
});

function hasSocat(): boolean {
  try {
    execFileSync('socat', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A socat pty pair: [a, b] are the two slave paths; killing socat "unplugs" both. */
async function ptyPair(): Promise<{ a: string; b: string; proc: ChildProcess; kill(): Promise<void> }> {
  const proc = spawn('socat', ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let err = '';
  const paths = await within(
    5000,
    new Promise<string[]>((resolve, reject) => {
      proc.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const found = [...err.matchAll(/PTY is (\S+)/g)].map((m) => m[1]);
        if (found.length === 2 && /starting data transfer loop/.test(err)) resolve(found);
      });
      proc.once('exit', (code) => reject(new Error(`socat exited (${code}): ${err}`)));
    }),
    'socat to create a pty pair',
  );
  return {
    a: paths[0],
    b: paths[1],
    proc,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

const socat = hasSocat();
if (!socat) {
  describe('node tty link over a pty pair', () => {
    it.skip('skipped: socat is not installed (apt-get install socat) — the pty contract did not run', () => {});
  });
} else {
  linkContract('node tty (socat pty pair)', async () => {
    const pair = await ptyPair();
    const link = await openNodeLink(pair.a);
    const peerTty = new ReadStream(openSync(pair.b, 'r+'));
    return {
      link,
      peer: { ...peerStreams(peerTty), unplug: () => pair.kill() },
      async cleanup() {
        peerTty.destroy();
        await pair.kill();
      },
    };
  });

  describe('node tty link over a pty pair', () => {
    it('configures the port raw, without echo, at the requested baud rate', async () => {
      const pair = await ptyPair();
      try {
        const link = await openNodeLink(pair.a, { baudRate: 230400 });
        expect(link.label).toBe(pair.a);
        expect(link.baudRate).toBe(230400);
        const settings = execFileSync('stty', ['-F', pair.a, '-a'], { encoding: 'utf8' });
        expect(settings).toMatch(/speed 230400 baud/);
        expect(settings).toMatch(/(^|\s)-echo(\s|$)/);
        expect(settings).toMatch(/(^|\s)-icanon(\s|$)/);
        expect(settings).toMatch(/(^|\s)-icrnl(\s|$)/);
        expect(settings).toMatch(/(^|\s)-opost(\s|$)/);
        await link.close();
      } finally {
        await pair.kill();
      }
    });

    it('releases the port on close: it can be opened again', async () => {
      const pair = await ptyPair();
      try {
        const l1 = await openNodeLink(pair.a);
        await l1.close();
        const l2 = await openNodeLink(pair.a);
        expect(await Promise.race([l2.closed, new Promise((r) => setTimeout(() => r('open'), 50))])).toBe('open');
        await l2.close();
      } finally {
        await pair.kill();
      }
    });

    it('opening a pty whose other side is gone fails as "gone"', async () => {
      const pair = await ptyPair();
      await pair.kill();
      const err = await openNodeLink(pair.a).catch((e) => e);
      expect(err).toBeInstanceOf(LinkOpenError);
      expect(err.kind).toBe('gone');
    });
  });
}

/**
 * Found, not guessed (issue 12): framing detected unless given, pacing that
 * starts fast, backs off when the device loses lines and is remembered for
 * the device, a device that is still busy waited for with true causes, and
 * the documented defaults equal to the real ones.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openSession } from '../../src/core/groups/session.ts';
import { echo } from '../../src/core/groups/os.ts';
import { CONSERVATIVE_PARAMS } from '../../src/core/smp/session.ts';
import { CONSOLE_RX_LINES, MAX_PACING_LEVEL, PACING_LADDER, Pacer, memoryPacingStore } from '../../src/core/smp/pacing.ts';
import { filePacingStore } from '../../src/cli/pacing-cache.ts';
import { CONNECT_DEFAULTS, CONNECT_USAGE, connect, noAnswerCauses } from '../../src/cli/connect.ts';
import { parseArgs } from '../../src/cli/command.ts';
import { SocketLink } from '../../src/core/link/node-socket.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';

const fast = { baudRate: 921600 * 10, latencyMs: 0 };
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('the pacing ladder', () => {
  it('starts fast, gets one step more careful per loss, and says when it cannot', () => {
    const p = new Pacer();
    expect(p.pacing).toEqual({ level: 0, lineGapMs: 0, window: Infinity, maxLines: Infinity });
    const gaps: number[] = [];
    while (p.backOff('lost')) gaps.push(p.pacing.lineGapMs);
    expect(gaps).toEqual(PACING_LADDER.slice(1).map((s) => s.lineGapMs));
    expect(p.pacing.level).toBe(MAX_PACING_LEVEL);
    expect(p.backOff('lost again')).toBe(false);
    expect(p.history.map((h) => h.level)).toEqual(PACING_LADDER.slice(1).map((s) => s.level));
  });

  it('a fixed line gap (--line-gap) stays fixed; only the window changes', () => {
    const p = new Pacer(0, 7);
    p.backOff('x');
    p.backOff('y');
    expect(p.pacing).toMatchObject({ lineGapMs: 7, window: 1 });
  });

  it('a level is proven after four whole replies, and a loss starts the count again', () => {
    const p = new Pacer(2);
    for (let i = 0; i < 3; i++) p.ok();
    expect(p.proven).toBe(false);
    p.ok();
    expect(p.proven).toBe(true);
    p.backOff('lost');
    expect(p.proven).toBe(false);
  });

  it('out-of-range start levels are clamped, not trusted', () => {
    expect(new Pacer(-3).pacing.level).toBe(0);
    expect(new Pacer(99).pacing.level).toBe(MAX_PACING_LEVEL);
  });
});

describe('framing found by probing', () => {
  // (console first, then raw: real Zephyr raw servers resynchronise after the console probe's bytes,
  // the reference device does not, so the console-then-raw order is proven live: tests/peer/cli-live.test.ts)
  for (const framing of ['console', 'raw'] as const) {
    it(`a ${framing} device is found to be ${framing}, and answers in it`, async () => {
      const v = createVirtualDevice({ framing, bufSize: 1024, bufCount: 4, model: fast });
      const store = memoryPacingStore();
      if (framing === 'raw') store.set('d', { level: 0, framing: 'raw', at: Date.now() });
      const s = await openSession(v.link, { framing: 'auto', timeoutMs: 2000, probeMs: 300, pacingStore: store, pacingKey: 'd' });
      expect(s.framing).toBe(framing);
      expect(s.framingDetected).toBe(true);
      expect(s.params).toEqual({ bufSize: 1024, bufCount: 4, reported: true });
      expect(await echo(s.client, 'z'.repeat(700))).toBe('z'.repeat(700));
      await s.close();
    });
  }

  it('a device without the params command is still found (its "not supported" settles it)', async () => {
    const v = createVirtualDevice({ framing: 'console', params: false, model: fast });
    const s = await openSession(v.link, { framing: 'auto', timeoutMs: 2000, probeMs: 300 });
    expect(s.framing).toBe('console');
    expect(s.params).toEqual({ bufSize: 256, bufCount: 2, reported: false });
    await s.close();
  });

  it('the framing remembered for the device is probed first', async () => {
    const store = memoryPacingStore();
    store.set('dev', { level: 0, framing: 'raw', at: Date.now() });
    const v = createVirtualDevice({ framing: 'raw', model: fast });
    const logs: string[] = [];
    const w = v.link.writable.getWriter();
    let first: Uint8Array | undefined;
    const link = { label: 'x', readable: v.link.readable, closed: v.link.closed, close: () => v.link.close(), writable: new WritableStream<Uint8Array>({ write: (c) => ((first ??= c.slice()), w.write(c)) }) };
    const s = await openSession(link, { framing: 'auto', timeoutMs: 2000, probeMs: 300, pacingStore: store, pacingKey: 'dev', log: (e) => 'message' in e && logs.push(e.message) });
    expect(s.framing).toBe('raw');
    // the first bytes out are a raw SMP header (read, group 0, params), not a console frame (06 09)
    expect(Array.from(first!.subarray(0, 2))).not.toEqual([0x06, 0x09]);
    expect(first![0] & 0x07).toBe(0);
    expect(logs).toContain('framing: raw (found by probing)');
    await s.close();
  });

  it('nothing answering in either framing is a timeout that says so', async () => {
    const v = createVirtualDevice({ model: fast });
    const silent = { label: 'silent', writable: v.link.writable, closed: v.link.closed, close: () => v.link.close(), readable: new ReadableStream<Uint8Array>() };
    await expect(openSession(silent, { framing: 'auto', timeoutMs: 600, probeMs: 200 })).rejects.toMatchObject({ kind: 'timeout', message: expect.stringMatching(/no answer in console or raw framing/) });
  });
});

describe('pacing measured on a device that drops lines', () => {
  // two line buffers, 3 ms to process a line: a burst of console lines overruns it (as native_sim's pty does)
  const slow = () => createVirtualDevice({ bufSize: 2048, bufCount: 4, rxLineBuffers: 2, lineProcessMs: 3, model: {} });
  const big = 'y'.repeat(900); // ~11 console lines

  it('starts with no gap, backs off when a request is lost, and then gets through', async () => {
    const v = slow();
    const warnings: string[] = [];
    const s = await openSession(v.link, { timeoutMs: 300, readRetries: 3, log: (e) => e.type === 'warn' && warnings.push(e.message) });
    expect(s.pacing.lineGapMs).toBe(0);
    expect(await echo(s.client, big)).toBe(big);
    expect(v.device.stats.droppedLineOverrun).toBeGreaterThan(0);
    expect(s.pacing.level).toBeGreaterThan(0);
    expect(s.pacing.lineGapMs).toBeGreaterThan(0);
    expect(warnings.some((w) => /pacing the link more carefully/.test(w))).toBe(true);
    await s.close();
  });

  it('remembers the level that worked for the device, and the next session starts there', async () => {
    const store = memoryPacingStore();
    const v1 = slow();
    const s1 = await openSession(v1.link, { timeoutMs: 300, readRetries: 3, pacingStore: store, pacingKey: 'ttyACM0' });
    for (let i = 0; i < 5; i++) expect(await echo(s1.client, big)).toBe(big);
    const level = s1.pacing.level;
    expect(level).toBeGreaterThan(0);
    await s1.close();
    expect(store.get('ttyACM0')).toMatchObject({ level, framing: 'console' });

    const v2 = slow();
    const s2 = await openSession(v2.link, { timeoutMs: 300, readRetries: 3, pacingStore: store, pacingKey: 'ttyACM0' });
    expect(s2.pacing.level).toBe(level);
    expect(await echo(s2.client, big)).toBe(big);
    expect(v2.device.stats.droppedLineOverrun ?? 0).toBe(0); // nothing lost: it started where it worked
    await s2.close();
  });

  it('a device that loses nothing keeps the fastest pacing, and that is remembered once proven', async () => {
    const store = memoryPacingStore();
    const v = createVirtualDevice({ bufSize: 2048, bufCount: 4, model: fast });
    const s = await openSession(v.link, { timeoutMs: 1000, pacingStore: store, pacingKey: 'k' });
    for (let i = 0; i < 5; i++) await echo(s.client, big);
    expect(s.pacing.level).toBe(0);
    expect(s.client.window).toBe(3);
    await s.close();
    expect(store.get('k')).toMatchObject({ level: 0 });
  });

  it('measured params do not leak into the next session (the fallback is copied)', async () => {
    const v = createVirtualDevice({ params: false, model: fast });
    const s = await openSession(v.link);
    s.measuredParams!({ bufSize: 1024, bufCount: 1 });
    expect(s.params.bufSize).toBe(1024);
    expect(CONSERVATIVE_PARAMS).toEqual({ bufSize: 256, bufCount: 2, reported: false });
    await s.close();
  });
});

describe('the pacing cache file', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips, ignores damaged or foreign entries and forgets old ones', () => {
    dir = mkdtempSync(join(tmpdir(), 'fb-pacing-'));
    const st = filePacingStore(dir);
    expect(st.get('a')).toBeUndefined();
    st.set('a', { level: 3, framing: 'raw', at: Date.now() });
    expect(filePacingStore(dir).get('a')).toMatchObject({ level: 3, framing: 'raw' });
    const raw = JSON.parse(readFileSync(st.file, 'utf8'));
    raw.b = { level: 99, at: Date.now() };
    raw.c = { level: 1, at: Date.now() - 31 * 86400_000 };
    raw.d = { level: 1, framing: 'telnet', at: Date.now() };
    writeFileSync(st.file, JSON.stringify(raw));
    expect([st.get('b'), st.get('c'), st.get('d')]).toEqual([undefined, undefined, undefined]);
    writeFileSync(st.file, '{not json');
    expect(st.get('a')).toBeUndefined();
    st.set('e', { level: 2, at: Date.now() }); // a damaged file is replaced
    expect(st.get('e')).toMatchObject({ level: 2 });
  });

  it('an unwritable cache directory costs nothing but the memory', () => {
    dir = mkdtempSync(join(tmpdir(), 'fb-pacing-'));
    chmodSync(dir, 0o500);
    const st = filePacingStore(join(dir, 'sub'));
    expect(() => st.set('a', { level: 1, at: Date.now() })).not.toThrow();
    chmodSync(dir, 0o700);
  });
});

describe('a device that does not answer: waited for, causes that fit', () => {
  let server: Server | undefined;
  const sockets: import('node:net').Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });
  const io = () => {
    const err: string[] = [];
    return { err, io: { out: () => {}, err: (t: string) => void err.push(t), cwd: process.cwd() } };
  };
  async function listen(onConn: (sock: import('node:net').Socket, n: number) => void): Promise<number> {
    let n = 0;
    server = createServer((sock) => {
      sockets.push(sock);
      onConn(sock, n++);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    return (server!.address() as { port: number }).port;
  }
  const args = (port: number, extra: string[] = []) => parseArgs(['--port', `tcp://127.0.0.1:${port}`, '--timeout', '300', ...extra]);

  it('a device still busy (silent for a while) is waited for, and then the session opens', async () => {
    const device = new ReferenceDevice({ bufSize: 512, bufCount: 2 });
    const t0 = Date.now();
    const port = await listen((sock) => {
      if (Date.now() - t0 < 1500) return; // busy finishing an interrupted upload: reads nothing, answers nothing
      void device.serve(new SocketLink(sock, 'test'));
    });
    const { err, io: cio } = io();
    const s = await connect(args(port, ['--wait', '8000']), cio, { pacingStore: memoryPacingStore() });
    expect(s.params).toMatchObject({ bufSize: 512, reported: true });
    expect(err.join('')).toMatch(/no answer yet from tcp:\/\/127\.0\.0\.1:\d+; waiting up to 8 s for the device \(it may be booting or still busy\)/);
    await s.close();
  }, 20_000);

  it('silence until the end: "sent nothing" and still busy, never a framing hint', async () => {
    const port = await listen(() => {});
    const { io: cio } = io();
    const e = await connect(args(port, ['--wait', '500']), cio, { pacingStore: memoryPacingStore() }).catch((x: Error) => x);
    expect((e as Error).message).toMatch(/no SMP answer on tcp:.*the device sent nothing within \d s: it is still busy/);
    expect((e as Error).message).not.toMatch(/--framing/);
  }, 20_000);

  it('console text without SMP frames: a shell or log console, not a framing problem', async () => {
    const port = await listen((sock) => {
      sock.on('data', () => sock.write('uart:~$ \r\n'));
    });
    const { io: cio } = io();
    const e = await connect(args(port, ['--wait', '300']), cio, { pacingStore: memoryPacingStore() }).catch((x: Error) => x);
    expect((e as Error).message).toMatch(/no SMP frame in console or raw framing: this port is a shell or log console/);
  }, 20_000);

  it('each cause is chosen by the evidence', () => {
    const base = { bytes: 0, noiseLines: 0, drops: 0, datagram: false, waitedMs: 10_000 };
    expect(noAnswerCauses(base)).toMatch(/sent nothing within 10 s/);
    expect(noAnswerCauses({ ...base, bytes: 40, drops: 2 })).toMatch(/2 damaged frames: the line loses bytes/);
    expect(noAnswerCauses({ ...base, bytes: 40, noiseLines: 1, framingGiven: 'raw' })).toMatch(/1 line of console text but no SMP frame in raw framing: if it speaks the other framing, leave --framing out/);
    expect(noAnswerCauses({ ...base, datagram: true })).toMatch(/not running an SMP UDP server/);
  });
});

describe('documented defaults are the real ones', () => {
  it('CLI help states the defaults connect() uses', () => {
    expect(CONNECT_USAGE).toContain(`(default ${CONNECT_DEFAULTS.baud})`);
    expect(CONNECT_USAGE).toContain(`per-request timeout (default ${CONNECT_DEFAULTS.timeoutMs})`);
    expect(CONNECT_USAGE).toMatch(new RegExp(`before giving up \\(default ${CONNECT_DEFAULTS.waitMs}\\)`));
    expect(CONNECT_USAGE).toMatch(/there is none at first/);
    expect(PACING_LADDER[0].lineGapMs).toBe(0);
  });

  it('docs/PROTOCOL.md names the ladder and the defaults the code has', () => {
    const doc = readFileSync(join(root, 'docs/PROTOCOL.md'), 'utf8');
    expect(PACING_LADDER.slice(1).map((s) => [s.window, s.maxLines])).toEqual([[1, Infinity], ...PACING_LADDER.slice(2).map(() => [1, CONSOLE_RX_LINES])]);
    expect(doc).toContain(`window 1; packets that ops size\n  themselves (upload chunks, chunked transfers) of at most ${CONSOLE_RX_LINES} console lines`);
    const gaps = PACING_LADDER.slice(3).map((s) => `${s.lineGapMs} ms`).join('; ');
    expect(doc).toContain(`then ${gaps.replace(/; /, ' between lines; ')}.`);
    expect(PACING_LADDER[2].lineGapMs).toBe(0);
    expect(doc).toContain(`\`CONSOLE_RX_LINES\` = ${CONSOLE_RX_LINES} console lines`);
    expect(doc).toContain(`(\`--wait MS\`, default ${CONNECT_DEFAULTS.waitMs / 1000} s)`);
    expect(doc).toContain('The defaults are: no gap, the device\'s\n  window and buffer.');
    expect(doc).not.toMatch(/default (line )?gap (of )?(2|15) ms/);
  });
});

import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { recordLink } from '../../src/core/link/recording.ts';
import { openNodeLink } from '../../src/core/link/node.ts';
import { ReplayLink } from '../helpers/replay-link.ts';
import { linkContract, within } from '../helpers/link-contract.ts';
import { fromHex, toHex } from '../../src/core/base/bytes.ts';

async function tcpPair() {
  const server = createServer();
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const inner = await openNodeLink(`tcp://127.0.0.1:${port}`);
  const sock = await accepted;
  sock.on('error', () => {});
  return { server, inner, sock };
}

function peerStreams(sock: Socket) {
  return {
    readable: new ReadableStream<Uint8Array>({
      start(c) {
        sock.on('data', (d: Buffer) => c.enqueue(new Uint8Array(d)));
        const end = () => {
          try {
            c.close();
          } catch {
            /* closed */
          }
        };
        sock.on('end', end);
        sock.on('close', end);
      },
      cancel: () => void sock.destroy(),
    }),
    writable: new WritableStream<Uint8Array>({
      write: (chunk) => new Promise<void>((res, rej) => sock.write(chunk, (e) => (e ? rej(e) : res()))),
      abort: () => void sock.destroy(),
    }),
  };
}

// A recording link is still a link: it must pass the contract around a real one.
linkContract('recording link around node tcp', async () => {
  const { server, inner, sock } = await tcpPair();
  return {
    link: recordLink(inner, { peer: 'test', framing: 'console' }),
    peer: {
      ...peerStreams(sock),
      async unplug() {
        const gone = new Promise((r) => sock.once('close', r));
        sock.destroy();
        await gone;
      },
    },
    async cleanup() {
      sock.destroy();
      await new Promise((r) => server.close(r));
    },
  };
});

describe('recording link transcript', () => {
  it('records each chunk, each direction, in order, with rising timestamps and the outcome', async () => {
    const { server, inner, sock } = await tcpPair();
    let clock = 1000;
    const rl = recordLink(inner, { peer: 'zephyr test', framing: 'raw', now: () => (clock += 1.5) });
    const w = rl.writable.getWriter();
    const buf = new Uint8Array([1, 2, 3]);
    await w.write(buf);
    buf.fill(9); // reusing the buffer after the write must not change the record
    const got = new Promise<Buffer>((r) => sock.once('data', r));
    expect([...(await got)]).toEqual([1, 2, 3]);
    sock.write(Buffer.from([0xbf, 0xff]));
    const r = rl.readable.getReader();
    const { value } = await within(2000, r.read(), 'rx');
    expect([...value!]).toEqual([0xbf, 0xff]);
    await w.write(new Uint8Array([0x0a]));
    await w.write(new Uint8Array(0)); // empty chunks are not recorded
    await rl.close();
    const t = rl.toTranscript();
    expect(t.peer).toBe('zephyr test');
    expect(t.framing).toBe('raw');
    expect(() => new Date(t.recordedAt).toISOString()).not.toThrow();
    expect(t.chunks.map((c) => [c.dir, c.hex])).toEqual([
      ['tx', '010203'],
      ['rx', 'bfff'],
      ['tx', '0a'],
    ]);
    const times = t.chunks.map((c) => c.t_ms);
    expect(times[0]).toBeGreaterThan(0);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(t.closed).toEqual({ reason: 'closed' });
    // plain JSON
    expect(JSON.parse(JSON.stringify(t))).toEqual(t);
    w.releaseLock();
    r.releaseLock();
    await new Promise((res) => server.close(res));
  });

  it('hex helpers round-trip and reject junk', () => {
    const b = new Uint8Array([0, 1, 0x7f, 0x80, 0xff]);
    expect(toHex(b)).toBe('00017f80ff');
    expect(fromHex('00017F80ff')).toEqual(b);
    expect(() => fromHex('abc')).toThrow();
    expect(() => fromHex('zz')).toThrow();
  });
});

describe('replay link', () => {
  const chunks = [
    { dir: 'rx' as const, t_ms: 0, hex: '424f4f540a' },
    { dir: 'tx' as const, t_ms: 1, hex: '0102' },
    { dir: 'tx' as const, t_ms: 2, hex: '03' },
    { dir: 'rx' as const, t_ms: 3, hex: 'aa' },
    { dir: 'rx' as const, t_ms: 4, hex: 'bb' },
    { dir: 'tx' as const, t_ms: 5, hex: '04' },
  ];

  it('releases rx once the tx recorded before it is written, whatever the chunking', async () => {
    const link = new ReplayLink(chunks);
    const r = link.readable.getReader();
    expect(toHex((await r.read()).value!)).toBe('424f4f540a');
    const w = link.writable.getWriter();
    await w.write(new Uint8Array([1]));
    const early = await Promise.race([r.read(), new Promise((res) => setTimeout(() => res('nothing'), 30))]);
    expect(early).toBe('nothing'); // the read stays pending: tx 02 03 not yet written
    await w.write(new Uint8Array([2, 3]));
    // the pending read from the race gets 'aa'
    expect(toHex((await r.read()).value!)).toBe('bb');
    expect(link.finished).toBe(false);
    await w.write(new Uint8Array([4]));
    expect(link.finished).toBe(true);
    expect(link.mismatch).toBeUndefined();
    await link.close();
  });

  it('reports the first tx byte that differs from the recording and errors the link', async () => {
    const link = new ReplayLink(chunks);
    const w = link.writable.getWriter();
    await expect(w.write(new Uint8Array([1, 9]))).rejects.toThrow(/tx byte 1/);
    expect(link.mismatch).toMatch(/recorded 02.*wrote 09/);
    expect(await link.closed).toMatchObject({ reason: 'error' });
  });

  it('reports writes beyond the recording', async () => {
    const link = new ReplayLink(chunks);
    const w = link.writable.getWriter();
    await w.write(new Uint8Array([1, 2, 3, 4]));
    await expect(w.write(new Uint8Array([5]))).rejects.toThrow(/more than were recorded/);
  });
});

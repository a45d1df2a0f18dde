/**
 * The link contract: behaviour every Link (in-memory, WebSerial, WebUSB, Node
 * tty and TCP) must show, whatever carries the bytes.
 *
 *   linkContract('tcp', async () => ({ link, peer: { readable, writable, unplug }, cleanup }));
 *
 * `make` is called once per test and must return a fresh, open link plus the
 * far end of the wire ("peer": what the device would see). `unplug()` makes
 * the device go away the way it does in the field (cable pulled, emulator
 * killed, socket reset): the link must notice on its own.
 *
 * Checked:
 *  - bytes written to link.writable reach the peer unchanged and in order,
 *    including 1 MiB written in random chunk sizes (SHA-256 compared), and a
 *    chunk's buffer may be reused once its write() has resolved;
 *  - bytes the peer writes arrive on link.readable, likewise (1 MiB);
 *  - close() resolves `closed` with {reason:'closed'}, ends a pending read
 *    (done), is idempotent, and writes after it reject (also through a writer
 *    obtained before the close);
 *  - peer unplug resolves `closed` with {reason:'lost', message} and ends
 *    the readable (done) without hanging; writes afterwards reject; close()
 *    after a loss still resolves and does not change the reason;
 *  - no unhandled promise rejections escape the link at any point.
 *
 * Datagram links (UDP: `{ datagram: true }`) carry packets, not a byte stream,
 * over a carrier that may drop or reorder under load and has no connection.
 * For them the byte-stream checks that do not apply (1 MiB bursts in arbitrary
 * chunk sizes, noticing a vanished peer while idle) are replaced by:
 *  - every write arrives as exactly one chunk, unchanged (boundaries kept),
 *    both ways, for sizes 1 .. maxPayload, paced one at a time;
 *  - a write over `link.datagram.maxPayload` rejects and sends nothing;
 *  - after the peer goes away, a write makes the link {reason:'lost'}
 *    (the OS reports the port unreachable), and the readable ends.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Link, LinkClosed } from '../../src/core/link/link.ts';

export interface LinkUnderTest {
  link: Link;
  peer: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array>; unplug(): Promise<void> };
  cleanup?(): Promise<void>;
}

const MiB = 1024 * 1024;
/** Generous bound for anything that should happen "promptly"; a hang fails with a message instead. */
const PROMPT_MS = 5000;

/** Deterministic bytes (xorshift32) so a failure is reproducible. */
export function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Split n bytes into chunk sizes in [1, max], deterministic by seed. */
export function randomChunkSizes(n: number, max: number, seed: number): number[] {
  const sizes: number[] = [];
  let x = seed >>> 0 || 1;
  let left = n;
  while (left > 0) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const s = Math.min(left, 1 + ((x >>> 8) % max));
    sizes.push(s);
    left -= s;
  }
  return sizes;
}

export function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Read exactly n bytes from a stream (keeps the reader; caller releases). */
async function readExactly(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended after ${off} of ${n} bytes`);
    if (!(value instanceof Uint8Array)) throw new Error(`chunk is not a Uint8Array: ${Object.prototype.toString.call(value)}`);
    if (off + value.length > n) throw new Error(`received ${off + value.length - n} bytes more than were sent`);
    out.set(value, off);
    off += value.length;
  }
  return out;
}

async function sha256Hex(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
  return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

async function expectSameBytes(got: Uint8Array, want: Uint8Array): Promise<void> {
  const at = firstDifference(got, want);
  expect(at, `first differing byte at offset ${at}`).toBe(-1);
  expect(await sha256Hex(got)).toBe(await sha256Hex(want));
}

/** Write `data` in the given chunk sizes without awaiting each write (queued), then await all. */
async function writeChunked(ws: WritableStream<Uint8Array>, data: Uint8Array, sizes: number[]): Promise<void> {
  const writer = ws.getWriter();
  try {
    const pending: Promise<void>[] = [];
    let off = 0;
    for (const s of sizes) {
      await writer.ready;
      pending.push(writer.write(data.subarray(off, off + s)));
      off += s;
    }
    await Promise.all(pending);
  } finally {
    writer.releaseLock();
  }
}

async function settle(): Promise<void> {
  // let rejections that would go unhandled surface (they are reported after a macrotask)
  await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setImmediate(r));
}

export function linkContract(name: string, make: () => Promise<LinkUnderTest>, opts: { datagram?: boolean } = {}): void {
  const stream = !opts.datagram;
  const itStream = stream ? it : it.skip;
  describe(`link contract: ${name}`, () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    let current: LinkUnderTest | undefined;

    beforeAll(() => {
      process.on('unhandledRejection', onUnhandled);
    });
    afterAll(() => {
      process.off('unhandledRejection', onUnhandled);
    });

    async function open(): Promise<LinkUnderTest> {
      current = await within(PROMPT_MS * 2, make(), `${name}: make()`);
      return current;
    }

    afterEach(async () => {
      const c = current;
      current = undefined;
      if (c) {
        await within(PROMPT_MS, c.link.close(), 'link.close() in cleanup');
        // the peer side belongs to the harness; make sure nothing keeps it alive
        await c.peer.readable.cancel().catch(() => {});
        await c.peer.writable.abort().catch(() => {});
        await c.cleanup?.();
      }
      await settle();
      const seen = unhandled.splice(0);
      expect(seen.map((e) => String((e as Error)?.stack ?? e)), 'unhandled rejections').toEqual([]);
    });

    it('has a label and a pending `closed` while open', async () => {
      const { link } = await open();
      expect(typeof link.label).toBe('string');
      expect(link.label.length).toBeGreaterThan(0);
      if (link.baudRate !== undefined) expect(link.baudRate).toBeGreaterThan(0);
      const state = await Promise.race([link.closed.then(() => 'settled'), new Promise((r) => setTimeout(() => r('pending'), 50))]);
      expect(state).toBe('pending');
    });

    it('delivers a small write to the peer, and a peer write to the link', async () => {
      const { link, peer } = await open();
      const out = new TextEncoder().encode('\x06\x09hello device\n');
      const w = link.writable.getWriter();
      await within(PROMPT_MS, w.write(out), 'link write');
      w.releaseLock();
      const pr = peer.readable.getReader();
      expect(await within(PROMPT_MS, readExactly(pr, out.length), 'peer receiving the write')).toEqual(out);
      pr.releaseLock();

      const back = new Uint8Array([0, 1, 2, 0x0a, 0x0d, 0x11, 0x13, 0x7f, 0x80, 0xff]);
      const pw = peer.writable.getWriter();
      await pw.write(back);
      pw.releaseLock();
      const lr = link.readable.getReader();
      expect(await within(PROMPT_MS, readExactly(lr, back.length), 'link receiving the peer write')).toEqual(back);
      lr.releaseLock();
    });

    itStream('carries 1 MiB link -> peer in random chunk sizes, in order', async () => {
      const { link, peer } = await open();
      const data = pseudoRandomBytes(MiB, 0xc0ffee);
      const sizes = randomChunkSizes(MiB, 16384, 7);
      const pr = peer.readable.getReader();
      const received = readExactly(pr, MiB);
      await within(60_000, writeChunked(link.writable, data, sizes), '1 MiB of writes to complete');
      // once every write has resolved the bytes are on their way: missing bytes fail fast
      const got = await within(15_000, received, 'peer to receive 1 MiB');
      pr.releaseLock();
      await expectSameBytes(got, data);
    }, 90_000);

    itStream('carries 1 MiB peer -> link in random chunk sizes, in order', async () => {
      const { link, peer } = await open();
      const data = pseudoRandomBytes(MiB, 0xbadc0de);
      const sizes = randomChunkSizes(MiB, 16384, 11);
      const lr = link.readable.getReader();
      const received = readExactly(lr, MiB);
      await within(60_000, writeChunked(peer.writable, data, sizes), 'peer writes to complete');
      const got = await within(15_000, received, 'link to receive 1 MiB');
      lr.releaseLock();
      await expectSameBytes(got, data);
    }, 90_000);

    it('lets the caller reuse a chunk buffer once write() has resolved', async () => {
      const { link, peer } = await open();
      const scratch = new Uint8Array(300);
      const want = new Uint8Array(300 * 20);
      const w = link.writable.getWriter();
      for (let i = 0; i < 20; i++) {
        scratch.fill(i + 1);
        want.fill(i + 1, i * 300, (i + 1) * 300);
        await within(PROMPT_MS, w.write(scratch), `write ${i}`);
      }
      w.releaseLock();
      const pr = peer.readable.getReader();
      const got = await within(PROMPT_MS, readExactly(pr, want.length), 'peer receiving reused-buffer writes');
      pr.releaseLock();
      await expectSameBytes(got, want);
    });

    it('close() resolves `closed` with {reason: "closed"}, ends a pending read, and is idempotent', async () => {
      const { link } = await open();
      const reader = link.readable.getReader();
      const pending = reader.read();
      const writer = link.writable.getWriter();
      const c1 = link.close();
      const c2 = link.close();
      await within(PROMPT_MS, Promise.all([c1, c2]), 'close() to resolve');
      const reason: LinkClosed = await within(PROMPT_MS, link.closed, '`closed` after close()');
      expect(reason).toEqual({ reason: 'closed' });
      const r = await within(PROMPT_MS, pending, 'pending read to end after close()');
      expect(r.done).toBe(true);
      // idempotent after the fact, and the reason never changes
      await within(PROMPT_MS, link.close(), 'third close()');
      expect(await link.closed).toEqual({ reason: 'closed' });
      // writes after close reject, through the writer held across the close ...
      await expect(within(PROMPT_MS, writer.write(new Uint8Array([1, 2, 3])), 'write after close to settle')).rejects.toBeDefined();
      writer.releaseLock();
      // ... and through a writer obtained afterwards
      const w2 = link.writable.getWriter();
      await expect(within(PROMPT_MS, w2.write(new Uint8Array([4])), 'second write after close to settle')).rejects.toBeDefined();
      w2.releaseLock();
      reader.releaseLock();
    });

    itStream('peer unplug resolves `closed` with {reason: "lost"} and ends the readable without hanging', async () => {
      const { link, peer } = await open();
      const reader = link.readable.getReader();
      const pending = reader.read();
      await within(PROMPT_MS, peer.unplug(), 'peer.unplug()');
      const reason = await within(PROMPT_MS, link.closed, '`closed` after unplug');
      expect(reason.reason).toBe('lost');
      expect(typeof (reason as { message?: unknown }).message).toBe('string');
      const r = await within(PROMPT_MS, pending, 'pending read to end after unplug');
      expect(r.done).toBe(true);
      const again = await within(PROMPT_MS, reader.read(), 'read after the end');
      expect(again.done).toBe(true);
      reader.releaseLock();
      const w = link.writable.getWriter();
      await expect(within(PROMPT_MS, w.write(new Uint8Array([9])), 'write after loss to settle')).rejects.toBeDefined();
      w.releaseLock();
      await within(PROMPT_MS, link.close(), 'close() after loss');
      expect((await link.closed).reason).toBe('lost');
    });

    itStream('peer unplug while a large write is in flight settles the write and loses the link', async () => {
      const { link, peer } = await open();
      const data = pseudoRandomBytes(256 * 1024, 3);
      const w = link.writable.getWriter();
      const writes = Promise.allSettled(randomChunkSizes(data.length, 4096, 5).reduce<{ p: Promise<void>[]; off: number }>(
        (acc, s) => {
          acc.p.push(w.write(data.subarray(acc.off, acc.off + s)));
          acc.off += s;
          return acc;
        },
        { p: [], off: 0 },
      ).p);
      await within(PROMPT_MS, peer.unplug(), 'peer.unplug()');
      expect((await within(PROMPT_MS, link.closed, '`closed` after unplug')).reason).toBe('lost');
      // every write settles one way or the other; none hangs
      await within(PROMPT_MS, writes, 'in-flight writes to settle after unplug');
      w.releaseLock();
    });

    (stream ? it.skip : it)('datagram: each write arrives as one chunk, both ways, up to maxPayload', async () => {
      const { link, peer } = await open();
      const max = link.datagram!.maxPayload;
      expect(max).toBeGreaterThan(0);
      const sizes = [1, 8, 100, 511, max - 1, max];
      const w = link.writable.getWriter();
      const pr = peer.readable.getReader();
      for (const [i, n] of sizes.entries()) {
        const d = pseudoRandomBytes(n, 100 + i);
        await within(PROMPT_MS, w.write(d), `write of ${n}`);
        const { value } = await within(PROMPT_MS, pr.read(), `peer receiving ${n}`);
        expect(value).toEqual(d);
      }
      w.releaseLock();
      pr.releaseLock();
      const pw = peer.writable.getWriter();
      const lr = link.readable.getReader();
      for (const [i, n] of sizes.entries()) {
        const d = pseudoRandomBytes(n, 200 + i);
        await pw.write(d);
        const { value } = await within(PROMPT_MS, lr.read(), `link receiving ${n}`);
        expect(value).toEqual(d);
      }
      pw.releaseLock();
      lr.releaseLock();
    });

    (stream ? it.skip : it)('datagram: a write over maxPayload rejects, sends nothing, and ends the link with the reason', async () => {
      const { link, peer } = await open();
      const pr = peer.readable.getReader();
      const w = link.writable.getWriter();
      await w.write(new Uint8Array([7, 7]));
      await expect(w.write(new Uint8Array(link.datagram!.maxPayload + 1))).rejects.toBeInstanceOf(RangeError);
      w.releaseLock();
      const reason = await within(PROMPT_MS, link.closed, '`closed` after the refused write');
      expect(reason).toMatchObject({ reason: 'error', message: expect.any(String) });
      // the peer saw the datagram before, and nothing of the refused one
      expect((await within(PROMPT_MS, pr.read(), 'peer read')).value).toEqual(new Uint8Array([7, 7]));
      const nothing = await Promise.race([pr.read().then(() => 'got'), new Promise((r) => setTimeout(() => r('none'), 200))]);
      expect(nothing).toBe('none');
      pr.releaseLock();
    });

    (stream ? it.skip : it)('datagram: once the peer is gone, a write makes the link lost and ends the readable', async () => {
      const { link, peer } = await open();
      const reader = link.readable.getReader();
      const pending = reader.read();
      await within(PROMPT_MS, peer.unplug(), 'peer.unplug()');
      const w = link.writable.getWriter();
      // the OS learns the port is unreachable from the first datagram; a second write sees it
      for (let i = 0; i < 20; i++) {
        const settled = await Promise.race([link.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 50))]);
        if (settled) break;
        await w.write(new Uint8Array([i])).catch(() => {});
      }
      w.releaseLock();
      const reason = await within(PROMPT_MS, link.closed, '`closed` after unplug and a write');
      expect(reason.reason).toBe('lost');
      expect((await within(PROMPT_MS, pending, 'pending read')).done).toBe(true);
      reader.releaseLock();
      await within(PROMPT_MS, link.close(), 'close() after loss');
      expect((await link.closed).reason).toBe('lost');
    });
  });
}

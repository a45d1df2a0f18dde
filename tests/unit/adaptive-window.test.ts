/**
 * Window and packet size found, not guessed (issue 12): the session starts
 * from what the device reports (buf_size, buf_count) within what a Zephyr UART
 * transport's line buffers hold, and when a request gets no reply it makes the
 * window and the packets that ops size smaller, in the middle of an upload
 * too; what worked is remembered for the device. Against the reference device
 * with its UART line-buffer model (two line buffers, a time to process each).
 */
import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { openSession } from '../../src/core/groups/session.ts';
import { echo } from '../../src/core/groups/os.ts';
import { uploadImage } from '../../src/core/ops/update/engine.ts';
import { CONSOLE_RX_LINES, memoryPacingStore } from '../../src/core/smp/pacing.ts';
import { consolePayloadPerLine } from '../../src/core/smp/framing.ts';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { configureImageModel } from '../../src/device/groups/standard.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import type { Link } from '../../src/core/link/link.ts';

const fast = { baudRate: 921600 * 10, latencyMs: 0 };

/** Packet sizes of the image upload requests our side wrote (console frames decoded by length). */
function tapUploads(link: Link, sizes: number[]): Link {
  const w = link.writable.getWriter();
  const writable = new WritableStream<Uint8Array>({
    write: (c) => {
      // first line of a console frame: 06 09 + base64 of len_be16 | header ...
      let i = 0;
      while ((i = c.indexOf(0x06, i)) >= 0 && i + 1 < c.length) {
        if (c[i + 1] === 0x09) {
          const head = Buffer.from(new TextDecoder().decode(c.subarray(i + 2, i + 2 + 16)), 'base64');
          const len = (head[0] << 8) | head[1];
          const group = (head[6] << 8) | head[7];
          if (group === 1 && head[9] === 1) sizes.push(len - 2);
        }
        i += 2;
      }
      return w.write(c);
    },
  });
  return { label: link.label, readable: link.readable, closed: link.closed, close: () => link.close(), writable };
}

describe('the window: from what the device reports, within the UART line buffers', () => {
  it('a burst of one-line requests never outnumbers the line buffers (3 in flight would lose the third)', async () => {
    // buf_count 4 (window 3 by the params), two UART line buffers that take 20 ms a line
    const v = createVirtualDevice({ bufSize: 384, bufCount: 4, rxLineBuffers: 2, lineProcessMs: 20, model: fast });
    const s = await openSession(v.link, { timeoutMs: 1500, readRetries: 0 });
    expect(s.client.window).toBe(3);
    const texts = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(await Promise.all(texts.map((t) => echo(s.client, t)))).toEqual(texts);
    expect(v.device.stats.droppedLineOverrun ?? 0).toBe(0);
    expect(s.pacing.level).toBe(0); // nothing lost, nothing backed off
    await s.close();
  });

  it('a request of several lines goes alone; raw framing (no line buffers) keeps buf_count - 1 in flight', async () => {
    const v = createVirtualDevice({ bufSize: 1024, bufCount: 4, model: fast });
    const s = await openSession(v.link, { timeoutMs: 1500 });
    const perLine = consolePayloadPerLine();
    expect(s.client.windowFor(s.client.maxPacket)).toBe(1);
    expect(s.client.windowFor(perLine - 4)).toBe(CONSOLE_RX_LINES);
    await s.close();
    const r = createVirtualDevice({ framing: 'raw', bufSize: 1024, bufCount: 4, model: fast });
    const sr = await openSession(r.link, { framing: 'raw', timeoutMs: 1500 });
    expect(sr.client.windowFor(sr.client.maxPacket)).toBe(3);
    await sr.close();
  });
});

describe('packet size: no reply -> smaller, during an upload, remembered', () => {
  // a 2 KiB buffer (22 console lines a packet) behind two line buffers that take 2 ms a line, and a
  // link with no baud pacing: a whole packet's lines arrive at once and all but two are lost
  const device = () => new ReferenceDevice({ bufSize: 2048, bufCount: 4, rxLineBuffers: 2, lineProcessMs: 2 });

  it('the upload backs off to 2-line chunks by itself and completes; the next session starts there', async () => {
    const store = memoryPacingStore();
    const image = (await signImage(new Uint8Array(6000).map((_, i) => (i * 31) & 0xff), { version: '1.0.0', headerSize: 32, padHeader: true })).image;
    const dev = device();
    await configureImageModel(dev, { trustedKeys: [] });
    const run = async () => {
      const pair = createLinkPair(fast);
      void dev.serve(pair.b);
      const sizes: number[] = [];
      const s = await openSession(tapUploads(pair.a, sizes), { timeoutMs: 150, readRetries: 0, pacingStore: store, pacingKey: 'ttyACM0' });
      const startLevel = s.pacing.level;
      const r = await uploadImage(s.client, image, { sha: sha256(image), firstChunkTimeoutMs: 150, maxStalls: 8 });
      const level = s.pacing.level;
      await s.close();
      return { r, sizes, startLevel, level };
    };
    const lost0 = dev.stats.droppedLineOverrun ?? 0;
    const first = await run();
    expect(first.startLevel).toBe(0);
    expect(dev.stats.droppedLineOverrun ?? 0).toBeGreaterThan(lost0); // it did lose whole packets at first
    expect(first.level).toBeGreaterThanOrEqual(2);
    // after the back-off every chunk fits in two console lines
    const twoLines = CONSOLE_RX_LINES * consolePayloadPerLine() - 4;
    expect(first.sizes[0]).toBeGreaterThan(twoLines);
    expect(first.sizes.slice(-5).every((n) => n <= twoLines)).toBe(true);
    expect(first.r.match).toBe(true);
    expect(first.r.timeouts).toBeGreaterThan(0);

    // the level that worked is remembered for the device: no loss at all the second time
    expect(store.get('ttyACM0')?.level).toBe(first.level);
    const lost1 = dev.stats.droppedLineOverrun ?? 0;
    const second = await run();
    expect(second.startLevel).toBe(first.level);
    expect(second.r.timeouts).toBe(0);
    expect(dev.stats.droppedLineOverrun ?? 0).toBe(lost1);
    expect(second.sizes.every((n) => n <= twoLines)).toBe(true);
  });
});

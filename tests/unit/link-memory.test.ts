import { describe, expect, it } from 'vitest';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { linkContract } from '../helpers/link-contract.ts';

linkContract('in-memory pair (unpaced)', async () => {
  const pair = createLinkPair();
  return { link: pair.a, peer: { readable: pair.b.readable, writable: pair.b.writable, unplug: async () => pair.unplug() } };
});

linkContract('in-memory pair (921600 baud, 1 ms latency)', async () => {
  const pair = createLinkPair({ baudRate: 921600 * 100, latencyMs: 1 });
  return { link: pair.a, peer: { readable: pair.b.readable, writable: pair.b.writable, unplug: async () => pair.unplug() } };
});

describe('in-memory link model', () => {
  it('paces bytes at the line rate (10 bits per byte)', async () => {
    const pair = createLinkPair({ baudRate: 115200 });
    const w = pair.a.writable.getWriter();
    const r = pair.b.readable.getReader();
    const n = 2304; // 200 ms at 115200 baud
    const t0 = performance.now();
    await w.write(new Uint8Array(n));
    let got = 0;
    while (got < n) got += (await r.read()).value!.length;
    const elapsed = performance.now() - t0;
    // The model may not deliver early; the upper bound is generous (timer jitter).
    expect(elapsed).toBeGreaterThanOrEqual(195);
    expect(elapsed).toBeLessThan(2000);
  });

  it('drops what overflows the receive buffer and counts it', async () => {
    const pair = createLinkPair({ rxBufferBytes: 100 });
    const w = pair.a.writable.getWriter();
    await w.write(new Uint8Array(60));
    await w.write(new Uint8Array(60));
    await w.write(new Uint8Array(10));
    expect(pair.stats.overrunBytes[1]).toBe(30);
    const r = pair.b.readable.getReader();
    let got = 0;
    got += (await r.read()).value!.length;
    got += (await r.read()).value!.length;
    expect(got).toBe(100);
  });
});

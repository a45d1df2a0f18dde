import { describe, expect, it } from 'vitest';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { listGroups } from '../../src/core/groups/enum.ts';
import { echo, readDateTime, reset, writeDateTime } from '../../src/core/groups/os.ts';
import { readDeviceInfo } from '../../src/core/ops/identification/info.ts';
import { resultOf } from '../../src/core/ops/outcome.ts';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { encodeConsoleLines } from '../../src/core/smp/framing.ts';
import { buildPacket, decodeHeader } from '../../src/core/smp/header.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { ReferenceDevice, MgmtError } from '../../src/device/device.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { ConsoleDecoder } from '../../src/core/smp/framing.ts';

const fast = { baudRate: 921600 * 10, latencyMs: 0 };

describe('SMP session against the reference device', () => {
  for (const framing of ['console', 'raw'] as const) {
    it(`reads params first and then the device info (${framing})`, async () => {
      const v = createVirtualDevice({ framing, bufSize: 2048, bufCount: 4, model: fast });
      const s = await openSession(v.link, { framing });
      expect(s.params).toEqual({ bufSize: 2048, bufCount: 4, reported: true });
      expect(s.client.window).toBe(3);
      const info = await resultOf(readDeviceInfo(s));
      expect(info.os?.kernel).toBe('Zephyr');
      expect(info.bootloader).toMatchObject({ name: 'MCUboot', mode: 3 });
      expect(info.groups?.map((g) => g.name)).toEqual(['os', 'img_mgmt', 'enum']);
      expect(info.slots?.[0]).toMatchObject({ slot: 0, active: true, confirmed: true });
      expect(info.slots?.[0].hash?.length).toBe(32);
      expect(info.unavailable).toEqual([]);
      await s.close();
    });
  }

  it('falls back to conservative limits when the device has no params command', async () => {
    const v = createVirtualDevice({ params: false, model: fast });
    const s = await openSession(v.link);
    expect(s.params).toEqual({ bufSize: 256, bufCount: 2, reported: false });
    expect(await echo(s.client, 'ok')).toBe('ok');
    await s.close();
  });

  it('falls back to the group list when enum details are unsupported', async () => {
    const v = createVirtualDevice({ enumDetails: false, model: fast });
    const s = await openSession(v.link);
    expect((await listGroups(s.client)).map((g) => g.name)).toEqual(['os', 'img', 'enum']);
    await s.close();
  });

  it('caps packet size and window below what the device reports, for fragile devices', async () => {
    const v = createVirtualDevice({ bufSize: 2048, bufCount: 4, model: fast });
    const s = await openSession(v.link, { maxPacket: 275, window: 1 });
    expect(s.client.maxPacket).toBe(275);
    expect(s.client.window).toBe(1);
    await expect(echo(s.client, 'x'.repeat(300))).rejects.toMatchObject({ kind: 'too-large' });
    await s.close();
  });

  it('never sends a request larger than buf_size', async () => {
    const v = createVirtualDevice({ bufSize: 256, model: fast });
    const s = await openSession(v.link);
    const before = v.device.stats.requests;
    await expect(echo(s.client, 'x'.repeat(300))).rejects.toMatchObject({ kind: 'too-large' });
    expect(v.device.stats.requests).toBe(before);
    await s.close();
  });

  it('a request over the device buffer gets no reply at all (as real devices do): timeout', async () => {
    const v = createVirtualDevice({ bufSize: 256, model: fast });
    const s = await openSession(v.link, { timeoutMs: 300 });
    s.client.setLimits(4096, 1); // pretend we did not know the limit
    await expect(echo(s.client, 'x'.repeat(400))).rejects.toMatchObject({ kind: 'timeout' });
    expect(v.device.stats.droppedOversize).toBe(1);
    // The session is still usable.
    expect(await echo(s.client, 'still here')).toBe('still here');
    await s.close();
  });

  it('normalises rc 8 for an unknown group and v2 group errors into typed errors', async () => {
    const v = createVirtualDevice({ model: fast });
    v.device.registerGroup({ id: 77, name: 'test', read: { 0: () => { throw new MgmtError(3, 5); } } });
    const s = await openSession(v.link);
    const e1 = await s.client.read(64, 0, {}).catch((e) => e);
    expect(e1).toBeInstanceOf(SmpError);
    expect(e1.notSupported).toBe(true);
    expect(e1.message).toMatch(/ENOTSUP/);
    const e2 = await s.client.read(77, 0, {}).catch((e) => e);
    expect(e2).toMatchObject({ kind: 'group', group: 77, rc: 5 });
    const e3 = await s.client.write(0, 7, {}).catch((e) => e); // os info is read-only
    expect(e3.notSupported).toBe(true);
    await s.close();
  });

  it('keeps at most buf_count - 1 requests in flight and matches replies by sequence', async () => {
    const v = createVirtualDevice({ bufCount: 3, model: fast });
    let inFlight = 0;
    let maxInFlight = 0;
    const s = await openSession(v.link, {
      log: (e) => {
        if (e.type === 'tx') maxInFlight = Math.max(maxInFlight, ++inFlight);
        if (e.type === 'rx') inFlight--;
      },
    });
    const texts = Array.from({ length: 20 }, (_, i) => `msg ${i}`);
    const replies = await Promise.all(texts.map((t) => echo(s.client, t)));
    expect(replies).toEqual(texts);
    expect(maxInFlight).toBe(2);
    await s.close();
  });

  it('fails waiting requests with a clear cause when the cable is pulled', async () => {
    const v = createVirtualDevice({ model: { baudRate: 9600 } });
    const s = await openSession(v.link);
    const p = echo(s.client, 'x'.repeat(200));
    setTimeout(() => v.pair.unplug('USB cable unplugged'), 20);
    await expect(p).rejects.toMatchObject({ kind: 'closed', message: expect.stringMatching(/disconnected: USB cable unplugged/) });
    await expect(echo(s.client, 'again')).rejects.toMatchObject({ kind: 'closed' });
    expect(await s.closed).toEqual({ reason: 'lost', message: 'USB cable unplugged' });
  });

  it('reset: the device replies, reboots, prints its banner, and answers again', async () => {
    const v = createVirtualDevice({ model: fast });
    const noise: string[] = [];
    const s = await openSession(v.link, { log: (e) => e.type === 'noise' && noise.push(e.text) });
    await reset(s.client);
    // the reboot and its banner come after the reply; wait for them (not a fixed sleep: a loaded machine is slower)
    const banners = () => noise.filter((n) => n.includes('Booting Zephyr')).length;
    for (let i = 0; i < 500 && (v.device.bootCount < 2 || banners() < 2); i++) await new Promise((r) => setTimeout(r, 10));
    expect(v.device.bootCount).toBe(2);
    expect(noise.filter((n) => n.includes('Booting Zephyr')).length).toBe(2);
    expect(await echo(s.client, 'back')).toBe('back');
    await s.close();
  });

  it('datetime: write then read back', async () => {
    const v = createVirtualDevice({ model: fast });
    const s = await openSession(v.link);
    await writeDateTime(s.client, '2030-01-02T03:04:05');
    expect(await readDateTime(s.client)).toMatch(/^2030-01-02T03:04:0[5-6]/);
    await expect(writeDateTime(s.client, 'not a date')).rejects.toMatchObject({ kind: 'group', rc: 2 });
    await s.close();
  });

  it('lines sent in a burst overrun a slow device; paced lines do not', async () => {
    const big = 'y'.repeat(900); // ~11 console lines
    for (const [gap, ok] of [[0, false], [8, true]] as const) {
      const v = createVirtualDevice({ bufSize: 2048, rxLineBuffers: 2, lineProcessMs: 3, model: {} });
      const s = await openSession(v.link, { lineGapMs: gap, timeoutMs: 400 });
      const r = await echo(s.client, big).then(() => true, () => false);
      expect(r).toBe(ok);
      if (!ok) expect(v.device.stats.droppedLineOverrun).toBeGreaterThan(0);
      await s.close();
    }
  });
});

describe('SMP client against a misbehaving peer', () => {
  /** A peer that answers each request with bytes we craft. */
  async function withPeer(answer: (req: Uint8Array) => Uint8Array[] | null) {
    const pair = createLinkPair();
    const w = pair.b.writable.getWriter();
    const dec = new ConsoleDecoder((req) => {
      const out = answer(req);
      if (out) for (const c of out) void w.write(c);
    });
    void (async () => {
      const r = pair.b.readable.getReader();
      for (;;) {
        const { value, done } = await r.read();
        if (done) return;
        dec.push(value);
      }
    })();
    return openSession(pair.a, { skipParams: true, timeoutMs: 300 });
  }
  const replyTo = (req: Uint8Array, payload: Uint8Array, over: Partial<{ group: number; id: number; seq: number }> = {}) => {
    const h = decodeHeader(req);
    return buildPacket({ op: h.op + 1, version: h.version, flags: 0, group: over.group ?? h.group, seq: over.seq ?? h.seq, id: over.id ?? h.id }, payload);
  };

  it('invalid CBOR in a reply fails that request with a decode error', async () => {
    const s = await withPeer((req) => encodeConsoleLines(replyTo(req, new Uint8Array([0xbf, 0x61]))));
    await expect(echo(s.client, 'a')).rejects.toMatchObject({ kind: 'decode' });
    await s.close();
  });

  it('a reply that is not a map is a decode error', async () => {
    const s = await withPeer((req) => encodeConsoleLines(replyTo(req, encodeCbor([1, 2]))));
    await expect(echo(s.client, 'a')).rejects.toMatchObject({ kind: 'decode' });
    await s.close();
  });

  it('replies for other sequence numbers or commands are ignored and counted; then timeout', async () => {
    const s = await withPeer((req) => [
      ...encodeConsoleLines(replyTo(req, encodeCbor({ r: 'a' }), { seq: (decodeHeader(req).seq + 1) & 0xff })),
      ...encodeConsoleLines(replyTo(req, encodeCbor({ r: 'a' }), { id: 9 })),
    ]);
    await expect(echo(s.client, 'a')).rejects.toMatchObject({ kind: 'timeout' });
    expect(s.client.unmatched).toBe(2);
    await s.close();
  });

  it('a CRC-corrupted reply is dropped and counted; the request times out with a clear cause', async () => {
    const s = await withPeer((req) => {
      const lines = encodeConsoleLines(replyTo(req, encodeCbor({ r: 'a' })));
      lines[0][5] ^= 0x01;
      return lines;
    });
    const e = await echo(s.client, 'a').catch((x) => x);
    expect(e).toMatchObject({ kind: 'timeout' });
    expect(s.stats.dropped.crc + s.stats.dropped.base64).toBe(1);
    await s.close();
  });

  it('v1 rc in a reply becomes a typed error with a readable name', async () => {
    const s = await withPeer((req) => encodeConsoleLines(replyTo(req, encodeCbor({ rc: 10 }))));
    await expect(echo(s.client, 'a')).rejects.toThrow(/EBUSY/);
    await s.close();
  });
});

describe('reference device as a Zephyr-like peer', () => {
  it('answers with indefinite-length maps', async () => {
    const d = new ReferenceDevice();
    const req = buildPacket({ op: 2, version: 1, flags: 0, group: 0, seq: 5, id: 0 }, encodeCbor({ d: 'hi' }));
    const rsp = (await d.handle(req))!;
    expect(rsp[8]).toBe(0xbf);
    expect(rsp[rsp.length - 1]).toBe(0xff);
    expect(decodeHeader(rsp)).toMatchObject({ op: 3, seq: 5, group: 0, id: 0 });
  });
});

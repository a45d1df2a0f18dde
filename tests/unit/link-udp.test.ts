/**
 * SMP over UDP: the datagram link passes the parts of the link contract that
 * apply to a datagram carrier, the session sends one packet per datagram under
 * the MTU, and the reference device serves over UDP (`device --listen udp://`).
 */
import { createSocket, type Socket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { LinkOpenError } from '../../src/core/link/link.ts';
import { openNodeLink } from '../../src/core/link/node.ts';
import { listenUdp, openUdpLink, parseUdpSpec, UDP_PAYLOAD_IPV4, UDP_PAYLOAD_IPV6 } from '../../src/core/link/node-udp.ts';
import { echo } from '../../src/core/groups/os.ts';
import { recordLink } from '../../src/core/link/recording.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { linkContract, type LinkUnderTest } from '../helpers/link-contract.ts';

async function peerSocket(): Promise<{ sock: Socket; port: number }> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { sock, port: sock.address().port };
}

linkContract(
  'udp',
  async (): Promise<LinkUnderTest> => {
    const { sock, port } = await peerSocket();
    const link = await openUdpLink(`udp://127.0.0.1:${port}`);
    let closed = false;
    const readable = new ReadableStream<Uint8Array>({
      start(c) {
        sock.on('message', (m) => c.enqueue(new Uint8Array(m)));
        sock.on('close', () => {
          try {
            c.close();
          } catch {
            /* cancelled */
          }
        });
      },
    });
    const writable = new WritableStream<Uint8Array>({
      write: (d) => new Promise<void>((res, rej) => sock.send(d, link.localPort, '127.0.0.1', (e) => (e ? rej(e) : res()))),
    });
    const shut = () =>
      new Promise<void>((r) => {
        if (closed) return r();
        closed = true;
        sock.close(() => r());
      });
    return { link, peer: { readable, writable, unplug: shut }, cleanup: shut };
  },
  { datagram: true },
);

describe('udp:// specs', () => {
  it('parses host, port, IPv6 and an optional MTU; refuses the rest with a typed error', () => {
    expect(parseUdpSpec('udp://127.0.0.1:1337')).toEqual({ host: '127.0.0.1', port: 1337 });
    expect(parseUdpSpec('udp://[::1]:1337')).toEqual({ host: '::1', port: 1337 });
    expect(parseUdpSpec('udp://10.0.0.2:1337?mtu=1280')).toEqual({ host: '10.0.0.2', port: 1337, maxPayload: 1252 });
    expect(parseUdpSpec('udp://[fe80::1]:1337?mtu=1280').maxPayload).toBe(1232);
    for (const bad of ['udp://127.0.0.1', 'udp://127.0.0.1:0', 'udp://h:1/x', 'udp://h:1?mtu=9', 'udp://h:1?foo=1', 'tcp://h:1']) {
      expect(() => parseUdpSpec(bad), bad).toThrow(LinkOpenError);
    }
  });

  it('the default payload limit is an Ethernet MTU less the headers, per address family', async () => {
    const a = await openNodeLink('udp://127.0.0.1:9');
    const b = await openNodeLink('udp://[::1]:9');
    expect(a.datagram?.maxPayload).toBe(UDP_PAYLOAD_IPV4);
    expect(b.datagram?.maxPayload).toBe(UDP_PAYLOAD_IPV6);
    await a.close();
    await b.close();
  });
});

describe('SMP over UDP with the reference device', () => {
  async function served(bufSize: number, maxPayload?: number) {
    const device = new ReferenceDevice({ framing: 'datagram', bufSize, bufCount: 4 });
    const l = await listenUdp('udp://127.0.0.1:0', (link) => void device.serve(link), maxPayload ? { maxPayload } : {});
    return { device, l };
  }

  it('one packet per datagram, the session keeps packets under the MTU and the buffer', async () => {
    const { device, l } = await served(2048);
    const link = recordLink(await openUdpLink(l.url, { maxPayload: 600 }), { peer: 'ref', framing: 'datagram' });
    const s = await openSession(link, { framing: 'auto', timeoutMs: 2000 });
    expect(s.framing).toBe('datagram');
    expect(s.params).toMatchObject({ bufSize: 2048, reported: true });
    expect(s.client.maxPacket).toBe(600); // the MTU, not the 2048-byte buffer
    const big = 'x'.repeat(600 - 8 - 1 - 2 - 3);
    expect(await echo(s.client, big)).toBe(big);
    await expect(echo(s.client, big + 'y')).rejects.toMatchObject({ kind: 'too-large' });
    const t = link.toTranscript();
    // every write was one whole SMP packet: its header's length is the chunk's
    for (const c of t.chunks.filter((c) => c.dir === 'tx')) {
      const b = Buffer.from(c.hex, 'hex');
      expect(b.readUInt16BE(2) + 8).toBe(b.length);
    }
    expect(device.stats.requests).toBe(2);
    await s.close();
    await l.close();
  });

  it('a datagram that is not exactly one packet is dropped, not joined with the next', async () => {
    const { device, l } = await served(384);
    const link = await openUdpLink(l.url);
    const w = link.writable.getWriter();
    await w.write(new Uint8Array([0x08, 0, 0, 5, 0, 0, 1, 6])); // declares 5 payload bytes, carries none
    w.releaseLock();
    const s = await openSession(link, { timeoutMs: 2000 });
    expect(s.params.bufSize).toBe(384);
    expect(device.stats.framing.dropped.length).toBe(1);
    await s.close();
    await l.close();
  });

  it('a device that is gone: the session fails with a timeout or a lost link, never hangs', async () => {
    const { l } = await served(384);
    const url = l.url;
    await l.close();
    const link = await openUdpLink(url);
    const r = await openSession(link, { timeoutMs: 800, readRetries: 0 }).then(
      () => 'opened',
      (e: { kind?: string }) => e.kind,
    );
    expect(['timeout', 'closed']).toContain(r);
    await link.close();
  });
});

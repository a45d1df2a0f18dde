/**
 * The MessagePort link (src/core/link/message-port.ts) passes the link contract, directly and
 * through bridgeToPort (a memory pair's far end carried over a port, as the factory bench's device
 * worker does: tests/helpers/device-worker.ts), and a unit in a worker thread serves SMP through it.
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { type PortLike, bridgeToPort, messagePortLink } from '../../src/core/link/message-port.ts';
import { echo } from '../../src/core/groups/os.ts';
import { factoryWorld, startDeviceWorker } from '../helpers/factory-world.ts';
import { linkContract } from '../helpers/link-contract.ts';

const port = (p: unknown) => p as PortLike;

linkContract('message port', async () => {
  const ch = new MessageChannel();
  const link = messagePortLink(port(ch.port1), 'port:a');
  const peer = messagePortLink(port(ch.port2), 'port:b');
  return { link, peer: { readable: peer.readable, writable: peer.writable, unplug: () => peer.close() } };
});

linkContract('memory pair bridged to a message port (921600 baud, 1 ms)', async () => {
  const pair = createLinkPair({ baudRate: 921600 * 100, latencyMs: 1 });
  const ch = new MessageChannel();
  void bridgeToPort(pair.b, port(ch.port1), { onFarEnd: (m) => pair.unplug(m) });
  const peer = messagePortLink(port(ch.port2), 'port:device');
  return { link: pair.a, peer: { readable: peer.readable, writable: peer.writable, unplug: () => peer.close() } };
});

describe('units in a worker thread', () => {
  it('serve SMP through the bridge, and an unplug reaches both ends', async () => {
    const w = await factoryWorld();
    const worker = await startDeviceWorker();
    try {
      const [jig] = await worker.jigs(w, 1, { model: { baudRate: 115200 * 20 } });
      const s = await jig.connect();
      expect(await echo(s.client, 'across threads')).toBe('across threads');
      jig.unplug();
      await expect(echo(s.client, 'gone')).rejects.toMatchObject({ kind: 'closed' });
      const s2 = await jig.connect();
      expect(await echo(s2.client, 'again')).toBe('again');
      await s2.close();
      expect(await worker.cpuMicros()).toBeGreaterThanOrEqual(0);
    } finally {
      await worker.close();
    }
  }, 60_000);
});

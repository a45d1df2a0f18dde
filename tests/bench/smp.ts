/**
 * Echo and info round trips over the simulated serial link, against the
 * minimum the line rate allows (the bytes of request and reply on the wire).
 */
import { echo } from '../../src/core/groups/os.ts';
import { collectDeviceInfo } from '../../src/core/ops/identification/info.ts';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { consoleEncodedSize } from '../../src/core/smp/framing.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import type { BenchRow } from './types.ts';

const wireMs = (bytes: number, baud: number) => (bytes * 10 * 1000) / baud;

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const baud of [115200, 921600]) {
    for (const framing of ['console', 'raw'] as const) {
      const v = createVirtualDevice({ framing, bufSize: 2048, bufCount: 4, model: { baudRate: baud, latencyMs: 0 } });
      const s = await openSession(v.link, { framing });
      const text = 'x'.repeat(64);
      const n = baud === 115200 ? 20 : 50;
      await echo(s.client, text);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await echo(s.client, text);
      const per = (performance.now() - t0) / n;
      const reqBytes = 8 + encodeCbor({ d: text }).length;
      const rspBytes = 8 + 1 + encodeCbor('r').length + encodeCbor(text).length + 1;
      const wire = framing === 'console' ? consoleEncodedSize(reqBytes) + consoleEncodedSize(rspBytes) : reqBytes + rspBytes;
      const min = wireMs(wire, baud);
      rows.push({ name: `echo 64 B round trip, ${framing} @ ${baud}`, value: per, unit: 'ms', note: `line-rate minimum ${min.toFixed(2)} ms; ratio ${(min / per).toFixed(2)} of the limit` });

      // The line is full duplex: the floor is the busier direction's bytes.
      const bytes = { tx: 0, rx: 0 };
      const s2 = await openSession(createVirtualDevice({ framing, bufSize: 2048, bufCount: 4, model: { baudRate: baud } }).link, {
        framing,
        log: (e) => {
          if (e.type === 'tx' || e.type === 'rx') bytes[e.type] += framing === 'console' ? consoleEncodedSize(e.bytes) : e.bytes;
        },
      });
      bytes.tx = bytes.rx = 0;
      const t1 = performance.now();
      await collectDeviceInfo(s2);
      const infoMs = performance.now() - t1;
      const floor = wireMs(Math.max(bytes.tx, bytes.rx), baud);
      rows.push({ name: `info (all reads), ${framing} @ ${baud}`, value: infoMs, unit: 'ms', note: `${bytes.tx} B out, ${bytes.rx} B in: full-duplex minimum ${floor.toFixed(1)} ms; ratio ${(floor / infoMs).toFixed(2)}` });
      await s.close();
      await s2.close();
    }
  }
  return rows;
}

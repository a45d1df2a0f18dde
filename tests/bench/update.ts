/**
 * Firmware upload throughput over the simulated serial line, against the
 * framing ceiling (what the line can carry in image bytes at the chunk size
 * used), and against the stop-and-wait 128-byte baseline, in the same run.
 *
 * Line model: 8N1 at the given baud, 1 ms one-way latency (USB full-speed
 * frame of a CDC-ACM bridge). Device flash: 20 ms per 4 KiB erase, 3 µs per
 * byte written. Throughput is measured from the first chunk's reply (after
 * the one-time slot erase) to the last reply.
 *
 * Host serial buffer: a real host's write() returns once bytes are in the
 * OS tty buffer (4 KiB here), and the UART drains it without gaps. The memory
 * link resolves each write only when its last bit has left (via a timer, which
 * overshoots by ~1 ms), so writing line by line would leave the line idle
 * after every write: an artefact, not the protocol. `hostBuffered` models the
 * OS buffer: writes are accepted at once and what accumulated is sent as one
 * chunk. (The direct figure is also reported for the 2048x4 rows.)
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { maxChunkData, uploadImage, uploadPacketSize, uploadStopAndWait, type UploadProgress } from '../../src/core/ops/update/engine.ts';
import { consoleEncodedSize, type Framing } from '../../src/core/smp/framing.ts';
import { maxRequestPacket, openSession } from '../../src/core/groups/session.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { verifyImage } from '../../src/core/trust/mcuboot/verify.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { configureImageModel } from '../../src/device/groups/standard.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import type { Link } from '../../src/core/link/link.ts';
import type { BenchRow } from './types.ts';

/** The host OS serial buffer in front of a link: write() returns once queued (up to `cap` bytes). */
function hostBuffered(link: Link, cap = 4096): Link {
  const w = link.writable.getWriter();
  let queue: Uint8Array[] = [];
  let queued = 0;
  let draining: Promise<void> | null = null;
  let room: (() => void) | null = null;
  const drain = async () => {
    while (queue.length) {
      const parts = queue;
      queue = [];
      let n = 0;
      for (const p of parts) n += p.length;
      const all = new Uint8Array(n);
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      queued -= n;
      room?.();
      await w.write(all);
    }
    draining = null;
  };
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      while (queued > cap) await new Promise<void>((r) => (room = r));
      queue.push(chunk.slice());
      queued += chunk.length;
      draining ??= drain();
    },
  });
  return { label: link.label, readable: link.readable, writable, closed: link.closed, close: () => link.close(), baudRate: link.baudRate };
}

const LATENCY_MS = 1;
const FLASH = { eraseMsPerSector: 20, writeUsPerByte: 3 };

async function signed(size: number, key: Uint8Array): Promise<Uint8Array> {
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = (i * 2654435761) >>> 24;
  return (await signImage(body, { key, version: '1.1.0', headerSize: 32, padHeader: true, securityCounter: 2 })).image;
}

async function run(kind: 'pipelined' | 'baseline', framing: Framing, baud: number, bufSize: number, bufCount: number, image: Uint8Array, pub: Uint8Array, buffered = true) {
  const device = new ReferenceDevice({ framing, bufSize, bufCount });
  await configureImageModel(device, { trustedKeys: [pub], slotSize: 1024 * 1024, ...FLASH });
  const v = createVirtualDevice({ device, model: { baudRate: baud, latencyMs: LATENCY_MS } });
  const s = await openSession(buffered ? hostBuffered(v.link) : v.link, { framing, timeoutMs: 5000 });
  let t0 = 0;
  let b0 = 0;
  const onProgress = (p: UploadProgress) => {
    if (t0 === 0) {
      t0 = performance.now();
      b0 = p.sent;
    }
  };
  let match: boolean | undefined;
  if (kind === 'pipelined') match = (await uploadImage(s.client, image, { sha: sha256(image), onProgress })).match;
  else match = (await uploadStopAndWait(s.client, image, { onProgress })).match;
  const ms = performance.now() - t0;
  if (match !== true) throw new Error(`${kind} upload did not match on the device`);
  if (device.stats.droppedOversize) throw new Error('device dropped oversized requests');
  await s.close();
  return ((image.length - b0) * 1000) / ms; // image bytes per second
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const { privateKey, publicKey } = await generateEd25519();
  const images = new Map<number, Uint8Array>();
  for (const baud of [115200, 921600]) images.set(baud, await signed(baud === 115200 ? 24 * 1024 : 128 * 1024, privateKey));
  for (const baud of [115200, 921600]) {
    const image = images.get(baud)!;
    const lineBps = baud / 10;
    for (const framing of ['console', 'raw'] as const) {
      const base = await run('baseline', framing, baud, 2048, 4, image, publicKey);
      const basePkt = uploadPacketSize({ off: 5000 }, 128);
      const baseWire = framing === 'console' ? consoleEncodedSize(basePkt) : basePkt;
      rows.push({
        name: `upload stop-and-wait 128 B, ${framing} @ ${baud}`,
        value: base / 1024,
        unit: 'KiB/s',
        note: `baseline; ${((base / (lineBps * (128 / baseWire))) * 100).toFixed(0)}% of its own framing ceiling`,
      });
      for (const buf of [384, 2048]) {
        const bps = await run('pipelined', framing, baud, buf, 4, image, publicKey);
        const n = maxChunkData(maxRequestPacket(framing, buf), { off: 0x10000 });
        const pkt = uploadPacketSize({ off: 0x10000 }, n);
        const wire = framing === 'console' ? consoleEncodedSize(pkt) : pkt;
        const replyWire = framing === 'console' ? consoleEncodedSize(8 + 12) : 8 + 12;
        const ceiling = lineBps * (n / wire);
        const ratio = bps / ceiling;
        rows.push({
          name: `upload pipelined ${buf}x4, ${framing} @ ${baud}`,
          value: bps / 1024,
          unit: 'KiB/s',
          note: `${(ratio * 100).toFixed(1)}% of framing ceiling ${(ceiling / 1024).toFixed(2)} KiB/s (${n} B/${wire} B on the wire; replies ${replyWire} B/request on the other direction: not limiting); ${(bps / base).toFixed(2)}x baseline`,
        });
        if (buf === 2048 && framing === 'console') {
          const direct = await run('pipelined', framing, baud, buf, 4, image, publicKey, false);
          rows.push({
            name: `upload pipelined ${buf}x4, ${framing} @ ${baud}, unbuffered writes`,
            value: direct / 1024,
            unit: 'KiB/s',
            note: `${((direct / ceiling) * 100).toFixed(1)}% of the ceiling when every console line waits for the memory link's timer (see header)`,
          });
        }
      }
    }
  }
  // Verifying a 4 MiB image (hash + Ed25519), as preflight does.
  const big = await signed(4 * 1024 * 1024, privateKey);
  await verifyImage(big, { keys: [publicKey] });
  const t = performance.now();
  const reps = 3;
  for (let i = 0; i < reps; i++) {
    const r = await verifyImage(big, { keys: [publicKey] });
    if (!r.ok) throw new Error(r.reason);
  }
  const ms = (performance.now() - t) / reps;
  rows.push({ name: 'verify 4 MiB MCUboot image (SHA-256 + Ed25519)', value: ms, unit: 'ms', note: `${((4 / ms) * 1000).toFixed(0)} MiB/s` });
  return rows;
}

/**
 * What we do to a real peer when recording a golden transcript, and again when
 * replaying it (tests/unit/golden-peer.test.ts) or running live
 * (tests/peer/live.test.ts). Deterministic given the same replies.
 */
import { readDeviceInfo } from '../../src/core/ops/identification/info.ts';
import { resultOf } from '../../src/core/ops/outcome.ts';
import { decodeCborObject } from '../../src/core/base/cbor.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { createDecoder, type Framing } from '../../src/core/smp/framing.ts';
import { Group, SMP_HEADER_SIZE, decodeHeader, type SmpHeader } from '../../src/core/smp/header.ts';
import type { SmpSession } from '../../src/core/groups/session.ts';
import { echo } from '../../src/core/groups/os.ts';

export const SCRIPT_TIMEOUT_MS = 2000;
/** How long to wait for a reply that should never come (oversized request). */
export const NO_REPLY_WAIT_MS = 1500;

export type Outcome = { ok: true; value: unknown } | { ok: false; kind: string; rc?: number; group?: number };

export interface ScriptResults {
  params: { bufSize: number; bufCount: number; reported: boolean };
  info: unknown;
  echoes: { packetBytes: number; textLength: number; outcome: Outcome }[];
  unknownGroup: Outcome;
  oversize: { packetBytes: number; outcome: Outcome }[];
}

/** Length of an echo text giving a request packet of exactly `packetBytes` (header + {d: text}). */
export function echoTextFor(packetBytes: number): number {
  // header 8 + map(1) a1 + "d" (2) + text header (1 | 2 | 3 bytes) + text
  for (let n = 0; n < 65536; n++) {
    const th = n < 24 ? 1 : n < 256 ? 2 : 3;
    if (SMP_HEADER_SIZE + 1 + 2 + th + n === packetBytes) return n;
  }
  throw new RangeError(`no echo text gives a ${packetBytes}-byte packet`);
}

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    if (e instanceof SmpError) return { ok: false, kind: e.kind, ...(e.rc !== undefined ? { rc: e.rc } : {}), ...(e.group !== undefined ? { group: e.group } : {}) };
    throw e;
  }
}

function text(n: number): string {
  // varied but deterministic content, so a shifted or dropped byte shows
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(0x21 + ((i * 7) % 90));
  return s;
}

/**
 * The largest request the device answers: over console framing the 2-byte
 * length and the 2-byte CRC share its buffer (buf_size - 4); over raw framing
 * an echo of buf_size - 1 still fits its reply.
 */
export function largestAnswered(framing: Framing, bufSize: number): number {
  return framing === 'console' ? bufSize - 4 : bufSize - 1;
}

export async function runPeerScript(session: SmpSession, opts: { recovery?: boolean } = {}): Promise<ScriptResults> {
  const c = session.client;
  const info = await resultOf(readDeviceInfo(session));
  const { bufSize, reported } = session.params;
  // datagrams: the path's payload limit (MTU) may be below the device's buffer; the client knows both
  const largest = session.framing === 'datagram' ? c.maxPacket : largestAnswered(session.framing, bufSize);
  const echoes: ScriptResults['echoes'] = [];
  for (const packetBytes of [...[12, 64, 200].filter((n) => n < largest), largest]) {
    const n = echoTextFor(packetBytes);
    echoes.push({ packetBytes, textLength: n, outcome: await outcome(echo(c, text(n), { timeoutMs: SCRIPT_TIMEOUT_MS })) });
  }
  const unknownGroup = await outcome(c.read(100, 0, {}, { timeoutMs: SCRIPT_TIMEOUT_MS }));

  // Oversized requests: lift the client's own size guard so the device sees them.
  const oversize: ScriptResults['oversize'] = [];
  const { maxPacket, window } = c;
  c.setLimits(bufSize + 64, 1);
  // MCUboot serial recovery still answers buf_size - 3 and drops buf_size - 2; the app's UART drops buf_size - 3
  // (no oversize probe when the device did not report its buffer, nor over UDP, where the MTU is the limit)
  const sizes = !reported || session.framing === 'datagram' ? [] : opts.recovery ? [bufSize - 3, bufSize - 2] : session.framing === 'console' ? [bufSize - 3] : [bufSize, bufSize + 1];
  for (const packetBytes of sizes) {
    oversize.push({ packetBytes, outcome: await outcome(echo(c, text(echoTextFor(packetBytes)), { timeoutMs: NO_REPLY_WAIT_MS })) });
  }
  c.setLimits(maxPacket, window);
  // console framing recovers at the next frame marker; show it (raw framing stays out of step, so stop there)
  if (session.framing === 'console') {
    echoes.push({ packetBytes: 12, textLength: echoTextFor(12), outcome: await outcome(echo(c, text(echoTextFor(12)), { timeoutMs: SCRIPT_TIMEOUT_MS })) });
  }
  return { params: session.params, info, echoes, unknownGroup, oversize };
}

// ---------------------------------------------------------------- JSON with bytes

/** JSON.stringify replacer/reviver pair: Uint8Array <-> {"$hex": "..."}. */
export function bytesReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return { $hex: Buffer.from(v).toString('hex') };
  return v;
}
export function bytesReviver(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { $hex?: unknown }).$hex === 'string') {
    return new Uint8Array(Buffer.from((v as { $hex: string }).$hex, 'hex'));
  }
  return v;
}
/** A value as it round-trips through golden JSON (Uint8Array -> {$hex} -> Uint8Array, undefined dropped). */
export function jsonRoundTrip<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, bytesReplacer), bytesReviver) as T;
}

// ---------------------------------------------------------------- packets in a chunk stream

export interface DecodedPacket {
  header: SmpHeader;
  body: unknown;
}

export function concatChunks(chunks: { dir: string; hex: string }[], dir: 'tx' | 'rx'): Uint8Array {
  return new Uint8Array(Buffer.from(chunks.filter((c) => c.dir === dir).map((c) => c.hex).join(''), 'hex'));
}

/** Decode one direction of a transcript: a byte stream, or (datagram framing) one packet per chunk. */
export function decodeTranscript(framing: Framing, chunks: { dir: string; hex: string }[], dir: 'tx' | 'rx'): { packets: DecodedPacket[]; drops: string[]; noise: string[] } {
  if (framing !== 'datagram') return decodePackets(framing, concatChunks(chunks, dir), dir === 'rx' ? 'replies' : 'requests');
  const out = { packets: [] as DecodedPacket[], drops: [] as string[], noise: [] as string[] };
  for (const c of chunks.filter((x) => x.dir === dir)) {
    const r = decodePackets('datagram', new Uint8Array(Buffer.from(c.hex, 'hex')), dir === 'rx' ? 'replies' : 'requests');
    out.packets.push(...r.packets);
    out.drops.push(...r.drops);
  }
  return out;
}

/** Decode a byte stream (one direction) into SMP packets through our framing codec. */
export function decodePackets(framing: Framing, bytes: Uint8Array, direction: 'requests' | 'replies'): { packets: DecodedPacket[]; drops: string[]; noise: string[] } {
  const packets: DecodedPacket[] = [];
  const drops: string[] = [];
  const noise: string[] = [];
  const dec = createDecoder(
    framing,
    (p) => {
      const header = decodeHeader(p);
      const body = header.length === 0 ? {} : decodeCborObject(p.subarray(SMP_HEADER_SIZE));
      packets.push({ header, body });
    },
    {
      acceptOps: direction === 'replies' ? [1, 3] : [0, 2],
      onDrop: (r) => drops.push(r),
      onNoise: (l) => noise.push(new TextDecoder().decode(l)),
    },
  );
  dec.push(bytes);
  return { packets, drops, noise };
}

export { Group };

/**
 * The secure session as an attacker (or a foreign implementation) speaks it:
 * hand-built SMP packets on a raw TCP connection, the key exchange done with
 * the primitives of src/core/trust/session.ts and nothing of our client, so
 * tests can replay, reorder, tamper and move packets between connections.
 */
import { decodeCborObject, encodeCbor } from '../../src/core/base/cbor.ts';
import { OS } from '../../src/core/protocol/os.ts';
import { SEC, SECURITY } from '../../src/core/protocol/security.ts';
import { Group, Op, SMP_HEADER_SIZE, SMP_V2, buildPacket, decodeHeader } from '../../src/core/smp/header.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';
import {
  type SessionKeys, deviceSignedMessage, ecdh, ephemeralX25519, mac2, mac3, protect, pseudoRandomKey, sessionKeys, technicianSignedMessage, transcript2,
  transcript3, unprotect,
} from '../../src/core/trust/session.ts';
import type { Link } from '../../src/core/link/link.ts';
import { createDecoder, encodeFrames } from '../../src/core/smp/framing.ts';
import { packetQueue, rawConnection } from './listen-device.ts';

export type Body = Record<string, unknown>;
export const GROUP = SECURITY.id;

export interface RawSmp {
  /** A request packet with the connection's next SMP sequence number. */
  packet(op: 0 | 2, group: number, id: number, body?: Body): Uint8Array;
  /** Send a packet without waiting for its reply (sync() drains what comes back). */
  send(packet: Uint8Array): void;
  /** Send a packet, wait for the reply packet (null when none comes). */
  exchange(packet: Uint8Array, timeoutMs?: number): Promise<Uint8Array | null>;
  /** Send a request, return the reply body (throws when no reply). */
  request(op: 0 | 2, group: number, id: number, body?: Body): Promise<Body>;
  /** Echo a fresh marker and drop every reply until its answer: false when the device does not answer. */
  sync(timeoutMs?: number): Promise<boolean>;
  close(): void;
  /** Raw bytes on the link, no framing added (over an in-memory link only). */
  sendBytes?(bytes: Uint8Array): void;
}

export function replyBody(reply: Uint8Array | null): Body {
  if (!reply) throw new Error('no reply');
  const h = decodeHeader(reply);
  return h.length === 0 ? {} : (decodeCborObject(reply.subarray(SMP_HEADER_SIZE)) as Body);
}

/** The security group's rc of a reply body (err.rc), or undefined. */
export function groupRc(b: Body): number | undefined {
  const err = b.err as { group?: number; rc?: number } | undefined;
  return err?.rc;
}

interface Transport {
  send(packet: Uint8Array): void;
  sendBytes?(bytes: Uint8Array): void;
  next(timeoutMs?: number): Promise<Uint8Array | null>;
  close(): void;
}

function over(t: Transport): RawSmp {
  let seq = 0;
  const packet = (op: 0 | 2, group: number, id: number, body: Body = {}) =>
    buildPacket({ op, version: SMP_V2, flags: 0, group, seq: seq++ & 0xff, id }, encodeCbor(body));
  // The reply with the request's SMP sequence number; earlier stray replies are skipped.
  const exchange = async (p: Uint8Array, timeoutMs = 3000) => {
    t.send(p);
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await t.next(Math.max(1, end - Date.now()));
      if (!r || r.length < SMP_HEADER_SIZE || decodeHeader(r).seq === p[6]) return r;
    }
  };
  return {
    packet,
    send: (p) => t.send(p),
    exchange,
    request: async (op, group, id, body = {}) => replyBody(await exchange(packet(op, group, id, body))),
    sync: async (timeoutMs = 3000) => {
      const mark = `sync-${Math.random()}`;
      t.send(packet(Op.Write as 2, Group.OS, OS.Echo, { d: mark }));
      const end = Date.now() + timeoutMs;
      for (;;) {
        const r = await t.next(Math.max(1, end - Date.now()));
        if (!r) return false;
        try {
          if (replyBody(r).r === mark) return true;
        } catch {
          // a stray reply that is not CBOR
        }
      }
    },
    close: () => t.close(),
    ...(t.sendBytes ? { sendBytes: t.sendBytes } : {}),
  };
}

/** A raw TCP connection to a listening device. */
export async function rawSmp(addr: string): Promise<RawSmp> {
  return over(await rawConnection(addr));
}

/** Raw packets over an in-memory link (a virtual device), console framing. */
export function rawSmpOverLink(link: Link): RawSmp {
  const q = packetQueue();
  const dec = createDecoder('console', q.push, { acceptOps: [Op.ReadRsp, Op.WriteRsp] });
  const reader = link.readable.getReader();
  void (async () => {
    for (;;) {
      const r = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (r.done) return;
      if (r.value) dec.push(r.value);
    }
  })();
  const writer = link.writable.getWriter();
  return over({
    send: (packet) => {
      for (const f of encodeFrames('console', packet, 127)) void writer.write(f);
    },
    sendBytes: (bytes) => void writer.write(bytes),
    next: q.next,
    close: () => void link.close(),
  });
}

/** Write a blob in chunks the way the security group takes them; the last reply. */
export async function writeChunked(c: RawSmp, cmd: number, blob: Uint8Array, final: Body = {}, chunk = 128): Promise<Body> {
  for (let off = 0; ; ) {
    const end = Math.min(blob.length, off + chunk);
    const last = end === blob.length;
    const r = await c.request(Op.Write as 2, GROUP, cmd, { ...(off === 0 ? { len: blob.length } : {}), off, data: blob.subarray(off, end), ...(last ? final : {}) });
    if (last || groupRc(r) !== undefined || r.rc !== undefined) return r;
    off = end;
  }
}

export interface RawSession {
  keys: SessionKeys;
  seq: number;
  /** Body of message 4, or of the refusal. */
  reply: Body;
}

/** Messages 1-4 of the key exchange by hand. Returns the keys (meaningful only when reply has no err). */
export async function rawLogin(c: RawSmp, devicePublicKey: Uint8Array, credential: Uint8Array, technicianSeed: Uint8Array): Promise<RawSession> {
  const eph = ephemeralX25519();
  const m2 = await c.request(Op.Read as 0, GROUP, SEC.AuthChallenge, { g_x: eph.publicKey });
  if (groupRc(m2) !== undefined) return { keys: { t2d: new Uint8Array(32), d2t: new Uint8Array(32), kc: new Uint8Array(16) }, seq: 0, reply: m2 };
  const gY = m2.g_y as Uint8Array;
  const th2 = transcript2(eph.publicKey, gY, m2.challenge as Uint8Array, devicePublicKey);
  const prk = pseudoRandomKey(ecdh(eph.privateKey, gY), th2);
  const sig2 = m2.sig as Uint8Array;
  // (an honest tool checks sig2 against the device's certified key here; the attacks below do not need it)
  void deviceSignedMessage(th2, mac2(prk, th2));
  const th3 = transcript3(th2, sig2, credential);
  const sig = await ed25519Sign(technicianSignedMessage(th3, mac3(prk, th3)), technicianSeed);
  const reply = await writeChunked(c, SEC.Auth, credential, { sig });
  return { keys: sessionKeys(prk, th3, sig), seq: 0, reply };
}

/** A protected request packet carrying `inner` (a whole SMP request packet) under sequence `s`. */
export function protectedPacket(c: RawSmp, keys: SessionKeys, s: number, inner: Uint8Array): Uint8Array {
  return c.packet(Op.Write as 2, GROUP, SEC.Protected, { s, c: protect(keys.t2d, 't2d', s, inner) });
}

/** Inner request packet (its own SMP header; its sequence number does not matter inside). */
export function innerPacket(op: 0 | 2, group: number, id: number, body: Body = {}): Uint8Array {
  return buildPacket({ op, version: SMP_V2, flags: 0, group, seq: 0, id }, encodeCbor(body));
}

/** Open a protected reply: the inner reply body, or throw. */
export function openReply(keys: SessionKeys, s: number, outer: Body): Body {
  if (outer.s !== s || !(outer.c instanceof Uint8Array)) throw new Error(`not a protected reply: ${JSON.stringify(outer)}`);
  const pt = unprotect(keys.d2t, 'd2t', s, outer.c);
  if (!pt) throw new Error('protected reply fails its tag');
  return replyBody(pt);
}

/** One protected request, next sequence number of the session: the inner reply body. */
export async function protectedRequest(c: RawSmp, sess: RawSession, op: 0 | 2, group: number, id: number, body: Body = {}): Promise<Body> {
  const s = ++sess.seq;
  const outer = replyBody(await c.exchange(protectedPacket(c, sess.keys, s, innerPacket(op, group, id, body))));
  if (groupRc(outer) !== undefined) return outer;
  return openReply(sess.keys, s, outer);
}

/** A chunked security command inside the session: chunks of `chunk` bytes, stopping at the first refusal. */
export async function protectedChunked(c: RawSmp, s: RawSession, cmd: number, blob: Uint8Array, chunk = 160): Promise<Body> {
  for (let off = 0; ; ) {
    const end = Math.min(blob.length, off + chunk);
    const r = await protectedRequest(c, s, Op.Write as 2, GROUP, cmd, { ...(off === 0 ? { len: blob.length } : {}), off, data: blob.subarray(off, end) });
    if (end === blob.length || groupRc(r) !== undefined) return r;
    off = end;
  }
}

export const RESET = { group: Group.OS, id: OS.Reset };


/**
 * The secure session on the cable (NIST IR 8259A data protection in transit
 * and logical access): an authenticated key exchange modelled on EDHOC
 * (RFC 9528, method 0: signature / signature) in SIGMA-I order, and the
 * protection of every request after it. Both halves use these functions: the
 * tool (SecureChannel, installed on the SmpClient) and the reference device.
 *
 *   message 1  tool -> device   G_X                      (security group AuthChallenge)
 *   message 2  device -> tool   C, G_Y, Sig_2            Sig_2 = Sign_dev(["fieldbench-ake-v1 device", TH_2, MAC_2])
 *   message 3  tool -> device   CRED_T, Sig_3            (security group Auth, chunked)
 *                               Sig_3 = Sign_tech(["fieldbench-ake-v1 technician", TH_3, MAC_3])
 *   message 4  device -> tool   technician, permissions, KC (key confirmation)
 *
 *   TH_2 = SHA-256(CBOR ["fieldbench-ake-v1", G_X, G_Y, C, PK_dev])
 *   PRK  = HKDF-Extract(salt = TH_2, IKM = X25519(eph, eph'))
 *   MAC_2 = HKDF-Expand(PRK, CBOR ["mac2", TH_2], 32)
 *   TH_3 = SHA-256(CBOR [TH_2, Sig_2, SHA-256(CRED_T)])
 *   MAC_3 = HKDF-Expand(PRK, CBOR ["mac3", TH_3], 32)
 *   TH_4 = SHA-256(CBOR [TH_3, Sig_3])
 *   K_t2d, K_d2t, KC = HKDF-Expand(PRK, CBOR [label, TH_4], 32 / 32 / 16)
 *
 * Each signature covers the whole transcript so far and a MAC keyed by the
 * Diffie-Hellman secret, so it proves possession of the long-term key AND
 * binds it to this exchange (SIGMA's "MAC the identity"). Protected requests:
 * ChaCha20-Poly1305 under the direction's key, nonce = 0^32 || seq (64-bit BE),
 * AAD = CBOR ["fieldbench-prot-v1", direction, seq]; plaintext = the whole
 * inner SMP packet (header and body). docs/SECURITY.md has the reasoning and
 * the limits, docs/PROTOCOL.md the CDDL.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeCbor } from '../smp/cbor.ts';

export const AKE_LABEL = 'fieldbench-ake-v1';
export const PROTECT_LABEL = 'fieldbench-prot-v1';
export type Direction = 't2d' | 'd2t';

/**
 * Bytes a protected request adds to the inner packet, at most: outer map {"s": uint64, "c": bstr}
 * (1 + 2 + 9 + 2 + 3) and the AEAD tag (16), rounded up.
 */
export const PROTECT_OVERHEAD = 36;

export interface SessionKeys {
  t2d: Uint8Array;
  d2t: Uint8Array;
  /** Key confirmation value the device returns in message 4. */
  kc: Uint8Array;
}

export function ephemeralX25519(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/** The shared secret; throws for a public key of low order (an all-zero result). */
export function sharedSecret(privateKey: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  if (!(peerPublic instanceof Uint8Array) || peerPublic.length !== 32) throw new Error('X25519 public key must be 32 bytes');
  const s = x25519.getSharedSecret(privateKey, peerPublic);
  let d = 0;
  for (const b of s) d |= b;
  if (d === 0) throw new Error('X25519 public key of low order');
  return s;
}

const h = (items: unknown[]) => sha256(encodeCbor(items));

export function transcript2(gX: Uint8Array, gY: Uint8Array, challenge: Uint8Array, devicePublicKey: Uint8Array): Uint8Array {
  return h([AKE_LABEL, gX, gY, challenge, devicePublicKey]);
}

export function pseudoRandomKey(secret: Uint8Array, th2: Uint8Array): Uint8Array {
  return extract(sha256, secret, th2);
}

function kdf(prk: Uint8Array, label: string, th: Uint8Array, length: number): Uint8Array {
  return expand(sha256, prk, encodeCbor([label, th]), length);
}

export const mac2 = (prk: Uint8Array, th2: Uint8Array) => kdf(prk, 'mac2', th2, 32);
export const deviceSignedMessage = (th2: Uint8Array, mac: Uint8Array) => encodeCbor([`${AKE_LABEL} device`, th2, mac]);

export function transcript3(th2: Uint8Array, sig2: Uint8Array, credential: Uint8Array): Uint8Array {
  return h([th2, sig2, sha256(credential)]);
}

export const mac3 = (prk: Uint8Array, th3: Uint8Array) => kdf(prk, 'mac3', th3, 32);
export const technicianSignedMessage = (th3: Uint8Array, mac: Uint8Array) => encodeCbor([`${AKE_LABEL} technician`, th3, mac]);

export function sessionKeys(prk: Uint8Array, th3: Uint8Array, sig3: Uint8Array): SessionKeys {
  const th4 = h([th3, sig3]);
  return { t2d: kdf(prk, 't2d', th4, 32), d2t: kdf(prk, 'd2t', th4, 32), kc: kdf(prk, 'kc', th4, 16) };
}

function nonce(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(seq));
  return n;
}

const aad = (dir: Direction, seq: number) => encodeCbor([PROTECT_LABEL, dir, seq]);

/** Largest sequence number: a session ends before its counter could wrap. */
export const MAX_PROTECTED_SEQ = Number.MAX_SAFE_INTEGER;

export function protect(key: Uint8Array, dir: Direction, seq: number, plaintext: Uint8Array): Uint8Array {
  return chacha20poly1305(key, nonce(seq), aad(dir, seq)).encrypt(plaintext);
}

/** The plaintext, or null when the tag does not verify (tampered, injected, other key or sequence). */
export function unprotect(key: Uint8Array, dir: Direction, seq: number, ciphertext: Uint8Array): Uint8Array | null {
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length < 16) return null;
  try {
    return chacha20poly1305(key, nonce(seq), aad(dir, seq)).decrypt(ciphertext);
  } catch {
    return null;
  }
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/**
 * The tool's half of a session, installed on the SmpClient (client.protect):
 * every request except the key exchange itself goes as a protected request.
 */
export class SecureChannel {
  readonly overhead = PROTECT_OVERHEAD;
  private seq = 0;

  constructor(
    private readonly client: { protect(p: SecureChannel | null): void },
    readonly groupId: number,
    private readonly keys: SessionKeys,
    private readonly ids: { protectedId: number; handshakeIds: readonly number[]; resetGroup: number; resetId: number },
  ) {}

  covers(group: number, id: number): boolean {
    return !(group === this.groupId && (id === this.ids.protectedId || this.ids.handshakeIds.includes(id)));
  }

  wrap(inner: Uint8Array): { group: number; id: number; body: Record<string, unknown>; open(reply: Record<string, unknown>): Uint8Array } {
    if (this.seq >= MAX_PROTECTED_SEQ) throw new Error('session sequence exhausted: authenticate again');
    const s = ++this.seq;
    const keys = this.keys;
    return {
      group: this.groupId,
      id: this.ids.protectedId,
      body: { s, c: protect(keys.t2d, 't2d', s, inner) },
      open(reply) {
        if (reply.s !== s || !(reply.c instanceof Uint8Array)) throw new Error(`protected reply carries sequence ${String(reply.s)}, not ${s}`);
        const pt = unprotect(keys.d2t, 'd2t', s, reply.c);
        if (!pt) throw new Error('protected reply fails its authentication tag (tampered or injected)');
        return pt;
      },
    };
  }

  /** A reset reboots the device, which ends its session: stop protecting (the next login starts a new one). */
  after(group: number, id: number): void {
    if (group === this.ids.resetGroup && id === this.ids.resetId) this.client.protect(null);
  }
}

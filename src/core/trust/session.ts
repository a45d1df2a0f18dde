/**
 * The secure session on the cable (NIST IR 8259A data protection in transit
 * and logical access): an authenticated key exchange modelled on EDHOC
 * (RFC 9528, method 0: signature / signature) in SIGMA-I order, and the
 * protection of every privileged request after it. Both halves use these
 * functions: the tool (groups/security.ts SecureChannel, installed on the
 * SmpClient) and the reference device (device/security.ts).
 *
 *   message 1  tool -> device   G_X                      (security group AuthChallenge)
 *   message 2  device -> tool   C, G_Y, Sig_2            Sig_2 = Sign_dev(["fieldbench-ake-v1 device", TH_2, MAC_2])
 *   message 3  tool -> device   CRED_T, Sig_3            (security group Auth, chunked)
 *                               Sig_3 = Sign_tech(["fieldbench-ake-v1 technician", TH_3, MAC_3])
 *   message 4  device -> tool   technician, permissions, KC (key confirmation)
 *
 *   TH_2  = SHA-256(CBOR ["fieldbench-ake-v1", G_X, G_Y, C, PK_dev])
 *   PRK   = HKDF-Extract(salt = TH_2, IKM = X25519(x, G_Y) = X25519(y, G_X))
 *   MAC_2 = HKDF-Expand(PRK, CBOR ["mac2", TH_2], 32)
 *   TH_3  = SHA-256(CBOR [TH_2, Sig_2, SHA-256(CRED_T)])
 *   MAC_3 = HKDF-Expand(PRK, CBOR ["mac3", TH_3], 32)
 *   TH_4  = SHA-256(CBOR [TH_3, Sig_3])
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
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeDeterministic } from '../base/cbor.ts';
import { FieldbenchError } from '../base/errors.ts';
import { generateX25519, sharedSecret } from './seal.ts';

export const AKE_LABEL = 'fieldbench-ake-v1';
export const PROTECT_LABEL = 'fieldbench-prot-v1';
export type Direction = 't2d' | 'd2t';

/**
 * Bytes a protected request adds to the inner packet, at most: SMP header (8), outer map
 * {"s": uint64, "c": bstr} (1 + 2 + 9 + 2 + 3) and the AEAD tag (16).
 */
export const PROTECT_OVERHEAD = 41;

/** Largest sequence number: a session ends before its counter could wrap. */
export const MAX_PROTECTED_SEQ = Number.MAX_SAFE_INTEGER;

export class SessionError extends FieldbenchError<'key-exchange' | 'protection'> {
  constructor(code: 'key-exchange' | 'protection', message: string) {
    super(code, message);
    this.name = 'SessionError';
  }
}

export interface SessionKeys {
  t2d: Uint8Array;
  d2t: Uint8Array;
  /** Key confirmation value the device returns in message 4. */
  kc: Uint8Array;
}

/** A fresh ephemeral X25519 key pair (one per key exchange, zeroed after use). */
export const ephemeralX25519 = generateX25519;

/** The Diffie-Hellman secret; throws SessionError for a peer key of the wrong size or of low order. */
export function ecdh(privateKey: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  if (!(peerPublic instanceof Uint8Array) || peerPublic.length !== 32) throw new SessionError('key-exchange', 'X25519 public key must be 32 bytes');
  try {
    return sharedSecret(privateKey, peerPublic);
  } catch (e) {
    throw new SessionError('key-exchange', (e as Error).message);
  }
}

const h = (items: unknown[]) => sha256(encodeDeterministic(items));

export function transcript2(gX: Uint8Array, gY: Uint8Array, challenge: Uint8Array, devicePublicKey: Uint8Array): Uint8Array {
  return h([AKE_LABEL, gX, gY, challenge, devicePublicKey]);
}

export function pseudoRandomKey(secret: Uint8Array, th2: Uint8Array): Uint8Array {
  return extract(sha256, secret, th2);
}

function kdf(prk: Uint8Array, label: string, th: Uint8Array, length: number): Uint8Array {
  return expand(sha256, prk, encodeDeterministic([label, th]), length);
}

export const mac2 = (prk: Uint8Array, th2: Uint8Array) => kdf(prk, 'mac2', th2, 32);
/** What the device signs in message 2. */
export const deviceSignedMessage = (th2: Uint8Array, mac: Uint8Array) => encodeDeterministic([`${AKE_LABEL} device`, th2, mac]);

export function transcript3(th2: Uint8Array, sig2: Uint8Array, credential: Uint8Array): Uint8Array {
  return h([th2, sig2, sha256(credential)]);
}

export const mac3 = (prk: Uint8Array, th3: Uint8Array) => kdf(prk, 'mac3', th3, 32);
/** What the technician signs in message 3. */
export const technicianSignedMessage = (th3: Uint8Array, mac: Uint8Array) => encodeDeterministic([`${AKE_LABEL} technician`, th3, mac]);

export function sessionKeys(prk: Uint8Array, th3: Uint8Array, sig3: Uint8Array): SessionKeys {
  const th4 = h([th3, sig3]);
  return { t2d: kdf(prk, 't2d', th4, 32), d2t: kdf(prk, 'd2t', th4, 32), kc: kdf(prk, 'kc', th4, 16) };
}

function nonce(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(seq));
  return n;
}

const aad = (dir: Direction, seq: number) => encodeDeterministic([PROTECT_LABEL, dir, seq]);

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_PROTECTED_SEQ) throw new SessionError('protection', `sequence ${seq} out of range`);
}

export function protect(key: Uint8Array, dir: Direction, seq: number, plaintext: Uint8Array): Uint8Array {
  checkSeq(seq);
  return chacha20poly1305(key, nonce(seq), aad(dir, seq)).encrypt(plaintext);
}

/** The plaintext, or null when the tag does not verify (tampered, injected, other key, direction or sequence). */
export function unprotect(key: Uint8Array, dir: Direction, seq: number, ciphertext: Uint8Array): Uint8Array | null {
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length < 16 || !Number.isSafeInteger(seq) || seq < 1) return null;
  try {
    return chacha20poly1305(key, nonce(seq), aad(dir, seq)).decrypt(ciphertext);
  } catch {
    return null;
  }
}

/**
 * Read the outer body of a protected request or reply ({s, c}): the sequence number and the
 * ciphertext, or null when it is not one (the device answers rc 7 Malformed). Fuzzed.
 */
export function parseProtected(body: unknown): { seq: number; ciphertext: Uint8Array } | null {
  if (!body || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array) return null;
  const b = body as Record<string, unknown>;
  const seq = b.s;
  const ct = b.c;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1 || seq > MAX_PROTECTED_SEQ) return null;
  if (!(ct instanceof Uint8Array) || ct.length < 16) return null;
  return { seq, ciphertext: ct };
}

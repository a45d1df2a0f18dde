/**
 * Secrets sealed to one device: COSE_Encrypt (RFC 9052 section 5.1, tag 96)
 * with a single recipient using ECDH-ES + HKDF-256 (alg -25, RFC 9053
 * section 6.3.1) over X25519 with a fresh ephemeral key, and A256GCM (alg 3)
 * content encryption.
 *
 *   96([ h'{1: 3}', {5: iv(12)}, ciphertext,
 *        [[ h'{1: -25}', {-1: {1: 1, -1: 4, -2: ephemeral_x}, 4: kid}, h'' ]] ])
 *
 * CEK = HKDF-SHA-256(salt = none, IKM = X25519(eph, device),
 *                    info = COSE_KDF_Context [3, [nil,nil,nil], [nil,nil,nil], [256, recipient_protected]], L = 32)
 * AAD = Enc_structure ["Encrypt", body_protected, external_aad]
 *
 * The opener is strict: only this exact shape is accepted; anything else,
 * including a non-canonical ephemeral key (high bit set or u >= p, which
 * X25519 would otherwise silently reduce), is rejected before decryption.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { gcm } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeCbor, encodeCbor, encodeDeterministic, Tag } from '../base/cbor.ts';
import { keyId } from './keys.ts';
import { FieldbenchError } from '../base/errors.ts';

export const COSE_ENCRYPT_TAG = 96;
export const ALG_A256GCM = 3;
export const ALG_ECDH_ES_HKDF_256 = -25;
export const MAX_SEALED_BYTES = 65536;

export type SealFailure = 'malformed' | 'trailing-bytes' | 'too-large' | 'unsupported-alg' | 'wrong-key' | 'decrypt-failed';

export class SealError extends FieldbenchError<SealFailure> {
  constructor(code: SealFailure, message: string) {
    super(code, message);
    this.name = 'SealError';
  }
}

const BODY_PROTECTED = encodeCbor(new Map([[1, ALG_A256GCM]]));
const RECIPIENT_PROTECTED = encodeCbor(new Map([[1, ALG_ECDH_ES_HKDF_256]]));

function kdfContext(recipientProtected: Uint8Array): Uint8Array {
  return encodeCbor([ALG_A256GCM, [null, null, null], [null, null, null], [256, recipientProtected]]);
}

function encStructure(bodyProtected: Uint8Array, externalAad: Uint8Array): Uint8Array {
  return encodeCbor(['Encrypt', bodyProtected, externalAad]);
}

function deriveCek(shared: Uint8Array, recipientProtected: Uint8Array): Uint8Array {
  return hkdf(sha256, shared, undefined, kdfContext(recipientProtected), 32);
}

function isCanonicalX25519(u: Uint8Array): boolean {
  if (u.length !== 32 || (u[31] & 0x80) !== 0) return false;
  // u >= p = 2^255 - 19  <=>  byte31 = 0x7f, bytes 1..30 = 0xff, byte0 >= 0xed
  if (u[31] !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (u[i] !== 0xff) return true;
  return u[0] < 0xed;
}

/** The X25519 shared secret; throws SealError for a failed agreement or a low-order peer key. */
export function sharedSecret(priv: Uint8Array, pub: Uint8Array): Uint8Array {
  let s: Uint8Array;
  try {
    s = x25519.getSharedSecret(priv, pub);
  } catch (e) {
    throw new SealError('wrong-key', `X25519 key agreement failed: ${(e as Error).message}`);
  }
  if (s.every((b) => b === 0)) throw new SealError('wrong-key', 'X25519 key agreement produced the all-zero secret (low-order key)');
  return s;
}

/** Generate a device encryption (X25519) key pair. */
export function generateX25519(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

export function x25519PublicKey(priv: Uint8Array): Uint8Array {
  return x25519.getPublicKey(priv);
}

/**
 * Encrypt a map of secrets to a device's X25519 key.
 * `ephemeralPrivate` is for test vectors only; normally a fresh key is drawn.
 */
export function seal(
  plaintext: Map<string, unknown> | Record<string, unknown>,
  deviceEncPub: Uint8Array,
  opts: { externalAad?: Uint8Array; ephemeralPrivate?: Uint8Array; iv?: Uint8Array } = {},
): Uint8Array {
  if (!(deviceEncPub instanceof Uint8Array) || !isCanonicalX25519(deviceEncPub)) {
    throw new SealError('wrong-key', 'the device encryption key must be a canonical 32-byte X25519 public key');
  }
  const eph = opts.ephemeralPrivate ?? x25519.utils.randomSecretKey();
  const ephPub = x25519.getPublicKey(eph);
  const cek = deriveCek(sharedSecret(eph, deviceEncPub), RECIPIENT_PROTECTED);
  const iv = opts.iv ?? globalThis.crypto.getRandomValues(new Uint8Array(12));
  const pt = encodeDeterministic(plaintext instanceof Map ? plaintext : new Map(Object.entries(plaintext)));
  const ct = gcm(cek, iv, encStructure(BODY_PROTECTED, opts.externalAad ?? new Uint8Array(0))).encrypt(pt);
  cek.fill(0);
  const epk = new Map<number, unknown>([[1, 1], [-1, 4], [-2, ephPub]]);
  const recipient = [RECIPIENT_PROTECTED, new Map<number, unknown>([[-1, epk], [4, keyId(deviceEncPub)]]), new Uint8Array(0)];
  const out = encodeCbor(new Tag([BODY_PROTECTED, new Map<number, unknown>([[5, iv]]), ct, [recipient]], COSE_ENCRYPT_TAG));
  if (out.length > MAX_SEALED_BYTES) throw new SealError('too-large', `sealed secrets are ${out.length} bytes, over ${MAX_SEALED_BYTES}`);
  return out;
}

export interface SealedInfo {
  iv: Uint8Array;
  ciphertext: Uint8Array;
  ephemeralPublic: Uint8Array;
  /** Key id of the device encryption key it is sealed to (informative, unauthenticated). */
  recipientKid?: Uint8Array;
  bodyProtected: Uint8Array;
  recipientProtected: Uint8Array;
}

function onlyKeys(m: Map<unknown, unknown>, allowed: unknown[], where: string): void {
  for (const k of m.keys()) if (!allowed.includes(k)) throw new SealError('malformed', `${where}: unexpected header ${String(k)}`);
}

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Parse and structurally check a sealed message without decrypting it. Throws SealError. */
export function parseSealed(bytes: Uint8Array): SealedInfo {
  if (!(bytes instanceof Uint8Array)) throw new SealError('malformed', 'sealed secrets: not a byte string');
  if (bytes.length > MAX_SEALED_BYTES) throw new SealError('too-large', `sealed secrets are ${bytes.length} bytes, over ${MAX_SEALED_BYTES}`);
  let v: unknown;
  try {
    v = decodeCbor(bytes);
  } catch (e) {
    const m = (e as Error).message;
    throw new SealError(/trailing/.test(m) ? 'trailing-bytes' : 'malformed', `sealed secrets: ${m}`);
  }
  if (!(v instanceof Tag) || v.tag !== COSE_ENCRYPT_TAG) throw new SealError('malformed', 'sealed secrets: not a COSE_Encrypt (tag 96)');
  const a = v.value;
  if (!Array.isArray(a) || a.length !== 4) throw new SealError('malformed', 'COSE_Encrypt must be an array of 4');
  const [bodyProtected, unprot, ciphertext, recipients] = a;
  if (!(bodyProtected instanceof Uint8Array) || !(unprot instanceof Map) || !(ciphertext instanceof Uint8Array) || !Array.isArray(recipients)) {
    throw new SealError('malformed', 'COSE_Encrypt fields have the wrong types');
  }
  if (!bytesEq(bodyProtected, BODY_PROTECTED)) {
    let alg: unknown;
    try {
      const p = decodeCbor(bodyProtected);
      alg = p instanceof Map ? p.get(1) : undefined;
    } catch {
      throw new SealError('malformed', 'COSE_Encrypt protected header is not CBOR');
    }
    throw new SealError(alg !== ALG_A256GCM ? 'unsupported-alg' : 'malformed', `COSE_Encrypt: content algorithm ${String(alg)} is not A256GCM (3) in the expected header`);
  }
  onlyKeys(unprot, [5], 'COSE_Encrypt unprotected');
  const iv = unprot.get(5);
  if (!(iv instanceof Uint8Array) || iv.length !== 12) throw new SealError('malformed', 'COSE_Encrypt: IV (5) must be 12 bytes');
  if (ciphertext.length < 16) throw new SealError('malformed', 'COSE_Encrypt: ciphertext shorter than the GCM tag');
  if (recipients.length !== 1) throw new SealError('malformed', 'COSE_Encrypt: exactly one recipient expected');
  const r = recipients[0];
  if (!Array.isArray(r) || r.length !== 3) throw new SealError('malformed', 'COSE_recipient must be an array of 3');
  const [rp, ru, rct] = r;
  if (!(rp instanceof Uint8Array) || !(ru instanceof Map) || !(rct instanceof Uint8Array)) throw new SealError('malformed', 'COSE_recipient fields have the wrong types');
  if (!bytesEq(rp, RECIPIENT_PROTECTED)) throw new SealError('unsupported-alg', 'recipient algorithm is not ECDH-ES + HKDF-256 (-25)');
  if (rct.length !== 0) throw new SealError('malformed', 'recipient ciphertext must be empty for direct key agreement');
  onlyKeys(ru, [-1, 4], 'recipient unprotected');
  const epk = ru.get(-1);
  if (!(epk instanceof Map)) throw new SealError('malformed', 'recipient: ephemeral key (-1) missing');
  onlyKeys(epk, [1, -1, -2], 'ephemeral COSE_Key');
  if (epk.get(1) !== 1 || epk.get(-1) !== 4) throw new SealError('unsupported-alg', 'ephemeral key must be OKP / X25519');
  const x = epk.get(-2);
  if (!(x instanceof Uint8Array) || !isCanonicalX25519(x)) throw new SealError('malformed', 'ephemeral key is not a canonical X25519 public key');
  const kid = ru.get(4);
  if (kid !== undefined && !(kid instanceof Uint8Array && kid.length === 8)) throw new SealError('malformed', 'recipient kid must be 8 bytes');
  return { iv, ciphertext, ephemeralPublic: x, recipientKid: kid as Uint8Array | undefined, bodyProtected, recipientProtected: rp };
}

/** Decrypt sealed secrets with the device's X25519 private key. Throws SealError. */
export function open(bytes: Uint8Array, deviceEncPriv: Uint8Array, opts: { externalAad?: Uint8Array } = {}): Map<string, unknown> {
  const s = parseSealed(bytes);
  if (!(deviceEncPriv instanceof Uint8Array) || deviceEncPriv.length !== 32) throw new SealError('wrong-key', 'device encryption key must be 32 bytes');
  if (s.recipientKid && !bytesEq(s.recipientKid, keyId(x25519.getPublicKey(deviceEncPriv)))) {
    throw new SealError('wrong-key', 'sealed secrets are addressed to another device encryption key');
  }
  const shared = sharedSecret(deviceEncPriv, s.ephemeralPublic);
  const cek = deriveCek(shared, s.recipientProtected);
  shared.fill(0);
  let pt: Uint8Array;
  try {
    pt = gcm(cek, s.iv, encStructure(s.bodyProtected, opts.externalAad ?? new Uint8Array(0))).decrypt(s.ciphertext);
  } catch {
    throw new SealError('decrypt-failed', 'sealed secrets do not decrypt with this device key (wrong device, or the message was altered)');
  } finally {
    cek.fill(0);
  }
  let v: unknown;
  try {
    v = decodeCbor(pt);
  } catch (e) {
    throw new SealError('malformed', `decrypted secrets are not CBOR: ${(e as Error).message}`);
  }
  if (!(v instanceof Map)) throw new SealError('malformed', 'decrypted secrets are not a CBOR map');
  for (const k of v.keys()) if (typeof k !== 'string') throw new SealError('malformed', 'secret names must be text');
  return v as Map<string, unknown>;
}

/**
 * Ed25519: the single place where signatures are made and where the
 * verification rule is decided (see docs/SECURITY.md, "Signature verification rules").
 *
 * Rule: strict RFC 8032 / FIPS 186-5 (@noble/ed25519 with `zip215: false`), NOT ZIP-215:
 *  - A (public key) and R must be canonical encodings (y < p; x = 0 with sign bit set rejected),
 *  - S must be < L (no malleable signatures),
 *  - small-order public keys are rejected,
 *  - the cofactored equation [8][S]B = [8]R + [8][k]A is checked.
 * ZIP-215 is the right rule for a blockchain that must never split over historical
 * signatures; here we verify firmware, certificates, credentials and attestation
 * and want exactly one valid encoding of every signature, and no key for which
 * "any signature verifies".
 *
 * WebCrypto Ed25519 is not used: on Node 20 (OpenSSL) it accepts small-order public
 * keys (12 of the ZIP-215 vectors, noble edge cases 0, 1, 11) and rejects mixed-order
 * cases the cofactored equation accepts (edge cases 4, 5); browsers use different
 * engines (BoringSSL, NSS, CryptoKit) whose edge-case verdicts differ again. One
 * pure-JS verifier gives the same verdict in every browser, in Node and in the
 * reference device.
 */
import * as ed from '@noble/ed25519';
import { FieldbenchError } from '../base/errors.ts';

/** Name of the verification rule, for logs and reports. */
export const ED25519_RULE = 'rfc8032-strict' as const;

/** Thrown for malformed key material (wrong length, invalid encoding, unsupported type). */
export class KeyFormatError extends FieldbenchError<'key-format'> {
  constructor(message: string) {
    super('key-format', message);
    this.name = 'KeyFormatError';
  }
}

const VERIFY_OPTS = { zip215: false } as const;

function isBytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len);
}

/**
 * Verify an Ed25519 signature under the strict RFC 8032 rule. Never throws:
 * wrong types, wrong lengths and anything the library throws are rejections.
 */
export async function ed25519Verify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): Promise<boolean> {
  if (!isBytes(sig, 64) || !isBytes(pub, 32) || !isBytes(msg)) return false;
  try {
    return (await ed.verifyAsync(sig, msg, pub, VERIFY_OPTS)) === true;
  } catch {
    return false;
  }
}

function checkSeed(seed: unknown): void {
  if (!isBytes(seed, 32)) {
    throw new KeyFormatError(
      `Ed25519 private key must be a 32-byte seed, got ${seed instanceof Uint8Array ? `${seed.length} bytes` : typeof seed}`,
    );
  }
}

/** Deterministic RFC 8032 signature of `msg` with the 32-byte seed. Throws KeyFormatError on a bad seed. */
export async function ed25519Sign(msg: Uint8Array, seed: Uint8Array): Promise<Uint8Array> {
  checkSeed(seed);
  if (!isBytes(msg)) throw new TypeError('message must be a Uint8Array');
  return ed.signAsync(msg, seed);
}

/** Public key (32 bytes) of a 32-byte seed. Throws KeyFormatError on a bad seed. */
export async function ed25519PublicKey(seed: Uint8Array): Promise<Uint8Array> {
  checkSeed(seed);
  return ed.getPublicKeyAsync(seed);
}

/** Fresh key pair from the platform CSPRNG (globalThis.crypto.getRandomValues). */
export async function generateEd25519(): Promise<{ privateKey: Uint8Array; publicKey: Uint8Array }> {
  const privateKey = new Uint8Array(32);
  globalThis.crypto.getRandomValues(privateKey);
  return { privateKey, publicKey: await ed.getPublicKeyAsync(privateKey) };
}

/**
 * Why a 32-byte string is not acceptable as an Ed25519 public key (or undefined if it is):
 * non-canonical or invalid encoding, small order, or a torsion component. Keys that pass
 * are exactly the honest keys `[a]B`; on such keys cofactored (ours) and cofactorless
 * (OpenSSL, MCUboot) verifiers agree except on signatures a key holder deliberately
 * builds with a torsion component in R. Used when keys are imported (PEM, COSE_Key).
 */
export function ed25519PublicKeyProblem(pub: Uint8Array): string | undefined {
  if (!isBytes(pub)) return 'public key is not a byte string';
  if (pub.length !== 32) return `Ed25519 public key must be 32 bytes, got ${pub.length}`;
  let p: ed.Point;
  try {
    p = ed.Point.fromBytes(pub, false);
  } catch {
    return 'Ed25519 public key is not a valid canonical point encoding';
  }
  if (p.isSmallOrder()) return 'Ed25519 public key has small order (any signature could verify)';
  if (!p.isTorsionFree()) return 'Ed25519 public key is not in the prime-order subgroup';
  return undefined;
}

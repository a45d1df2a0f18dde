/**
 * Ed25519 for the audit trail: a fast path through WebCrypto (Node 20,
 * Chromium) that never changes the verdict of the project's verification
 * rule (src/core/trust/ed25519.ts, strict RFC 8032).
 *
 * WebCrypto's verifiers are cofactorless and differ from the strict rule on
 * crafted inputs. So WebCrypto's "valid" is taken only when the public key
 * is an honest prime-order key (checked once per key), S < L and R is a
 * canonical encoding; in that case the cofactorless equation implies the
 * cofactored one and the strict rule accepts too. Every other case (including
 * every WebCrypto "invalid") is decided by ed25519Verify itself. Verdicts
 * are therefore identical to ed25519Verify; only honest signatures get faster.
 */
import { ed25519PublicKey, ed25519PublicKeyProblem, ed25519Sign, ed25519Verify } from '../trust/ed25519.ts';
import { keyId } from '../trust/keys.ts';
import { toHex } from '../base/bytes.ts';

type Subtle = SubtleCrypto;

let subtleReady: Promise<Subtle | undefined> | undefined;

/** WebCrypto with Ed25519 support, or undefined. */
function subtleEd25519(): Promise<Subtle | undefined> {
  subtleReady ??= (async () => {
    const s = (globalThis.crypto as Crypto | undefined)?.subtle;
    if (!s) return undefined;
    try {
      const k = await s.generateKey({ name: 'Ed25519' } as never, false, ['sign', 'verify']);
      const kp = k as CryptoKeyPair;
      const msg = new Uint8Array([1, 2, 3]);
      const sig = await s.sign({ name: 'Ed25519' } as never, kp.privateKey, msg);
      return (await s.verify({ name: 'Ed25519' } as never, kp.publicKey, sig, msg)) ? s : undefined;
    } catch {
      return undefined;
    }
  })();
  return subtleReady;
}

/** keys.ts keyId (first 8 bytes of SHA-256 of the public key), as hex. */
export function keyIdHex(pub: Uint8Array): string {
  return toHex(keyId(pub));
}

interface KeyEntry {
  honest: boolean;
  key?: Promise<CryptoKey | undefined>;
}
const keyCache = new Map<string, KeyEntry>();
const KEY_CACHE_MAX = 256;

function keyEntry(pub: Uint8Array, subtle: Subtle | undefined): KeyEntry {
  const hex = toHex(pub);
  let e = keyCache.get(hex);
  if (!e) {
    const honest = ed25519PublicKeyProblem(pub) === undefined;
    e = { honest };
    if (honest && subtle) {
      e.key = subtle
        .importKey('raw', pub.slice(), { name: 'Ed25519' } as never, false, ['verify'])
        .catch(() => undefined);
    }
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(hex, e);
  }
  return e;
}

// L = 2^252 + 27742317777372353535851937790883648493, little-endian
const L = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0x10,
]);

/** Little-endian compare of sig[off..off+32) with the 32-byte `ref`: true if less. */
function lessThan(b: Uint8Array, off: number, ref: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (b[off + i] !== ref[i]) return b[off + i] < ref[i];
  }
  return false;
}

/** R's y < p and R is not x = 0 with the sign bit set (y = 1 or y = p - 1). */
function canonicalR(sig: Uint8Array): boolean {
  const top = sig[31] & 0x7f;
  // y >= p = 2^255 - 19  <=>  y's bytes are ff..ff7f with low byte >= 0xed
  let allFF = top === 0x7f;
  for (let i = 1; i < 31 && allFF; i++) if (sig[i] !== 0xff) allFF = false;
  if (allFF && sig[0] >= 0xed) return false;
  if (sig[31] & 0x80) {
    // y == 1 ?
    let one = sig[0] === 1 && top === 0;
    for (let i = 1; i < 31 && one; i++) if (sig[i] !== 0) one = false;
    // y == p - 1 = ff..ff7f with low byte 0xec ?
    const pm1 = allFF && sig[0] === 0xec;
    if (one || pm1) return false;
  }
  return true;
}

/** Ed25519 verification with the project's rule; never throws. */
export async function verifyEd25519(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): Promise<boolean> {
  if (!(sig instanceof Uint8Array) || sig.length !== 64 || !(pub instanceof Uint8Array) || pub.length !== 32) return false;
  const subtle = await subtleEd25519();
  if (subtle) {
    const e = keyEntry(pub, subtle);
    if (e.honest && e.key && lessThan(sig, 32, L) && canonicalR(sig)) {
      try {
        const k = await e.key;
        if (k && (await subtle.verify({ name: 'Ed25519' } as never, k, sig as BufferSource, msg as BufferSource))) return true;
      } catch {
        /* decided below */
      }
    }
  }
  return ed25519Verify(sig, msg, pub);
}

/** Something that signs audit entries for one technician. */
export interface AuditSigner {
  /** Technician id (e.g. name or badge number). */
  id: string;
  /** Ed25519 public key, 32 bytes. */
  publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) of `msg`. */
  sign(msg: Uint8Array): Promise<Uint8Array>;
}

const PKCS8_ED25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/**
 * A signer from a 32-byte Ed25519 seed. Signs through WebCrypto when it can
 * (Ed25519 signatures are deterministic, so the bytes equal ed25519Sign's),
 * else through ed25519Sign.
 */
export async function seedSigner(id: string, seed: Uint8Array): Promise<AuditSigner> {
  const publicKey = await ed25519PublicKey(seed);
  const subtle = await subtleEd25519();
  let key: CryptoKey | undefined;
  if (subtle) {
    const pkcs8 = new Uint8Array(48);
    pkcs8.set(PKCS8_ED25519_PREFIX);
    pkcs8.set(seed, 16);
    try {
      key = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' } as never, false, ['sign']);
    } catch {
      key = undefined;
    }
    pkcs8.fill(0);
  }
  const seedCopy = key ? undefined : seed.slice();
  return {
    id,
    publicKey,
    sign: key
      ? async (msg) => new Uint8Array(await subtle!.sign({ name: 'Ed25519' } as never, key!, msg as BufferSource))
      : (msg) => ed25519Sign(msg, seedCopy!),
  };
}

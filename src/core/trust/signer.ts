/**
 * A signer: an Ed25519 key used through a narrow interface, so the key itself
 * can live elsewhere (an HSM through PKCS#11, a passphrase-wrapped key file).
 * Everything that issues artifacts with the manufacturer or station key takes
 * a Signer, never the private key bytes.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed25519PublicKey, ed25519Sign } from './ed25519.ts';

export interface Signer {
  /** What holds the key, for messages: "memory", "pkcs11", "key file". */
  readonly kind: string;
  /** Ed25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** A signer over a seed held in this process's memory (tests, the demo, the browser). */
export async function memorySignerAsync(seed: Uint8Array): Promise<Signer> {
  const publicKey = await ed25519PublicKey(seed);
  return memorySignerWith(seed, publicKey);
}

function memorySignerWith(seed: Uint8Array, publicKey: Uint8Array): Signer {
  const key = seed.slice();
  return { kind: 'memory', publicKey, sign: (m) => ed25519Sign(m, key) };
}

/** A signer over a seed held in memory. */
export function memorySigner(seed: Uint8Array): Signer {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
  return memorySignerWith(seed, ed25519PublicKeySync(seed));
}

/** RFC 8032 key derivation, synchronous (signing itself stays in ed25519.ts). */
function ed25519PublicKeySync(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

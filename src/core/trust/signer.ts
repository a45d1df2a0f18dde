/**
 * Signer: the one shape every private-key holder has for the factory station
 * (the manufacturer key that issues identity certificates, the station key that
 * signs the control log). Code that signs never sees where the key lives:
 *  - memorySigner: a seed in memory (tests, demo, keys unwrapped for one run),
 *  - wrappedSigner (src/core/trust/wrapped-key.ts): a passphrase-wrapped key file,
 *  - pkcs11Signer (src/core/trust/pkcs11.ts, Node only): a key inside an HSM.
 *
 * Signatures are Ed25519 (RFC 8032, pure), 64 bytes; the public key is 32 bytes.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed25519Sign, ed25519Verify } from './ed25519.ts';

export interface Signer {
  /** Where the key lives: 'memory', 'wrapped-file', 'pkcs11', ... (for logs and reports). */
  readonly kind: string;
  /** Ed25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) over `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

export type SignerFailure =
  | 'bad-key'
  | 'sign-failed'
  | 'bad-signature'
  /** PKCS#11: the module cannot be loaded or initialised. */
  | 'hsm-unavailable'
  /** PKCS#11: no token with this label. */
  | 'token-not-found'
  /** PKCS#11: no (or more than one) key with this label on the token. */
  | 'key-not-found'
  /** PKCS#11: a key with this label already exists (keygen). */
  | 'key-exists'
  /** PKCS#11 PIN or key-file passphrase wrong / locked. */
  | 'bad-pin'
  | 'bad-passphrase';

export class SignerError extends Error {
  constructor(
    readonly code: SignerFailure,
    message: string,
  ) {
    super(message);
    this.name = 'SignerError';
  }
}

/**
 * A Signer over a 32-byte Ed25519 seed held in memory. The seed is copied, so
 * the caller may zero its own buffer; `forget()` zeroes the copy (signing after
 * that throws).
 */
export function memorySigner(seed: Uint8Array): Signer & { forget(): void } {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new SignerError('bad-key', 'an Ed25519 seed is 32 bytes');
  const copy = new Uint8Array(seed);
  const publicKey = ed25519.getPublicKey(copy);
  let forgotten = false;
  return {
    kind: 'memory',
    publicKey,
    async sign(message: Uint8Array): Promise<Uint8Array> {
      if (forgotten) throw new SignerError('bad-key', 'this signer was closed (its key was zeroed)');
      return ed25519Sign(message, copy);
    },
    forget() {
      forgotten = true;
      copy.fill(0);
    },
  };
}

/**
 * Sign and check the result against the signer's public key with our strict
 * verifier: an HSM (or a wrong slot) that returns a signature under another key
 * or garbage is caught here, not by whoever verifies the artifact later.
 */
export async function signChecked(s: Signer, message: Uint8Array): Promise<Uint8Array> {
  let sig: Uint8Array;
  try {
    sig = await s.sign(message);
  } catch (e) {
    if (e instanceof SignerError) throw e;
    throw new SignerError('sign-failed', `${s.kind} signer failed: ${(e as Error).message}`);
  }
  if (!(await ed25519Verify(sig, message, s.publicKey))) throw new SignerError('bad-signature', `${s.kind} signer returned a signature that does not verify under its public key`);
  return sig;
}

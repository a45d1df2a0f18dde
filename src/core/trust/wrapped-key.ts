/**
 * A passphrase-wrapped Ed25519 key file: how a station keeps the manufacturer
 * key (or its own station key) on disk when there is no HSM. The seed is never
 * written in clear.
 *
 *   -----BEGIN FIELDBENCH WRAPPED KEY-----
 *   base64 of a deterministic CBOR map:
 *     { 1: 1 (version), 2: label (tstr), 3: public key (bstr 32),
 *       4: [N, r, p, salt (bstr 16..64)] (scrypt), 5: iv (bstr 12), 6: AES-256-GCM(seed) with tag (bstr 48) }
 *   -----END FIELDBENCH WRAPPED KEY-----
 *
 * The key-encryption key is scrypt(passphrase NFKC, salt, N, r 8, p 1) as in
 * the app's key store (keystore.ts: N 2^17 for new files, 2^15..2^18 accepted so
 * a tampered file cannot exhaust memory). The GCM AAD is the tag text plus the
 * CBOR of fields 1..5, so the label, public key and KDF parameters cannot be
 * swapped without the passphrase check failing. The public key (and its key id)
 * can be read without the passphrase.
 *
 * wrappedSigner unwraps once (one scrypt) and holds the seed in memory for the
 * run (memorySigner); `forget()` zeroes it when the run ends.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { decodeStrict, encodeDeterministic } from '../base/cbor.ts';
import { equalBytes, fromBase64, toBase64 } from '../base/bytes.ts';
import { ed25519PublicKey } from './ed25519.ts';
import { SCRYPT_MAX_N, SCRYPT_MIN_N, SCRYPT_NEW_N } from './keystore.ts';
import { memorySigner, type Signer, SignerError } from './signer.ts';

export const WRAPPED_PEM_LABEL = 'FIELDBENCH WRAPPED KEY';
const AAD_TAG = new TextEncoder().encode('fieldbench-wrapped-key-v1');
/** Shortest passphrase wrapKey accepts. */
export const MIN_PASSPHRASE = 12;

export interface WrappedKey {
  label: string;
  publicKey: Uint8Array;
  kdf: { N: number; r: number; p: number; salt: Uint8Array };
  iv: Uint8Array;
  ciphertext: Uint8Array;
}

function header(w: WrappedKey): Map<number, unknown> {
  return new Map<number, unknown>([[1, 1], [2, w.label], [3, w.publicKey], [4, [w.kdf.N, w.kdf.r, w.kdf.p, w.kdf.salt]], [5, w.iv]]);
}

function aad(w: WrappedKey): Uint8Array {
  const h = encodeDeterministic(header(w));
  const out = new Uint8Array(AAD_TAG.length + h.length);
  out.set(AAD_TAG);
  out.set(h, AAD_TAG.length);
  return out;
}

function kek(passphrase: string, kdf: WrappedKey['kdf']): Promise<Uint8Array> {
  return scryptAsync(new TextEncoder().encode(passphrase.normalize('NFKC')), kdf.salt, { N: kdf.N, r: kdf.r, p: kdf.p, dkLen: 32, maxmem: 256 * kdf.N * kdf.r + 1024 * 1024 });
}

/** Is this text a wrapped key file (as opposed to a PEM key)? */
export function isWrappedKeyFile(text: string): boolean {
  return typeof text === 'string' && text.includes(`-----BEGIN ${WRAPPED_PEM_LABEL}-----`);
}

/** Wrap a seed under a passphrase; returns the file's text. */
export async function wrapKey(seed: Uint8Array, passphrase: string, opts: { label?: string; scryptN?: number } = {}): Promise<string> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new SignerError('bad-key', 'an Ed25519 seed is 32 bytes');
  if (typeof passphrase !== 'string' || [...passphrase].length < MIN_PASSPHRASE) throw new SignerError('bad-passphrase', `the passphrase must be at least ${MIN_PASSPHRASE} characters`);
  const N = opts.scryptN ?? SCRYPT_NEW_N;
  if (!Number.isInteger(Math.log2(N)) || N < SCRYPT_NEW_N || N > SCRYPT_MAX_N) throw new SignerError('bad-key', `scrypt N must be a power of two from ${SCRYPT_NEW_N} to ${SCRYPT_MAX_N}`);
  const label = opts.label ?? '';
  if (label.length > 128) throw new SignerError('bad-key', 'the label is at most 128 characters');
  const w: WrappedKey = {
    label,
    publicKey: await ed25519PublicKey(seed),
    kdf: { N, r: 8, p: 1, salt: crypto.getRandomValues(new Uint8Array(16)) },
    iv: crypto.getRandomValues(new Uint8Array(12)),
    ciphertext: new Uint8Array(0),
  };
  const k = await kek(passphrase, w.kdf);
  try {
    w.ciphertext = gcm(k, w.iv, aad(w)).encrypt(seed);
  } finally {
    k.fill(0);
  }
  const m = header(w);
  m.set(6, w.ciphertext);
  const b64 = toBase64(encodeDeterministic(m));
  return `-----BEGIN ${WRAPPED_PEM_LABEL}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${WRAPPED_PEM_LABEL}-----\n`;
}

/** Parse a wrapped key file (no passphrase needed; nothing is decrypted). Throws SignerError 'bad-key'. */
export function parseWrappedKey(text: string): WrappedKey {
  const bad = (m: string): never => {
    throw new SignerError('bad-key', `not a usable wrapped key file: ${m}`);
  };
  const re = new RegExp(`-----BEGIN ${WRAPPED_PEM_LABEL}-----([\\s\\S]*?)-----END ${WRAPPED_PEM_LABEL}-----`);
  const pem = re.exec(typeof text === 'string' ? text : '');
  if (!pem) bad(`no ${WRAPPED_PEM_LABEL} block`);
  const raw = fromBase64(pem![1].replace(/\s+/g, ''));
  if (!raw || raw.length > 1024) bad('bad base64 or too long');
  let v: unknown;
  try {
    v = decodeStrict(raw!);
  } catch (e) {
    bad((e as Error).message);
  }
  if (!(v instanceof Map)) bad('expected a CBOR map');
  const m = v as Map<unknown, unknown>;
  for (const k of m.keys()) if (![1, 2, 3, 4, 5, 6].includes(k as number)) bad(`unknown field ${String(k)}`);
  if (m.get(1) !== 1) bad(`version ${String(m.get(1))} (this fieldbench reads version 1)`);
  const label = m.get(2);
  if (typeof label !== 'string' || label.length > 128) bad('label');
  const bytes = (k: number, len: number, name: string) => {
    const b = m.get(k);
    if (!(b instanceof Uint8Array) || b.length !== len) bad(`${name} must be ${len} bytes`);
    return b as Uint8Array;
  };
  const publicKey = bytes(3, 32, 'public key');
  const kdf = m.get(4);
  if (!Array.isArray(kdf) || kdf.length !== 4) bad('KDF parameters [N, r, p, salt]');
  const [N, r, p, salt] = kdf as unknown[];
  if (typeof N !== 'number' || !Number.isInteger(Math.log2(N)) || N < SCRYPT_MIN_N || N > SCRYPT_MAX_N || r !== 8 || p !== 1 || !(salt instanceof Uint8Array) || salt.length < 16 || salt.length > 64) {
    bad(`key-derivation parameters outside policy (scrypt N 2^15..2^18, r 8, p 1, salt 16..64 bytes)`);
  }
  return { label: label as string, publicKey, kdf: { N: N as number, r: 8, p: 1, salt: salt as Uint8Array }, iv: bytes(5, 12, 'iv'), ciphertext: bytes(6, 48, 'wrapped key') };
}

/** Unwrap: the 32-byte seed (the caller zeroes it). Throws SignerError 'bad-passphrase' / 'bad-key'. */
export async function unwrapKey(text: string, passphrase: string): Promise<Uint8Array> {
  const w = parseWrappedKey(text);
  if (typeof passphrase !== 'string' || !passphrase) throw new SignerError('bad-passphrase', 'the key file is passphrase-protected: give its passphrase');
  const k = await kek(passphrase, w.kdf);
  let seed: Uint8Array;
  try {
    seed = gcm(k, w.iv, aad(w)).decrypt(w.ciphertext);
  } catch {
    throw new SignerError('bad-passphrase', 'wrong passphrase for the key file (or the file was altered)');
  } finally {
    k.fill(0);
  }
  if (seed.length !== 32 || !equalBytes(await ed25519PublicKey(seed), w.publicKey)) {
    seed.fill(0);
    throw new SignerError('bad-key', 'the wrapped private key does not match the public key in the file');
  }
  return seed;
}

/** A Signer from a wrapped key file: unwrapped once, held in memory until forget(). */
export async function wrappedSigner(text: string, passphrase: string): Promise<Signer & { forget(): void }> {
  const seed = await unwrapKey(text, passphrase);
  try {
    const s = memorySigner(seed);
    return { kind: 'wrapped-file', publicKey: s.publicKey, sign: (m) => s.sign(m), forget: () => s.forget() };
  } finally {
    seed.fill(0);
  }
}

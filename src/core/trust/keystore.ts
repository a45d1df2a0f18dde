/**
 * Technician key storage in the app. A private key is never stored in plaintext.
 *
 * Two record kinds:
 *  - 'webcrypto': a NON-EXTRACTABLE WebCrypto Ed25519 CryptoKey. IndexedDB stores
 *    it by structured clone; the key material never reaches JavaScript again, so
 *    it can sign but cannot be exported. Consequence: when a PEM is imported
 *    into this kind, the PEM file itself is the only backup - keep it offline.
 *    A key generated in this kind has no backup at all: losing the browser
 *    profile means asking the owner for a new credential (which is the intended
 *    recovery: credentials are cheap, keys that leak are not).
 *  - 'wrapped': used where the browser lacks WebCrypto Ed25519 (or when asked):
 *    the 32-byte seed is encrypted with AES-256-GCM under a key derived from a
 *    passphrase with scrypt (N = 2^17 for new records, r = 8, p = 1, 16-byte salt;
 *    unwrap accepts only 2^15 <= N <= 2^18, r = 8, p = 1, so a tampered record cannot exhaust memory);
 *    the AAD binds the record id and public key. Signing needs the passphrase;
 *    the seed lives in memory only for the duration of one signature and is
 *    zeroed afterwards. Wrapped keys can be exported (PEM / COSE_Key) with the
 *    passphrase.
 *
 * The storage backend is an interface; the app's Dexie `keys` table implements
 * it, MemoryKeyBackend serves tests and the CLI.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import type { CoseKey } from './cose.ts';
import { ed25519PublicKey, ed25519Sign, generateEd25519 } from './ed25519.ts';
import { decodeCoseKeyWithPrivate, encodeCoseKey, keyId, parsePem, privateKeyPem, publicKeyPem } from './keys.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalBytes, toHex } from '../base/bytes.ts';

/** scrypt cost of every new wrapped key (2^17: ~128 MiB at r = 8). */
export const SCRYPT_NEW_N = 1 << 17;
/** Lowest cost a stored record may have and still be unwrapped (records made before 2^17 became the rule). */
export const SCRYPT_MIN_N = 1 << 15;
/** Highest cost unwrap accepts: a tampered record must not be able to exhaust memory (2^18 x r 8 = 256 MiB). */
export const SCRYPT_MAX_N = 1 << 18;

interface KeyRecordBase {
  /** Hex key id (keyId(publicKey)). */
  id: string;
  label: string;
  publicKey: Uint8Array;
  createdAt: number;
}
export interface WebCryptoKeyRecord extends KeyRecordBase {
  kind: 'webcrypto';
  key: CryptoKey;
}
export interface WrappedKeyRecord extends KeyRecordBase {
  kind: 'wrapped';
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: Uint8Array };
  iv: Uint8Array;
  /** AES-256-GCM ciphertext of the seed, with tag. */
  wrapped: Uint8Array;
}
export type KeyRecord = WebCryptoKeyRecord | WrappedKeyRecord;

export interface KeyStoreBackend {
  get(id: string): Promise<KeyRecord | undefined>;
  put(rec: KeyRecord): Promise<void>;
  delete(id: string): Promise<void>;
  list(): Promise<KeyRecord[]>;
}

/** In-memory backend (tests, CLI). Stores records as given (like structured clone would). */
export class MemoryKeyBackend implements KeyStoreBackend {
  private readonly recs = new Map<string, KeyRecord>();
  async get(id: string) {
    return this.recs.get(id);
  }
  async put(rec: KeyRecord) {
    this.recs.set(rec.id, rec);
  }
  async delete(id: string) {
    this.recs.delete(id);
  }
  async list() {
    return [...this.recs.values()];
  }
}

export type KeyStoreFailure = 'not-found' | 'exists' | 'passphrase-required' | 'bad-passphrase' | 'not-extractable' | 'bad-key' | 'unsupported';

export class KeyStoreError extends FieldbenchError<KeyStoreFailure> {
  constructor(code: KeyStoreFailure, message: string) {
    super(code, message);
    this.name = 'KeyStoreError';
  }
}

export interface KeyInfo {
  id: string;
  label: string;
  kind: KeyRecord['kind'];
  publicKey: Uint8Array;
  kid: Uint8Array;
  createdAt: number;
  /** Whether the private key can be exported (wrapped keys, with the passphrase). */
  exportable: boolean;
}

export interface KeyStoreOptions {
  /** 'auto' (default): WebCrypto when it supports Ed25519, else wrapped. */
  mode?: 'auto' | 'webcrypto' | 'wrapped';
  subtle?: SubtleCrypto;
  /** scrypt cost for new wrapped keys: a power of two, 2^17..2^18 (default 2^17). */
  scryptN?: number;
}

const PKCS8_ED25519_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const te = new TextEncoder();

function wrapAad(id: string, pub: Uint8Array): Uint8Array {
  const tag = te.encode(`fieldbench-keystore-v1:${id}:`);
  const out = new Uint8Array(tag.length + pub.length);
  out.set(tag);
  out.set(pub, tag.length);
  return out;
}

function info(r: KeyRecord): KeyInfo {
  return { id: r.id, label: r.label, kind: r.kind, publicKey: r.publicKey, kid: keyId(r.publicKey), createdAt: r.createdAt, exportable: r.kind === 'wrapped' };
}

let webcryptoProbe: Promise<boolean> | undefined;

/** Does this runtime's WebCrypto support non-extractable Ed25519 signing keys? */
export function webCryptoEd25519Supported(subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle): Promise<boolean> {
  if (!subtle) return Promise.resolve(false);
  const probe = async () => {
    try {
      const k = (await subtle.generateKey({ name: 'Ed25519' } as Algorithm, false, ['sign', 'verify'])) as CryptoKeyPair;
      const sig = await subtle.sign({ name: 'Ed25519' } as Algorithm, k.privateKey, new Uint8Array(1));
      return sig.byteLength === 64;
    } catch {
      return false;
    }
  };
  if (subtle !== globalThis.crypto?.subtle) return probe();
  return (webcryptoProbe ??= probe());
}

export class TechnicianKeyStore {
  private readonly subtle: SubtleCrypto | undefined;
  private readonly mode: 'auto' | 'webcrypto' | 'wrapped';
  private readonly scryptN: number;

  constructor(
    private readonly backend: KeyStoreBackend,
    opts: KeyStoreOptions = {},
  ) {
    this.subtle = opts.subtle ?? globalThis.crypto?.subtle;
    this.mode = opts.mode ?? 'auto';
    this.scryptN = opts.scryptN ?? SCRYPT_NEW_N;
    if (!Number.isInteger(Math.log2(this.scryptN)) || this.scryptN < SCRYPT_NEW_N || this.scryptN > SCRYPT_MAX_N) {
      throw new KeyStoreError('unsupported', `scrypt N must be a power of two from ${SCRYPT_NEW_N} to ${SCRYPT_MAX_N}`);
    }
  }

  /** Which record kind new keys get. */
  async storageKind(): Promise<KeyRecord['kind']> {
    if (this.mode === 'wrapped') return 'wrapped';
    const ok = await webCryptoEd25519Supported(this.subtle);
    if (this.mode === 'webcrypto' && !ok) throw new KeyStoreError('unsupported', 'this browser has no WebCrypto Ed25519; use a passphrase-protected key');
    return ok ? 'webcrypto' : 'wrapped';
  }

  async list(): Promise<KeyInfo[]> {
    return (await this.backend.list()).map(info);
  }

  async get(id: string): Promise<KeyInfo> {
    return info(await this.record(id));
  }

  private async record(id: string): Promise<KeyRecord> {
    const r = await this.backend.get(id);
    if (!r) throw new KeyStoreError('not-found', `no key ${id} in the key store`);
    return r;
  }

  /** Generate a new technician key. `passphrase` is required when the store falls back to wrapped keys. */
  async generate(opts: { label: string; passphrase?: string }): Promise<KeyInfo> {
    const kind = await this.storageKind();
    if (kind === 'webcrypto') {
      const subtle = this.subtle!;
      const pair = (await subtle.generateKey({ name: 'Ed25519' } as Algorithm, false, ['sign', 'verify'])) as CryptoKeyPair;
      const publicKey = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
      return this.store({ kind, id: toHex(keyId(publicKey)), label: opts.label, publicKey, createdAt: Date.now(), key: pair.privateKey });
    }
    const { privateKey } = await generateEd25519();
    try {
      return await this.storeSeed(privateKey, opts);
    } finally {
      privateKey.fill(0);
    }
  }

  /** Import an Ed25519 private key PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes). */
  async importPem(pem: string, opts: { label: string; passphrase?: string }): Promise<KeyInfo> {
    let parsed;
    try {
      parsed = parsePem(pem);
    } catch (e) {
      throw new KeyStoreError('bad-key', `not a usable key file: ${(e as Error).message}`);
    }
    if (parsed.kind !== 'ed25519-private') throw new KeyStoreError('bad-key', 'the PEM holds a public key; a technician key needs the private key');
    try {
      return await this.storeSeed(parsed.seed, opts);
    } finally {
      parsed.seed.fill(0);
    }
  }

  /** Import a private COSE_Key (OKP, Ed25519, with d (-4)). */
  async importCoseKey(bytes: Uint8Array, opts: { label: string; passphrase?: string }): Promise<KeyInfo> {
    const seed = decodePrivateCoseKey(bytes);
    try {
      return await this.storeSeed(seed.d, opts);
    } finally {
      seed.d.fill(0);
    }
  }

  private async storeSeed(seed: Uint8Array, opts: { label: string; passphrase?: string }): Promise<KeyInfo> {
    const publicKey = await ed25519PublicKey(seed);
    const id = toHex(keyId(publicKey));
    if (await this.backend.get(id)) throw new KeyStoreError('exists', `key ${id} is already in the key store`);
    const kind = await this.storageKind();
    if (kind === 'webcrypto') {
      const der = new Uint8Array(48);
      der.set(PKCS8_ED25519_PREFIX);
      der.set(seed, 16);
      try {
        const key = await this.subtle!.importKey('pkcs8', der, { name: 'Ed25519' } as Algorithm, false, ['sign']);
        return await this.store({ kind, id, label: opts.label, publicKey, createdAt: Date.now(), key });
      } finally {
        der.fill(0);
      }
    }
    const pass = opts.passphrase;
    if (!pass) throw new KeyStoreError('passphrase-required', 'a passphrase is needed to protect this key');
    if (pass.length < 8) throw new KeyStoreError('passphrase-required', 'the passphrase must be at least 8 characters');
    const salt = globalThis.crypto.getRandomValues(new Uint8Array(16));
    const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
    const kdf = { name: 'scrypt' as const, N: this.scryptN, r: 8, p: 1, salt };
    const kek = await derive(pass, kdf);
    try {
      const wrapped = gcm(kek, iv, wrapAad(id, publicKey)).encrypt(seed);
      return await this.store({ kind: 'wrapped', id, label: opts.label, publicKey, createdAt: Date.now(), kdf, iv, wrapped });
    } finally {
      kek.fill(0);
    }
  }

  private async store(rec: KeyRecord): Promise<KeyInfo> {
    await this.backend.put(rec);
    return info(rec);
  }

  async delete(id: string): Promise<void> {
    await this.record(id);
    await this.backend.delete(id);
  }

  /** Sign a message with a stored key. Wrapped keys need their passphrase. */
  async sign(id: string, message: Uint8Array, passphrase?: string): Promise<Uint8Array> {
    const r = await this.record(id);
    if (r.kind === 'webcrypto') {
      if (!this.subtle) throw new KeyStoreError('unsupported', 'WebCrypto is not available');
      return new Uint8Array(await this.subtle.sign({ name: 'Ed25519' } as Algorithm, r.key, message as Uint8Array<ArrayBuffer>));
    }
    const seed = await this.unwrap(r, passphrase);
    try {
      return await ed25519Sign(message, seed);
    } finally {
      seed.fill(0);
    }
  }

  /** Signer object for code that signs repeatedly (the passphrase is kept only inside the closure). */
  signer(id: string, passphrase?: string): { id: string; sign(message: Uint8Array): Promise<Uint8Array> } {
    return { id, sign: (m) => this.sign(id, m, passphrase) };
  }

  async publicKeyPem(id: string): Promise<string> {
    return publicKeyPem((await this.record(id)).publicKey);
  }

  async publicCoseKey(id: string): Promise<Uint8Array> {
    const r = await this.record(id);
    const k: CoseKey = { kty: 'OKP', crv: 'Ed25519', x: r.publicKey, kid: keyId(r.publicKey) };
    return encodeCoseKey(k);
  }

  /** Export the private key as PKCS#8 PEM (wrapped keys only, with the passphrase). */
  async exportPrivatePem(id: string, passphrase: string): Promise<string> {
    const seed = await this.exportSeed(id, passphrase);
    try {
      return privateKeyPem(seed);
    } finally {
      seed.fill(0);
    }
  }

  /** Export the private key as a COSE_Key {1:1, -1:6, -2:x, -4:d, 2:kid} (wrapped keys only). */
  async exportPrivateCoseKey(id: string, passphrase: string): Promise<Uint8Array> {
    const r = await this.record(id);
    const seed = await this.exportSeed(id, passphrase);
    try {
      return encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: r.publicKey, kid: keyId(r.publicKey) }, { d: seed });
    } finally {
      seed.fill(0);
    }
  }

  private async exportSeed(id: string, passphrase: string): Promise<Uint8Array> {
    const r = await this.record(id);
    if (r.kind === 'webcrypto') {
      throw new KeyStoreError('not-extractable', 'this key is a non-extractable WebCrypto key; the PEM file it was imported from is its only backup');
    }
    return this.unwrap(r, passphrase);
  }

  private async unwrap(r: WrappedKeyRecord, passphrase: string | undefined): Promise<Uint8Array> {
    if (!passphrase) throw new KeyStoreError('passphrase-required', `key ${r.id} is passphrase-protected`);
    const k = r.kdf;
    if (
      k?.name !== 'scrypt' || !Number.isSafeInteger(k.N) || !Number.isInteger(Math.log2(k.N)) || k.N < SCRYPT_MIN_N || k.N > SCRYPT_MAX_N ||
      k.r !== 8 || k.p !== 1 || !(k.salt instanceof Uint8Array) || k.salt.length < 16 || k.salt.length > 64
    ) {
      throw new KeyStoreError('bad-key', `key ${r.id}: key-derivation parameters outside policy (scrypt N 2^15..2^18, r 8, p 1)`);
    }
    const kek = await derive(passphrase, r.kdf);
    let seed: Uint8Array;
    try {
      seed = gcm(kek, r.iv, wrapAad(r.id, r.publicKey)).decrypt(r.wrapped);
    } catch {
      throw new KeyStoreError('bad-passphrase', `wrong passphrase for key ${r.id} (or the stored record was altered)`);
    } finally {
      kek.fill(0);
    }
    if (seed.length !== 32 || !equalBytes(await ed25519PublicKey(seed), r.publicKey)) {
      seed.fill(0);
      throw new KeyStoreError('bad-key', `key ${r.id}: stored private key does not match its public key`);
    }
    return seed;
  }
}

function derive(passphrase: string, kdf: WrappedKeyRecord['kdf']): Promise<Uint8Array> {
  return scryptAsync(te.encode(passphrase.normalize('NFKC')), kdf.salt, { N: kdf.N, r: kdf.r, p: kdf.p, dkLen: 32, maxmem: 256 * kdf.N * kdf.r + 1024 * 1024 });
}

/** Decode a private Ed25519 COSE_Key (kty OKP, crv Ed25519, d present, d matching x). Throws KeyStoreError. */
export function decodePrivateCoseKey(bytes: Uint8Array): { d: Uint8Array; x: Uint8Array } {
  let r;
  try {
    r = decodeCoseKeyWithPrivate(bytes);
  } catch (e) {
    throw new KeyStoreError('bad-key', `not a usable COSE_Key: ${(e as Error).message}`);
  }
  if (r.key.kty !== 'OKP' || !r.d) throw new KeyStoreError('bad-key', 'COSE_Key has no Ed25519 private key (d, -4)');
  return { d: new Uint8Array(r.d), x: r.key.x };
}

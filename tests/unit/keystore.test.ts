import { describe, expect, it } from 'vitest';
import 'fake-indexeddb/auto';
import { ed25519Verify, generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { decodeCoseKeyWithPrivate, keyId, parsePem, privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { KeyStoreError, MemoryKeyBackend, TechnicianKeyStore, webCryptoEd25519Supported, type KeyRecord, type KeyStoreBackend } from '../../src/core/trust/keystore.ts';

const msg = new TextEncoder().encode('challenge from device SN-1');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function containsSeq(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Every byte array reachable from a record (what a storage backend would persist). */
function recordBytes(r: KeyRecord): Uint8Array[] {
  const out: Uint8Array[] = [];
  const walk = (v: unknown) => {
    if (v instanceof Uint8Array) out.push(v);
    else if (v && typeof v === 'object' && !(v instanceof CryptoKey)) Object.values(v).forEach(walk);
  };
  walk(r);
  return out;
}

/** IndexedDB-backed backend (structured clone, like the app's Dexie table) via fake-indexeddb. */
function idbBackend(): KeyStoreBackend {
  const dbp = new Promise<IDBDatabase>((res, rej) => {
    const req = indexedDB.open(`keys-${Math.random()}`, 1);
    req.onupgradeneeded = () => req.result.createObjectStore('keys', { keyPath: 'id' });
    req.onsuccess = () => res(req.result);
    req.onerror = () => rej(req.error);
  });
  const tx = async <T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest): Promise<T> => {
    const db = await dbp;
    return new Promise((res, rej) => {
      const r = f(db.transaction('keys', mode).objectStore('keys'));
      r.onsuccess = () => res(r.result as T);
      r.onerror = () => rej(r.error);
    });
  };
  return {
    get: (id) => tx('readonly', (s) => s.get(id)),
    put: async (rec) => void (await tx('readwrite', (s) => s.put(rec))),
    delete: async (id) => void (await tx('readwrite', (s) => s.delete(id))),
    list: () => tx('readonly', (s) => s.getAll()),
  };
}

describe('technician key store', () => {
  it('webcrypto: non-extractable Ed25519 key signs; nothing private is stored as bytes', async () => {
    expect(await webCryptoEd25519Supported()).toBe(true);
    const ks = new TechnicianKeyStore(new MemoryKeyBackend());
    const k = await ks.generate({ label: 'field laptop' });
    expect(k.kind).toBe('webcrypto');
    expect(k.exportable).toBe(false);
    expect(k.id).toBe(hex(keyId(k.publicKey)));
    const sig = await ks.sign(k.id, msg);
    expect(await ed25519Verify(sig, msg, k.publicKey)).toBe(true);
    await expect(ks.exportPrivatePem(k.id, 'whatever1')).rejects.toMatchObject({ code: 'not-extractable' });
    expect(parsePem(await ks.publicKeyPem(k.id))).toEqual({ kind: 'ed25519-public', publicKey: k.publicKey });
    expect(decodeCoseKeyWithPrivate(await ks.publicCoseKey(k.id)).d).toBeUndefined();
  });

  it('webcrypto: importing a PEM makes a non-extractable key (the PEM is the backup)', async () => {
    const { privateKey, publicKey } = await generateEd25519();
    const backend = new MemoryKeyBackend();
    const ks = new TechnicianKeyStore(backend);
    const k = await ks.importPem(privateKeyPem(privateKey), { label: 'imported' });
    expect(k.publicKey).toEqual(publicKey);
    expect(k.kind).toBe('webcrypto');
    const rec = (await backend.get(k.id))!;
    expect((rec as { key: CryptoKey }).key.extractable).toBe(false);
    for (const b of recordBytes(rec)) expect(containsSeq(b, privateKey)).toBe(false);
    expect(await ed25519Verify(await ks.sign(k.id, msg), msg, publicKey)).toBe(true);
    await expect(ks.importPem(privateKeyPem(privateKey), { label: 'again' })).rejects.toMatchObject({ code: 'exists' });
    await expect(ks.importPem(publicKeyPem(publicKey), { label: 'x' })).rejects.toThrow(/holds a public key/);
  });

  it('webcrypto keys survive an IndexedDB round trip (structured clone of CryptoKey)', async () => {
    const backend = idbBackend();
    const ks = new TechnicianKeyStore(backend);
    const k = await ks.generate({ label: 'idb' });
    const again = new TechnicianKeyStore(backend);
    expect((await again.list()).map((x) => x.id)).toEqual([k.id]);
    expect(await ed25519Verify(await again.sign(k.id, msg), msg, k.publicKey)).toBe(true);
    await again.delete(k.id);
    await expect(again.sign(k.id, msg)).rejects.toMatchObject({ code: 'not-found' });
  });

  it('wrapped (no WebCrypto Ed25519): scrypt + AES-256-GCM, passphrase required, export with passphrase', async () => {
    const backend = new MemoryKeyBackend();
    const ks = new TechnicianKeyStore(backend, { mode: 'wrapped' });
    const { privateKey, publicKey } = await generateEd25519();
    await expect(ks.importPem(privateKeyPem(privateKey), { label: 'w' })).rejects.toMatchObject({ code: 'passphrase-required' });
    await expect(ks.importPem(privateKeyPem(privateKey), { label: 'w', passphrase: 'short' })).rejects.toMatchObject({ code: 'passphrase-required' });
    const k = await ks.importPem(privateKeyPem(privateKey), { label: 'w', passphrase: 'correct horse battery' });
    expect(k.kind).toBe('wrapped');
    const rec = (await backend.get(k.id))! as Extract<KeyRecord, { kind: 'wrapped' }>;
    expect(rec.kdf).toMatchObject({ name: 'scrypt', r: 8, p: 1 });
    expect(rec.kdf.N).toBe(1 << 17); // new records: 2^17
    for (const b of recordBytes(rec)) expect(containsSeq(b, privateKey)).toBe(false);
    await expect(ks.sign(k.id, msg)).rejects.toMatchObject({ code: 'passphrase-required' });
    await expect(ks.sign(k.id, msg, 'wrong horse battery')).rejects.toMatchObject({ code: 'bad-passphrase' });
    const sig = await ks.sign(k.id, msg, 'correct horse battery');
    expect(await ed25519Verify(sig, msg, publicKey)).toBe(true);
    expect(parsePem(await ks.exportPrivatePem(k.id, 'correct horse battery'))).toEqual({ kind: 'ed25519-private', seed: privateKey });
    const cose = await ks.exportPrivateCoseKey(k.id, 'correct horse battery');
    expect(decodeCoseKeyWithPrivate(cose).d).toEqual(privateKey);
    // a COSE_Key imports into another store
    const other = new TechnicianKeyStore(new MemoryKeyBackend(), { mode: 'wrapped' });
    const k2 = await other.importCoseKey(cose, { label: 'from cose', passphrase: 'another passphrase' });
    expect(k2.publicKey).toEqual(publicKey);
    // tampering with the stored ciphertext or binding is detected
    await backend.put({ ...rec, wrapped: rec.wrapped.map((x, i) => (i === 0 ? x ^ 1 : x)) });
    await expect(ks.sign(k.id, msg, 'correct horse battery')).rejects.toMatchObject({ code: 'bad-passphrase' });
    await backend.put({ ...rec, kdf: { ...rec.kdf, N: 1 << 10 } });
    await expect(ks.sign(k.id, msg, 'correct horse battery')).rejects.toMatchObject({ code: 'bad-key' });
    // A tampered cost that would exhaust memory is refused before any work, as are other r and p.
    for (const kdf of [{ N: 1 << 30 }, { N: 1 << 19 }, { N: 3 << 16 }, { r: 1024 }, { p: 64 }, { N: 2 ** 60 }]) {
      await backend.put({ ...rec, kdf: { ...rec.kdf, ...kdf } });
      const t0 = performance.now();
      await expect(ks.sign(k.id, msg, 'correct horse battery')).rejects.toMatchObject({ code: 'bad-key' });
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  }, 180_000);

  it('auto mode falls back to wrapped keys when WebCrypto lacks Ed25519', async () => {
    const subtle = { generateKey: () => Promise.reject(new Error('NotSupportedError')) } as unknown as SubtleCrypto;
    const ks = new TechnicianKeyStore(new MemoryKeyBackend(), { subtle });
    expect(await ks.storageKind()).toBe('wrapped');
    await expect(ks.generate({ label: 'x' })).rejects.toBeInstanceOf(KeyStoreError);
    const k = await ks.generate({ label: 'x', passphrase: 'a long passphrase' });
    expect(k.kind).toBe('wrapped');
    expect(await ed25519Verify(await ks.sign(k.id, msg, 'a long passphrase'), msg, k.publicKey)).toBe(true);
    for (const n of [1 << 14, 1 << 15, 1 << 16, 1 << 19]) expect(() => new TechnicianKeyStore(new MemoryKeyBackend(), { scryptN: n })).toThrow(KeyStoreError);
    await expect(new TechnicianKeyStore(new MemoryKeyBackend(), { subtle, mode: 'webcrypto' }).generate({ label: 'x' })).rejects.toMatchObject({ code: 'unsupported' });
  }, 180_000);
});

/**
 * The technician's trust state in the app: the pinned owner key, the held
 * trust bundle, the technician credential and the technician's private key.
 *
 * - The FIRST bundle verifies under an owner public key the technician gives
 *   explicitly (PEM); that key is pinned (stored). Every later bundle must
 *   verify under the held bundle's owner anchors (verifyBundle with `held`),
 *   so a rollback is refused ('replayed') and an expired bundle is refused at
 *   import ('stale'); a held bundle that expires later is kept, flagged stale.
 * - The credential verifies under the held bundle (and is re-checked whenever
 *   the bundle changes: revocations apply at once).
 * - The private key lives in a TechnicianKeyStore over the Dexie `keys` table:
 *   a non-extractable WebCrypto key when the browser supports Ed25519, else
 *   the seed wrapped under a passphrase. Never plaintext at rest.
 *
 * Bundles and credentials are stored as library artifacts (content addressed);
 * one record in the `keys` table ('fieldbench:trust-state') says which are held.
 * Framework-free: the Svelte page only renders `snapshot()`.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { FieldbenchDB, KeyRecord as DbKeyRecord } from '../store/db.ts';
import { deleteKeyRecord, getArtifact, getKeyRecord, listKeyRecords, putArtifact, putKeyRecord } from '../store/artifacts.ts';
import type { AuditSigner } from '../store/sig.ts';
import { type TrustBundle, verifyBundle } from '../trust/bundle.ts';
import { type TechnicianCredential, decodeCredentialUnverified, verifyCredential } from '../trust/credential.ts';
import { artifactTypeOf, rawPublicKey } from '../trust/artifact.ts';
import { keyId, parsePem, publicKeyPem } from '../trust/keys.ts';
import { ed25519PublicKey } from '../trust/ed25519.ts';
import { type KeyInfo, type KeyRecord, type KeyStoreBackend, KeyStoreError, TechnicianKeyStore, decodePrivateCoseKey } from '../trust/keystore.ts';
import { importArtifact } from './library.ts';
import { equalBytes, toHex } from '../base/bytes.ts';

export const TRUST_STATE_ID = 'fieldbench:trust-state';

/** KeyStoreBackend over the app's Dexie `keys` table (S's key record helpers). */
export class DexieKeyBackend implements KeyStoreBackend {
  constructor(private readonly db: FieldbenchDB) {}
  private static isKey(r: DbKeyRecord | undefined): boolean {
    const k = (r?.record as { kind?: unknown } | undefined)?.kind;
    return k === 'webcrypto' || k === 'wrapped';
  }
  async get(id: string): Promise<KeyRecord | undefined> {
    const r = await getKeyRecord(this.db, id);
    return DexieKeyBackend.isKey(r) ? (r!.record as KeyRecord) : undefined;
  }
  async put(rec: KeyRecord): Promise<void> {
    await putKeyRecord(this.db, { id: rec.id, created: rec.createdAt, record: rec });
  }
  async delete(id: string): Promise<void> {
    if (await this.get(id)) await deleteKeyRecord(this.db, id);
  }
  async list(): Promise<KeyRecord[]> {
    return (await listKeyRecords(this.db)).filter((r) => DexieKeyBackend.isKey(r)).map((r) => r.record as KeyRecord);
  }
}

interface StoredState {
  kind: 'trust-state';
  /** Owner public keys pinned by the technician for the first bundle. */
  pins: Uint8Array[];
  /** Owner keys the held bundle verified under (the pin, or the previous bundle's owner anchors). */
  anchorKeys: Uint8Array[];
  bundle?: string;
  credential?: string;
  keyId?: string;
  demo?: boolean;
}

export type CredentialStatus = { ok: true } | { ok: false; code: string; reason: string };

export interface TrustSnapshot {
  pins: { kid: string; publicKey: Uint8Array }[];
  bundle: { value: TrustBundle; sha256: string } | null;
  /** The held bundle no longer verifies (e.g. a stored record was altered). */
  bundleProblem: string;
  credential: { value: TechnicianCredential; sha256: string; status: CredentialStatus } | null;
  key: KeyInfo | null;
  /** A passphrase-protected key that is not unlocked in this session. */
  keyLocked: boolean;
  /** Loaded with "Load demo trust": never a real deployment's trust. */
  demo: boolean;
  /** What device operations still need, in words (empty when ready). */
  missing: string[];
}

export type TrustImport =
  | { ok: true; kind: 'owner-key' | 'bundle' | 'credential' | 'key'; message: string; warning?: string }
  | { ok: false; kind?: 'owner-key' | 'bundle' | 'credential' | 'key'; code: string; reason: string };

export interface TrustStateOptions {
  keyStore?: TechnicianKeyStore;
  /** ms since the epoch. */
  now?: () => number;
}

export interface DemoTrust {
  ownerPublicKey: Uint8Array;
  bundle: Uint8Array;
  credential: Uint8Array;
  /** PKCS#8 PEM of the demo technician key. */
  technicianKeyPem: string;
  /** Further artifacts for the library (demo firmware, demo configuration). */
  library: { name: string; bytes: Uint8Array }[];
}

const te = new TextDecoder();
const hex = toHex;
const iso = (s: number) => new Date(s * 1000).toISOString().slice(0, 10);

function looksLikePem(bytes: Uint8Array): string | null {
  if (bytes.length > 16384) return null;
  const text = te.decode(bytes);
  return /-----BEGIN [A-Z ]+-----/.test(text) ? text : null;
}

export class TrustState {
  readonly keyStore: TechnicianKeyStore;
  private readonly now: () => number;
  private state: StoredState = { kind: 'trust-state', pins: [], anchorKeys: [] };
  private bundle: { value: TrustBundle; sha256: string; bytes: Uint8Array } | null = null;
  private bundleProblem = '';
  private credential: { value: TechnicianCredential; sha256: string; bytes: Uint8Array; status: CredentialStatus } | null = null;
  private key: KeyInfo | null = null;
  /** Session-only passphrase of a wrapped key (never stored). */
  private passphrase: string | undefined;

  constructor(
    readonly db: FieldbenchDB,
    opts: TrustStateOptions = {},
  ) {
    this.keyStore = opts.keyStore ?? new TechnicianKeyStore(new DexieKeyBackend(db));
    this.now = opts.now ?? Date.now;
  }

  /** Read the stored state and re-verify what it names. */
  async load(): Promise<TrustSnapshot> {
    const rec = await getKeyRecord(this.db, TRUST_STATE_ID);
    const s = rec?.record as StoredState | undefined;
    this.state = s && s.kind === 'trust-state' ? { ...s, pins: s.pins ?? [], anchorKeys: s.anchorKeys ?? [] } : { kind: 'trust-state', pins: [], anchorKeys: [] };
    this.bundle = null;
    this.bundleProblem = '';
    this.credential = null;
    this.key = null;
    if (this.state.bundle) {
      const art = await getArtifact(this.db, this.state.bundle);
      if (!art) this.bundleProblem = 'the held trust bundle is missing from the library: import it again';
      else {
        const r = await verifyBundle(art.bytes, { ownerKeys: this.state.anchorKeys, now: this.now(), allowStale: true });
        if (r.ok) this.bundle = { value: r.value, sha256: art.sha256, bytes: art.bytes };
        else this.bundleProblem = `the held trust bundle no longer verifies: ${r.reason}`;
      }
    }
    if (this.state.keyId) {
      try {
        this.key = await this.keyStore.get(this.state.keyId);
      } catch {
        this.key = null;
      }
    }
    if (this.state.credential) {
      const art = await getArtifact(this.db, this.state.credential);
      if (art) await this.checkCredential(art.bytes, art.sha256);
    }
    return this.snapshot();
  }

  private async save(): Promise<void> {
    await putKeyRecord(this.db, { id: TRUST_STATE_ID, created: this.now(), record: this.state });
  }

  private async checkCredential(bytes: Uint8Array, sha: string): Promise<void> {
    const b = this.bundle?.value;
    if (!b) {
      this.credential = null;
      return;
    }
    const r = await verifyCredential(bytes, { bundle: b, now: this.now() });
    if (r.ok) {
      const status: CredentialStatus =
        this.key && !equalBytes(this.key.publicKey, r.value.publicKey)
          ? { ok: false, code: 'key-mismatch', reason: `the credential is for key ${hex(keyId(r.value.publicKey))}, but the loaded key is ${this.key.id}` }
          : { ok: true };
      this.credential = { value: r.value, sha256: sha, bytes, status };
      return;
    }
    // Keep showing what it says, with why it cannot be used.
    try {
      this.credential = { value: decodeCredentialUnverified(bytes), sha256: sha, bytes, status: { ok: false, code: r.code, reason: r.reason } };
    } catch {
      this.credential = null;
    }
  }

  snapshot(): TrustSnapshot {
    const missing: string[] = [];
    if (!this.bundle) missing.push(this.state.pins.length ? 'the trust bundle' : "the owner's public key and the trust bundle");
    else if (this.bundle.value.stale) missing.push(`a fresh trust bundle (v${this.bundle.value.version} expired on ${iso(this.bundle.value.expires)})`);
    if (!this.credential) missing.push('your technician credential');
    else if (!this.credential.status.ok) missing.push(`a usable credential (${this.credential.status.reason})`);
    if (!this.key) missing.push('your technician private key');
    else if (this.key.kind === 'wrapped' && this.passphrase === undefined) missing.push('the passphrase that unlocks your key');
    return {
      pins: this.state.pins.map((p) => ({ kid: hex(keyId(p)), publicKey: p })),
      bundle: this.bundle ? { value: this.bundle.value, sha256: this.bundle.sha256 } : null,
      bundleProblem: this.bundleProblem,
      credential: this.credential ? { value: this.credential.value, sha256: this.credential.sha256, status: this.credential.status } : null,
      key: this.key,
      keyLocked: !!this.key && this.key.kind === 'wrapped' && this.passphrase === undefined,
      demo: !!this.state.demo,
      missing,
    };
  }

  /** The verified bundle (null: none, or it no longer verifies). */
  heldBundle(): TrustBundle | null {
    return this.bundle?.value ?? null;
  }

  /** The held bundle's file when it verifies (handed to a device whose bundle is older, at login). */
  heldBundleBytes(): Uint8Array | null {
    return this.bundle?.bytes ?? null;
  }

  /** The held credential bytes when it verifies (for device logins). */
  credentialBytes(): Uint8Array | null {
    return this.credential?.status.ok ? this.credential.bytes : null;
  }

  /** The raw Ed25519 firmware signing keys of the held bundle. */
  firmwareKeys(): Uint8Array[] {
    const b = this.bundle?.value;
    if (!b) return [];
    const out: Uint8Array[] = [];
    for (const k of b.anchors.firmware) {
      if (k.kty !== 'OKP') continue;
      try {
        out.push(rawPublicKey(k));
      } catch {
        /* unusable anchor: skipped */
      }
    }
    return out;
  }

  /** Signature callback of the loaded key (null: no key, or a locked one). */
  sign(): ((m: Uint8Array) => Promise<Uint8Array>) | null {
    const k = this.key;
    if (!k || (k.kind === 'wrapped' && this.passphrase === undefined)) return null;
    const s = this.keyStore.signer(k.id, this.passphrase);
    return (m) => s.sign(m);
  }

  /** The audit signer: the loaded key under the credential's technician id (null when either is missing). */
  signer(): AuditSigner | null {
    const sign = this.sign();
    if (!sign || !this.key) return null;
    const c = this.credential;
    const id = c && c.status.ok ? c.value.technicianId : c ? c.value.technicianId : null;
    if (!id) return null;
    return { id, publicKey: this.key.publicKey, sign };
  }

  /** Unlock a passphrase-protected key for this session (checked by signing). */
  async unlock(passphrase: string): Promise<TrustImport> {
    const k = this.key;
    if (!k) return { ok: false, kind: 'key', code: 'not-found', reason: 'no technician key is loaded' };
    if (k.kind !== 'wrapped') return { ok: true, kind: 'key', message: 'this key needs no passphrase' };
    try {
      await this.keyStore.sign(k.id, new Uint8Array([0]), passphrase);
    } catch (e) {
      return { ok: false, kind: 'key', code: e instanceof KeyStoreError ? e.code : 'bad-key', reason: (e as Error).message };
    }
    this.passphrase = passphrase;
    return { ok: true, kind: 'key', message: `key ${k.id} unlocked for this session` };
  }

  /** Pin an owner public key (PEM text) for the first bundle. */
  async pinOwnerKey(pem: string): Promise<TrustImport> {
    let pub: Uint8Array;
    try {
      const p = parsePem(pem);
      if (p.kind === 'ed25519-private') {
        p.seed.fill(0);
        return { ok: false, kind: 'owner-key', code: 'bad-key', reason: 'this is a PRIVATE key: the owner public key is a "PUBLIC KEY" PEM (never ask the owner for the private key)' };
      }
      if (p.kind !== 'ed25519-public') return { ok: false, kind: 'owner-key', code: 'bad-key', reason: 'the owner key must be an Ed25519 public key' };
      pub = p.publicKey;
    } catch (e) {
      return { ok: false, kind: 'owner-key', code: 'bad-key', reason: `not a usable owner public key: ${(e as Error).message}` };
    }
    const kid = hex(keyId(pub));
    if (this.bundle) {
      return {
        ok: false,
        kind: 'owner-key',
        code: 'held',
        reason: `a trust bundle (v${this.bundle.value.version}) is already held: new bundles are checked against its owner keys, not a new pin. Forget the trust first to start over with owner key ${kid}.`,
      };
    }
    if (!this.state.pins.some((p) => equalBytes(p, pub))) this.state = { ...this.state, pins: [...this.state.pins, pub] };
    await this.save();
    return { ok: true, kind: 'owner-key', message: `owner key ${kid} pinned. Compare this key id with the one the owner gave you; then import the trust bundle.` };
  }

  /** Import a trust bundle: the first under the pinned owner key, later ones under the held bundle. */
  async importBundle(bytes: Uint8Array, name = 'trust bundle'): Promise<TrustImport> {
    const now = this.now();
    const held = this.bundle?.value;
    if (!held && !this.state.pins.length) {
      return { ok: false, kind: 'bundle', code: 'no-owner-key', reason: "the first trust bundle is checked against the owner's public key: import the owner public key (PEM) first" };
    }
    const ownerKeys = held ? held.anchors.owner.filter((k) => k.kty === 'OKP').map(rawPublicKey) : this.state.pins;
    const r = held ? await verifyBundle(bytes, { held, now }) : await verifyBundle(bytes, { ownerKeys, now });
    if (!r.ok) {
      const why =
        r.code === 'replayed'
          ? `Refused: ${r.reason}. An older bundle may re-trust revoked keys.`
          : r.code === 'stale'
            ? `Refused: ${r.reason}. An expired bundle may hide revocations (freeze attack).`
            : `Refused: ${r.reason}`;
      return { ok: false, kind: 'bundle', code: r.code, reason: why };
    }
    const sha = hex(sha256(bytes));
    if (held && r.value.version === held.version) {
      if (this.bundle!.sha256 === sha) return { ok: true, kind: 'bundle', message: `trust bundle v${held.version} is already held` };
      return { ok: false, kind: 'bundle', code: 'replayed', reason: `Refused: a different trust bundle with the same version ${held.version} is already held (versions must increase)` };
    }
    await putArtifact(this.db, 'bundle', bytes, () => ({ ok: true, meta: { version: r.value.version, expires: new Date(r.value.expires * 1000).toISOString() } }), { name, now });
    this.bundle = { value: r.value, sha256: sha, bytes };
    this.bundleProblem = '';
    this.state = { ...this.state, bundle: sha, anchorKeys: ownerKeys };
    await this.save();
    if (this.credential) await this.checkCredential(this.credential.bytes, this.credential.sha256);
    const warning = this.credential && !this.credential.status.ok ? `Your credential no longer verifies under this bundle: ${this.credential.status.reason}` : undefined;
    return { ok: true, kind: 'bundle', message: `trust bundle v${r.value.version} verified and held (valid until ${iso(r.value.expires)})`, warning };
  }

  /** Import the adopted library bundle if it is newer and verifies under the held one (LibraryPage imports). */
  async adoptNewer(bytes: Uint8Array, name?: string): Promise<TrustImport | null> {
    const held = this.bundle?.value;
    if (!held) return null;
    const r = await verifyBundle(bytes, { held, now: this.now() });
    if (!r.ok || r.value.version <= held.version) return null;
    return this.importBundle(bytes, name);
  }

  async importCredential(bytes: Uint8Array, name = 'technician credential'): Promise<TrustImport> {
    const b = this.bundle?.value;
    if (!b) return { ok: false, kind: 'credential', code: 'no-bundle', reason: 'a credential is checked against the trust bundle: import the trust bundle first' };
    const r = await verifyCredential(bytes, { bundle: b, now: this.now() });
    if (!r.ok) return { ok: false, kind: 'credential', code: r.code, reason: `Refused: ${r.reason}` };
    if (this.key && !equalBytes(this.key.publicKey, r.value.publicKey)) {
      return {
        ok: false,
        kind: 'credential',
        code: 'key-mismatch',
        reason: `Refused: this credential is for key ${hex(keyId(r.value.publicKey))}, but your loaded key is ${this.key.id}`,
      };
    }
    const now = this.now();
    const { record } = await putArtifact(this.db, 'credential', bytes, () => ({ ok: true, meta: { technician: r.value.technicianId } }), { name, now });
    this.state = { ...this.state, credential: record.sha256 };
    await this.save();
    await this.checkCredential(bytes, record.sha256);
    const c = r.value;
    return { ok: true, kind: 'credential', message: `credential of ${c.name} (${c.technicianId}) verified: ${c.permissions.join(', ')} until ${iso(c.notAfter)}` };
  }

  /** Import the technician private key (PKCS#8 PEM or a private COSE_Key). */
  async importKey(input: string | Uint8Array, opts: { label?: string; passphrase?: string } = {}): Promise<TrustImport> {
    let pub: Uint8Array;
    try {
      if (typeof input === 'string') {
        const p = parsePem(input);
        if (p.kind !== 'ed25519-private') return { ok: false, kind: 'key', code: 'bad-key', reason: 'this PEM holds a public key; your technician key file is the PRIVATE KEY PEM' };
        pub = await ed25519PublicKey(p.seed);
        p.seed.fill(0);
      } else {
        const k = decodePrivateCoseKey(input);
        pub = await ed25519PublicKey(k.d);
        k.d.fill(0);
      }
    } catch (e) {
      return { ok: false, kind: 'key', code: 'bad-key', reason: `not a usable technician key: ${(e as Error).message}` };
    }
    const c = this.credential?.value;
    if (c && !equalBytes(c.publicKey, pub)) {
      return { ok: false, kind: 'key', code: 'key-mismatch', reason: `Refused: this key (${hex(keyId(pub))}) is not the one your credential names (${hex(keyId(c.publicKey))})` };
    }
    const id = hex(keyId(pub));
    const label = opts.label ?? (c ? `${c.name} (${c.technicianId})` : 'technician key');
    let info: KeyInfo;
    try {
      info = typeof input === 'string' ? await this.keyStore.importPem(input, { label, passphrase: opts.passphrase }) : await this.keyStore.importCoseKey(input, { label, passphrase: opts.passphrase });
    } catch (e) {
      if (e instanceof KeyStoreError && e.code === 'exists') info = await this.keyStore.get(id);
      else if (e instanceof KeyStoreError) return { ok: false, kind: 'key', code: e.code, reason: e.message };
      else throw e;
    }
    this.key = info;
    this.passphrase = info.kind === 'wrapped' ? opts.passphrase : undefined;
    this.state = { ...this.state, keyId: info.id };
    await this.save();
    if (this.credential) await this.checkCredential(this.credential.bytes, this.credential.sha256);
    const how =
      info.kind === 'webcrypto'
        ? 'stored as a non-extractable browser key (it can sign but cannot be read back: keep your key file offline as the only backup)'
        : 'stored encrypted under your passphrase';
    return { ok: true, kind: 'key', message: `technician key ${info.id} ${how}` };
  }

  /** Recognise a dropped or picked file and import it. */
  async importFile(name: string, bytes: Uint8Array, opts: { passphrase?: string } = {}): Promise<TrustImport> {
    const pem = looksLikePem(bytes);
    if (pem !== null) {
      if (/-----BEGIN PRIVATE KEY-----/.test(pem)) return this.importKey(pem, { passphrase: opts.passphrase });
      if (/-----BEGIN PUBLIC KEY-----/.test(pem)) return this.pinOwnerKey(pem);
      return { ok: false, code: 'unrecognised', reason: `${name}: unsupported PEM (expected an owner PUBLIC KEY or your PRIVATE KEY)` };
    }
    const t = artifactTypeOf(bytes);
    if (t === 'bundle') return this.importBundle(bytes, name);
    if (t === 'credential') return this.importCredential(bytes, name);
    if (t) return { ok: false, code: 'wrong-type', reason: `${name} is a ${t === 'config' ? 'signed configuration' : 'device identity certificate'}: add it in the Library` };
    try {
      decodePrivateCoseKey(bytes);
      return this.importKey(bytes, { passphrase: opts.passphrase });
    } catch {
      /* not a key */
    }
    return { ok: false, code: 'unrecognised', reason: `${name} is not a trust bundle, technician credential, owner public key (PEM) or technician private key` };
  }

  /** Forget the held trust (pins, bundle, credential selection). Keys stay in the key store; library artifacts stay. */
  async forget(): Promise<void> {
    this.state = { kind: 'trust-state', pins: [], anchorKeys: [] };
    this.bundle = null;
    this.bundleProblem = '';
    this.credential = null;
    this.key = null;
    this.passphrase = undefined;
    await this.save();
  }

  /** Replace the held trust with the DEMO authorities (and add the demo library artifacts). */
  async loadDemo(demo: DemoTrust, opts: { passphrase?: string } = {}): Promise<TrustImport> {
    await this.forget();
    const steps: TrustImport[] = [
      await this.pinOwnerKey(publicKeyPem(demo.ownerPublicKey)),
      await this.importBundle(demo.bundle, 'DEMO trust bundle'),
      await this.importKey(demo.technicianKeyPem, { label: 'DEMO technician', passphrase: opts.passphrase }),
      await this.importCredential(demo.credential, 'DEMO technician credential'),
    ];
    const bad = steps.find((s) => !s.ok);
    if (bad) return bad;
    for (const a of demo.library) {
      const r = await importArtifact(this.db, a.name, a.bytes, { bundle: this.bundle!.value, now: this.now() });
      if (!r.ok) return { ok: false, code: r.code, reason: r.reason };
    }
    this.state = { ...this.state, demo: true };
    await this.save();
    return { ok: true, kind: 'bundle', message: 'DEMO trust loaded: demo owner key pinned, demo bundle, credential and technician key, demo firmware and configuration in the library' };
  }
}

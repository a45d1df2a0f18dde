/**
 * App-wide state (Svelte 5 runes): the local records database and the
 * technician's trust (TrustState, framework-free). Pages render `trust`
 * (a snapshot) and call the actions; device panels get the held bundle,
 * credential and signer from here.
 */
import type { FieldbenchDB } from '../core/store/db.ts';
import type { TrustImport, TrustSnapshot, TrustState } from '../core/ops/trust-state.ts';
import type { RecordContext } from '../core/ops/record.ts';
import { afterFirstPaint } from './first-paint.ts';
/**
 * The local database, the key store and the trust code are loaded after the
 * connect screen is up, not before it (issue 14: initial JavaScript budget).
 */
const loadDeps = async () => {
  const [trust, audit, artifacts, bundle] = await Promise.all([
    import('../core/ops/trust-state.ts'),
    import('../core/store/audit.ts'),
    import('../core/store/artifacts.ts'),
    import('../core/trust/bundle.ts'),
  ]);
  return { TrustState: trust.TrustState, recordOperation: audit.recordOperation, listArtifacts: artifacts.listArtifacts, decodeBundleUnverified: bundle.decodeBundleUnverified };
};
type Deps = Awaited<ReturnType<typeof loadDeps>>;
const openDefaultStore = async () => (await import('../core/store/db.ts')).openStore();
/** The demo kit, loaded when first asked for (not part of the initial bundle). */
const demoKit = async () => (await import('../device/demo.ts')).demoKit();

export interface ImportMessage {
  id: number;
  name: string;
  ok: boolean;
  text: string;
  warning?: string;
}

export class AppState {
  db = $state.raw<FieldbenchDB | null>(null);
  trust = $state.raw<TrustSnapshot | null>(null);
  storeError = $state('');
  messages = $state<ImportMessage[]>([]);
  /** What became of trust bundles added on the Library page (adopted as the held bundle, or refused and why). */
  libraryNotes = $state<ImportMessage[]>([]);
  busy = $state(false);
  /** Bumped after anything that writes records (pages reload on change). */
  revision = $state(0);
  /** Owner key id of this page session's demo kit (when built). */
  demoOwnerKid = $state('');
  private ts: TrustState | null = null;
  private deps: Deps | null = null;
  private nextId = 0;
  /** Bundle artifacts (sha256) already considered for adoption. */
  private knownBundles = new Set<string>();
  readonly ready: Promise<void>;

  /** `openDb`: the local records (default: the app's IndexedDB store; tests pass their own). */
  constructor(private readonly openDb: () => Promise<FieldbenchDB> = openDefaultStore) {
    // Opened once the first screen is painted: the connect screen does not wait for storage.
    this.ready = afterFirstPaint().then(() => this.open());
  }

  private async open(): Promise<void> {
    try {
      const [db, deps] = await Promise.all([this.openDb(), loadDeps()]);
      this.deps = deps;
      this.ts = new deps.TrustState(db);
      this.db = db;
      this.trust = await this.ts.load();
      // Bundles stored before this visit: a newer one that verifies under the held bundle is adopted.
      if (await this.considerLibraryBundles(true)) this.trust = this.ts.snapshot();
    } catch (e) {
      this.storeError = `The local records could not be opened: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  private push(name: string, r: TrustImport): void {
    this.messages = [{ id: this.nextId++, name, ok: r.ok, text: r.ok ? r.message : r.reason, warning: r.ok ? r.warning : undefined }, ...this.messages].slice(0, 30);
  }

  private async run(name: string, fn: (ts: TrustState) => Promise<TrustImport>, audited = false): Promise<TrustImport | null> {
    await this.ready;
    if (!this.ts) return null;
    this.busy = true;
    try {
      const r = await fn(this.ts).catch((e): TrustImport => ({ ok: false, code: 'failed', reason: e instanceof Error ? e.message : String(e) }));
      this.push(name, r);
      if (audited) await this.auditImport(name, r.ok, r.kind, r.ok ? undefined : r.reason);
      this.trust = this.ts.snapshot();
      // Bundles the Trust page itself stored are not library additions to adopt or refuse again.
      await this.markLibraryBundlesKnown();
      this.revision++;
      return r;
    } finally {
      this.busy = false;
    }
  }

  importFiles(files: Iterable<File>, passphrase?: string): Promise<void> {
    const list = [...files];
    return (async () => {
      // Owner key first, then bundle, then credential and key, whatever order they were dropped in.
      const rank = (n: string, b: Uint8Array) => {
        const t = new TextDecoder().decode(b.subarray(0, 64));
        if (t.includes('PUBLIC KEY')) return 0;
        if (t.includes('PRIVATE KEY')) return 3;
        return /bundle/i.test(n) ? 1 : 2;
      };
      const read: { name: string; bytes: Uint8Array }[] = [];
      for (const f of list) {
        if (f.size > 1024 * 1024) {
          this.push(f.name, { ok: false, code: 'too-large', reason: `${f.name} is too large for a trust file` });
          continue;
        }
        read.push({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) });
      }
      read.sort((a, b) => rank(a.name, a.bytes) - rank(b.name, b.bytes));
      for (const f of read) await this.run(f.name, (ts) => ts.importFile(f.name, f.bytes, { passphrase: passphrase || undefined }), true);
    })();
  }

  async unlock(passphrase: string): Promise<void> {
    await this.run('passphrase', (ts) => ts.unlock(passphrase));
  }

  async forget(): Promise<void> {
    await this.run('trust', async (ts) => {
      await ts.forget();
      return { ok: true, kind: 'bundle', message: 'held trust forgotten (keys stay in the key store, files stay in the library)' };
    });
  }

  async loadDemo(passphrase?: string): Promise<void> {
    await this.run('DEMO trust', async (ts) => {
      const kit = await demoKit();
      this.demoOwnerKid = kit.ownerKid;
      return ts.loadDemo(kit.trust, { passphrase: passphrase || 'fieldbench-demo-only' });
    }, true);
  }

  /** Show what a replayed (older) bundle looks like: the demo owner's v1 bundle. */
  async importOlderDemoBundle(): Promise<void> {
    await this.run('DEMO bundle v1 (older)', async (ts) => ts.importBundle((await demoKit()).olderBundle, 'DEMO trust bundle v1'), true);
  }

  /** The library changed (LibraryPage): adopt a newer bundle that verifies under the held one; refuse others with the reason. */
  async libraryChanged(): Promise<void> {
    await this.ready;
    if (!this.ts) return;
    const changed = await this.considerLibraryBundles(false);
    if (changed) this.trust = this.ts.snapshot();
    this.revision++;
  }

  private async markLibraryBundlesKnown(): Promise<void> {
    if (!this.db || !this.deps) return;
    for (const r of await this.deps.listArtifacts(this.db, 'bundle')) this.knownBundles.add(r.sha256);
  }

  /**
   * Bundle artifacts not seen before, oldest version first, go through the
   * Trust page's import (TrustState.importBundle: verified under the held
   * bundle's owner anchors, or the pinned owner key for the first one; older,
   * same-version or foreign bundles are refused with the reason). At start-up
   * (`quiet`) only a newer verifying bundle is adopted (TrustState.adoptNewer),
   * and nothing is refused aloud.
   */
  private async considerLibraryBundles(quiet: boolean): Promise<boolean> {
    const ts = this.ts;
    const db = this.db;
    const deps = this.deps;
    if (!ts || !db || !deps) return false;
    const { listArtifacts, decodeBundleUnverified } = deps;
    const fresh: { sha256: string; name: string; bytes: Uint8Array; version: number }[] = [];
    for (const r of await listArtifacts(db, 'bundle')) {
      if (this.knownBundles.has(r.sha256)) continue;
      this.knownBundles.add(r.sha256);
      let version = -1;
      try {
        version = decodeBundleUnverified(r.bytes).version;
      } catch {
        /* unreadable: importBundle says why */
      }
      fresh.push({ sha256: r.sha256, name: r.name ?? `trust bundle ${r.sha256.slice(0, 12)}`, bytes: r.bytes, version });
    }
    fresh.sort((a, b) => a.version - b.version);
    let changed = false;
    for (const f of fresh) {
      const snap = ts.snapshot();
      if (snap.bundle?.sha256 === f.sha256) continue;
      let r: TrustImport | null;
      if (quiet || (!snap.bundle && !snap.pins.length)) {
        r = snap.bundle ? await ts.adoptNewer(f.bytes, f.name).catch(() => null) : null;
      } else {
        r = await ts.importBundle(f.bytes, f.name).catch((e): TrustImport => ({ ok: false, code: 'failed', reason: e instanceof Error ? e.message : String(e) }));
      }
      if (!r) continue;
      if (r.ok) {
        changed = true;
        r = { ...r, message: `adopted as the held trust bundle: ${r.message}` };
      } else {
        r = { ...r, reason: `not adopted as the held trust bundle. ${r.reason}` };
      }
      this.push(f.name, r);
      this.libraryNotes = [this.messages[0]!, ...this.libraryNotes].slice(0, 20);
    }
    return changed;
  }

  /** Demo trust held from an earlier visit: its keys are not those of this page session's virtual device. */
  get staleDemo(): boolean {
    return !!this.trust?.demo && !this.isSessionDemo();
  }

  /**
   * Every import is an operation of the audit trail (Trust page and Library page alike), refusals
   * included. Without a loaded key nothing can be signed, so nothing is recorded.
   */
  async auditImport(file: string, ok: boolean, kind?: string, reason?: string): Promise<void> {
    const rec = this.recorder();
    if (!rec || !this.deps) return;
    try {
      await this.deps.recordOperation(rec.db, { technician: rec.signer, op: 'import', outcome: ok ? 'ok' : 'rejected', details: { file, kind, reason } });
      this.revision++;
    } catch {
      /* the import itself stands; the audit page shows what was recorded */
    }
  }

  /** Store + technician signer for recording device operations (null: not loaded). */
  recorder(): RecordContext | null {
    const signer = this.ts?.signer();
    if (!this.db || !signer) return null;
    return { db: this.db, signer };
  }

  signFn(): ((m: Uint8Array) => Promise<Uint8Array>) | null {
    return this.ts?.sign() ?? null;
  }

  bundleBytes(): Uint8Array | null {
    return this.ts?.heldBundleBytes() ?? null;
  }

  credentialBytes(): Uint8Array | null {
    return this.ts?.credentialBytes() ?? null;
  }

  firmwareKeys(): Uint8Array[] {
    return this.ts?.firmwareKeys() ?? [];
  }

  /** Is the held trust this session's demo trust? */
  isSessionDemo(): boolean {
    const t = this.trust;
    return !!t?.demo && !!this.demoOwnerKid && t.pins.some((p) => p.kid === this.demoOwnerKid);
  }
}

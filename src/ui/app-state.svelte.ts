/**
 * App-wide state (Svelte 5 runes): the local records database and the
 * technician's trust (TrustState, framework-free). Pages render `trust`
 * (a snapshot) and call the actions; device panels get the held bundle,
 * credential and signer from here.
 */
import { openStore, type FieldbenchDB } from '../core/store/db.ts';
import { TrustState, type TrustImport, type TrustSnapshot } from '../core/ops/trust-state.ts';
import type { RecordContext } from '../core/ops/record.ts';
import { demoKit } from './demo.ts';

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
  busy = $state(false);
  /** Bumped after anything that writes records (pages reload on change). */
  revision = $state(0);
  /** Owner key id of this page session's demo kit (when built). */
  demoOwnerKid = $state('');
  private ts: TrustState | null = null;
  private nextId = 0;
  readonly ready: Promise<void>;

  constructor() {
    this.ready = this.open();
  }

  private async open(): Promise<void> {
    try {
      const db = await openStore();
      this.ts = new TrustState(db);
      this.db = db;
      this.trust = await this.ts.load();
    } catch (e) {
      this.storeError = `The local records could not be opened: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  private push(name: string, r: TrustImport): void {
    this.messages = [{ id: this.nextId++, name, ok: r.ok, text: r.ok ? r.message : r.reason, warning: r.ok ? r.warning : undefined }, ...this.messages].slice(0, 30);
  }

  private async run(name: string, fn: (ts: TrustState) => Promise<TrustImport>): Promise<TrustImport | null> {
    await this.ready;
    if (!this.ts) return null;
    this.busy = true;
    try {
      const r = await fn(this.ts).catch((e): TrustImport => ({ ok: false, code: 'failed', reason: e instanceof Error ? e.message : String(e) }));
      this.push(name, r);
      this.trust = this.ts.snapshot();
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
      for (const f of read) await this.run(f.name, (ts) => ts.importFile(f.name, f.bytes, { passphrase: passphrase || undefined }));
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
    });
  }

  /** Show what a replayed (older) bundle looks like: the demo owner's v1 bundle. */
  async importOlderDemoBundle(): Promise<void> {
    await this.run('DEMO bundle v1 (older)', async (ts) => ts.importBundle((await demoKit()).olderBundle, 'DEMO trust bundle v1'));
  }

  /** The library changed (LibraryPage): adopt a newer bundle that verifies under the held one. */
  async libraryChanged(): Promise<void> {
    this.revision++;
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

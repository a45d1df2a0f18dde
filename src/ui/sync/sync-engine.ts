/**
 * The app's one sync engine (src/core/sync/engine.ts), built from the app's
 * state once the local records are open: the audit trail to push, the
 * technician's credential and key, the library's other credentials, the saved
 * sync state, and the browser's online/offline events (sync when online).
 */
import { exportAudit } from '../../core/store/audit.ts';
import { listArtifacts } from '../../core/store/artifacts.ts';
import { importArtifact } from '../../core/ops/library.ts';
import { SyncEngine, onlineEvents } from '../../core/sync/engine.ts';
import { dexieSyncStore } from '../../core/sync/store.ts';
import type { AppState } from '../app-state.svelte.ts';

let engine: SyncEngine | null = null;

export function syncEngine(app: AppState): SyncEngine | null {
  if (engine) return engine;
  const db = app.db;
  if (!db) return null;
  engine = new SyncEngine({
    store: dexieSyncStore(db),
    trail: () => exportAudit(db),
    identity: () => {
      const credential = app.credentialBytes();
      const signer = app.recorder()?.signer;
      return credential && signer ? { credential, signer } : null;
    },
    otherCredentials: async () => (await listArtifacts(db, 'credential')).map((a) => a.bytes),
    online: () => (typeof navigator === 'undefined' ? true : navigator.onLine),
    bundle: () => app.trust?.bundle?.value ?? null,
    importArtifact: async (name, bytes) => {
      const r = await importArtifact(db, name, bytes, { bundle: app.trust?.bundle?.value ?? null, ownerKeys: app.trust?.pins.map((p) => p.publicKey) ?? [] });
      await app.auditImport(name, r.ok, r.ok ? r.kind : undefined, r.ok ? undefined : r.reason);
      if (r.ok) app.revision++;
      return { ok: r.ok, text: r.ok ? r.summary : r.reason };
    },
  });
  onlineEvents(engine);
  // A configured hub is synced at start when online (never waited for).
  void engine.ready().then(() => engine?.connectivityChanged());
  return engine;
}

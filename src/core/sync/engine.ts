/**
 * The app's sync with a fleet hub, as a small state machine the Sync page
 * renders (src/ui/sync/): policy and protocol live here, the page only shows
 * states and calls these methods.
 *
 * Rules:
 *  - sync is optional and never blocks a job: nothing here holds a lock a
 *    device operation waits for; a sync reads an export of the audit trail
 *    (a snapshot) and pushes it; entries recorded meanwhile wait for the next
 *    sync;
 *  - offline is a normal state (phase 'offline'), not an error: no request is
 *    made while the platform says it is offline, and an unreachable hub is
 *    reported as offline;
 *  - one sync at a time: a second syncNow() while one runs returns the same run;
 *  - 'sync when online': the platform's online event starts a sync when a hub
 *    is configured (wire it with onlineEvents());
 *  - what the hub refused is kept with its code (gap, fork, revoked, ...) and
 *    shown until a later sync succeeds; nothing is lost locally (the local
 *    trail is never changed by a sync);
 *  - the hub address, last sync, last known hub head, problems and campaigns
 *    are saved (SyncStore), so the page shows them offline after a restart.
 */
import type { AuditExport } from '../store/audit.ts';
import type { RequestSigner } from './auth.ts';
import { HubClient, HubRequestError, type CampaignStatusReply } from './client.ts';
import { describeTarget, type CampaignTarget } from './campaign.ts';
import type { TrustBundle } from '../trust/bundle.ts';

export type SyncPhase = 'unconfigured' | 'no-credential' | 'offline' | 'idle' | 'syncing' | 'error';

export interface SyncProblem {
  code: string;
  message: string;
  time: number;
}

export interface CampaignView {
  id: string;
  name: string;
  target: string;
  image?: string;
  configuration?: string;
  notAfter: number;
  counts: CampaignStatusReply['counts'];
  devices: { serial: string | null; anchor: string; model: string | null; firmware: string | null; state: 'done' | 'failed' | 'pending' }[];
}

/** What is saved between visits. */
export interface SyncSaved {
  hub: string;
  lastSync: number | null;
  /** Where the hub stood on this app's trail after the last successful push. */
  hubHead: { seq: number; hash: string } | null;
  problems: SyncProblem[];
  campaigns: CampaignView[];
}

export interface SyncSnapshot extends SyncSaved {
  phase: SyncPhase;
  online: boolean;
  /** Local entries the hub does not hold yet (as far as this app knows). */
  queued: number;
  /** What the current or last run did, in one sentence. */
  message: string;
  progress: { done: number; total: number } | null;
}

export interface SyncStore {
  load(): Promise<Partial<SyncSaved> | undefined>;
  save(s: SyncSaved): Promise<void>;
}

export interface SyncDeps {
  store: SyncStore;
  /** A snapshot of the local audit trail. */
  trail(): Promise<Pick<AuditExport, 'entries'>>;
  /** The technician's credential and signer, or null when not loaded. */
  identity(): { credential: Uint8Array; signer: RequestSigner } | null;
  /** Credentials of other technicians who signed local entries (from the library). */
  otherCredentials?(): Promise<Uint8Array[]>;
  online(): boolean;
  /** The held trust bundle (campaigns are verified against it before their files are taken). */
  bundle?(): TrustBundle | null;
  /** Put one pulled file into the library (the library's own import: detection and verification). */
  importArtifact?(name: string, bytes: Uint8Array): Promise<{ ok: boolean; text: string }>;
  now?(): number;
  fetch?: typeof fetch;
  /** Entries per push request. */
  batch?: number;
}

const OFFLINE_CODES = new Set(['offline']);
const EMPTY: SyncSaved = { hub: '', lastSync: null, hubHead: null, problems: [], campaigns: [] };
const MAX_PROBLEMS = 20;
const MAX_DEVICES_SHOWN = 200;

export function checkHubAddress(url: string): { ok: true; url: string } | { ok: false; reason: string } {
  const t = url.trim();
  if (!t) return { ok: true, url: '' };
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    return { ok: false, reason: `${JSON.stringify(t)} is not an address: write it as https://hub.example.com` };
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return { ok: false, reason: 'the hub address starts with https://' };
  if (u.protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(u.hostname) && !(typeof location !== 'undefined' && u.origin === location.origin)) {
    return { ok: false, reason: 'use https:// for a hub on another machine (http:// only for this machine)' };
  }
  if (u.search || u.hash || u.username) return { ok: false, reason: 'the hub address has no query, fragment or user name' };
  return { ok: true, url: (u.origin + u.pathname).replace(/\/+$/, '') };
}

export class SyncEngine {
  private saved: SyncSaved = { ...EMPTY };
  private phase: SyncPhase = 'unconfigured';
  private message = '';
  private progress: SyncSnapshot['progress'] = null;
  private localHead = 0;
  private running: Promise<SyncSnapshot> | null = null;
  private listeners = new Set<(s: SyncSnapshot) => void>();
  private loaded: Promise<void>;

  constructor(private readonly d: SyncDeps) {
    this.loaded = this.load();
  }

  private now(): number {
    return this.d.now?.() ?? Date.now();
  }

  private async load(): Promise<void> {
    try {
      this.saved = { ...EMPTY, ...((await this.d.store.load()) ?? {}) };
    } catch {
      this.saved = { ...EMPTY };
    }
    await this.refreshQueue();
    this.phase = this.restingPhase();
    this.emit();
  }

  /** Resolves once the saved state is loaded. */
  ready(): Promise<void> {
    return this.loaded;
  }

  private restingPhase(): SyncPhase {
    if (!this.saved.hub) return 'unconfigured';
    if (!this.d.identity()) return 'no-credential';
    if (!this.d.online()) return 'offline';
    return this.phase === 'error' ? 'error' : 'idle';
  }

  private async refreshQueue(): Promise<void> {
    try {
      const t = await this.d.trail();
      this.localHead = t.entries.at(-1)?.seq ?? 0;
    } catch {
      /* the count stays as it was */
    }
  }

  snapshot(): SyncSnapshot {
    const queued = Math.max(0, this.localHead - (this.saved.hubHead?.seq ?? 0));
    return { ...this.saved, phase: this.phase, online: this.d.online(), queued, message: this.message, progress: this.progress };
  }

  subscribe(fn: (s: SyncSnapshot) => void): () => void {
    this.listeners.add(fn);
    fn(this.snapshot());
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    const s = this.snapshot();
    for (const l of this.listeners) l(s);
  }

  private async persist(): Promise<void> {
    try {
      await this.d.store.save(this.saved);
    } catch (e) {
      this.message = `${this.message} (the sync state was not saved: ${(e as Error).message})`.trim();
    }
  }

  /** Set (or clear, with '') the hub address. A new address forgets what was known about the old hub. */
  async setHub(url: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    await this.loaded;
    const c = checkHubAddress(url);
    if (!c.ok) return c;
    if (c.url !== this.saved.hub) this.saved = { ...EMPTY, hub: c.url };
    this.phase = 'idle';
    this.message = c.url ? `hub set to ${c.url}` : 'no hub: this app works on its own';
    await this.persist();
    await this.refreshQueue();
    this.phase = this.restingPhase();
    this.emit();
    return { ok: true };
  }

  /** The platform came online or went offline. Online with a hub: sync. */
  async connectivityChanged(): Promise<void> {
    await this.loaded;
    if (this.running) return;
    await this.refreshQueue();
    this.phase = this.restingPhase();
    this.emit();
    if (this.phase === 'idle' || this.phase === 'error') await this.syncNow();
  }

  /** A local entry was recorded: the queue count changes. */
  async recorded(): Promise<void> {
    await this.refreshQueue();
    this.emit();
  }

  /** Push what the hub lacks, then read the campaigns. Never throws; one run at a time. */
  syncNow(): Promise<SyncSnapshot> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private problem(code: string, message: string): void {
    this.saved.problems = [{ code, message, time: this.now() }, ...this.saved.problems.filter((p) => p.code !== code)].slice(0, MAX_PROBLEMS);
  }

  private async run(): Promise<SyncSnapshot> {
    await this.loaded;
    await this.refreshQueue();
    this.phase = this.restingPhase();
    if (this.phase === 'unconfigured' || this.phase === 'no-credential' || this.phase === 'offline') {
      this.message = this.phase === 'offline' ? 'offline: entries stay queued and sync when the connection is back' : this.phase === 'unconfigured' ? 'no hub is set' : 'load your credential and key on the Trust & keys page to sync';
      this.emit();
      return this.snapshot();
    }
    const id = this.d.identity()!;
    this.phase = 'syncing';
    this.message = 'syncing…';
    this.progress = null;
    this.emit();
    let client: HubClient;
    try {
      client = new HubClient({ url: this.saved.hub, credential: id.credential, signer: id.signer, fetch: this.d.fetch, batch: this.d.batch });
    } catch (e) {
      return this.finish('error', (e as Error).message);
    }
    try {
      const trail = await this.d.trail();
      this.localHead = trail.entries.at(-1)?.seq ?? 0;
      const others = (await this.d.otherCredentials?.().catch(() => [])) ?? [];
      const r = await client.push(trail, others, (done, total) => {
        this.progress = { done, total };
        this.saved.hubHead = { seq: done, hash: trail.entries[done - 1]?.hash ?? '' };
        this.emit();
      });
      if (r.head) this.saved.hubHead = r.head;
      // what the hub reported before and now holds whole is cleared
      this.saved.problems = this.saved.problems.filter((p) => p.code === 'campaigns');
      const pushed = r.accepted ? `${r.accepted} entr${r.accepted === 1 ? 'y' : 'ies'} pushed` : 'the hub already held every entry';
      let campaignsNote = '';
      try {
        this.saved.campaigns = await this.readCampaigns(client);
        this.saved.problems = this.saved.problems.filter((p) => p.code !== 'campaigns');
      } catch (e) {
        if (e instanceof HubRequestError && OFFLINE_CODES.has(e.code)) throw e;
        campaignsNote = `; campaigns not read (${e instanceof HubRequestError ? e.code : 'error'})`;
        this.problem('campaigns', `the campaigns could not be read: ${(e as Error).message}`);
      }
      this.saved.lastSync = this.now();
      return this.finish('idle', `${pushed}${campaignsNote}`);
    } catch (e) {
      if (e instanceof HubRequestError) {
        if (OFFLINE_CODES.has(e.code)) return this.finish('offline', `the hub is unreachable: entries stay queued (${e.message})`);
        this.problem(e.code, e.message);
        return this.finish('error', `the hub refused the sync (${e.code}): ${e.message}`);
      }
      this.problem('error', (e as Error).message);
      return this.finish('error', `the sync failed: ${(e as Error).message}`);
    }
  }

  private async finish(phase: SyncPhase, message: string): Promise<SyncSnapshot> {
    this.phase = phase;
    this.message = message;
    this.progress = null;
    await this.persist();
    this.emit();
    return this.snapshot();
  }

  /**
   * Take the image and configuration a campaign names into the library: the
   * campaign is verified against the held bundle first (refused: nothing is
   * taken), each file is checked against the signed digest, then imported by
   * the library (which verifies it again: firmware keys, owner keys).
   */
  async pullArtifacts(id: string): Promise<{ ok: boolean; results: { name: string; ok: boolean; text: string }[] }> {
    await this.loaded;
    const ident = this.d.identity();
    const bundle = this.d.bundle?.() ?? null;
    if (!this.saved.hub) return { ok: false, results: [{ name: id, ok: false, text: 'no hub is set' }] };
    if (!ident) return { ok: false, results: [{ name: id, ok: false, text: 'load your credential and key on the Trust & keys page first' }] };
    if (!bundle) return { ok: false, results: [{ name: id, ok: false, text: 'no trust bundle is held: the campaign cannot be checked' }] };
    if (!this.d.importArtifact) return { ok: false, results: [{ name: id, ok: false, text: 'this app has no library' }] };
    if (!this.d.online()) return { ok: false, results: [{ name: id, ok: false, text: 'offline: the files are taken when the connection is back' }] };
    try {
      const client = new HubClient({ url: this.saved.hub, credential: ident.credential, signer: ident.signer, fetch: this.d.fetch });
      const p = await client.pullCampaigns({ bundle, now: this.now(), only: id });
      if (p.refused.length) return { ok: false, results: p.refused.map((r) => ({ name: r.name, ok: false, text: `the campaign is refused (${r.code}): ${r.reason}` })) };
      if (!p.campaigns.length) return { ok: false, results: [{ name: id, ok: false, text: 'the hub no longer has this campaign' }] };
      const results: { name: string; ok: boolean; text: string }[] = [];
      for (const a of p.campaigns[0].artifacts) {
        const ref = a.part === 'image' ? p.campaigns[0].campaign.image : p.campaigns[0].campaign.configuration;
        const name = ref?.name ?? `${a.part}-${a.sha256.slice(0, 16)}${a.part === 'image' ? '.bin' : '.cbor'}`;
        results.push({ name, ...(await this.d.importArtifact(name, a.bytes)) });
      }
      return { ok: results.every((r) => r.ok), results };
    } catch (e) {
      const code = e instanceof HubRequestError ? e.code : 'error';
      return { ok: false, results: [{ name: id, ok: false, text: `the files could not be taken (${code}): ${(e as Error).message}` }] };
    }
  }

  private async readCampaigns(client: HubClient): Promise<CampaignView[]> {
    const list = await client.campaigns();
    const out: CampaignView[] = [];
    for (const c of list) {
      const s = await client.campaignStatus(c.id);
      out.push({
        id: c.id,
        name: c.name,
        target: describeTarget(c.target as CampaignTarget),
        image: c.image ? `${c.image.version ?? 'image'} (sha256 ${c.image.sha256.slice(0, 16)}…)` : undefined,
        configuration: c.configuration ? `${c.configuration.name ?? 'configuration'} (sha256 ${c.configuration.sha256.slice(0, 16)}…)` : undefined,
        notAfter: c.notAfter,
        counts: s.counts,
        devices: s.devices.slice(0, MAX_DEVICES_SHOWN).map((d) => ({ serial: d.serial, anchor: d.anchor, model: d.model, firmware: d.firmware, state: d.state })),
      });
    }
    return out;
  }
}

/** Wire the platform's online/offline events to an engine; returns the unsubscribe. */
export function onlineEvents(engine: SyncEngine, target: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> = globalThis as unknown as EventTarget): () => void {
  const on = () => void engine.connectivityChanged();
  target.addEventListener('online', on);
  target.addEventListener('offline', on);
  return () => {
    target.removeEventListener('online', on);
    target.removeEventListener('offline', on);
  };
}

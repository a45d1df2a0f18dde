/**
 * Client of a fieldbench fleet hub (browser and Node: fetch + WebCrypto).
 * Every request is signed (auth.ts). Pushes are resumable: the client asks
 * the hub where the chain stands and sends only what follows, in batches;
 * a retry after a lost reply is harmless (the hub counts duplicates).
 */
import type { AuditExport, AuditExportEntry } from '../store/audit.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { fromBase64, toBase64 as b64, toHex } from '../base/bytes.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { signRequest, type RequestSigner } from './auth.ts';
import { campaignArtifacts, verifyCampaign, type CampaignJson, type CampaignPart } from './campaign.ts';

export class HubRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HubRequestError';
  }
}

export interface HubClientOptions {
  /** e.g. https://hub.example.com, or https://app.example.com/hub behind a proxy that strips /hub */
  url: string;
  /** The caller's owner-signed technician credential (bytes). */
  credential: Uint8Array;
  signer: RequestSigner;
  fetch?: typeof fetch;
  /** Entries per push request. */
  batch?: number;
  /** Push requests in flight at once (default 2: the hub verifies the next batch while it stores one; 1 = one at a time). */
  pipeline?: number;
}

export interface PushSummary {
  source: string;
  accepted: number;
  duplicates: number;
  head: { seq: number; hash: string } | null;
  requests: number;
}


export class HubClient {
  private readonly base: string;
  private readonly f: typeof fetch;
  constructor(private readonly o: HubClientOptions) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new HubRequestError('bad-url', `the hub address ${JSON.stringify(o.url)} is not a URL (e.g. https://hub.example.com)`, 0);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new HubRequestError('bad-url', 'the hub address must be https:// (http:// only on this machine)', 0);
    // a hub may sit under a path of a reverse proxy that strips it (e.g. the app's own origin + /hub):
    // requests go to base + /v1/..., and are signed for /v1/... (what the hub sees)
    this.base = (u.origin + u.pathname).replace(/\/+$/, '');
    this.f = o.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /**
   * One signed request. `order`: a pipelined push's place in line: the
   * request is signed at once but sent only after `order.after` (the one
   * before it was sent), and `order.sent` is called once this one is.
   */
  async request<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, order?: { after: Promise<void>; sent: () => void }): Promise<T> {
    let res: Response;
    try {
      const raw = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
      const headers: Record<string, string> = await signRequest(this.o.signer, this.o.credential, method, path, raw);
      if (body !== undefined) headers['content-type'] = 'application/json';
      await order?.after;
      const sending = this.f(this.base + path, { method, headers, body: body === undefined ? undefined : (raw as BodyInit) });
      order?.sent();
      res = await sending;
    } catch (e) {
      order?.sent();
      throw new HubRequestError('offline', `cannot reach the hub at ${this.base} (${(e as Error).message}); records stay queued and sync later`, 0);
    }
    if (res.ok && res.headers.get('content-type') === 'application/octet-stream') return new Uint8Array(await res.arrayBuffer()) as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      // a reverse proxy in front of a hub that is down answers with its own page
      if (res.status === 502 || res.status === 503 || res.status === 504) {
        throw new HubRequestError('offline', `the proxy in front of the hub at ${this.base} cannot reach it (${res.status}); records stay queued and sync later`, 0);
      }
      throw new HubRequestError('bad-reply', `the hub at ${this.base} answered ${res.status} with something other than JSON: is the address right?`, res.status);
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } & Record<string, unknown> })?.error;
      throw new HubRequestError(err?.code ?? 'http', err?.message ?? `the hub answered ${res.status}`, res.status, err ?? {});
    }
    return json as T;
  }

  status() {
    return this.request<Record<string, unknown>>('GET', '/v1/status');
  }

  /** Where the hub stands on a chain (by the hash of its first entry). */
  async head(source: string): Promise<{ seq: number; hash: string } | null> {
    return (await this.request<{ head: { seq: number; hash: string } | null }>('GET', `/v1/sources/${source}`)).head;
  }

  /**
   * Push a trail (audit export or control log): only the entries after the
   * hub's head, in batches. `credentials`: the owner-signed credentials of
   * every key that signed an entry (the caller's own is added).
   */
  async push(trail: Pick<AuditExport, 'entries'>, credentials: Uint8Array[] = [], onProgress?: (done: number, total: number) => void): Promise<PushSummary> {
    const es: AuditExportEntry[] = trail.entries;
    if (!es.length) return { source: '', accepted: 0, duplicates: 0, head: null, requests: 0 };
    if (es[0].seq !== 1) throw new HubRequestError('bad-request', 'push the whole trail (from seq 1): the hub finds where to resume', 0);
    const source = es[0].hash;
    const creds = [...new Set([this.o.credential, ...credentials].map(b64))];
    const head = await this.head(source);
    let from = head ? head.seq : 0; // index of the first entry to send
    if (head && (from > es.length || es[from - 1].hash !== head.hash)) {
      throw new HubRequestError('fork', `the hub holds seq ${head.seq} of this trail with other content: this trail was rewritten`, 409);
    }
    const size = this.o.batch ?? 2000;
    const depth = Math.max(1, this.o.pipeline ?? 2);
    const sum: PushSummary = { source, accepted: 0, duplicates: 0, head, requests: 1 };
    type Push = { accepted: number; duplicates: number; head: { seq: number; hash: string } };
    // Batches in flight, oldest first. Each after the first is sent before the one before
    // it is answered, naming where it sits in the chain (?after, ?last): the hub verifies it
    // meanwhile and stores it after its predecessor (src/hub/chain-order.ts).
    const inFlight: { end: number; pipelined: boolean; reply: Promise<Push> }[] = [];
    let next = from; // index of the first entry not yet sent
    let resyncs = 0;
    let lastSent = Promise.resolve();
    while (from < es.length) {
      while (inFlight.length < depth && next < es.length) {
        const end = Math.min(next + size, es.length);
        const part = es.slice(next, end);
        const path = `/v1/records?after=${part[0].prev}&last=${part[part.length - 1].hash}`;
        // signed meanwhile, sent in order: the hub takes each one's place as it arrives
        let sent!: () => void;
        const gone = new Promise<void>((r) => (sent = r));
        const reply = this.request<Push>('POST', path, { format: 'fieldbench-audit', version: 1, entries: part, credentials: creds, source }, { after: lastSent, sent });
        lastSent = gone;
        reply.catch(() => undefined); // awaited in order below
        inFlight.push({ end, pipelined: inFlight.length > 0, reply });
        sum.requests++;
        next = end;
      }
      const w = inFlight.shift()!;
      let r: Push;
      try {
        r = await w.reply;
      } catch (e) {
        // the later batches depend on this one: let them settle, then resume from the hub's head
        await Promise.allSettled(inFlight.splice(0).map((x) => x.reply));
        const code = (e as HubRequestError)?.code;
        // A pipelined batch can reach the hub before the one it follows (another connection), or
        // be sent to a hub that does not order pipelined pushes: it is refused as a gap and sent again.
        if (!w.pipelined || (code !== 'gap' && code !== 'predecessor-failed') || ++resyncs > 3) throw e;
        const at = await this.head(source);
        sum.requests++;
        from = next = at ? at.seq : 0;
        continue;
      }
      sum.accepted += r.accepted;
      sum.duplicates += r.duplicates;
      sum.head = r.head;
      from = Math.max(from, r.head.seq);
      if (r.head.seq !== es[w.end - 1].seq) {
        // the hub's head is not where this batch ended (another pusher of the same trail): count
        // what the batches still in flight did, then resume from the furthest head
        for (const x of await Promise.allSettled(inFlight.splice(0).map((y) => y.reply))) {
          if (x.status !== 'fulfilled') continue;
          sum.accepted += x.value.accepted;
          sum.duplicates += x.value.duplicates;
          if (x.value.head.seq > sum.head.seq) sum.head = x.value.head;
        }
        from = next = sum.head.seq;
      }
      onProgress?.(from, es.length);
    }
    return sum;
  }

  duplicates() {
    return this.request<{ collisions: unknown[] }>('GET', '/v1/duplicates');
  }

  lookup(kind: string, value: string) {
    return this.request<Record<string, unknown>>('GET', `/v1/devices?kind=${encodeURIComponent(kind)}&value=${encodeURIComponent(value)}`);
  }

  drift() {
    return this.request<{ drift: unknown[] }>('GET', '/v1/drift');
  }

  sources() {
    return this.request<{ sources: unknown[] }>('GET', '/v1/sources');
  }

  block(req: { station: string; request: string; serial?: number; devEui?: number; mac?: number; units?: number }) {
    return this.request<Record<string, unknown>>('POST', '/v1/blocks', req);
  }

  putBundle(bundle: Uint8Array) {
    return this.request<{ version: number }>('PUT', '/v1/bundle', { bundle: b64(bundle) });
  }

  async bundle(): Promise<{ version: number; bytes: Uint8Array }> {
    const r = await this.request<{ version: number; bundle: string }>('GET', '/v1/bundle');
    return { version: r.version, bytes: unb64(r.bundle) };
  }

  /** Publish an owner-signed campaign with the artifacts it names that the hub does not hold yet ('fleet'). */
  publishCampaign(campaign: Uint8Array, artifacts: Uint8Array[] = []) {
    return this.request<{ id: string; name: string; published: boolean; artifacts: number }>('POST', '/v1/campaigns', { campaign: b64(campaign), artifacts: artifacts.map(b64) });
  }

  async campaigns(): Promise<(CampaignJson & { published: string; bytes: Uint8Array })[]> {
    const r = await this.request<{ campaigns: (CampaignJson & { published: string; bytes: string })[] }>('GET', '/v1/campaigns');
    return r.campaigns.map((c) => ({ ...c, bytes: unb64(c.bytes) }));
  }

  campaignStatus(id: string) {
    return this.request<CampaignStatusReply>('GET', `/v1/campaigns/${encodeURIComponent(id)}`);
  }

  /** An artifact by its SHA-256 (hex); the bytes are checked against that digest. */
  async artifact(sha: string): Promise<Uint8Array> {
    const b = await this.request<Uint8Array>('GET', `/v1/artifacts/${encodeURIComponent(sha)}`);
    if (!(b instanceof Uint8Array) || toHex(sha256(b)) !== sha) throw new HubRequestError('modified', `the hub served an artifact that is not ${sha.slice(0, 16)}…: refused`, 0);
    return b;
  }

  setTags(kind: string, value: string, tags: string[]) {
    return this.request<{ anchors: string[]; tags: string[] }>('PUT', '/v1/tags', { kind, value, tags });
  }

  /**
   * Pull the campaigns and the artifacts they name. With `bundle`, each campaign
   * is verified against it (a campaign that does not verify is returned in
   * `refused` with its code, never in `campaigns`); artifacts are always checked
   * against the signed digests. `have(sha)` skips artifacts already held.
   */
  async pullCampaigns(opts: { bundle?: TrustBundle; now?: number; have?: (sha: string) => boolean | Promise<boolean>; only?: string } = {}): Promise<PulledCampaigns> {
    const out: PulledCampaigns = { campaigns: [], refused: [] };
    for (const c of await this.campaigns()) {
      if (opts.only !== undefined && c.id !== opts.only) continue;
      if (opts.bundle) {
        const v = await verifyCampaign(c.bytes, { bundle: opts.bundle, now: opts.now, anyTime: true });
        if (!v.ok || v.value.id !== c.id) {
          out.refused.push({ id: c.id, name: c.name, code: v.ok ? 'modified' : v.code, reason: v.ok ? 'the hub\'s summary does not match the signed campaign' : v.reason });
          continue;
        }
      }
      const artifacts: PulledCampaigns['campaigns'][number]['artifacts'] = [];
      for (const a of campaignArtifacts(c)) {
        if (opts.have && (await opts.have(a.sha256))) continue;
        artifacts.push({ ...a, bytes: await this.artifact(a.sha256) });
      }
      out.campaigns.push({ campaign: c, bytes: c.bytes, artifacts });
    }
    return out;
  }
}

export interface PulledCampaigns {
  campaigns: { campaign: CampaignJson; bytes: Uint8Array; artifacts: { part: CampaignPart; sha256: string; bytes: Uint8Array }[] }[];
  refused: { id: string; name: string; code: string; reason: string }[];
}

export interface CampaignStatusReply {
  campaign: CampaignJson;
  counts: { targeted: number; done: number; failed: number; pending: number };
  devices: {
    anchor: string;
    serial: string | null;
    model: string | null;
    firmware: string | null;
    tags: string[];
    state: 'done' | 'failed' | 'pending';
    parts: Partial<Record<CampaignPart, { state: 'done' | 'failed'; outcome: string; time: number; reporter: string }>>;
  }[];
  truncated: boolean;
}

function unb64(s: string): Uint8Array {
  const b = fromBase64(s);
  if (!b) throw new HubRequestError('bad-reply', 'the hub sent bytes that are not base64', 0);
  return b;
}

/**
 * Campaigns on the hub (docs/HUB.md, "Campaigns"): the owner's signed
 * campaign (src/core/sync/campaign.ts) is verified against the held trust
 * bundle (an owner key of it, not revoked, inside its window) and stored with
 * the artifacts it names (checked against the signed digests). Results come
 * from the records pushed: an update/configure entry for a targeted device is
 * matched at ingest (recordCampaignResults, inside the push's transaction,
 * with the device's state as it was when the entry was recorded), so status
 * is a read: targeted devices (by the registry's model, firmware version,
 * serial and tags) and the newest result of each part.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { fromHex, toHex } from '../core/base/bytes.ts';
import { normaliseId, type IdKind } from '../core/store/ids.ts';
import {
  campaignArtifacts, campaignJson, campaignResult, deviceState, targets, verifyCampaign,
  type CampaignJson, type CampaignPart, type DeviceCampaignState, type ResultEntry, type TargetDevice,
} from '../core/sync/campaign.ts';
import type { HubDb, Sql } from './db.ts';
import { HubError } from './errors.ts';
import type { HubTrust } from './trust.ts';

export interface PublishBody {
  /** base64 of the signed campaign. */
  campaign: string;
  /** base64 of artifacts the campaign names (image file, signed configuration) the hub does not hold yet. */
  artifacts?: string[];
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
function b64(s: unknown, what: string): Uint8Array {
  if (typeof s !== 'string' || !s || !B64.test(s)) throw new HubError('bad-request', `${what} must be a base64 string`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

const MAX_ARTIFACT = 16 * 1024 * 1024;

export async function publishCampaign(db: HubDb, trust: HubTrust, body: PublishBody, now: number): Promise<{ id: string; name: string; published: boolean; artifacts: number }> {
  if (!body || typeof body !== 'object') throw new HubError('bad-request', 'give {"campaign": "<base64 of the signed campaign>", "artifacts": ["<base64>", ...]}');
  const bytes = b64(body.campaign, 'campaign');
  const r = await verifyCampaign(bytes, { bundle: trust.bundle, now });
  if (!r.ok) {
    if (r.code === 'revoked') throw new HubError('revoked', `the campaign is refused: ${r.reason}`, 403, { trust: r.code });
    throw new HubError('bad-campaign', `the campaign is refused (${r.code}): ${r.reason}; publish a campaign signed by the owner key of the hub's trust bundle`, 422, { trust: r.code });
  }
  const c = campaignJson(r.value);
  const named = new Map(campaignArtifacts(c).map((a) => [a.sha256, a.part]));
  if (body.artifacts !== undefined && !Array.isArray(body.artifacts)) throw new HubError('bad-request', 'artifacts must be a list of base64 strings');
  const given = (body.artifacts ?? []).map((a, i) => {
    const b = b64(a, `artifacts[${i}]`);
    if (b.length > MAX_ARTIFACT) throw new HubError('too-large', `artifacts[${i}] is ${b.length} bytes, over ${MAX_ARTIFACT}`, 413);
    const sha = toHex(sha256(b));
    const part = named.get(sha);
    if (!part) throw new HubError('bad-request', `artifacts[${i}] (sha256 ${sha.slice(0, 16)}…) is not named by the campaign: give only the image and configuration it names`);
    return { sha, part, b };
  });
  return db.transaction(async (tx) => {
    for (const a of given) {
      await tx.query('INSERT INTO artifacts (sha256, kind, bytes) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING', [fromHex(a.sha), a.part, a.b]);
    }
    const shas = [...named.keys()];
    const held = await tx.query<{ sha256: Uint8Array }>("SELECT sha256 FROM artifacts WHERE sha256 IN (SELECT decode(x, 'hex') FROM unnest($1::text[]) x)", [shas]);
    const have = new Set(held.map((h) => toHex(new Uint8Array(h.sha256))));
    const missing = shas.filter((s) => !have.has(s));
    if (missing.length) {
      throw new HubError('missing-artifact', `the hub does not hold the ${missing.map((s) => named.get(s)).join(' and ')} this campaign names: publish it with the file(s) (--artifact FILE)`, 422, { missing });
    }
    const ins = await tx.query('INSERT INTO campaigns (id, bytes, body, not_after) VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (id) DO NOTHING RETURNING id', [c.id, bytes, JSON.stringify(c), c.notAfter]);
    if (!ins.length) {
      const prev = await tx.query<{ bytes: Uint8Array }>('SELECT bytes FROM campaigns WHERE id = $1', [c.id]);
      if (toHex(new Uint8Array(prev[0].bytes)) !== toHex(bytes)) {
        throw new HubError('bad-campaign', `another campaign with id ${c.id} is already published; issue a new campaign (a new id)`, 409, { trust: 'conflict' });
      }
    }
    return { id: c.id, name: c.name, published: ins.length > 0, artifacts: given.length };
  });
}

export interface CampaignListing extends CampaignJson {
  published: string;
  /** base64 of the signed campaign: apps verify it themselves. */
  bytes: string;
}

export async function listCampaigns(db: Sql): Promise<CampaignListing[]> {
  const r = await db.query<{ bytes: Uint8Array; body: CampaignJson; published: Date | string }>('SELECT bytes, body, published FROM campaigns ORDER BY published, id');
  return r.map((x) => ({ ...x.body, published: new Date(x.published).toISOString(), bytes: Buffer.from(x.bytes).toString('base64') }));
}

export async function getArtifact(db: Sql, sha: string): Promise<Uint8Array> {
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new HubError('bad-request', 'an artifact is named by its 64-hex-digit SHA-256');
  const r = await db.query<{ bytes: Uint8Array }>('SELECT bytes FROM artifacts WHERE sha256 = $1', [fromHex(sha)]);
  if (!r.length) throw new HubError('not-found', `the hub holds no artifact ${sha}`, 404);
  return new Uint8Array(r[0].bytes);
}

export interface PartResult {
  state: 'done' | 'failed';
  outcome: string;
  time: number;
  reporter: string;
}

export interface DeviceInCampaign {
  anchor: string;
  serial: string | null;
  model: string | null;
  firmware: string | null;
  tags: string[];
  state: DeviceCampaignState;
  parts: Partial<Record<CampaignPart, PartResult>>;
}

export interface CampaignStatus {
  campaign: CampaignJson;
  counts: { targeted: number; done: number; failed: number; pending: number };
  devices: DeviceInCampaign[];
  truncated: boolean;
}

const MAX_LISTED = 10_000;

export async function campaignStatus(db: Sql, id: string): Promise<CampaignStatus> {
  if (!/^[0-9a-f]{32}$/.test(id)) throw new HubError('bad-request', 'a campaign id is 32 hex digits (fieldbench hub campaign list shows them)');
  const row = (await db.query<{ body: CampaignJson }>('SELECT body FROM campaigns WHERE id = $1', [id]))[0];
  if (!row) throw new HubError('not-found', `no campaign ${id} on this hub`, 404);
  const c = row.body;
  const t = c.target;
  // Candidates from the registry (narrowed in SQL by model, serials and tags; versions are checked below), plus devices with a result.
  const where: string[] = [];
  const params: unknown[] = [id];
  if (t.model !== undefined) where.push(`d.model = $${params.push(t.model)}`);
  if (t.devices) where.push(`d.serial = ANY($${params.push(t.devices)}::text[])`);
  if (t.tags) where.push(`d.anchor IN (SELECT anchor FROM device_tags WHERE tag = ANY($${params.push(t.tags)}::text[]))`);
  const rows = await db.query<{ anchor: string; serial: string | null; model: string | null; firmware: string | null; tags: string[] | null }>(
    `SELECT d.anchor, d.serial, d.model, d.firmware, (SELECT array_agg(tag ORDER BY tag) FROM device_tags g WHERE g.anchor = d.anchor) AS tags
     FROM devices d WHERE (${where.join(' AND ')}) OR d.anchor IN (SELECT device FROM campaign_results WHERE campaign_id = $1)`,
    params,
  );
  const results = await db.query<{ device: string; part: CampaignPart; outcome: 'done' | 'failed'; detail: string | null; time: string | number; reporter: string }>(
    'SELECT device, part, outcome, detail, time, reporter FROM campaign_results WHERE campaign_id = $1',
    [id],
  );
  const byDevice = new Map<string, Partial<Record<CampaignPart, PartResult>>>();
  for (const r of results) {
    let p = byDevice.get(r.device);
    if (!p) byDevice.set(r.device, (p = {}));
    p[r.part] = { state: r.outcome, outcome: r.detail ?? r.outcome, time: Number(r.time), reporter: r.reporter };
  }
  const devices: DeviceInCampaign[] = [];
  for (const d of rows) {
    const parts = byDevice.get(d.anchor) ?? {};
    const tags = d.tags ?? [];
    if (!byDevice.has(d.anchor) && !targets(t, { model: d.model, firmware: d.firmware, serial: d.serial, tags })) continue;
    const st = deviceState(c, Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v!.state])));
    devices.push({ anchor: d.anchor, serial: d.serial, model: d.model, firmware: d.firmware, tags, state: st, parts });
  }
  devices.sort((a, b) => (a.serial ?? a.anchor).localeCompare(b.serial ?? b.anchor));
  const counts = { targeted: devices.length, done: 0, failed: 0, pending: 0 };
  for (const d of devices) counts[d.state]++;
  return { campaign: c, counts, devices: devices.slice(0, MAX_LISTED), truncated: devices.length > MAX_LISTED };
}

/** An update/configure entry about a device, with the device's state when it was recorded. */
export interface ResultCandidate {
  anchor: string;
  entry: ResultEntry & { technician: { id: string }; hash: string };
  device: TargetDevice;
}

/** Match pushed update/configure entries against the held campaigns (inside the push's transaction). */
export async function recordCampaignResults(tx: Sql, items: ResultCandidate[]): Promise<number> {
  if (!items.length) return 0;
  const cs = (await tx.query<{ body: CampaignJson }>('SELECT body FROM campaigns')).map((r) => r.body);
  if (!cs.length) return 0;
  const anchors = [...new Set(items.map((i) => i.anchor))];
  const tagRows = await tx.query<{ anchor: string; tag: string }>('SELECT anchor, tag FROM device_tags WHERE anchor = ANY($1::text[])', [anchors]);
  const tags = new Map<string, string[]>();
  for (const r of tagRows) tags.set(r.anchor, [...(tags.get(r.anchor) ?? []), r.tag]);
  const prior = await tx.query<{ campaign_id: string; device: string }>('SELECT DISTINCT campaign_id, device FROM campaign_results WHERE device = ANY($1::text[])', [anchors]);
  const hasResult = new Set(prior.map((p) => `${p.campaign_id}\u0000${p.device}`));
  const rows: Record<string, unknown>[] = [];
  for (const it of items) {
    for (const c of cs) {
      const r = campaignResult(c, it.entry);
      if (!r) continue;
      if (!hasResult.has(`${c.id}\u0000${it.anchor}`) && !targets(c.target, { ...it.device, tags: tags.get(it.anchor) ?? [] })) continue;
      hasResult.add(`${c.id}\u0000${it.anchor}`);
      rows.push({ c: c.id, d: it.anchor, p: r.part, o: r.state, x: it.entry.outcome, t: it.entry.time, r: it.entry.technician.id, h: it.entry.hash });
    }
  }
  if (!rows.length) return 0;
  // one row per (campaign, device, part): the newest entry of the push wins, and only over an older held result
  const newest = new Map<string, Record<string, unknown>>();
  for (const r of rows) {
    const k = `${r.c}\u0000${r.d}\u0000${r.p}`;
    const o = newest.get(k);
    if (!o || (r.t as number) >= (o.t as number)) newest.set(k, r);
  }
  await tx.query(
    `INSERT INTO campaign_results AS cr (campaign_id, device, part, outcome, detail, time, reporter, entry_hash)
     SELECT r.c, r.d, r.p, r.o, r.x, r.t, r.r, decode(r.h, 'hex') FROM jsonb_to_recordset($1::jsonb) AS r(c text, d text, p text, o text, x text, t bigint, r text, h text)
     ON CONFLICT (campaign_id, device, part) DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, time = excluded.time, reporter = excluded.reporter, entry_hash = excluded.entry_hash
     WHERE excluded.time >= cr.time`,
    [JSON.stringify([...newest.values()])],
  );
  return newest.size;
}

export interface TagBody {
  kind: string;
  value: string;
  tags: string[];
}

/** Set the tags of the device(s) carrying one identifier (replaces their tags). */
export async function setTags(db: HubDb, body: TagBody): Promise<{ anchors: string[]; tags: string[] }> {
  if (!body || typeof body !== 'object' || !['serial', 'devicePublicKey', 'ueid', 'mac', 'devEui'].includes(body.kind) || typeof body.value !== 'string') {
    throw new HubError('bad-request', 'give {"kind": "serial|devicePublicKey|ueid|mac|devEui", "value": "...", "tags": ["..."]}');
  }
  if (!Array.isArray(body.tags) || body.tags.length > 64 || body.tags.some((t) => typeof t !== 'string' || !/^[\w.:/-]{1,64}$/.test(t))) {
    throw new HubError('bad-request', 'tags: up to 64 names of 1..64 letters, digits and . _ : / -');
  }
  let value: string;
  try {
    value = normaliseId(body.kind as IdKind, body.value);
  } catch {
    throw new HubError('bad-request', `${body.value} is not a valid ${body.kind}`);
  }
  return db.transaction(async (tx) => {
    // a device key is its device's anchor (its own sighting is written only where an entry named nothing else)
    const a =
      body.kind === 'devicePublicKey'
        ? (await tx.query<{ anchor: string }>(`SELECT anchor FROM devices WHERE anchor = 'key:' || $1`, [value])).map((r) => r.anchor)
        : (await tx.query<{ anchor: string }>('SELECT DISTINCT d.anchor FROM sightings s JOIN devices d ON d.id = s.device WHERE s.kind = $1 AND s.value = $2 ORDER BY d.anchor', [body.kind, value])).map((r) => r.anchor);
    if (!a.length) throw new HubError('not-found', `the hub has seen no device with ${body.kind} ${value}: push its records first`, 404);
    await tx.query('DELETE FROM device_tags WHERE anchor = ANY($1::text[])', [a]);
    const tags = [...new Set(body.tags)].sort();
    if (tags.length) await tx.query('INSERT INTO device_tags (anchor, tag) SELECT a, t FROM unnest($1::text[]) a, unnest($2::text[]) t', [a, tags]);
    return { anchors: a, tags };
  });
}

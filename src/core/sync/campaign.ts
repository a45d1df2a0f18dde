/**
 * Campaign: an owner-signed artifact that says which devices get which
 * firmware image and/or signed configuration (docs/HUB.md, "Campaigns";
 * docs/FORMATS.md has the CDDL). The hub verifies it against the held trust
 * bundle's owner keys (revoked keys refused) before it stores it; apps and
 * stations verify it again against their own bundle when they pull it.
 *
 * Target: every criterion given must hold (AND):
 *  - model: the device's model, exactly;
 *  - versions: the device's firmware version v with min <= v < below
 *    (MCUboot versions maj.min.rev+build, compared field by field; a device
 *    whose version is unknown is not targeted by a version range);
 *  - devices: the device's serial is in the list (a device group);
 *  - tags: the device carries at least one of the tags (tags are set on the hub).
 * A target names at least one of model, devices, tags: a campaign never
 * targets the whole fleet by accident.
 *
 * Artifacts are named by SHA-256 of their bytes (the file an app imports into
 * its library): the owner's signature over the digest authenticates the
 * artifact, whoever serves it.
 *
 * Results: an update (campaign with an image) or configure (campaign with a
 * configuration) audit entry for a targeted device, recorded at or after the
 * campaign's notBefore, is that device's result for that part when it names
 * the campaign's artifact (details.fileSha256 for an update, details.digest
 * for a configuration) or the campaign (details.campaign), or when it is a
 * failure that names no artifact at all. ok (and 'attention' for an update:
 * installed, not yet confirmed) = done; failed, rejected, reverted = failed;
 * cancelled is no result (the device stays pending). The newest result wins.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import {
  ARTIFACT_NAMES, checkIssue, checkText, checkValidityFields, checkWindow, DEFAULT_SKEW, Fields, openArtifact, randomBytes,
  SchemaError, signArtifact, toSeconds, unverifiedPayload, type Clock, type Validity,
} from '../trust/artifact.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { ed25519PublicKey } from '../trust/ed25519.ts';
import { keyId } from '../trust/keys.ts';
import { parseVersion, type ImageVersion } from '../trust/mcuboot/parse.ts';
import type { TrustResult } from '../trust/result.ts';
import type { Signer } from '../trust/signer.ts';
import { toHex } from '../base/bytes.ts';

export interface VersionRange {
  /** Inclusive. */
  min?: string;
  /** Exclusive. */
  below?: string;
}

export interface CampaignTarget {
  model?: string;
  versions?: VersionRange;
  /** Serials (a device group). */
  devices?: string[];
  tags?: string[];
}

export interface CampaignArtifactRef {
  /** SHA-256 of the artifact's bytes. */
  sha256: Uint8Array;
  /** Shown to people; for an image, the version it installs. */
  version?: string;
  name?: string;
}

export interface Campaign extends Validity {
  campaignId: Uint8Array;
  name: string;
  target: CampaignTarget;
  image?: CampaignArtifactRef;
  configuration?: CampaignArtifactRef;
  issuer: Uint8Array;
}

export type CampaignInput = Omit<Campaign, 'campaignId' | 'issuer' | 'notBefore' | 'notAfter'> & {
  notBefore?: Date | number;
  notAfter: Date | number;
  campaignId?: Uint8Array;
};

export interface VerifiedCampaign extends Campaign {
  /** hex of campaignId: the campaign's name on the hub and in URLs. */
  id: string;
  /** SHA-256 of the campaign bytes. */
  digest: Uint8Array;
}

const NAME = ARTIFACT_NAMES.campaign;
const MAX_DEVICES = 4096;
const MAX_TAGS = 64;

// ---------------------------------------------------------------- versions

function version(text: string, where: string): ImageVersion {
  try {
    return parseVersion(text);
  } catch (e) {
    throw new SchemaError(`${where}: ${(e as Error).message}`);
  }
}

/** Compare two MCUboot versions (maj.min.rev+build) field by field: <0, 0, >0. Throws on a malformed version. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  return x.major - y.major || x.minor - y.minor || x.revision - y.revision || x.build - y.build;
}

/** Is `v` inside the range? A version that does not parse is outside every range. */
export function inVersionRange(v: string | null | undefined, r: VersionRange): boolean {
  if (!v) return false;
  try {
    if (r.min !== undefined && compareVersions(v, r.min) < 0) return false;
    if (r.below !== undefined && compareVersions(v, r.below) >= 0) return false;
    return true;
  } catch {
    return false;
  }
}

/** Parse ">=1.2.0 <2.0.0" (either part optional, in any order) into a range. */
export function parseVersionRange(text: string): VersionRange {
  const r: VersionRange = {};
  for (const part of text.trim().split(/\s+/).filter(Boolean)) {
    const m = /^(>=|<)(.+)$/.exec(part);
    if (!m) throw new SchemaError(`version range ${JSON.stringify(text)}: write ">=MIN <BELOW" (either part optional)`);
    version(m[2], 'version range');
    if (m[1] === '>=') r.min = m[2];
    else r.below = m[2];
  }
  if (r.min === undefined && r.below === undefined) throw new SchemaError('version range: give ">=MIN", "<BELOW" or both');
  return r;
}

export function describeVersionRange(r: VersionRange): string {
  return [r.min !== undefined ? `>=${r.min}` : '', r.below !== undefined ? `<${r.below}` : ''].filter(Boolean).join(' ');
}

// ---------------------------------------------------------------- targeting

export interface TargetDevice {
  model?: string | null;
  firmware?: string | null;
  serial?: string | null;
  tags?: readonly string[];
}

/** Does the campaign target this device? (all criteria given must hold) */
export function targets(t: CampaignTarget, d: TargetDevice): boolean {
  if (t.model !== undefined && d.model !== t.model) return false;
  if (t.versions && !inVersionRange(d.firmware, t.versions)) return false;
  if (t.devices && !(d.serial && t.devices.includes(d.serial))) return false;
  if (t.tags && !(d.tags ?? []).some((x) => t.tags!.includes(x))) return false;
  return true;
}

export function describeTarget(t: CampaignTarget): string {
  const parts: string[] = [];
  if (t.model !== undefined) parts.push(`model ${t.model}`);
  if (t.versions) parts.push(`firmware ${describeVersionRange(t.versions)}`);
  if (t.devices) parts.push(`${t.devices.length} listed device${t.devices.length === 1 ? '' : 's'}`);
  if (t.tags) parts.push(`tag ${t.tags.join(' or ')}`);
  return parts.join(', ');
}

// ---------------------------------------------------------------- results

export type CampaignPart = 'image' | 'configuration';
export type DeviceCampaignState = 'done' | 'failed' | 'pending';

export interface ResultEntry {
  op: string;
  outcome: string;
  time: number;
  details?: Record<string, unknown> | null;
}

/** What this audit entry says about the campaign for its device (see the header), or undefined. */
export function campaignResult(c: Pick<CampaignJson, 'id' | 'image' | 'configuration' | 'notBefore'>, e: ResultEntry): { part: CampaignPart; state: 'done' | 'failed' } | undefined {
  if (e.time < (c.notBefore - DEFAULT_SKEW) * 1000) return undefined;
  const d = e.details ?? {};
  let part: CampaignPart;
  let ref: { sha256: string } | undefined;
  let named: unknown;
  if (e.op === 'update') {
    part = 'image';
    ref = c.image;
    named = d.fileSha256;
  } else if (e.op === 'configure') {
    part = 'configuration';
    ref = c.configuration;
    named = d.digest;
  } else return undefined;
  if (!ref) return undefined;
  const failure = e.outcome === 'failed' || e.outcome === 'rejected' || e.outcome === 'reverted';
  const done = e.outcome === 'ok' || (e.outcome === 'attention' && part === 'image');
  if (!failure && !done) return undefined;
  const ours = d.campaign === c.id || (typeof named === 'string' && named.toLowerCase() === ref.sha256) || (named === undefined && d.campaign === undefined && failure);
  if (!ours) return undefined;
  return { part, state: done ? 'done' : 'failed' };
}

/** A device's state in a campaign from its parts' newest results. */
export function deviceState(c: { image?: unknown; configuration?: unknown }, parts: Partial<Record<CampaignPart, 'done' | 'failed'>>): DeviceCampaignState {
  const want: CampaignPart[] = [...(c.image ? (['image'] as const) : []), ...(c.configuration ? (['configuration'] as const) : [])];
  if (want.some((p) => parts[p] === 'failed')) return 'failed';
  if (want.every((p) => parts[p] === 'done')) return 'done';
  return 'pending';
}

// ---------------------------------------------------------------- encoding

const KEYS = [1, 2, 3, 4, 5, 6, 7, 8];

function encodeRef(r: CampaignArtifactRef): Map<number, unknown> {
  const m = new Map<number, unknown>([[1, r.sha256]]);
  if (r.version !== undefined) m.set(2, r.version);
  if (r.name !== undefined) m.set(3, r.name);
  return m;
}

function parseRef(v: Map<unknown, unknown> | undefined, where: string, isImage: boolean): CampaignArtifactRef | undefined {
  if (!v) return undefined;
  const f = new Fields(v, [1, 2, 3], where);
  const r: CampaignArtifactRef = { sha256: f.bstr(1, 'sha256', { min: 32, max: 32 })! };
  const ver = f.tstr(2, 'version', { max: 32, optional: true });
  if (ver !== undefined) {
    if (isImage) version(ver, `${where}.version`);
    r.version = ver;
  }
  const name = f.tstr(3, 'name', { max: 128, optional: true });
  if (name !== undefined) r.name = name;
  return r;
}

function encodePayload(c: Campaign): Map<number, unknown> {
  const t = new Map<number, unknown>();
  if (c.target.model !== undefined) t.set(1, c.target.model);
  if (c.target.versions?.min !== undefined) t.set(2, c.target.versions.min);
  if (c.target.versions?.below !== undefined) t.set(3, c.target.versions.below);
  if (c.target.devices) t.set(4, [...c.target.devices]);
  if (c.target.tags) t.set(5, [...c.target.tags]);
  const m = new Map<number, unknown>([[1, c.campaignId], [2, c.name], [3, t]]);
  if (c.image) m.set(4, encodeRef(c.image));
  if (c.configuration) m.set(5, encodeRef(c.configuration));
  m.set(6, c.notBefore);
  m.set(7, c.notAfter);
  m.set(8, c.issuer);
  return m;
}

function textList(v: unknown[] | undefined, where: string, max: number): string[] | undefined {
  if (!v) return undefined;
  const out = v.map((x, i) => checkText(x, `${where}[${i}]`, 1, max));
  if (new Set(out).size !== out.length) throw new SchemaError(`${where}: listed twice`);
  return out;
}

function parsePayloadMap(m: Map<unknown, unknown>): Campaign {
  const f = new Fields(m, KEYS, 'campaign');
  const tm = f.map_(3, 'target')!;
  const ft = new Fields(tm, [1, 2, 3, 4, 5], 'campaign.target');
  const target: CampaignTarget = {};
  const model = ft.tstr(1, 'model', { max: 64, optional: true });
  if (model !== undefined) target.model = model;
  const min = ft.tstr(2, 'versionMin', { max: 32, optional: true });
  const below = ft.tstr(3, 'versionBelow', { max: 32, optional: true });
  if (min !== undefined || below !== undefined) {
    target.versions = {};
    if (min !== undefined) target.versions.min = (version(min, 'campaign.target.versionMin'), min);
    if (below !== undefined) target.versions.below = (version(below, 'campaign.target.versionBelow'), below);
    if (min !== undefined && below !== undefined && compareVersions(min, below) >= 0) throw new SchemaError('campaign.target: versionMin must be below versionBelow');
  }
  const devices = textList(ft.array(4, 'devices', { min: 1, max: MAX_DEVICES, optional: true }), 'campaign.target.devices', 64);
  if (devices) target.devices = devices;
  const tags = textList(ft.array(5, 'tags', { min: 1, max: MAX_TAGS, optional: true }), 'campaign.target.tags', 64);
  if (tags) target.tags = tags;
  if (target.model === undefined && !target.devices && !target.tags) {
    throw new SchemaError('campaign.target: name a model, devices or tags (a campaign never targets the whole fleet by accident)');
  }
  const c: Campaign = {
    campaignId: f.bstr(1, 'campaignId', { min: 16, max: 16 })!,
    name: f.tstr(2, 'name', { max: 128 })!,
    target,
    notBefore: f.uint(6, 'notBefore')!,
    notAfter: f.uint(7, 'notAfter')!,
    issuer: f.bstr(8, 'issuer', { min: 8, max: 8 })!,
  };
  const image = parseRef(f.map_(4, 'image', { optional: true }), 'campaign.image', true);
  const configuration = parseRef(f.map_(5, 'configuration', { optional: true }), 'campaign.configuration', false);
  if (image) c.image = image;
  if (configuration) c.configuration = configuration;
  if (!image && !configuration) throw new SchemaError('campaign: name an image, a configuration or both');
  checkValidityFields(c, 'campaign');
  return c;
}

/** Sign a campaign with the owner key (a seed or a Signer). */
export async function issueCampaign(input: CampaignInput, owner: Uint8Array | Signer): Promise<Uint8Array> {
  const pub = owner instanceof Uint8Array ? await ed25519PublicKey(owner) : owner.publicKey;
  const c: Campaign = {
    ...input,
    campaignId: input.campaignId ?? randomBytes(16),
    notBefore: toSeconds(input.notBefore ?? new Date()),
    notAfter: toSeconds(input.notAfter),
    issuer: keyId(pub),
  };
  const payload = encodePayload(c);
  checkIssue(() => parsePayloadMap(payload), NAME);
  return signArtifact('campaign', payload, owner);
}

/**
 * Verify a campaign against a trust bundle: signed by one of its owner keys,
 * that key not revoked, schema, validity window (at `now`; `anyTime` skips
 * the window, for status of an expired campaign). Never throws.
 */
export async function verifyCampaign(bytes: Uint8Array, ctx: { bundle: TrustBundle; now?: Clock; anyTime?: boolean }): Promise<TrustResult<VerifiedCampaign>> {
  const env = await openArtifact(bytes, 'campaign', { owner: ctx.bundle.anchors.owner }, ctx.bundle.revocations.keyIds, parsePayloadMap);
  if (!env.ok) return env;
  if (!ctx.anyTime) {
    const w = checkWindow(env.value, ctx.now, `${NAME} ${JSON.stringify(env.value.name)}`);
    if (w) return { ok: false, ...w };
  }
  return { ok: true, value: { ...env.value, id: toHex(env.value.campaignId), digest: sha256(bytes) }, signer: env.signer };
}

/** Decode WITHOUT verifying (display only). */
export function decodeCampaignUnverified(bytes: Uint8Array): Campaign {
  return parsePayloadMap(unverifiedPayload(bytes, 'campaign'));
}

/** A campaign as JSON (hex digests), as the hub stores and serves it. */
export interface CampaignJson {
  id: string;
  name: string;
  target: CampaignTarget;
  image?: { sha256: string; version?: string; name?: string };
  configuration?: { sha256: string; version?: string; name?: string };
  notBefore: number;
  notAfter: number;
  issuer: string;
}

export function campaignJson(c: Campaign): CampaignJson {
  const ref = (r?: CampaignArtifactRef) => (r ? { sha256: toHex(r.sha256), ...(r.version !== undefined ? { version: r.version } : {}), ...(r.name !== undefined ? { name: r.name } : {}) } : undefined);
  const j: CampaignJson = { id: toHex(c.campaignId), name: c.name, target: c.target, notBefore: c.notBefore, notAfter: c.notAfter, issuer: toHex(c.issuer) };
  if (c.image) j.image = ref(c.image);
  if (c.configuration) j.configuration = ref(c.configuration);
  return j;
}

/** The campaign's artifact digests (hex), by part. */
export function campaignArtifacts(c: Pick<CampaignJson, 'image' | 'configuration'>): { part: CampaignPart; sha256: string }[] {
  return [...(c.image ? [{ part: 'image' as const, sha256: c.image.sha256 }] : []), ...(c.configuration ? [{ part: 'configuration' as const, sha256: c.configuration.sha256 }] : [])];
}


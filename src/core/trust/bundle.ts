/**
 * Trust bundle (owner-signed): the anchors the app and the device trust, by
 * role, plus revocations, firmware metadata / reference measurements and the
 * digests of the currently published signed configurations.
 *
 * It is the TUF/Uptane "targets + timestamp" in one file: `version` is
 * monotonic (rollback of the bundle = 'replayed'), `expires` bounds a freeze
 * attack ('stale'), the firmware list pins which image hash is acceptable for
 * which model and version (mix-and-match, arbitrary software), and the size
 * limit bounds endless-data.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeCoseKey, encodeCoseKey, keyId } from './keys.ts';
import { ed25519PublicKey } from './ed25519.ts';
import type { CoseKey } from './cose.ts';
import {
  ARTIFACT_NAMES, checkBytes, coseKeyId, DEFAULT_SKEW, ed25519Key, Fields, iso, issueArtifact, nowSeconds, openArtifact, SchemaError, toSeconds, unverifiedPayload, type Anchors, type Clock, type Role,
} from './artifact.ts';
import type { TrustResult } from './result.ts';
import { TrustArtifactError } from './result.ts';
import { containsBytes, equalBytes, toHex } from '../base/bytes.ts';

export interface FirmwareMeta {
  model: string;
  version: string;
  /** SHA-256 of the signed image (the reference measurement). */
  sha256: Uint8Array;
  securityCounter: number;
  /** Key id of the firmware signing key that signs this image. */
  signerKid: Uint8Array;
}

export interface Revocations {
  keyIds: Uint8Array[];
  certSerials: Uint8Array[];
  credentialIds: Uint8Array[];
}

/** What every verifier against the held trust bundle is given: the verified bundle and the clock. */
export interface HeldBundleContext {
  bundle: TrustBundle;
  now?: Clock;
}

export interface TrustBundle {
  version: number;
  /** Seconds since the epoch. */
  issued: number;
  /** Seconds since the epoch. */
  expires: number;
  anchors: Anchors;
  revocations: Revocations;
  firmware: FirmwareMeta[];
  /** SHA-256 digests of the published signed configurations. */
  configurations: Uint8Array[];
  /** Key id of the owner key that signed the bundle. */
  issuer: Uint8Array;
  /** True when verified with `allowStale` after `expires`: show it to the user. */
  stale: boolean;
}

export interface BundleInput {
  version: number;
  issued?: Date | number;
  expires: Date | number;
  anchors: Partial<Record<Role, (CoseKey | Uint8Array)[]>>;
  revocations?: Partial<Revocations>;
  firmware?: FirmwareMeta[];
  configurations?: Uint8Array[];
}

const ROLE_KEYS: [Role, number][] = [['manufacturer', 1], ['firmware', 2], ['owner', 3]];
const MAX_KEYS = 64;
const MAX_REVOKED = 4096;
const MAX_FIRMWARE = 1024;
const MAX_CONFIGS = 4096;

function toCoseKey(k: CoseKey | Uint8Array): CoseKey {
  if (k instanceof Uint8Array) {
    if (k.length !== 32) throw new TrustArtifactError('schema', 'a raw anchor key must be a 32-byte Ed25519 public key');
    return ed25519Key(k);
  }
  return k;
}

function stripKid(k: CoseKey): CoseKey {
  return k.kty === 'OKP' ? { kty: 'OKP', crv: 'Ed25519', x: k.x } : { kty: 'EC2', crv: 'P-256', x: k.x, y: k.y };
}

function encodePayload(b: Omit<TrustBundle, 'stale'>): Map<number, unknown> {
  const anchors = new Map<number, unknown>();
  for (const [role, n] of ROLE_KEYS) anchors.set(n, b.anchors[role].map((k) => encodeCoseKey(stripKid(k))));
  const rev = new Map<number, unknown>([
    [1, b.revocations.keyIds],
    [2, b.revocations.certSerials],
    [3, b.revocations.credentialIds],
  ]);
  const fw = b.firmware.map(
    (f) => new Map<number, unknown>([[1, f.model], [2, f.version], [3, f.sha256], [4, f.securityCounter], [5, f.signerKid]]),
  );
  return new Map<number, unknown>([
    [1, b.version], [2, b.issued], [3, b.expires], [4, anchors], [5, rev], [6, fw], [7, b.configurations], [8, b.issuer],
  ]);
}

function bytesList(v: unknown[] | undefined, where: string, min: number, max: number): Uint8Array[] {
  return (v ?? []).map((x, i) => checkBytes(x, `${where}[${i}]`, min, max));
}

function parsePayloadMap(m: Map<unknown, unknown>): Omit<TrustBundle, 'stale'> {
  const f = new Fields(m, [1, 2, 3, 4, 5, 6, 7, 8], 'bundle');
  const version = f.uint(1, 'version')!;
  if (version < 1) throw new SchemaError('bundle.version must be at least 1');
  const issued = f.uint(2, 'issued')!;
  const expires = f.uint(3, 'expires')!;
  if (expires <= issued) throw new SchemaError('bundle.expires must be later than bundle.issued');
  const am = f.map_(4, 'anchors')!;
  const af = new Fields(am, [1, 2, 3], 'bundle.anchors');
  const anchors = {} as Anchors;
  for (const [role, n] of ROLE_KEYS) {
    const list = af.array(n, role, { max: MAX_KEYS, optional: true }) ?? [];
    anchors[role] = list.map((x, i) => {
      const b = checkBytes(x, `bundle.anchors.${role}[${i}]`, 1, 256);
      try {
        return decodeCoseKey(b);
      } catch (e) {
        throw new SchemaError(`bundle.anchors.${role}[${i}]: not a usable COSE_Key (${(e as Error).message})`);
      }
    });
  }
  if (anchors.owner.length === 0) throw new SchemaError('bundle.anchors.owner must hold at least one key');
  const rm = f.map_(5, 'revocations', { optional: true }) ?? new Map();
  const rf = new Fields(rm, [1, 2, 3], 'bundle.revocations');
  const revocations: Revocations = {
    keyIds: bytesList(rf.array(1, 'keyIds', { max: MAX_REVOKED, optional: true }), 'bundle.revocations.keyIds', 8, 8),
    certSerials: bytesList(rf.array(2, 'certSerials', { max: MAX_REVOKED, optional: true }), 'bundle.revocations.certSerials', 1, 32),
    credentialIds: bytesList(rf.array(3, 'credentialIds', { max: MAX_REVOKED, optional: true }), 'bundle.revocations.credentialIds', 1, 32),
  };
  const fwList = f.array(6, 'firmware', { max: MAX_FIRMWARE, optional: true }) ?? [];
  const firmware = fwList.map((x, i) => {
    const w = `bundle.firmware[${i}]`;
    if (!(x instanceof Map)) throw new SchemaError(`${w}: expected a map`);
    const ff = new Fields(x, [1, 2, 3, 4, 5], w);
    return {
      model: ff.tstr(1, 'model', { max: 64 })!,
      version: ff.tstr(2, 'version', { max: 32 })!,
      sha256: ff.bstr(3, 'sha256', { min: 32, max: 32 })!,
      securityCounter: ff.uint(4, 'securityCounter', { max: 0xffffffff })!,
      signerKid: ff.bstr(5, 'signerKid', { min: 8, max: 8 })!,
    };
  });
  const configurations = bytesList(f.array(7, 'configurations', { max: MAX_CONFIGS, optional: true }), 'bundle.configurations', 32, 32);
  const issuer = f.bstr(8, 'issuer', { min: 8, max: 8 })!;
  return { version, issued, expires, anchors, revocations, firmware, configurations, issuer };
}

/** Build and sign a trust bundle with the owner's Ed25519 seed. Throws TrustArtifactError on invalid fields. */
export async function issueBundle(input: BundleInput, ownerSeed: Uint8Array): Promise<Uint8Array> {
  const issuer = keyId(await ed25519PublicKey(ownerSeed));
  const anchors = {} as Anchors;
  for (const [role] of ROLE_KEYS) anchors[role] = (input.anchors[role] ?? []).map(toCoseKey);
  const b: Omit<TrustBundle, 'stale'> = {
    version: input.version,
    issued: toSeconds(input.issued ?? new Date()),
    expires: toSeconds(input.expires),
    anchors,
    revocations: {
      keyIds: input.revocations?.keyIds ?? [],
      certSerials: input.revocations?.certSerials ?? [],
      credentialIds: input.revocations?.credentialIds ?? [],
    },
    firmware: input.firmware ?? [],
    configurations: input.configurations ?? [],
    issuer,
  };
  const payload = encodePayload(b);
  return issueArtifact('bundle', payload, parsePayloadMap, ownerSeed);
}

export interface BundleContext {
  /** Owner keys the new bundle must be signed by (from the held bundle, or provisioned at enrolment). */
  ownerKeys?: (CoseKey | Uint8Array)[];
  /** The currently held, already verified bundle: supplies ownerKeys, heldVersion, revocations and other-role keys. */
  held?: TrustBundle;
  heldVersion?: number;
  now?: Clock;
  /** Accept an expired bundle, flagged `stale: true` so the UI shows it. */
  allowStale?: boolean;
}

/** Verify a trust bundle. Never throws. */
export async function verifyBundle(bytes: Uint8Array, ctx: BundleContext): Promise<TrustResult<TrustBundle>> {
  const name = ARTIFACT_NAMES.bundle;
  let ownerKeys: CoseKey[];
  try {
    ownerKeys = (ctx.ownerKeys ?? ctx.held?.anchors.owner ?? []).map(toCoseKey);
  } catch (e) {
    return { ok: false, code: 'no-key', reason: (e as Error).message };
  }
  const anchors: Partial<Anchors> = { owner: ownerKeys };
  if (ctx.held) {
    anchors.manufacturer = ctx.held.anchors.manufacturer;
    anchors.firmware = ctx.held.anchors.firmware;
  }
  const env = await openArtifact(bytes, 'bundle', anchors, ctx.held?.revocations.keyIds, parsePayloadMap);
  if (!env.ok) return env;
  const b = env.value;
  if (containsBytes(b.revocations.keyIds, env.signerKid)) {
    return { ok: false, code: 'revoked', reason: `${name} is signed by owner key ${toHex(env.signerKid)}, which the bundle itself revokes` };
  }
  const held = ctx.heldVersion ?? ctx.held?.version;
  if (held !== undefined && b.version < held) {
    return { ok: false, code: 'replayed', reason: `${name} version ${b.version} is older than the held version ${held} (rollback)` };
  }
  const t = nowSeconds(ctx.now);
  if (t + DEFAULT_SKEW < b.issued) {
    return { ok: false, code: 'not-yet-valid', reason: `${name} is issued at ${iso(b.issued)}, in the future (now ${iso(t)})` };
  }
  let stale = false;
  if (t >= b.expires) {
    if (!ctx.allowStale) return { ok: false, code: 'stale', reason: `${name} version ${b.version} expired at ${iso(b.expires)}; fetch a fresh one from the owner` };
    stale = true;
  }
  return { ok: true, value: { ...b, stale }, signer: env.signer };
}

/** SHA-256 digest as listed in `bundle.configurations`. */
export function artifactDigest(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

/** Firmware metadata entries matching an image hash (and optionally a model). */
export function findFirmware(bundle: TrustBundle, imageSha256: Uint8Array, model?: string): FirmwareMeta | undefined {
  return bundle.firmware.find((f) => equalBytes(f.sha256, imageSha256) && (model === undefined || f.model === model));
}

/** Is this key id (of any role) in the bundle's anchors? */
export function anchorRoleOf(bundle: TrustBundle, kid: Uint8Array): Role | undefined {
  for (const [role] of ROLE_KEYS) if (bundle.anchors[role].some((k) => equalBytes(coseKeyId(k), kid))) return role;
  return undefined;
}

/** Decode WITHOUT verifying the signature (display only). Throws on malformed input. */
export function decodeBundleUnverified(bytes: Uint8Array): Omit<TrustBundle, 'stale'> {
  return parsePayloadMap(unverifiedPayload(bytes, 'bundle'));
}

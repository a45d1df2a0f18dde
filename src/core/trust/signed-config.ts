/**
 * Signed configuration (owner-signed): settings for one device, a model or a
 * group, with a monotonic sequence number (the device refuses any sequence not
 * above the one it last applied: 'replayed'), a validity window, and an
 * optional secrets slot holding a COSE_Encrypt sealed to the device's X25519
 * key (seal.ts), so secrets stay confidential even from the technician who
 * carries the configuration.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { keyId } from './keys.ts';
import {
  ARTIFACT_NAMES, checkBytes, checkIssue, checkText, checkValidityFields, checkWindow, describe, Fields, issueArtifact, openBundleArtifact, SchemaError, signerKeyId, toSeconds, unverifiedPayload, type Validity,
} from './artifact.ts';
import type { HeldBundleContext } from './bundle.ts';
import type { DeviceRef } from './credential.ts';
import type { TrustResult } from './result.ts';
import { parseSealed, SealError } from './seal.ts';
import { containsBytes, equalBytes, toHex } from '../base/bytes.ts';

export type ConfigTarget =
  | { kind: 'serial'; serial: string }
  | { kind: 'key'; keyId: Uint8Array }
  | { kind: 'model'; model: string }
  | { kind: 'group'; group: string };

export type SettingValue = string | number | boolean | null | Uint8Array | SettingValue[] | { [name: string]: SettingValue };
export type Settings = { [name: string]: SettingValue };

export interface SignedConfig extends Validity {
  target: ConfigTarget;
  sequence: number;
  settings: Settings;
  /** COSE_Encrypt sealed to the device (open with seal.open on the device). */
  secrets?: Uint8Array;
  issuer: Uint8Array;
  /** SHA-256 of the whole signed configuration (as listed in bundle.configurations). */
  digest: Uint8Array;
}

export type ConfigInput = {
  target: ConfigTarget;
  sequence: number;
  settings: Settings | Map<string, SettingValue>;
  secrets?: Uint8Array;
  notBefore?: Date | number;
  notAfter: Date | number;
};

const TARGET_KIND = { serial: 1, key: 2, model: 3, group: 4 } as const;
const MAX_DEPTH = 4;
const MAX_ENTRIES = 256;
const MAX_VALUE = 4096;

function encodeTarget(t: ConfigTarget): unknown[] {
  switch (t.kind) {
    case 'serial': return [1, t.serial];
    case 'key': return [2, t.keyId];
    case 'model': return [3, t.model];
    case 'group': return [4, t.group];
  }
}

function parseTarget(v: unknown): ConfigTarget {
  if (!Array.isArray(v) || v.length !== 2) throw new SchemaError(`config.target: expected [kind, value], got ${describe(v)}`);
  const [k, x] = v;
  switch (k) {
    case TARGET_KIND.serial: return { kind: 'serial', serial: checkText(x, 'config.target.serial', 1, 64) };
    case TARGET_KIND.key: return { kind: 'key', keyId: checkBytes(x, 'config.target.keyId', 8, 8) };
    case TARGET_KIND.model: return { kind: 'model', model: checkText(x, 'config.target.model', 1, 64) };
    case TARGET_KIND.group: return { kind: 'group', group: checkText(x, 'config.target.group', 1, 64) };
    default: throw new SchemaError(`config.target: unknown target kind ${describe(k)}`);
  }
}

function toSettingsMap(v: unknown, where: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new SchemaError(`${where}: nested deeper than ${MAX_DEPTH}`);
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new SchemaError(`${where}: numbers must be safe integers`);
    return v;
  }
  if (typeof v === 'string') return checkText(v, where, 0, MAX_VALUE);
  if (v instanceof Uint8Array) return checkBytes(v, where, 0, MAX_VALUE);
  if (Array.isArray(v)) {
    if (v.length > MAX_ENTRIES) throw new SchemaError(`${where}: more than ${MAX_ENTRIES} entries`);
    return v.map((x, i) => toSettingsMap(x, `${where}[${i}]`, depth + 1));
  }
  const entries = v instanceof Map ? [...v.entries()] : v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype ? Object.entries(v) : undefined;
  if (!entries) throw new SchemaError(`${where}: unsupported value ${describe(v)}`);
  if (entries.length > MAX_ENTRIES) throw new SchemaError(`${where}: more than ${MAX_ENTRIES} entries`);
  const m = new Map<string, unknown>();
  for (const [k, x] of entries) {
    const name = checkText(k, `${where} key`, 1, 64);
    m.set(name, toSettingsMap(x, `${where}.${name}`, depth + 1));
  }
  return m;
}

function fromSettingsMap(v: unknown): SettingValue {
  if (v instanceof Map) {
    const o: { [k: string]: SettingValue } = Object.create(null);
    for (const [k, x] of v) o[k as string] = fromSettingsMap(x);
    return o;
  }
  if (Array.isArray(v)) return v.map(fromSettingsMap);
  return v as SettingValue;
}

function parsePayloadMap(m: Map<unknown, unknown>): Omit<SignedConfig, 'digest'> {
  const f = new Fields(m, [1, 2, 3, 4, 5, 6, 7], 'config');
  const settingsMap = f.map_(5, 'settings')!;
  const settings = fromSettingsMap(toSettingsMap(settingsMap, 'config.settings', 0)) as Settings;
  const secrets = f.bstr(6, 'secrets', { min: 1, max: 65536, optional: true });
  if (secrets) {
    try {
      parseSealed(secrets);
    } catch (e) {
      throw new SchemaError(`config.secrets: ${e instanceof SealError ? e.message : String(e)}`);
    }
  }
  const c = {
    target: parseTarget(f.map.get(1) ?? (() => { throw new SchemaError('config: required field target (1) is missing'); })()),
    sequence: f.uint(2, 'sequence')!,
    notBefore: f.uint(3, 'notBefore')!,
    notAfter: f.uint(4, 'notAfter')!,
    settings,
    secrets,
    issuer: f.bstr(7, 'issuer', { min: 8, max: 8 })!,
  };
  checkValidityFields(c, 'config');
  if (c.secrets === undefined) delete c.secrets;
  return c;
}

/** Sign a configuration with the owner's Ed25519 seed. */
export async function issueConfig(input: ConfigInput, ownerSeed: Uint8Array): Promise<Uint8Array> {
  const settings = checkIssue(() => toSettingsMap(input.settings, 'config.settings', 0), ARTIFACT_NAMES.config);
  const payload = new Map<number, unknown>([
    [1, input.target ? encodeTarget(input.target) : undefined],
    [2, input.sequence],
    [3, toSeconds(input.notBefore ?? new Date())],
    [4, toSeconds(input.notAfter)],
    [5, settings],
    [6, input.secrets],
    [7, await signerKeyId(ownerSeed)],
  ]);
  return issueArtifact('config', payload, parsePayloadMap, ownerSeed);
}

/** Does a configuration target select this device? */
export function configTargets(t: ConfigTarget, device: DeviceRef & { groups?: string[] }): boolean {
  switch (t.kind) {
    case 'serial': return t.serial === device.serial;
    case 'key': return device.keyId !== undefined && equalBytes(t.keyId, device.keyId);
    case 'model': return t.model === device.model;
    case 'group': return (device.groups ?? []).includes(t.group);
  }
}

export function describeTarget(t: ConfigTarget): string {
  switch (t.kind) {
    case 'serial': return `device ${t.serial}`;
    case 'key': return `device key ${toHex(t.keyId)}`;
    case 'model': return `model ${t.model}`;
    case 'group': return `group ${t.group}`;
  }
}

export interface ConfigContext extends HeldBundleContext {
  /** The device it is to be applied to (checked against the target). */
  device?: DeviceRef & { groups?: string[] };
  /** Highest sequence number already applied: the new one must be greater. */
  heldSequence?: number;
  /** Require the configuration's digest to be listed in bundle.configurations. */
  requirePublished?: boolean;
}

/** Verify a signed configuration against the owner anchors of a verified trust bundle. Never throws. */
export async function verifyConfig(bytes: Uint8Array, ctx: ConfigContext): Promise<TrustResult<SignedConfig>> {
  const name = ARTIFACT_NAMES.config;
  const env = await openBundleArtifact(bytes, 'config', ctx.bundle, parsePayloadMap);
  if (!env.ok) return env;
  const c: SignedConfig = { ...env.value, digest: sha256(bytes) };
  const w = checkWindow(c, ctx.now, `${name} #${c.sequence}`);
  if (w) return { ok: false, ...w };
  if (ctx.requirePublished && !containsBytes(ctx.bundle.configurations, c.digest)) {
    return { ok: false, code: 'revoked', reason: `${name} #${c.sequence} is not among the configurations published in trust bundle v${ctx.bundle.version} (withdrawn or never published)` };
  }
  if (ctx.device && !configTargets(c.target, ctx.device)) {
    return { ok: false, code: 'wrong-target', reason: `${name} #${c.sequence} is for ${describeTarget(c.target)}, not for device ${ctx.device.serial} (model ${ctx.device.model})` };
  }
  if (ctx.heldSequence !== undefined && c.sequence <= ctx.heldSequence) {
    return { ok: false, code: 'replayed', reason: `${name} sequence ${c.sequence} is not above the last applied sequence ${ctx.heldSequence}` };
  }
  return { ok: true, value: c, signer: env.signer };
}

/** The secrets slot must be sealed to this device encryption key (informative kid check, no decryption). */
export function secretsAddressedTo(c: Pick<SignedConfig, 'secrets'>, deviceEncKey: Uint8Array): boolean {
  if (!c.secrets) return false;
  try {
    const s = parseSealed(c.secrets);
    return s.recipientKid !== undefined && equalBytes(s.recipientKid, keyId(deviceEncKey));
  } catch {
    return false;
  }
}

/** Decode WITHOUT verifying the signature (display only). Throws on malformed input. */
export function decodeConfigUnverified(bytes: Uint8Array): Omit<SignedConfig, 'digest'> {
  return parsePayloadMap(unverifiedPayload(bytes, 'config'));
}

/**
 * Station profile: an owner-signed artifact that says what a factory station
 * may do to a unit of one model (docs/FORMATS.md, "Station profile"):
 * the firmware image(s) by digest and the keys they must be signed with, the
 * factory configuration (an owner-signed configuration, embedded), the identity
 * policy (identifier ranges, certificate validity), the test steps, the label
 * template, and the credential the station authenticates to units with.
 *
 * The station refuses an unsigned, expired or altered profile (verifyProfile).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import {
  ARTIFACT_NAMES, checkBytes, checkText, checkUint, checkValidityFields, checkWindow, Fields, issueArtifact, issuedFields, openOwnerArtifact, randomBytes, SchemaError, unverifiedPayload, type Clock, type Validity,
} from '../trust/artifact.ts';
import type { TrustResult } from '../trust/result.ts';
import type { Signer } from '../trust/signer.ts';
import type { IdentifierPolicy } from './identifiers.ts';

export type InterfaceStateName = 'open' | 'authenticated' | 'disabled';

export interface ProfileFirmware {
  version: string;
  /** The image's hash TLV (what the device measures and attests). */
  sha256: Uint8Array;
  securityCounter: number;
  /** Raw Ed25519 public keys the image must be signed by (at least one). */
  signingKeys: Uint8Array[];
}

export interface ProfileTests {
  /** Echo round trip after boot. */
  echo: boolean;
  /** Attestation must appraise 'trusted' with the profile's image as the reference measurement. */
  attestation: 'trusted';
  /** Interface states the unit must leave the line with (the station sets them, then checks). */
  interfaces: Record<string, InterfaceStateName>;
}

export interface StationProfile extends Validity {
  profileId: Uint8Array;
  name: string;
  model: string;
  firmware: ProfileFirmware[];
  /** The factory configuration: an owner-signed configuration (COSE bytes). */
  configuration?: Uint8Array;
  identity: { policy: IdentifierPolicy; certValidityDays: number; hwRev?: string };
  tests: ProfileTests;
  /** Label template (station's label module): opaque to the profile. */
  label?: Record<string, string | number>;
  /** Owner-signed technician credential of the station key (configure, interfaces), used to authenticate to units. */
  stationCredential?: Uint8Array;
  /** Key id of the manufacturer key that may issue identities under this profile. */
  manufacturerKid: Uint8Array;
  issuer: Uint8Array;
}

export type ProfileInput = Omit<StationProfile, 'profileId' | 'issuer' | 'notBefore' | 'notAfter'> & {
  notBefore?: Date | number;
  notAfter: Date | number;
};

const KEYS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const STATES = ['open', 'authenticated', 'disabled'];

function encodePolicy(p: IdentifierPolicy): Map<number, unknown> {
  const m = new Map<number, unknown>([[1, p.serial.pattern], [2, p.serial.first], [3, p.serial.last]]);
  if (p.devEui) m.set(4, [p.devEui.first, p.devEui.count]);
  if (p.mac) m.set(5, [p.mac.first, p.mac.count]);
  return m;
}

function parsePolicy(m: Map<unknown, unknown>): IdentifierPolicy {
  const f = new Fields(m, [1, 2, 3, 4, 5], 'profile.identity.policy');
  const pattern = f.tstr(1, 'serial.pattern', { max: 64 })!;
  if (!/\{n(:0?\d+)?\}/.test(pattern)) throw new SchemaError('profile.identity.policy.serial.pattern: needs a {n} or {n:06} placeholder');
  const first = f.uint(2, 'serial.first')!;
  const last = f.uint(3, 'serial.last')!;
  if (last < first) throw new SchemaError('profile.identity.policy.serial: last is below first');
  const block = (key: number, label: string, hexLen: number) => {
    const v = f.array(key, label, { min: 2, max: 2, optional: true });
    if (!v) return undefined;
    const firstHex = checkText(v[0], `profile.identity.policy.${label}.first`, hexLen, hexLen);
    if (!/^[0-9a-f]+$/.test(firstHex)) throw new SchemaError(`profile.identity.policy.${label}.first: ${hexLen} lowercase hex digits`);
    return { first: firstHex, count: checkUint(v[1], `profile.identity.policy.${label}.count`, 2 ** 32) };
  };
  const devEui = block(4, 'devEui', 16);
  const mac = block(5, 'mac', 12);
  return { serial: { pattern, first, last }, ...(devEui ? { devEui } : {}), ...(mac ? { mac } : {}) };
}

function encodePayload(p: StationProfile): Map<number, unknown> {
  const ident = new Map<number, unknown>([[1, encodePolicy(p.identity.policy)], [2, p.identity.certValidityDays]]);
  if (p.identity.hwRev) ident.set(3, p.identity.hwRev);
  return new Map<number, unknown>([
    [1, p.profileId], [2, p.name], [3, p.model],
    [4, p.firmware.map((f) => new Map<number, unknown>([[1, f.version], [2, f.sha256], [3, f.securityCounter], [4, f.signingKeys]]))],
    [5, p.configuration],
    [6, ident],
    [7, new Map<number, unknown>([[1, p.tests.echo], [2, p.tests.attestation], [3, new Map(Object.entries(p.tests.interfaces).sort(([a], [b]) => (a < b ? -1 : 1)))]])],
    [8, p.label ? new Map(Object.entries(p.label).sort(([a], [b]) => (a < b ? -1 : 1))) : undefined],
    [9, p.stationCredential], [10, p.manufacturerKid], [11, p.notBefore], [12, p.notAfter], [13, p.issuer],
  ]);
}

function parsePayloadMap(m: Map<unknown, unknown>): StationProfile {
  const f = new Fields(m, KEYS, 'profile');
  const firmware = f.array(4, 'firmware', { min: 1, max: 4 })!.map((x, i) => {
    if (!(x instanceof Map)) throw new SchemaError(`profile.firmware[${i}]: expected a map`);
    const g = new Fields(x, [1, 2, 3, 4], `profile.firmware[${i}]`);
    return {
      version: g.tstr(1, 'version', { max: 32 })!,
      sha256: g.bstr(2, 'sha256', { min: 32, max: 32 })!,
      securityCounter: g.uint(3, 'securityCounter')!,
      signingKeys: g.array(4, 'signingKeys', { min: 1, max: 8 })!.map((k, j) => checkBytes(k, `profile.firmware[${i}].signingKeys[${j}]`, 32, 32)),
    };
  });
  const im = f.map_(6, 'identity')!;
  const fi = new Fields(im, [1, 2, 3], 'profile.identity');
  const pm = fi.map_(1, 'policy')!;
  const certValidityDays = fi.uint(2, 'certValidityDays', { max: 36500 })!;
  if (certValidityDays < 1) throw new SchemaError('profile.identity.certValidityDays: at least 1');
  const tm = f.map_(7, 'tests')!;
  const ft = new Fields(tm, [1, 2, 3], 'profile.tests');
  const echo = tm.get(1);
  if (typeof echo !== 'boolean') throw new SchemaError('profile.tests.echo: expected a boolean');
  if (ft.tstr(2, 'attestation', { max: 16 }) !== 'trusted') throw new SchemaError('profile.tests.attestation: must be "trusted"');
  const ifm = ft.map_(3, 'interfaces')!;
  const interfaces: Record<string, InterfaceStateName> = {};
  for (const [k, v] of ifm) {
    const name = checkText(k, 'profile.tests.interfaces name', 1, 32);
    if (typeof v !== 'string' || !STATES.includes(v)) throw new SchemaError(`profile.tests.interfaces.${name}: one of ${STATES.join(', ')}`);
    interfaces[name] = v as InterfaceStateName;
  }
  const lm = f.map_(8, 'label', { optional: true });
  let label: Record<string, string | number> | undefined;
  if (lm) {
    label = {};
    for (const [k, v] of lm) {
      const name = checkText(k, 'profile.label key', 1, 32);
      if (typeof v !== 'string' && typeof v !== 'number') throw new SchemaError(`profile.label.${name}: text or number`);
      label[name] = typeof v === 'string' ? checkText(v, `profile.label.${name}`, 0, 256) : v;
    }
  }
  const hwRev = fi.tstr(3, 'hwRev', { max: 32, optional: true });
  const p: StationProfile = {
    profileId: f.bstr(1, 'profileId', { min: 8, max: 32 })!,
    name: f.tstr(2, 'name', { max: 128 })!,
    model: f.tstr(3, 'model', { max: 64 })!,
    firmware,
    configuration: f.bstr(5, 'configuration', { min: 1, max: 65536, optional: true }),
    identity: { policy: parsePolicy(pm), certValidityDays, ...(hwRev ? { hwRev } : {}) },
    tests: { echo, attestation: 'trusted', interfaces },
    ...(label ? { label } : {}),
    stationCredential: f.bstr(9, 'stationCredential', { min: 1, max: 8192, optional: true }),
    manufacturerKid: f.bstr(10, 'manufacturerKid', { min: 8, max: 8 })!,
    notBefore: f.uint(11, 'notBefore')!,
    notAfter: f.uint(12, 'notAfter')!,
    issuer: f.bstr(13, 'issuer', { min: 8, max: 8 })!,
  };
  if (p.configuration === undefined) delete p.configuration;
  if (p.stationCredential === undefined) delete p.stationCredential;
  checkValidityFields(p, 'profile');
  return p;
}

/** Sign a station profile with the owner key (a seed or a Signer). */
export async function issueProfile(input: ProfileInput, owner: Uint8Array | Signer): Promise<Uint8Array> {
  const p: StationProfile = { ...input, profileId: randomBytes(16), ...(await issuedFields(input, owner)) };
  return issueArtifact('profile', encodePayload(p), parsePayloadMap, owner);
}

export interface VerifiedProfile extends StationProfile {
  /** SHA-256 of the profile bytes (named in every control log entry). */
  digest: Uint8Array;
}

/** Verify a station profile: owner signature, validity window, schema. Never throws. */
export async function verifyProfile(bytes: Uint8Array, ctx: { ownerKeys: Uint8Array[]; now?: Clock }): Promise<TrustResult<VerifiedProfile>> {
  const env = await openOwnerArtifact(bytes, 'profile', ctx.ownerKeys, parsePayloadMap);
  if (!env.ok) return env;
  const w = checkWindow(env.value, ctx.now, `${ARTIFACT_NAMES.profile} ${JSON.stringify(env.value.name)}`);
  if (w) return { ok: false, ...w };
  return { ok: true, value: { ...env.value, digest: sha256(bytes) }, signer: env.signer };
}

/** Decode WITHOUT verifying (display only: fieldbench inspect). */
export function decodeProfileUnverified(bytes: Uint8Array): StationProfile {
  return parsePayloadMap(unverifiedPayload(bytes, 'profile'));
}

/**
 * PSA attestation token claims (RFC 9783, "Arm's Platform Security Architecture
 * (PSA) Attestation Token") and their two predecessors still met in the field:
 *
 *  profile kind | eat_profile value                          | claim keys
 *  'psa-2023'   | tag:psacertified.org,2023:psa#<fragment>   | 10, 256, 265, 268, 2394..2396, 2398..2400
 *  'psa-2.0.0'  | http://arm.com/psa/2.0.0 (draft-13)        | as above, boot seed 2397
 *  'psa-iot-1'  | PSA_IOT_PROFILE_1 (-75000, or implicit)    | -75000..-75010 (private-use range)
 *
 * RFC 9783 rules (baseline profile, so also any profile derived from it with its
 * own #fragment, e.g. the TF-M one "#tfm" or fieldbench's "#fieldbench"):
 *  - nonce (10): bstr of 32, 48 or 64 bytes, one value (array form forbidden); mandatory
 *  - instance id (256, ueid): bstr of 33 bytes, first byte 0x01 (RAND); mandatory
 *  - profile (265): text; mandatory
 *  - implementation id (2396): bstr of 32 bytes; mandatory
 *  - client id (2394): int, -2^31..-1 (NSPE) or 1..2^31-1 (SPE), 0 not permitted; mandatory
 *  - security lifecycle (2395): uint in one of the seven 0xNN00..0xNNff ranges; mandatory
 *  - boot seed (268): bstr of 8..32 bytes; optional
 *  - certification reference (2398): text "EAN-13-XXXXX" (13 digits, dash, 5 digits); optional
 *  - software components (2399): non-empty array of maps; mandatory. Each component:
 *    1 measurement type (text, opt), 2 measurement value (hash: 32/48/64 bytes, mandatory),
 *    4 version (text, opt), 5 signer id (hash, mandatory), 6 measurement description (text, opt)
 *  - verification service indicator (2400): non-empty text; optional
 *  - claims not understood are ignored (EAT rule).
 * Differences for 2.0.0 (as veraison/psatoken applies them): boot seed is 2397 (8..32, optional),
 * certification reference may also be a bare EAN-13, client id may be any int32.
 * Differences for PSA_IOT_PROFILE_1: boot seed mandatory and exactly 32 bytes; software
 * components (-75006) OR "no software measurements" (-75007, uint) but exactly one of them;
 * profile claim optional; hardware version (-75005) EAN-13 or EAN-13+5.
 *
 * validatePsaClaims never throws; a failure names the claim and one of the codes below.
 */
import { CborTrailingBytesError, Tag, decodeUnique } from '../base/cbor.ts';
import { verifySign1, type CoseFailure, type CoseKey } from './cose.ts';
import { verifyMac0 } from './cose-mac0.ts';
import { FieldbenchError } from '../base/errors.ts';

export const PSA_PROFILE_TFM = 'tag:psacertified.org,2023:psa#tfm';
export const PSA_PROFILE_2023_PREFIX = 'tag:psacertified.org,2023:psa#';
export const PSA_PROFILE_2_0_0 = 'http://arm.com/psa/2.0.0';
export const PSA_PROFILE_IOT_1 = 'PSA_IOT_PROFILE_1';

/** Claim keys of the RFC 9783 profile (and 2.0.0, which differs only in the boot seed key). */
export const PSA_CLAIM = {
  nonce: 10,
  instanceId: 256,
  profile: 265,
  bootSeed: 268,
  clientId: 2394,
  lifecycle: 2395,
  implementationId: 2396,
  bootSeedV2: 2397,
  certificationReference: 2398,
  softwareComponents: 2399,
  verificationServiceIndicator: 2400,
} as const;

/** Claim keys of PSA_IOT_PROFILE_1. */
export const PSA_P1_CLAIM = {
  profile: -75000,
  clientId: -75001,
  lifecycle: -75002,
  implementationId: -75003,
  bootSeed: -75004,
  hardwareVersion: -75005,
  softwareComponents: -75006,
  noSoftwareMeasurements: -75007,
  nonce: -75008,
  instanceId: -75009,
  verificationServiceIndicator: -75010,
} as const;

/** Software component map keys. */
export const PSA_SWC = { measurementType: 1, measurementValue: 2, version: 4, signerId: 5, measurementDescription: 6 } as const;

export type PsaProfileKind = 'psa-2023' | 'psa-2.0.0' | 'psa-iot-1';

export type LifecycleState =
  | 'unknown'
  | 'assembly-and-test'
  | 'psa-rot-provisioning'
  | 'secured'
  | 'non-psa-rot-debug'
  | 'recoverable-psa-rot-debug'
  | 'decommissioned';

const LIFECYCLE_MAJOR: Record<number, LifecycleState> = {
  0x00: 'unknown',
  0x10: 'assembly-and-test',
  0x20: 'psa-rot-provisioning',
  0x30: 'secured',
  0x40: 'non-psa-rot-debug',
  0x50: 'recoverable-psa-rot-debug',
  0x60: 'decommissioned',
};

/** Map a security lifecycle value to its state, or undefined if it is in no defined range. */
export function lifecycleState(v: number): LifecycleState | undefined {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) return undefined;
  return LIFECYCLE_MAJOR[v >> 8];
}

/** Numeric lifecycle value for a state (minor 0). */
export const LIFECYCLE_VALUE: Record<LifecycleState, number> = {
  unknown: 0x0000,
  'assembly-and-test': 0x1000,
  'psa-rot-provisioning': 0x2000,
  secured: 0x3000,
  'non-psa-rot-debug': 0x4000,
  'recoverable-psa-rot-debug': 0x5000,
  decommissioned: 0x6000,
};

export interface PsaSoftwareComponent {
  measurementType?: string;
  measurementValue: Uint8Array;
  version?: string;
  signerId: Uint8Array;
  measurementDescription?: string;
}

export interface PsaClaims {
  /** The profile string (for an implicit PSA_IOT_PROFILE_1, that name). */
  profile: string;
  profileKind: PsaProfileKind;
  /** True when no profile claim was present (PSA_IOT_PROFILE_1 only). */
  profileImplicit: boolean;
  nonce: Uint8Array;
  instanceId: Uint8Array;
  implementationId: Uint8Array;
  clientId: number;
  lifecycle: number;
  lifecycleState: LifecycleState;
  bootSeed?: Uint8Array;
  certificationReference?: string;
  /** Empty only for a PSA_IOT_PROFILE_1 token with "no software measurements". */
  softwareComponents: PsaSoftwareComponent[];
  noSoftwareMeasurements?: boolean;
  verificationServiceIndicator?: string;
}

export type PsaFailureCode = 'not-a-map' | 'missing' | 'wrong-type' | 'wrong-size' | 'bad-value' | 'unknown-profile' | 'conflict';

export type PsaValidation =
  | { ok: true; claims: PsaClaims }
  | { ok: false; code: PsaFailureCode; claim: string; reason: string };

class ClaimError extends FieldbenchError<PsaFailureCode> {
  constructor(
    code: PsaFailureCode,
    readonly claim: string,
    message: string,
  ) {
    super(code, message);
  }
}

const HASH_SIZES = [32, 48, 64];
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const MAX_COMPONENTS = 64;
const MAX_TEXT = 1024;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `a ${v.length}-byte string`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'a map';
  if (v instanceof Tag) return `tag ${v.tag}`;
  if (typeof v === 'bigint') return 'a large integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a float';
  return `a ${typeof v}`;
}

function bytes(v: unknown, claim: string, sizes: number[] | [number, number], range = false): Uint8Array {
  if (Array.isArray(v) && claim === 'nonce') {
    throw new ClaimError('wrong-type', claim, 'nonce must be a single byte string; the array form is not allowed in PSA tokens');
  }
  if (!(v instanceof Uint8Array)) throw new ClaimError('wrong-type', claim, `${claim} must be a byte string, got ${describe(v)}`);
  const n = v.length;
  const ok = range ? n >= sizes[0] && n <= sizes[1] : sizes.includes(n);
  if (!ok) {
    const want = range ? `${sizes[0]}..${sizes[1]} bytes` : sizes.length === 1 ? `${sizes[0]} bytes` : `${sizes.join(', ')} bytes`;
    throw new ClaimError('wrong-size', claim, `${claim} is ${n} bytes, must be ${want}`);
  }
  return v;
}

function text(v: unknown, claim: string, nonEmpty = false): string {
  if (typeof v !== 'string') throw new ClaimError('wrong-type', claim, `${claim} must be a text string, got ${describe(v)}`);
  if (nonEmpty && v.length === 0) throw new ClaimError('bad-value', claim, `${claim} must not be empty`);
  if (v.length > MAX_TEXT) throw new ClaimError('wrong-size', claim, `${claim} is longer than ${MAX_TEXT} characters`);
  return v;
}

function int(v: unknown, claim: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new ClaimError('wrong-type', claim, `${claim} must be an integer, got ${describe(v)}`);
  }
  return v;
}

function need(m: Map<unknown, unknown>, key: number, claim: string): unknown {
  if (!m.has(key)) throw new ClaimError('missing', claim, `mandatory claim ${claim} (${key}) is missing`);
  return m.get(key);
}

function opt(m: Map<unknown, unknown>, key: number): unknown {
  return m.get(key);
}

function lifecycle(v: unknown): { value: number; state: LifecycleState } {
  const n = int(v, 'security-lifecycle');
  const state = lifecycleState(n);
  if (!state) {
    throw new ClaimError('bad-value', 'security-lifecycle', `security lifecycle 0x${n.toString(16)} is in no PSA lifecycle range (0xNN00..0xNNff, NN = 00,10,..,60)`);
  }
  return { value: n, state };
}

function components(v: unknown): PsaSoftwareComponent[] {
  const claim = 'software-components';
  if (!Array.isArray(v)) throw new ClaimError('wrong-type', claim, `${claim} must be an array, got ${describe(v)}`);
  if (v.length === 0) throw new ClaimError('wrong-size', claim, `${claim} must list at least one component`);
  if (v.length > MAX_COMPONENTS) throw new ClaimError('wrong-size', claim, `${claim} lists ${v.length} components, more than ${MAX_COMPONENTS}`);
  return v.map((c, i) => {
    const where = `${claim}[${i}]`;
    if (!(c instanceof Map)) throw new ClaimError('wrong-type', where, `${where} must be a map, got ${describe(c)}`);
    const mv = c.get(PSA_SWC.measurementValue);
    if (mv === undefined) throw new ClaimError('missing', `${where}.measurement-value`, `${where}: measurement value (2) is missing`);
    const sid = c.get(PSA_SWC.signerId);
    if (sid === undefined) throw new ClaimError('missing', `${where}.signer-id`, `${where}: signer id (5) is missing`);
    const out: PsaSoftwareComponent = {
      measurementValue: bytes(mv, `${where}.measurement-value`, HASH_SIZES),
      signerId: bytes(sid, `${where}.signer-id`, HASH_SIZES),
    };
    const mt = c.get(PSA_SWC.measurementType);
    if (mt !== undefined) out.measurementType = text(mt, `${where}.measurement-type`);
    const ver = c.get(PSA_SWC.version);
    if (ver !== undefined) out.version = text(ver, `${where}.version`);
    const desc = c.get(PSA_SWC.measurementDescription);
    if (desc !== undefined) out.measurementDescription = text(desc, `${where}.measurement-description`);
    return out;
  });
}

const EAN13_5 = /^[0-9]{13}-[0-9]{5}$/;
const EAN13 = /^[0-9]{13}$/;

function detectProfile(m: Map<unknown, unknown>): { kind: PsaProfileKind; profile: string; implicit: boolean } {
  if (m.has(PSA_CLAIM.profile)) {
    const p = text(m.get(PSA_CLAIM.profile), 'profile');
    if (p === PSA_PROFILE_2_0_0) return { kind: 'psa-2.0.0', profile: p, implicit: false };
    if (p.startsWith(PSA_PROFILE_2023_PREFIX) && p.length > PSA_PROFILE_2023_PREFIX.length) {
      return { kind: 'psa-2023', profile: p, implicit: false };
    }
    throw new ClaimError('unknown-profile', 'profile', `profile "${p}" is not a PSA profile (expected ${PSA_PROFILE_TFM}, another ${PSA_PROFILE_2023_PREFIX}<name>, or ${PSA_PROFILE_2_0_0})`);
  }
  if (m.has(PSA_P1_CLAIM.profile)) {
    const p = text(m.get(PSA_P1_CLAIM.profile), 'profile');
    if (p !== PSA_PROFILE_IOT_1) throw new ClaimError('unknown-profile', 'profile', `profile claim (-75000) is "${p}", expected ${PSA_PROFILE_IOT_1}`);
    return { kind: 'psa-iot-1', profile: p, implicit: false };
  }
  for (const k of m.keys()) {
    if (typeof k === 'number' && k <= PSA_P1_CLAIM.profile && k >= PSA_P1_CLAIM.verificationServiceIndicator) {
      return { kind: 'psa-iot-1', profile: PSA_PROFILE_IOT_1, implicit: true };
    }
  }
  throw new ClaimError('missing', 'profile', 'mandatory claim profile (265) is missing');
}

/** The mandatory claims every profile has under its own keys: nonce, instance, implementation and client ids. */
function identityClaims(m: Map<unknown, unknown>, K: typeof PSA_CLAIM | typeof PSA_P1_CLAIM) {
  const nonce = bytes(need(m, K.nonce, 'nonce'), 'nonce', HASH_SIZES);
  const instanceId = bytes(need(m, K.instanceId, 'instance-id'), 'instance-id', [33]);
  if (instanceId[0] !== 0x01) throw new ClaimError('bad-value', 'instance-id', `instance id must start with 0x01 (UEID type RAND), got 0x${instanceId[0].toString(16).padStart(2, '0')}`);
  const implementationId = bytes(need(m, K.implementationId, 'implementation-id'), 'implementation-id', [32]);
  const clientId = int(need(m, K.clientId, 'client-id'), 'client-id');
  if (clientId < INT32_MIN || clientId > INT32_MAX) throw new ClaimError('bad-value', 'client-id', `client id ${clientId} is outside the signed 32-bit range`);
  return { nonce, instanceId, implementationId, clientId };
}

function validateModern(m: Map<unknown, unknown>, kind: 'psa-2023' | 'psa-2.0.0', profile: string): PsaClaims {
  const K = PSA_CLAIM;
  const { nonce, instanceId, implementationId, clientId } = identityClaims(m, K);
  if (kind === 'psa-2023' && clientId === 0) throw new ClaimError('bad-value', 'client-id', 'client id 0 is not permitted (negative = NSPE caller, positive = SPE caller)');
  const lc = lifecycle(need(m, K.lifecycle, 'security-lifecycle'));
  const swc = components(need(m, K.softwareComponents, 'software-components'));
  const out: PsaClaims = {
    profile, profileKind: kind, profileImplicit: false, nonce, instanceId, implementationId, clientId,
    lifecycle: lc.value, lifecycleState: lc.state, softwareComponents: swc,
  };
  const seedKey = kind === 'psa-2023' ? K.bootSeed : K.bootSeedV2;
  const seed = opt(m, seedKey);
  if (seed !== undefined) out.bootSeed = bytes(seed, 'boot-seed', [8, 32], true);
  const cert = opt(m, K.certificationReference);
  if (cert !== undefined) {
    const c = text(cert, 'certification-reference');
    if (!EAN13_5.test(c) && !(kind === 'psa-2.0.0' && EAN13.test(c))) {
      throw new ClaimError('bad-value', 'certification-reference', `certification reference "${c}" must be 13 digits, a dash and 5 digits (EAN-13+5)`);
    }
    out.certificationReference = c;
  }
  const vsi = opt(m, K.verificationServiceIndicator);
  if (vsi !== undefined) out.verificationServiceIndicator = text(vsi, 'verification-service-indicator', true);
  return out;
}

function validateP1(m: Map<unknown, unknown>, profile: string, implicit: boolean): PsaClaims {
  const K = PSA_P1_CLAIM;
  const { nonce, instanceId, implementationId, clientId } = identityClaims(m, K);
  const lc = lifecycle(need(m, K.lifecycle, 'security-lifecycle'));
  const bootSeed = bytes(need(m, K.bootSeed, 'boot-seed'), 'boot-seed', [32]);
  const hasSw = m.has(K.softwareComponents);
  const hasNoSw = m.has(K.noSoftwareMeasurements);
  if (hasSw && hasNoSw) throw new ClaimError('conflict', 'software-components', 'software components (-75006) and "no software measurements" (-75007) must not both be present');
  if (!hasSw && !hasNoSw) throw new ClaimError('missing', 'software-components', 'either software components (-75006) or "no software measurements" (-75007) must be present');
  const out: PsaClaims = {
    profile, profileKind: 'psa-iot-1', profileImplicit: implicit, nonce, instanceId, implementationId, clientId,
    lifecycle: lc.value, lifecycleState: lc.state, bootSeed, softwareComponents: [],
  };
  if (hasSw) out.softwareComponents = components(m.get(K.softwareComponents));
  else {
    const v = int(m.get(K.noSoftwareMeasurements), 'no-software-measurements');
    if (v < 0) throw new ClaimError('bad-value', 'no-software-measurements', '"no software measurements" must be an unsigned integer');
    out.noSoftwareMeasurements = true;
  }
  const hw = opt(m, K.hardwareVersion);
  if (hw !== undefined) {
    const c = text(hw, 'certification-reference');
    if (!EAN13.test(c) && !EAN13_5.test(c)) throw new ClaimError('bad-value', 'certification-reference', `hardware version "${c}" must be an EAN-13 (optionally +5)`);
    out.certificationReference = c;
  }
  const vsi = opt(m, K.verificationServiceIndicator);
  if (vsi !== undefined) out.verificationServiceIndicator = text(vsi, 'verification-service-indicator', true);
  return out;
}

/** Validate a decoded PSA claims-set (a Map with integer keys). Never throws. */
export function validatePsaClaims(claims: unknown): PsaValidation {
  try {
    if (!(claims instanceof Map)) throw new ClaimError('not-a-map', 'claims', `a PSA claims-set must be a CBOR map, got ${describe(claims)}`);
    const p = detectProfile(claims);
    const c = p.kind === 'psa-iot-1' ? validateP1(claims, p.profile, p.implicit) : validateModern(claims, p.kind, p.profile);
    return { ok: true, claims: c };
  } catch (e) {
    if (e instanceof ClaimError) return { ok: false, code: e.code, claim: e.claim, reason: e.message };
    return { ok: false, code: 'bad-value', claim: 'claims', reason: `cannot read claims: ${(e as Error)?.message ?? String(e)}` };
  }
}

// ---------------------------------------------------------------- strict payload decoding

/** RFC 9783 section 5.1 requires definite maps, arrays and strings; claims nest at most 16 deep. */
const PSA_CBOR = { definiteOnly: true, maxDepth: 16 } as const;

/**
 * Decode a token payload into its claims-set: exactly one well-formed CBOR item,
 * definite lengths only, no duplicate map keys (a decoder would silently keep one).
 */
export function decodeClaimsPayload(payload: Uint8Array): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: decodeUnique(payload, PSA_CBOR) };
  } catch (e) {
    if (e instanceof CborTrailingBytesError) return { ok: false, reason: `${e.count} byte(s) after the claims-set` };
    return { ok: false, reason: `claims-set is not valid CBOR: ${(e as Error).message}` };
  }
}

// ---------------------------------------------------------------- whole tokens

export type PsaTokenKey = { kind: 'sign'; keys: CoseKey | CoseKey[] } | { kind: 'mac'; key: Uint8Array };

export type PsaTokenResult =
  | { ok: true; envelope: 'sign1' | 'mac0'; alg: number; claims: PsaClaims; raw: Map<unknown, unknown> }
  | { ok: false; stage: 'envelope' | 'claims'; code: CoseFailure | PsaFailureCode; claim?: string; reason: string };

/** Largest token accepted (TF-M tokens are under 1 KiB). */
export const PSA_MAX_TOKEN_BYTES = 4096;

/**
 * Verify a PSA token: a tagged COSE_Sign1 (18) checked with a public key or a
 * tagged COSE_Mac0 (17) checked with the HMAC key (RFC 9783 section 5.1
 * requires the tag), then validate its claims. Never throws.
 */
export async function verifyPsaToken(token: Uint8Array, key: PsaTokenKey, opts: { maxBytes?: number } = {}): Promise<PsaTokenResult> {
  const maxBytes = opts.maxBytes ?? PSA_MAX_TOKEN_BYTES;
  if (!(token instanceof Uint8Array) || token.length === 0) return { ok: false, stage: 'envelope', code: 'malformed', reason: 'empty token' };
  if (token.length > maxBytes) return { ok: false, stage: 'envelope', code: 'too-large', reason: `token is ${token.length} bytes, more than ${maxBytes}` };
  // first byte: 0xd2 = tag 18, 0xd1 = tag 17
  let envelope: 'sign1' | 'mac0';
  let payload: Uint8Array;
  let alg: number;
  if (token[0] === 0xd2) {
    if (key.kind !== 'sign') return { ok: false, stage: 'envelope', code: 'no-key', reason: 'token is a COSE_Sign1; a public key is needed, not an HMAC key' };
    const v = await verifySign1(token, key.keys, { maxBytes });
    if (!v.ok) return { ok: false, stage: 'envelope', code: v.code, reason: v.reason };
    envelope = 'sign1';
    payload = v.payload;
    alg = v.alg;
  } else if (token[0] === 0xd1) {
    if (key.kind !== 'mac') return { ok: false, stage: 'envelope', code: 'no-key', reason: 'token is a COSE_Mac0; the HMAC key is needed, not a public key' };
    const v = await verifyMac0(token, key.key, { maxBytes, requireTag: true });
    if (!v.ok) return { ok: false, stage: 'envelope', code: v.code, reason: v.reason };
    envelope = 'mac0';
    payload = v.payload;
    alg = v.alg;
  } else {
    return { ok: false, stage: 'envelope', code: 'malformed', reason: 'a PSA token must be a tagged COSE_Sign1 (18) or COSE_Mac0 (17)' };
  }
  const d = decodeClaimsPayload(payload);
  if (!d.ok) return { ok: false, stage: 'claims', code: 'not-a-map', reason: d.reason };
  const raw = d.value;
  const r = validatePsaClaims(raw);
  if (!r.ok) return { ok: false, stage: 'claims', code: r.code, claim: r.claim, reason: r.reason };
  return { ok: true, envelope, alg, claims: r.claims, raw: raw as Map<unknown, unknown> };
}

/**
 * fieldbench attestation token: an EAT (RFC 9711) in a tagged COSE_Sign1 signed
 * by the device's Ed25519 key (alg EdDSA, kid = keyId(devicePublicKey), protected
 * typ (16, RFC 9596) = "application/eat+cwt"), whose claims-set follows the PSA
 * baseline profile (RFC 9783) under the derived profile
 * "tag:psacertified.org,2023:psa#fieldbench", plus EAT claims and four
 * private-use claims. docs/ATTESTATION.md has the claim table and the rules.
 *
 * The appraisal (appraiseToken) is the Verifier of RFC 9334: it never says
 * 'trusted' unless the signature verified under the device key taken from the
 * verified identity certificate, the nonce is the one this verifier issued,
 * and every software component matches a reference value.
 *
 * One file (over 500 lines): the token's encoding and its appraisal share the
 * claim table; kept together, a claim is defined once.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeCbor, encodeDeterministic } from '../base/cbor.ts';
import { decodeSign1, signSign1, verifySign1, type CoseKey } from './cose.ts';
import { verifyMac0 } from './cose-mac0.ts';
import { ed25519PublicKey } from './ed25519.ts';
import { keyId } from './keys.ts';
import {
  LIFECYCLE_VALUE, PSA_CLAIM, PSA_SWC, decodeClaimsPayload, lifecycleState, validatePsaClaims,
  type LifecycleState, type PsaClaims, type PsaFailureCode,
} from './psa.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalBytes, toHex } from '../base/bytes.ts';

export const FIELDBENCH_PROFILE = 'tag:psacertified.org,2023:psa#fieldbench';
/** COSE header "typ" (RFC 9596) and the media type of a CWT-encoded EAT (RFC 9782). */
export const COSE_HDR_TYP = 16;
export const EAT_MEDIA_TYPE = 'application/eat+cwt';
/** Media types a token's typ may carry: EAT as CWT (RFC 9782) and the PSA token's own (RFC 9783 section 8.2). */
export const EAT_MEDIA_TYPES = [EAT_MEDIA_TYPE, 'application/psa-attestation-token', 'application/eat-cwt'] as const;
export const EAT_MAX_BYTES = 8192;

/** EAT claim keys (RFC 9711) used here, beyond the PSA ones. */
export const EAT_CLAIM = { iat: 6, hwmodel: 259, uptime: 261, dbgstat: 263, bootcount: 267 } as const;

/**
 * fieldbench private-use claims. CWT (RFC 8392 section 9.1) reserves integer keys
 * below -65536 for private use; -70001.. stays clear of PSA_IOT_PROFILE_1's -75000..-75010.
 */
export const FB_CLAIM = { configDigest: -70001, interfaces: -70002, failedAuthCount: -70003, securityCounter: -70004 } as const;

/** EAT dbgstat values (RFC 9711 section 4.2.9). */
export const DEBUG_STATUS = ['enabled', 'disabled', 'disabled-since-boot', 'disabled-permanently', 'disabled-fully-and-permanently'] as const;
export type DebugStatus = (typeof DEBUG_STATUS)[number];

/** State of a logical interface (-70002 values). */
export const INTERFACE_STATE = ['disabled', 'open', 'authenticated'] as const;
export type InterfaceState = (typeof INTERFACE_STATE)[number];

const MAX_INTERFACES = 32;
const MAX_UINT = Number.MAX_SAFE_INTEGER;

export class EatError extends FieldbenchError<PsaFailureCode> {
  constructor(code: PsaFailureCode, readonly claim: string, message: string) {
    super(code, message);
    this.name = 'EatError';
  }
}

/** What the device knows about itself when it answers an attestation request. */
export interface EatDeviceState {
  nonce: Uint8Array;
  devicePublicKey: Uint8Array;
  /** 32 bytes naming the hardware + immutable RoT design (PSA implementation id). */
  implementationId: Uint8Array;
  model: string;
  lifecycle: LifecycleState | number;
  /** PSA client id of the caller; default -1 (a non-secure caller: the SMP server). */
  clientId?: number;
  /** 8..32 random bytes chosen at boot. */
  bootSeed: Uint8Array;
  bootCount: number;
  uptimeSeconds: number;
  debugStatus: DebugStatus;
  softwareComponents: {
    measurementType: string;
    /** SHA-256 of the image (as the reference values list it). */
    measurementValue: Uint8Array;
    version: string;
    /** SHA-256 of the raw 32-byte Ed25519 public key that signed the image. */
    signerId: Uint8Array;
    measurementDescription?: string;
  }[];
  /** SHA-256 of the active signed configuration, if any. */
  configDigest?: Uint8Array;
  interfaces: Record<string, InterfaceState>;
  failedAuthCount: number;
  securityCounter: number;
  /** Seconds since the epoch, only when the device has a trustworthy clock. */
  issuedAt?: number;
  certificationReference?: string;
  verificationService?: string;
}

export interface EatClaims extends PsaClaims {
  model: string;
  debugStatus: DebugStatus;
  uptimeSeconds: number;
  bootCount: number;
  configDigest?: Uint8Array;
  interfaces: Record<string, InterfaceState>;
  failedAuthCount: number;
  securityCounter: number;
  issuedAt?: number;
}

/** PSA instance id (EAT ueid, type RAND) of a device: 0x01 || SHA-256(Ed25519 public key). */
export function instanceIdFor(devicePublicKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(33);
  out[0] = 0x01;
  out.set(sha256(devicePublicKey), 1);
  return out;
}

/** PSA signer id of an image signing key: SHA-256 of the raw public key (its first 8 bytes are keyId()). */
export function signerIdFor(signerPublicKey: Uint8Array): Uint8Array {
  return sha256(signerPublicKey);
}

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

/** The claims-set (a Map, integer keys) the device signs. Throws EatError if the state cannot make a valid token. */
export function buildEatClaims(state: EatDeviceState): Map<number, unknown> {
  const lc = typeof state.lifecycle === 'number' ? state.lifecycle : LIFECYCLE_VALUE[state.lifecycle];
  const dbg = DEBUG_STATUS.indexOf(state.debugStatus);
  if (dbg < 0) throw new EatError('bad-value', 'debug-status', `unknown debug status "${String(state.debugStatus)}"`);
  const ifaces = new Map<string, number>();
  for (const [name, st] of Object.entries(state.interfaces ?? {})) {
    const v = INTERFACE_STATE.indexOf(st);
    if (v < 0) throw new EatError('bad-value', 'interfaces', `interface ${name}: unknown state "${String(st)}"`);
    ifaces.set(name, v);
  }
  const m = new Map<number, unknown>([
    [PSA_CLAIM.nonce, state.nonce],
    [PSA_CLAIM.instanceId, instanceIdFor(state.devicePublicKey)],
    [PSA_CLAIM.profile, FIELDBENCH_PROFILE],
    [PSA_CLAIM.implementationId, state.implementationId],
    [PSA_CLAIM.clientId, state.clientId ?? -1],
    [PSA_CLAIM.lifecycle, lc],
    [PSA_CLAIM.bootSeed, state.bootSeed],
    [
      PSA_CLAIM.softwareComponents,
      state.softwareComponents.map((c) => {
        const cm = new Map<number, unknown>([
          [PSA_SWC.measurementType, c.measurementType],
          [PSA_SWC.measurementValue, c.measurementValue],
          [PSA_SWC.version, c.version],
          [PSA_SWC.signerId, c.signerId],
        ]);
        cm.set(PSA_SWC.measurementDescription, c.measurementDescription ?? 'sha-256');
        return cm;
      }),
    ],
    [EAT_CLAIM.hwmodel, te.encode(state.model)],
    [EAT_CLAIM.dbgstat, dbg],
    [EAT_CLAIM.uptime, state.uptimeSeconds],
    [EAT_CLAIM.bootcount, state.bootCount],
    [FB_CLAIM.interfaces, ifaces],
    [FB_CLAIM.failedAuthCount, state.failedAuthCount],
    [FB_CLAIM.securityCounter, state.securityCounter],
  ]);
  if (state.configDigest) m.set(FB_CLAIM.configDigest, state.configDigest);
  if (state.issuedAt !== undefined) m.set(EAT_CLAIM.iat, state.issuedAt);
  if (state.certificationReference !== undefined) m.set(PSA_CLAIM.certificationReference, state.certificationReference);
  if (state.verificationService !== undefined) m.set(PSA_CLAIM.verificationServiceIndicator, state.verificationService);
  const r = parseEatClaims(m);
  if (!r.ok) throw new EatError(r.code, r.claim, `cannot build attestation claims: ${r.reason}`);
  return m;
}

/** Build, encode (deterministic CBOR) and sign the token with the device's Ed25519 seed. */
export async function signEatToken(state: EatDeviceState, deviceSeed: Uint8Array): Promise<Uint8Array> {
  const claims = buildEatClaims(state);
  const pub = await ed25519PublicKey(deviceSeed);
  const same = pub.length === state.devicePublicKey.length && pub.every((x, i) => x === state.devicePublicKey[i]);
  if (!same) throw new EatError('bad-value', 'instance-id', 'devicePublicKey does not belong to the signing seed');
  return signSign1({
    payload: encodeDeterministic(claims),
    privateKey: deviceSeed,
    kid: keyId(pub),
    protectedExtra: new Map([[COSE_HDR_TYP, EAT_MEDIA_TYPE]]),
  });
}

// ---------------------------------------------------------------- claims parsing

export type EatParse = { ok: true; claims: EatClaims } | { ok: false; code: PsaFailureCode; claim: string; reason: string };

function uint(m: Map<unknown, unknown>, key: number, claim: string, required = true): number | undefined {
  if (!m.has(key)) {
    if (!required) return undefined;
    throw new EatError('missing', claim, `mandatory claim ${claim} (${key}) is missing`);
  }
  const v = m.get(key);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_UINT) {
    throw new EatError('wrong-type', claim, `${claim} must be an unsigned integer`);
  }
  return v;
}

/** Validate a fieldbench claims-set: the PSA rules plus the EAT and private claims. Never throws. */
export function parseEatClaims(raw: unknown): EatParse {
  const psa = validatePsaClaims(raw);
  if (!psa.ok) return psa;
  const m = raw as Map<unknown, unknown>;
  try {
    if (psa.claims.profile !== FIELDBENCH_PROFILE) {
      throw new EatError('unknown-profile', 'profile', `profile is "${psa.claims.profile}", not ${FIELDBENCH_PROFILE}`);
    }
    if (!m.has(EAT_CLAIM.hwmodel)) throw new EatError('missing', 'hwmodel', 'mandatory claim hwmodel (259) is missing');
    const hw = m.get(EAT_CLAIM.hwmodel);
    if (!(hw instanceof Uint8Array)) throw new EatError('wrong-type', 'hwmodel', 'hwmodel must be a byte string');
    if (hw.length < 1 || hw.length > 32) throw new EatError('wrong-size', 'hwmodel', `hwmodel is ${hw.length} bytes, must be 1..32`);
    let model: string;
    try {
      model = td.decode(hw);
    } catch {
      throw new EatError('bad-value', 'hwmodel', 'hwmodel must hold the model name in UTF-8');
    }
    const dbg = uint(m, EAT_CLAIM.dbgstat, 'debug-status')!;
    if (dbg >= DEBUG_STATUS.length) throw new EatError('bad-value', 'debug-status', `dbgstat ${dbg} is not defined (0..4)`);
    const uptimeSeconds = uint(m, EAT_CLAIM.uptime, 'uptime')!;
    const bootCount = uint(m, EAT_CLAIM.bootcount, 'boot-count')!;
    const failedAuthCount = uint(m, FB_CLAIM.failedAuthCount, 'failed-auth-count')!;
    const securityCounter = uint(m, FB_CLAIM.securityCounter, 'security-counter')!;
    const issuedAt = uint(m, EAT_CLAIM.iat, 'iat', false);
    if (!psa.claims.bootSeed) throw new EatError('missing', 'boot-seed', 'mandatory claim boot-seed (268) is missing');
    if (!m.has(FB_CLAIM.interfaces)) throw new EatError('missing', 'interfaces', 'mandatory claim interfaces (-70002) is missing');
    const im = m.get(FB_CLAIM.interfaces);
    if (!(im instanceof Map)) throw new EatError('wrong-type', 'interfaces', 'interfaces must be a map of name to state');
    if (im.size > MAX_INTERFACES) throw new EatError('wrong-size', 'interfaces', `more than ${MAX_INTERFACES} interfaces`);
    const interfaces: Record<string, InterfaceState> = {};
    for (const [k, v] of im) {
      if (typeof k !== 'string' || k.length < 1 || k.length > 32) throw new EatError('wrong-type', 'interfaces', 'interface names must be text of 1..32 characters');
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= INTERFACE_STATE.length) {
        throw new EatError('bad-value', 'interfaces', `interface ${k}: state must be 0 (disabled), 1 (open) or 2 (authenticated)`);
      }
      interfaces[k] = INTERFACE_STATE[v];
    }
    const claims: EatClaims = {
      ...psa.claims, model, debugStatus: DEBUG_STATUS[dbg], uptimeSeconds, bootCount, interfaces, failedAuthCount, securityCounter,
    };
    if (issuedAt !== undefined) claims.issuedAt = issuedAt;
    if (m.has(FB_CLAIM.configDigest)) {
      const d = m.get(FB_CLAIM.configDigest);
      if (!(d instanceof Uint8Array)) throw new EatError('wrong-type', 'config-digest', 'config digest must be a byte string');
      if (d.length !== 32) throw new EatError('wrong-size', 'config-digest', `config digest is ${d.length} bytes, must be 32 (SHA-256)`);
      claims.configDigest = d;
    }
    for (const [i, c] of claims.softwareComponents.entries()) {
      if (c.measurementValue.length !== 32) throw new EatError('wrong-size', `software-components[${i}].measurement-value`, 'fieldbench measurements are SHA-256 (32 bytes)');
      if (c.signerId.length !== 32) throw new EatError('wrong-size', `software-components[${i}].signer-id`, 'fieldbench signer ids are SHA-256 of the key (32 bytes)');
      if (c.version === undefined) throw new EatError('missing', `software-components[${i}].version`, 'fieldbench components carry their version');
    }
    return { ok: true, claims };
  } catch (e) {
    if (e instanceof EatError) return { ok: false, code: e.code, claim: e.claim, reason: e.message };
    return { ok: false, code: 'bad-value', claim: 'claims', reason: String(e) };
  }
}

// ---------------------------------------------------------------- appraisal

export interface ReferenceMeasurement {
  /** SHA-256 of the image, hex. */
  sha256: string;
  version: string;
  model: string;
  /** Signer key id (8 bytes, hex) or full signer id (32 bytes, hex). */
  signerId?: string;
  /** The image's security counter; a device counter below it still allows rollback. */
  securityCounter?: number;
}

export interface AppraisalContext {
  /** From the verified identity certificate: Ed25519 bytes, or a COSE key (P-256 for foreign PSA tokens). */
  devicePublicKey: Uint8Array | CoseKey | undefined;
  /** The nonce this verifier sent; absent = freshness not checked (a warning). */
  expectedNonce?: Uint8Array;
  referenceMeasurements: ReferenceMeasurement[];
  /** Revoked key ids / signer ids, lowercase hex. */
  revokedKeyIds: Set<string>;
  /** Date or milliseconds since the epoch. */
  now?: Date | number;
  /** Failed authentications at or above this are a warning; default 5. */
  maxFailedAuth?: number;
  /** iat older than this is a warning; default 600 s. */
  maxAgeSeconds?: number;
  /** Largest token accepted; default EAT_MAX_BYTES. */
  maxBytes?: number;
  /** The symmetric attestation key, for tokens in a COSE_Mac0 (RFC 9783 section 5.2). */
  macKey?: Uint8Array;
  /**
   * Which profiles may be appraised: 'fieldbench' (our own EAT only: what a fieldbench device
   * must send; the default for an Ed25519 device key) or 'any' (also standard PSA tokens of
   * RFC 9783 and its predecessors, EdDSA, ES256 or HMAC; the default for other keys).
   */
  profiles?: 'fieldbench' | 'any';
  /** SHA-256 (hex) of the signed configurations the owner published (trust bundle); enables the configuration check. */
  publishedConfigs?: Set<string>;
}

export type AppraisalCheck =
  | 'format' | 'signature' | 'claims' | 'profile' | 'nonce' | 'instance-id' | 'issued-at' | 'lifecycle' | 'debug'
  | 'measurements' | 'revocation' | 'security-counter' | 'configuration' | 'interfaces' | 'auth-failures';

export interface AppraisalReason {
  check: AppraisalCheck;
  result: 'pass' | 'warn' | 'fail';
  detail: string;
}

export type Verdict = 'trusted' | 'warning' | 'untrusted';

export interface Appraisal {
  verdict: Verdict;
  reasons: AppraisalReason[];
  /** Only set when the signature verified; EatClaims for fieldbench tokens, PsaClaims for others. */
  claims: EatClaims | PsaClaims | null;
  /** Which profile was appraised (set once the claims were read): the token's profile string, ours or a standard PSA one, and the envelope. */
  appraised?: { profile: string; kind: 'fieldbench' | 'psa'; envelope: 'sign1' | 'mac0' };
}

/** Lifecycle appraisal (RFC 9783 section 4.3.1 states). */
export const LIFECYCLE_RESULT: Record<LifecycleState, ['pass' | 'warn' | 'fail', string]> = {
  secured: ['pass', 'secured'],
  'non-psa-rot-debug': ['fail', 'non-PSA-RoT debug is open: the application firmware can be inspected and altered by a debugger'],
  'recoverable-psa-rot-debug': ['fail', 'PSA RoT debug is open: the root of trust itself, and so this token, cannot be relied on'],
  decommissioned: ['fail', 'decommissioned: the device has been retired'],
  'psa-rot-provisioning': ['fail', 'PSA RoT provisioning: the device has not been locked (secured) yet'],
  'assembly-and-test': ['fail', 'assembly and test: factory state, not a deployed device'],
  unknown: ['fail', 'unknown lifecycle state (0x00xx), which must not occur'],
};

/** dbgstat appraisal. */
export const DEBUG_RESULT: Record<DebugStatus, ['pass' | 'warn' | 'fail', string]> = {
  enabled: ['fail', 'debug is enabled: memory, keys and code are open to a debugger'],
  disabled: ['warn', 'debug is disabled now but was or can be enabled since boot'],
  'disabled-since-boot': ['pass', 'debug disabled since boot'],
  'disabled-permanently': ['pass', 'debug disabled permanently'],
  'disabled-fully-and-permanently': ['pass', 'debug disabled fully and permanently'],
};

function verdictOf(reasons: AppraisalReason[]): Verdict {
  if (reasons.some((r) => r.result === 'fail')) return 'untrusted';
  if (reasons.some((r) => r.result === 'warn')) return 'warning';
  return 'trusted';
}

function nowSeconds(now: Date | number | undefined): number {
  const ms = now === undefined ? Date.now() : now instanceof Date ? now.getTime() : now;
  return Math.floor(ms / 1000);
}

function toCoseKey(k: AppraisalContext['devicePublicKey']): CoseKey | string {
  if (k === undefined || k === null) return 'no device public key: take it from the verified identity certificate';
  if (k instanceof Uint8Array) {
    if (k.length !== 32) return `device public key must be a 32-byte Ed25519 key, got ${k.length} bytes`;
    return { kty: 'OKP', crv: 'Ed25519', x: k, kid: keyId(k) };
  }
  if (typeof k === 'object' && (k.kty === 'OKP' || k.kty === 'EC2')) return k;
  return 'device public key is not an Ed25519 or P-256 key';
}

/**
 * Appraise an attestation token. Never throws. Verdict: 'untrusted' if any check
 * fails, 'warning' if any warns, else 'trusted'; a token whose signature does
 * not verify (or cannot be verified) is 'untrusted' and its claims are not returned.
 */
export async function appraiseToken(tokenBytes: Uint8Array, ctx: AppraisalContext): Promise<Appraisal> {
  const reasons: AppraisalReason[] = [];
  const add = (check: AppraisalCheck, result: AppraisalReason['result'], detail: string) => reasons.push({ check, result, detail });
  let appraised: Appraisal['appraised'];
  const stop = (): Appraisal => ({ verdict: 'untrusted', reasons, claims: null });
  try {
    const maxBytes = ctx.maxBytes ?? EAT_MAX_BYTES;
    if (!(tokenBytes instanceof Uint8Array) || tokenBytes.length === 0) {
      add('format', 'fail', 'empty token');
      return stop();
    }
    if (tokenBytes.length > maxBytes) {
      add('format', 'fail', `token is ${tokenBytes.length} bytes, more than the ${maxBytes}-byte limit`);
      return stop();
    }
    // the envelope: a tagged COSE_Sign1 (18) under the device's public key, or a tagged
    // COSE_Mac0 (17) under its symmetric attestation key (RFC 9783 section 5)
    let payload: Uint8Array;
    let protectedHdr: Map<unknown, unknown>;
    let signingKid: Uint8Array | undefined;
    let key: CoseKey | undefined;
    let envelope: 'sign1' | 'mac0';
    if (tokenBytes[0] === 0xd1) {
      envelope = 'mac0';
      if (!ctx.macKey) {
        add('signature', 'fail', 'the token is a COSE_Mac0: it can only be checked with the device\'s symmetric attestation key (HMAC key)');
        return stop();
      }
      const m = await verifyMac0(tokenBytes, ctx.macKey, { maxBytes, requireTag: true });
      if (!m.ok) {
        add('signature', 'fail', `${m.code}: ${m.reason}`);
        return stop();
      }
      payload = m.payload;
      protectedHdr = m.message.protected;
      signingKid = m.kid;
      add('signature', 'pass', `HMAC (COSE alg ${m.alg}) verified with the symmetric attestation key`);
    } else {
      envelope = 'sign1';
      const k = toCoseKey(ctx.devicePublicKey);
      if (typeof k === 'string') {
        add('signature', 'fail', `cannot verify the signature: ${k}`);
        return stop();
      }
      key = k;
      const v = await verifySign1(tokenBytes, key, { maxBytes });
      if (!v.ok) {
        add('signature', 'fail', `${v.code}: ${v.reason}`);
        return stop();
      }
      if (!v.message.tagged) {
        add('format', 'fail', 'attestation tokens must be tagged COSE_Sign1 (CBOR tag 18)');
        return stop();
      }
      payload = v.payload;
      protectedHdr = v.message.protected;
      signingKid = v.kid;
      add('signature', 'pass', `${v.alg === -7 ? 'ES256' : 'EdDSA'} signature verified with device key ${key.kty === 'OKP' ? toHex(keyId(key.x)) : '(P-256)'}`);
    }
    // typ is optional (RFC 9783 does not require it); when present it must say EAT
    const typ = protectedHdr.get(COSE_HDR_TYP);
    if (typ !== undefined && !EAT_MEDIA_TYPES.some((t) => typ === t || (typeof typ === 'string' && typ.startsWith(`${t};`)))) {
      add('format', 'fail', `protected typ (16) is ${JSON.stringify(typ)}, not an attestation token media type (${EAT_MEDIA_TYPE})`);
      return finish();
    }
    const d = decodeClaimsPayload(payload);
    if (!d.ok) {
      add('claims', 'fail', d.reason);
      return finish();
    }
    const raw = d.value;
    if (!(raw instanceof Map)) {
      add('claims', 'fail', 'the claims-set is not a CBOR map');
      return finish();
    }
    // which profile: our own (fieldbench, EdDSA under the identity key) or a standard PSA one
    const declared = raw.get(PSA_CLAIM.profile);
    const isOurs = declared === FIELDBENCH_PROFILE;
    const profiles = ctx.profiles ?? (key?.kty === 'OKP' ? 'fieldbench' : 'any');
    if (!isOurs && profiles === 'fieldbench') {
      add('profile', 'fail', `profile is ${declared === undefined ? 'missing' : JSON.stringify(declared)}; a fieldbench device attests with "${FIELDBENCH_PROFILE}"`);
      return finish();
    }
    if (isOurs && (envelope !== 'sign1' || key?.kty !== 'OKP')) {
      add('profile', 'fail', `the ${FIELDBENCH_PROFILE} profile is signed with the device's Ed25519 identity key, not ${envelope === 'mac0' ? 'a MAC' : 'a P-256 key'}`);
      return finish();
    }
    let claims: EatClaims | PsaClaims;
    if (isOurs) {
      const p = parseEatClaims(raw);
      if (!p.ok) {
        add(p.code === 'unknown-profile' ? 'profile' : 'claims', 'fail', `${p.claim}: ${p.reason}`);
        return finish();
      }
      claims = p.claims;
    } else {
      const p = validatePsaClaims(raw);
      if (!p.ok) {
        add(p.code === 'unknown-profile' ? 'profile' : 'claims', 'fail', `${p.claim}: ${p.reason}`);
        return finish();
      }
      claims = p.claims;
    }
    appraised = { profile: claims.profile, kind: isOurs ? 'fieldbench' : 'psa', envelope };
    add('claims', 'pass', `claims are complete and well-formed (token profile ${claims.profile})`);
    const eat = isOurs ? (claims as EatClaims) : undefined;
    const result: Appraisal = { verdict: 'untrusted', reasons, claims, appraised };

    // freshness
    if (ctx.expectedNonce === undefined) {
      add('nonce', 'warn', 'freshness not checked: no expected nonce was given, so this may be a replayed token');
    } else if (equalBytes(ctx.expectedNonce, claims.nonce)) {
      add('nonce', 'pass', 'nonce matches the challenge');
    } else {
      add('nonce', 'fail', 'nonce does not match the challenge: stale or replayed token');
    }

    // the token speaks for the key that signed it
    if (isOurs && key?.kty === 'OKP') {
      if (equalBytes(claims.instanceId, instanceIdFor(key.x))) add('instance-id', 'pass', 'instance id is derived from the device key');
      else add('instance-id', 'fail', 'instance id is not 0x01 || SHA-256(device key): the token describes another device');
    }

    if (eat?.issuedAt !== undefined) {
      const now = nowSeconds(ctx.now);
      const maxAge = ctx.maxAgeSeconds ?? 600;
      if (eat.issuedAt > now + 300) add('issued-at', 'fail', `issued ${eat.issuedAt - now} s in the future`);
      else if (now - eat.issuedAt > maxAge) add('issued-at', 'warn', `issued ${now - eat.issuedAt} s ago, older than ${maxAge} s`);
      else add('issued-at', 'pass', 'issued recently');
    }

    const lcState = lifecycleState(claims.lifecycle)!;
    const [lr, ld] = LIFECYCLE_RESULT[lcState];
    add('lifecycle', lr, `${ld} (PSA lifecycle 0x${claims.lifecycle.toString(16).padStart(4, '0')})`);

    if (eat) {
      const [dr, dd] = DEBUG_RESULT[eat.debugStatus];
      add('debug', dr, dd);
    }

    appraiseMeasurements(claims, eat, ctx, add);

    // revocation
    const revoked: string[] = [];
    const rev = ctx.revokedKeyIds ?? new Set<string>();
    if (isOurs && key?.kty === 'OKP') {
      const kid = toHex(keyId(key.x));
      if (rev.has(kid)) revoked.push(`device key ${kid}`);
    }
    if (signingKid && rev.has(toHex(signingKid)) && !revoked.length) revoked.push(`signing key ${toHex(signingKid)}`);
    for (const c of claims.softwareComponents) {
      const full = toHex(c.signerId);
      if (rev.has(full) || rev.has(full.slice(0, 16))) revoked.push(`firmware signer ${full.slice(0, 16)} (${c.measurementType ?? 'component'})`);
    }
    if (revoked.length) add('revocation', 'fail', `revoked: ${revoked.join(', ')}`);
    else add('revocation', 'pass', 'no revoked key is involved');

    if (eat && ctx.publishedConfigs) {
      if (!eat.configDigest) add('configuration', 'pass', 'no signed configuration is active');
      else if (ctx.publishedConfigs.has(toHex(eat.configDigest))) add('configuration', 'pass', 'active configuration is one the owner published');
      else add('configuration', 'warn', `active configuration ${toHex(eat.configDigest).slice(0, 16)}… is not among the published configurations`);
    }
    if (eat) {
      const open = Object.entries(eat.interfaces).filter(([, s]) => s === 'open').map(([n]) => n);
      if (open.length) add('interfaces', 'warn', `interface${open.length > 1 ? 's' : ''} open without authentication: ${open.join(', ')}`);
      else add('interfaces', 'pass', `${Object.keys(eat.interfaces).length} interfaces disabled or authenticated`);
      const maxFail = ctx.maxFailedAuth ?? 5;
      if (eat.failedAuthCount >= maxFail) add('auth-failures', 'warn', `${eat.failedAuthCount} failed authentication attempts (threshold ${maxFail})`);
      else add('auth-failures', 'pass', `${eat.failedAuthCount} failed authentication attempts`);
    }
    result.verdict = verdictOf(reasons);
    return result;
  } catch (e) {
    add('format', 'fail', `appraisal error: ${(e as Error)?.message ?? String(e)}`);
    return stop();
  }

  function finish(): Appraisal {
    return { verdict: 'untrusted', reasons, claims: null, appraised };
  }
}

function appraiseMeasurements(
  claims: PsaClaims,
  eat: EatClaims | undefined,
  ctx: AppraisalContext,
  add: (check: AppraisalCheck, result: AppraisalReason['result'], detail: string) => void,
): void {
  const refs = ctx.referenceMeasurements ?? [];
  if (claims.softwareComponents.length === 0) {
    add('measurements', 'fail', 'the token reports no software measurements');
    return;
  }
  if (refs.length === 0) {
    add('measurements', 'fail', 'no reference measurements supplied (trust bundle): firmware cannot be appraised');
    return;
  }
  const problems: string[] = [];
  let counterLow: string | undefined;
  for (const c of claims.softwareComponents) {
    const h = toHex(c.measurementValue);
    const name = `${c.measurementType ?? 'component'} ${c.version ?? ''}`.trim();
    const byHash = refs.filter((r) => r.sha256.toLowerCase() === h);
    if (byHash.length === 0) {
      problems.push(`${name}: measurement ${h.slice(0, 16)}… is not a known firmware`);
      continue;
    }
    const byModel = eat ? byHash.filter((r) => r.model === eat.model) : byHash;
    if (byModel.length === 0) {
      problems.push(`${name}: firmware ${h.slice(0, 16)}… is released for ${byHash.map((r) => r.model).join(', ')}, not for ${eat!.model}`);
      continue;
    }
    const ref = byModel.find((r) => c.version === undefined || r.version === c.version);
    if (!ref) {
      problems.push(`${name}: measurement is version ${byModel.map((r) => r.version).join(', ')} in the reference values, but the token says ${c.version}`);
      continue;
    }
    if (ref.signerId) {
      const want = ref.signerId.toLowerCase();
      const got = toHex(c.signerId);
      if (!(want.length === 16 ? got.startsWith(want) : got === want)) {
        problems.push(`${name}: signed by ${got.slice(0, 16)}, the reference says ${want.slice(0, 16)}`);
        continue;
      }
    }
    if (eat && ref.securityCounter !== undefined && eat.securityCounter < ref.securityCounter) {
      counterLow = `device security counter ${eat.securityCounter} is below ${name}'s ${ref.securityCounter}: rollback to older firmware is still possible`;
    }
  }
  if (problems.length) add('measurements', 'fail', problems.join('; '));
  else add('measurements', 'pass', `${claims.softwareComponents.length === 1 ? 'the firmware matches its' : `all ${claims.softwareComponents.length} firmware components match their`} reference values${eat ? ` for ${eat.model}` : ''}`);
  if (eat) {
    if (counterLow) add('security-counter', 'warn', counterLow);
    else add('security-counter', 'pass', `security counter ${eat.securityCounter}`);
  }
}

/** JSON-friendly rendering of claims (bytes as hex) for the CLI and logs. */
export function claimsToJson(claims: EatClaims | PsaClaims): Record<string, unknown> {
  const conv = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return toHex(v);
    if (Array.isArray(v)) return v.map(conv);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, conv(x)]));
    return v;
  };
  return conv(claims) as Record<string, unknown>;
}

/** Read the kid and claims of a token WITHOUT verifying it (for diagnostics only). */
export function peekToken(tokenBytes: Uint8Array): { kid?: Uint8Array; alg?: unknown; claims?: unknown } {
  const m = decodeSign1(tokenBytes, { maxBytes: EAT_MAX_BYTES });
  let claims: unknown;
  try {
    claims = m.payload ? decodeCbor(m.payload) : undefined;
  } catch {
    claims = undefined;
  }
  const kid = (m.protected.get(4) ?? m.unprotected.get(4)) as Uint8Array | undefined;
  return { kid, alg: m.protected.get(1), claims };
}

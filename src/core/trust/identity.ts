/**
 * Device identity certificate (manufacturer-signed): binds a device's serial,
 * model, hardware revision and logical ids to its Ed25519 identity key
 * (`devicePublicKey`, used to authenticate the device) and its X25519 key
 * (`deviceEncKey`, used to seal secrets to the device, see seal.ts).
 */
import { keyId } from './keys.ts';
import {
  ARTIFACT_NAMES, checkValidityFields, checkWindow, Fields, issueArtifact, issuedFields, openBundleArtifact, randomBytes, unverifiedPayload, type Clock, type Validity,
} from './artifact.ts';
import type { HeldBundleContext, TrustBundle } from './bundle.ts';
import type { Signer } from './signer.ts';
import type { TrustResult } from './result.ts';
import { containsBytes, equalBytes, toHex } from '../base/bytes.ts';

export interface DeviceIdentityCert extends Validity {
  /** Certificate serial number (random, revocable via bundle.revocations.certSerials). */
  certSerial: Uint8Array;
  serial: string;
  model: string;
  hwRev: string;
  /** Universal Entity ID (RFC 9711), 7..33 bytes. */
  ueid?: Uint8Array;
  /** MAC address, EUI-48 (6 bytes) or EUI-64 (8 bytes). */
  mac?: Uint8Array;
  /** LoRaWAN DevEUI, 8 bytes. */
  devEui?: Uint8Array;
  /** Ed25519 public key, 32 bytes. */
  devicePublicKey: Uint8Array;
  /** X25519 public key, 32 bytes. */
  deviceEncKey: Uint8Array;
  /** Key id of the manufacturer key that signed the certificate. */
  issuer: Uint8Array;
}

export type IdentityInput = Omit<DeviceIdentityCert, 'certSerial' | 'issuer' | 'notBefore' | 'notAfter'> & {
  certSerial?: Uint8Array;
  notBefore?: Date | number;
  notAfter: Date | number;
};

const KEYS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

function encodePayload(c: DeviceIdentityCert): Map<number, unknown> {
  return new Map<number, unknown>([
    [1, c.certSerial], [2, c.serial], [3, c.model], [4, c.hwRev], [5, c.ueid], [6, c.mac], [7, c.devEui],
    [8, c.devicePublicKey], [9, c.deviceEncKey], [10, c.notBefore], [11, c.notAfter], [12, c.issuer],
  ]);
}

function parsePayloadMap(m: Map<unknown, unknown>): DeviceIdentityCert {
  const f = new Fields(m, KEYS, 'identity');
  const mac = f.bstr(6, 'mac', { min: 6, max: 8, optional: true });
  if (mac && mac.length === 7) throw new Error('identity.mac: must be 6 (EUI-48) or 8 (EUI-64) bytes');
  const c: DeviceIdentityCert = {
    certSerial: f.bstr(1, 'certSerial', { min: 8, max: 20 })!,
    serial: f.tstr(2, 'serial', { max: 64 })!,
    model: f.tstr(3, 'model', { max: 64 })!,
    hwRev: f.tstr(4, 'hwRev', { max: 32 })!,
    ueid: f.bstr(5, 'ueid', { min: 7, max: 33, optional: true }),
    mac,
    devEui: f.bstr(7, 'devEui', { min: 8, max: 8, optional: true }),
    devicePublicKey: f.bstr(8, 'devicePublicKey', { min: 32, max: 32 })!,
    deviceEncKey: f.bstr(9, 'deviceEncKey', { min: 32, max: 32 })!,
    notBefore: f.uint(10, 'notBefore')!,
    notAfter: f.uint(11, 'notAfter')!,
    issuer: f.bstr(12, 'issuer', { min: 8, max: 8 })!,
  };
  checkValidityFields(c, 'identity');
  if (c.ueid === undefined) delete c.ueid;
  if (c.mac === undefined) delete c.mac;
  if (c.devEui === undefined) delete c.devEui;
  return c;
}

/** Issue (sign) a device identity certificate with the manufacturer key: a Signer (HSM, key file) or an Ed25519 seed. */
export async function issueIdentity(input: IdentityInput, manufacturerSeed: Uint8Array | Signer): Promise<Uint8Array> {
  const c: DeviceIdentityCert = {
    ...input,
    certSerial: input.certSerial ?? randomBytes(16),
    ...(await issuedFields(input, manufacturerSeed)),
  };
  return issueArtifact('identity', encodePayload(c), parsePayloadMap, manufacturerSeed);
}

export interface IdentityContext extends HeldBundleContext {
  /** What the device presented: the certificate must name exactly these. */
  expect?: { devicePublicKey?: Uint8Array; serial?: string };
}

/** Verify a device identity certificate against the manufacturer anchors of a verified trust bundle. Never throws. */
export async function verifyIdentity(bytes: Uint8Array, ctx: IdentityContext): Promise<TrustResult<DeviceIdentityCert>> {
  const name = ARTIFACT_NAMES.identity;
  const env = await openBundleArtifact(bytes, 'identity', ctx.bundle, parsePayloadMap);
  if (!env.ok) return env;
  const c = env.value;
  if (containsBytes(ctx.bundle.revocations.certSerials, c.certSerial)) {
    return { ok: false, code: 'revoked', reason: `${name} ${toHex(c.certSerial)} (device ${c.serial}) is revoked` };
  }
  const devKid = keyId(c.devicePublicKey);
  if (containsBytes(ctx.bundle.revocations.keyIds, devKid)) {
    return { ok: false, code: 'revoked', reason: `device key ${toHex(devKid)} of device ${c.serial} is revoked` };
  }
  const w = checkWindow(c, ctx.now, `${name} of device ${c.serial}`);
  if (w) return { ok: false, ...w };
  if (ctx.expect?.devicePublicKey && !equalBytes(ctx.expect.devicePublicKey, c.devicePublicKey)) {
    return { ok: false, code: 'key-mismatch', reason: `the device's key ${toHex(keyId(ctx.expect.devicePublicKey))} is not the key ${toHex(devKid)} in its ${name}` };
  }
  if (ctx.expect?.serial !== undefined && ctx.expect.serial !== c.serial) {
    return { ok: false, code: 'wrong-target', reason: `the device reports serial ${JSON.stringify(ctx.expect.serial)}, the ${name} is for ${JSON.stringify(c.serial)}` };
  }
  return { ok: true, value: c, signer: env.signer };
}

/** Chain helper for the identify op: certificate -> manufacturer anchor in the verified bundle. */
export function verifyIdentityCert(bytes: Uint8Array, bundle: TrustBundle, now?: Clock, expect?: IdentityContext['expect']): Promise<TrustResult<DeviceIdentityCert>> {
  return verifyIdentity(bytes, { bundle, now, expect });
}

/** Key id (COSE kid) of the device identity key. */
export function deviceKeyId(cert: Pick<DeviceIdentityCert, 'devicePublicKey'>): Uint8Array {
  return keyId(cert.devicePublicKey);
}

/** Decode WITHOUT verifying the signature (display only). Throws on malformed input. */
export function decodeIdentityUnverified(bytes: Uint8Array): DeviceIdentityCert {
  return parsePayloadMap(unverifiedPayload(bytes, 'identity'));
}

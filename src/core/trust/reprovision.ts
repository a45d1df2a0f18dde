/**
 * Re-provisioning authorization (owner-signed, device-bound): lets a station
 * give an already provisioned device a new identity. It names the device by
 * its CURRENT identity key and its chip UID, so it opens exactly one device,
 * and only once: re-provisioning replaces that key, after which the
 * authorization names a key the device no longer has.
 */
import {
  ARTIFACT_NAMES, checkValidityFields, checkWindow, Fields, issueArtifact, issuedFields, openOwnerArtifact, randomBytes, unverifiedPayload, type Clock, type Validity,
} from './artifact.ts';
import { equalBytes as bytesEqual, toHex as hex } from '../base/bytes.ts';
import { keyId } from './keys.ts';
import type { TrustResult } from './result.ts';
import type { Signer } from './signer.ts';

export interface ReprovisionAuthorization extends Validity {
  /** Random id, for the audit trail. */
  authorizationId: Uint8Array;
  /** The device's current Ed25519 identity key. */
  devicePublicKey: Uint8Array;
  /** The device's chip UID (hardware id, never changes). */
  chipUid: Uint8Array;
  /** Why (shown in the device's event log and the station's record). */
  reason: string;
  issuer: Uint8Array;
}

export type ReprovisionInput = Omit<ReprovisionAuthorization, 'authorizationId' | 'issuer' | 'notBefore' | 'notAfter'> & {
  notBefore?: Date | number;
  notAfter: Date | number;
};

const KEYS = [1, 2, 3, 4, 5, 6, 7];

function encodePayload(a: ReprovisionAuthorization): Map<number, unknown> {
  return new Map<number, unknown>([
    [1, a.authorizationId], [2, a.devicePublicKey], [3, a.chipUid], [4, a.reason], [5, a.notBefore], [6, a.notAfter], [7, a.issuer],
  ]);
}

function parsePayloadMap(m: Map<unknown, unknown>): ReprovisionAuthorization {
  const f = new Fields(m, KEYS, 'reprovision');
  const a: ReprovisionAuthorization = {
    authorizationId: f.bstr(1, 'authorizationId', { min: 8, max: 32 })!,
    devicePublicKey: f.bstr(2, 'devicePublicKey', { min: 32, max: 32 })!,
    chipUid: f.bstr(3, 'chipUid', { min: 4, max: 32 })!,
    reason: f.tstr(4, 'reason', { max: 128 })!,
    notBefore: f.uint(5, 'notBefore')!,
    notAfter: f.uint(6, 'notAfter')!,
    issuer: f.bstr(7, 'issuer', { min: 8, max: 8 })!,
  };
  checkValidityFields(a, 'reprovision');
  return a;
}

/** Sign a re-provisioning authorization with the owner key (a seed or a Signer). */
export async function issueReprovision(input: ReprovisionInput, owner: Uint8Array | Signer): Promise<Uint8Array> {
  const a: ReprovisionAuthorization = { ...input, authorizationId: randomBytes(16), ...(await issuedFields(input, owner)) };
  return issueArtifact('reprovision', encodePayload(a), parsePayloadMap, owner);
}

/**
 * Verify an authorization as the device does: signed by one of its owner keys,
 * inside its validity window, and naming this device's current key and chip UID.
 * Never throws.
 */
export async function verifyReprovision(
  bytes: Uint8Array,
  ctx: { ownerKeys: Uint8Array[]; now?: Clock; devicePublicKey: Uint8Array; chipUid: Uint8Array },
): Promise<TrustResult<ReprovisionAuthorization>> {
  const name = ARTIFACT_NAMES.reprovision;
  const env = await openOwnerArtifact(bytes, 'reprovision', ctx.ownerKeys, parsePayloadMap);
  if (!env.ok) return env;
  const a = env.value;
  const w = checkWindow(a, ctx.now, name);
  if (w) return { ok: false, ...w };
  if (!bytesEqual(a.devicePublicKey, ctx.devicePublicKey) || !bytesEqual(a.chipUid, ctx.chipUid)) {
    return { ok: false, code: 'wrong-target', reason: `${name} is for the device with key ${hex(keyId(a.devicePublicKey))} and chip ${hex(a.chipUid)}, not this one` };
  }
  return { ok: true, value: a, signer: env.signer };
}

/** Decode WITHOUT verifying (display only). */
export function decodeReprovisionUnverified(bytes: Uint8Array): ReprovisionAuthorization {
  return parsePayloadMap(unverifiedPayload(bytes, 'reprovision'));
}

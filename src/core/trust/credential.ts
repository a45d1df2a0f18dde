/**
 * Technician credential (owner-signed): grants a technician's Ed25519 key a set
 * of permissions on a scope of devices for a validity window.
 *
 * Scope: a device is in scope when its model is in `models` (the single
 * entry "*" means every model) OR its serial / device key id is in `devices`.
 * At least one of the two lists must be non-empty: there is no implicit
 * "all devices".
 */
import { keyId } from './keys.ts';
import {
  ARTIFACT_NAMES, checkBytes, checkText, checkValidityFields, checkWindow, Fields, issueArtifact, issuedFields, openBundleArtifact, randomBytes, SchemaError, unverifiedPayload, type Validity,
} from './artifact.ts';
import type { HeldBundleContext } from './bundle.ts';
import type { TrustResult } from './result.ts';
import { containsBytes, equalBytes, toHex } from '../base/bytes.ts';

/** The device permissions, then the hub's: 'sync' (push records, pull campaigns, report results, take identifier blocks) and 'fleet' (read the fleet registry, publish campaigns). */
export const PERMISSIONS = ['identify', 'attest', 'configure', 'update', 'interfaces', 'wipe', 'rotate-keys', 'sync', 'fleet'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(s: string): s is Permission {
  return (PERMISSIONS as readonly string[]).includes(s);
}

/** A device as seen by a scope check. */
export interface DeviceRef {
  serial: string;
  model: string;
  /** Key id of the device identity key (keyId(devicePublicKey)). */
  keyId?: Uint8Array;
}

export interface TechnicianCredential extends Validity {
  credentialId: Uint8Array;
  technicianId: string;
  name: string;
  /** Ed25519 public key of the technician, 32 bytes. */
  publicKey: Uint8Array;
  permissions: Permission[];
  models: string[];
  /** Device serials (text) or device key ids (8 bytes). */
  devices: (string | Uint8Array)[];
  issuer: Uint8Array;
}

export type CredentialInput = Omit<TechnicianCredential, 'credentialId' | 'issuer' | 'notBefore' | 'notAfter' | 'models' | 'devices'> & {
  credentialId?: Uint8Array;
  models?: string[];
  devices?: (string | Uint8Array)[];
  notBefore?: Date | number;
  notAfter: Date | number;
};

const KEYS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

function encodePayload(c: TechnicianCredential): Map<number, unknown> {
  return new Map<number, unknown>([
    [1, c.credentialId], [2, c.technicianId], [3, c.name], [4, c.publicKey], [5, c.permissions],
    [6, c.models.length ? c.models : undefined], [7, c.devices.length ? c.devices : undefined],
    [8, c.notBefore], [9, c.notAfter], [10, c.issuer],
  ]);
}

function parsePayloadMap(m: Map<unknown, unknown>): TechnicianCredential {
  const f = new Fields(m, KEYS, 'credential');
  const perms = f.array(5, 'permissions', { min: 1, max: PERMISSIONS.length })!.map((p, i) => {
    const s = checkText(p, `credential.permissions[${i}]`, 1, 16);
    if (!isPermission(s)) throw new SchemaError(`credential.permissions[${i}]: unknown permission ${JSON.stringify(s)}`);
    return s;
  });
  if (new Set(perms).size !== perms.length) throw new SchemaError('credential.permissions: duplicate entries');
  const models = (f.array(6, 'models', { min: 1, max: 256, optional: true }) ?? []).map((x, i) => checkText(x, `credential.models[${i}]`, 1, 64));
  const devices = (f.array(7, 'devices', { min: 1, max: 1024, optional: true }) ?? []).map((x, i) =>
    typeof x === 'string' ? checkText(x, `credential.devices[${i}]`, 1, 64) : checkBytes(x, `credential.devices[${i}]`, 8, 8),
  );
  if (models.length === 0 && devices.length === 0) throw new SchemaError('credential: the device scope is empty (give models and/or devices)');
  const c: TechnicianCredential = {
    credentialId: f.bstr(1, 'credentialId', { min: 8, max: 32 })!,
    technicianId: f.tstr(2, 'technicianId', { max: 64 })!,
    name: f.tstr(3, 'name', { max: 128 })!,
    publicKey: f.bstr(4, 'publicKey', { min: 32, max: 32 })!,
    permissions: perms,
    models,
    devices,
    notBefore: f.uint(8, 'notBefore')!,
    notAfter: f.uint(9, 'notAfter')!,
    issuer: f.bstr(10, 'issuer', { min: 8, max: 8 })!,
  };
  checkValidityFields(c, 'credential');
  return c;
}

/** Issue (sign) a technician credential with the owner's Ed25519 seed. */
export async function issueCredential(input: CredentialInput, ownerSeed: Uint8Array): Promise<Uint8Array> {
  const c: TechnicianCredential = {
    ...input,
    credentialId: input.credentialId ?? randomBytes(16),
    models: input.models ?? [],
    devices: input.devices ?? [],
    ...(await issuedFields(input, ownerSeed)),
  };
  return issueArtifact('credential', encodePayload(c), parsePayloadMap, ownerSeed);
}

/** Is `device` inside the credential's device scope? */
export function credentialCovers(cred: Pick<TechnicianCredential, 'models' | 'devices'>, device: DeviceRef): boolean {
  if (cred.models.includes('*') || cred.models.includes(device.model)) return true;
  for (const d of cred.devices) {
    if (typeof d === 'string' ? d === device.serial : device.keyId !== undefined && equalBytes(d, device.keyId)) return true;
  }
  return false;
}

/** Detailed check of one permission on one device. */
export function checkCredentialPermits(
  cred: Pick<TechnicianCredential, 'models' | 'devices' | 'permissions' | 'technicianId'>,
  permission: Permission,
  device: DeviceRef,
): { ok: true } | { ok: false; code: 'permission' | 'out-of-scope'; reason: string } {
  if (!cred.permissions.includes(permission)) {
    return { ok: false, code: 'permission', reason: `technician ${cred.technicianId} is not permitted to ${permission} (has: ${cred.permissions.join(', ')})` };
  }
  if (!credentialCovers(cred, device)) {
    return { ok: false, code: 'out-of-scope', reason: `device ${device.serial} (model ${device.model}) is outside technician ${cred.technicianId}'s scope` };
  }
  return { ok: true };
}

/** Does the credential grant `permission` on `device`? (Validity and signature are verifyCredential's job.) */
export function credentialPermits(cred: TechnicianCredential, permission: Permission, device: DeviceRef): boolean {
  return checkCredentialPermits(cred, permission, device).ok;
}

export interface CredentialContext extends HeldBundleContext {
  /** When given, the credential must grant this permission... */
  permission?: Permission;
  /** ...on this device. */
  device?: DeviceRef;
  /** When given, the credential must be for this technician key. */
  technicianKey?: Uint8Array;
}

/** Verify a technician credential against the owner anchors of a verified trust bundle. Never throws. */
export async function verifyCredential(bytes: Uint8Array, ctx: CredentialContext): Promise<TrustResult<TechnicianCredential>> {
  const name = ARTIFACT_NAMES.credential;
  const env = await openBundleArtifact(bytes, 'credential', ctx.bundle, parsePayloadMap);
  if (!env.ok) return env;
  const c = env.value;
  if (containsBytes(ctx.bundle.revocations.credentialIds, c.credentialId)) {
    return { ok: false, code: 'revoked', reason: `${name} ${toHex(c.credentialId)} of technician ${c.technicianId} is revoked` };
  }
  const techKid = keyId(c.publicKey);
  if (containsBytes(ctx.bundle.revocations.keyIds, techKid)) {
    return { ok: false, code: 'revoked', reason: `technician key ${toHex(techKid)} of ${c.technicianId} is revoked` };
  }
  const w = checkWindow(c, ctx.now, `${name} of technician ${c.technicianId}`);
  if (w) return { ok: false, ...w };
  if (ctx.technicianKey && !equalBytes(ctx.technicianKey, c.publicKey)) {
    return { ok: false, code: 'key-mismatch', reason: `${name} is for key ${toHex(techKid)}, not for key ${toHex(keyId(ctx.technicianKey))}` };
  }
  if (ctx.permission && ctx.device) {
    const p = checkCredentialPermits(c, ctx.permission, ctx.device);
    if (!p.ok) return p;
  } else if (ctx.permission && !c.permissions.includes(ctx.permission)) {
    return { ok: false, code: 'permission', reason: `technician ${c.technicianId} is not permitted to ${ctx.permission}` };
  } else if (ctx.device && !credentialCovers(c, ctx.device)) {
    return { ok: false, code: 'out-of-scope', reason: `device ${ctx.device.serial} (model ${ctx.device.model}) is outside technician ${c.technicianId}'s scope` };
  }
  return { ok: true, value: c, signer: env.signer };
}

/** Decode WITHOUT verifying the signature (display only). Throws on malformed input. */
export function decodeCredentialUnverified(bytes: Uint8Array): TechnicianCredential {
  return parsePayloadMap(unverifiedPayload(bytes, 'credential'));
}

/**
 * fieldbench's security management group (application-defined; its id is a
 * default, devices may use another, found through the Enum group by name).
 * Identity, proof of possession, attestation, the security event log,
 * technician authentication, signed configuration, interface control and
 * wipe, key and identifier rotation, the secure session (key exchange in AuthChallenge/Auth, then
 * Protected requests) and trust bundle push. The client (groups/security.ts) and the reference device
 * (device/security.ts) both use THIS table; docs/PROTOCOL.md has the CDDL.
 *
 * Adding a command: one entry in `commands` (then the client method and the
 * device handler). Adding an error: one entry in `errors` (name, rc, text).
 */
import { utf8 } from '../base/bytes.ts';
import { encodeDeterministic } from '../base/cbor.ts';
import { defineGroup } from './define.ts';
import { sha256 } from '@noble/hashes/sha2.js';

export const SECURITY = defineGroup({
  name: 'fieldbench_sec',
  id: 96,
  commands: {
    Identity: 0,
    Cert: 1,
    Prove: 2,
    Attest: 3,
    Events: 4,
    AuthChallenge: 5,
    Auth: 6,
    ConfigRead: 7,
    ConfigApply: 8,
    Interfaces: 9,
    Wipe: 10,
    /** read: is the device factory-fresh? its chip UID, model, hardware revision, trusted manufacturer keys */
    ProvisionState: 11,
    /** write: generate the identity and X25519 keys in the secure element; answer with a proof of possession */
    ProvisionBegin: 12,
    /** write (chunked): an owner-signed, device-bound re-provisioning authorization, for this connection */
    ProvisionAuthorize: 13,
    /** write (chunked): the manufacturer-signed identity certificate; checked, stored, provisioning locked */
    ProvisionCert: 14,
    /** write: a request protected by the session (trust/session.ts): {s, c} both ways */
    Protected: 15,
    /** write (chunked, inside the session): the held trust bundle; installed if it chains from the owner keys and is newer */
    BundlePush: 16,
    /** write (inside the session, rotate-keys): replace the DevEUI or the network (LoRaWAN) key; answered with a receipt the identity key signs */
    Rotate: 17,
  },
  errors: {
    NotAuthenticated: { rc: 1, text: 'not authenticated: present a technician credential first' },
    Permission: { rc: 2, text: 'permission denied by the technician credential' },
    BadSignature: { rc: 3, text: 'signature invalid' },
    WrongTarget: { rc: 4, text: 'not for this device (target or scope)' },
    Replayed: { rc: 5, text: 'replayed: sequence number not above the one applied' },
    Expired: { rc: 6, text: 'expired or not yet valid' },
    Malformed: { rc: 7, text: 'malformed or schema violation' },
    DecryptFailed: { rc: 8, text: 'secrets could not be decrypted by this device' },
    LockedOut: { rc: 9, text: 'locked out after repeated authentication failures' },
    Revoked: { rc: 10, text: 'revoked' },
    Offset: { rc: 11, text: 'transfer out of order (offset mismatch)' },
    RotationDenied: { rc: 12, text: 'key or identifier rotation not permitted' },
    Nonce: { rc: 13, text: 'nonce missing or of the wrong size' },
    WrongType: { rc: 14, text: 'wrong kind of artifact (for example a credential sent as a configuration)' },
    SessionRequired: { rc: 15, text: 'privileged command outside the authenticated session: it must arrive protected' },
    Protection: { rc: 16, text: 'protected request refused: no session, a bad authentication tag, or a replayed or reordered sequence number' },
    StaleBundle: { rc: 17, text: 'trust bundle refused: not newer than the one the device holds, or not from its owner' },
    Clock: { rc: 18, text: 'clock change refused: without permission, or below the latest signed time the device has seen' },
    AlreadyProvisioned: { rc: 19, text: 'already provisioned: re-provisioning needs an owner-signed authorization for this device' },
    NotProvisioned: { rc: 20, text: 'not provisioned: the device is factory-fresh and has no identity yet' },
    CertMismatch: { rc: 21, text: 'the certificate does not bind this device (keys, chip UID, model or hardware revision)' },
    ProvisionOrder: { rc: 22, text: 'provisioning out of order: begin provisioning on this connection first' },
    Busy: { rc: 23, text: 'busy: too many signing requests without a login; retry later' },
  },
});

export type SecurityErrorName = keyof typeof SECURITY.errors;

/** Command ids by name. */
export const SEC = SECURITY.commands;
/** Error rc by name. */
export const SEC_RC = SECURITY.rc;

/** Domain separation for signatures the device makes (the key exchange has its own labels, trust/session.ts). */
export const POP_CONTEXT = utf8('fieldbench-pop-v1\0');
export const PROVISION_CONTEXT = utf8('fieldbench-provision-v1\0');
export const ROTATE_CONTEXT = utf8('fieldbench-rotate-v1\0');

/** What can be rotated: an identifier (the LoRaWAN DevEUI) or a key (the LoRaWAN network key, AppKey). */
export const ROTATION_TARGETS = ['dev-eui', 'app-key'] as const;
export type RotationTarget = (typeof ROTATION_TARGETS)[number];
/** The size of each new value, in bytes. */
export const ROTATION_SIZES: Record<RotationTarget, number> = { 'dev-eui': 8, 'app-key': 16 };

/**
 * A value the device takes as a new DevEUI or network key: of its size, and neither all zeros nor all
 * ones (the unset value of flash and of LoRaWAN). One rule for every path that sets one (rotate, and
 * a configuration's `rotate.devEui`).
 */
export function isRotationValue(what: RotationTarget, value: Uint8Array): boolean {
  return value.length === ROTATION_SIZES[what] && !value.every((x) => x === 0) && !value.every((x) => x === 0xff);
}

/** A key's public name in a rotation receipt: the first 8 bytes of its SHA-256 (the key itself never leaves the session). */
export function rotationKeyId(key: Uint8Array): Uint8Array {
  return sha256(key).slice(0, 8);
}

/**
 * What the device signs with its identity key after a rotation (the receipt):
 * context | CBOR [what, old, new, nonce]. For the DevEUI, old and new are the
 * identifiers; for a key, their key ids (rotationKeyId; old is empty when the
 * device held none).
 */
export function rotationReceiptMessage(r: { what: RotationTarget; old: Uint8Array; new: Uint8Array; nonce: Uint8Array }): Uint8Array {
  const body = encodeDeterministic([r.what, r.old, r.new, r.nonce]);
  const m = new Uint8Array(ROTATE_CONTEXT.length + body.length);
  m.set(ROTATE_CONTEXT);
  m.set(body, ROTATE_CONTEXT.length);
  return m;
}

/** What a factory-fresh device signs with its new identity key: context | CBOR [nonce, pub, enc_pub, uid, model, hw_rev]. */
export function provisionPopMessage(p: { nonce: Uint8Array; devicePublicKey: Uint8Array; deviceEncKey: Uint8Array; chipUid: Uint8Array; model: string; hwRev: string }): Uint8Array {
  const body = encodeDeterministic([p.nonce, p.devicePublicKey, p.deviceEncKey, p.chipUid, p.model, p.hwRev]);
  const m = new Uint8Array(PROVISION_CONTEXT.length + body.length);
  m.set(PROVISION_CONTEXT);
  m.set(body, PROVISION_CONTEXT.length);
  return m;
}

/** What the device signs to prove possession of its key: context | nonce. */
export function popMessage(nonce: Uint8Array): Uint8Array {
  const m = new Uint8Array(POP_CONTEXT.length + nonce.length);
  m.set(POP_CONTEXT);
  m.set(nonce, POP_CONTEXT.length);
  return m;
}

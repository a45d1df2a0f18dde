/**
 * fieldbench's security management group (application-defined; its id is a
 * default, devices may use another, found through the Enum group by name).
 * Identity, proof of possession, attestation, the security event log,
 * technician authentication, signed configuration, interface control and
 * wipe. The client (groups/security.ts) and the reference device
 * (device/security.ts) both use THIS table; docs/PROTOCOL.md has the CDDL.
 *
 * Adding a command: one entry in `commands` (then the client method and the
 * device handler). Adding an error: one entry in `errors` (name, rc, text).
 */
import { utf8 } from '../base/bytes.ts';
import { defineGroup } from './define.ts';

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
  },
});

export type SecurityErrorName = keyof typeof SECURITY.errors;

/** Command ids by name. */
export const SEC = SECURITY.commands;
/** Error rc by name. */
export const SEC_RC = SECURITY.rc;

/** Domain separation for signatures the device and technicians make. */
export const POP_CONTEXT = utf8('fieldbench-pop-v1\0');
export const AUTH_CONTEXT = utf8('fieldbench-auth-v1\0');

/** What the device signs to prove possession of its key: context | nonce. */
export function popMessage(nonce: Uint8Array): Uint8Array {
  const m = new Uint8Array(POP_CONTEXT.length + nonce.length);
  m.set(POP_CONTEXT);
  m.set(nonce, POP_CONTEXT.length);
  return m;
}

/** What the technician signs to authenticate: context | challenge | device public key. */
export function authMessage(challenge: Uint8Array, devicePublicKey: Uint8Array): Uint8Array {
  const m = new Uint8Array(AUTH_CONTEXT.length + challenge.length + devicePublicKey.length);
  m.set(AUTH_CONTEXT);
  m.set(challenge, AUTH_CONTEXT.length);
  m.set(devicePublicKey, AUTH_CONTEXT.length + challenge.length);
  return m;
}

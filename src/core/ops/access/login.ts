/**
 * Technician login (NIST IR 8259A logical access): fetch a single-use
 * challenge, sign "fieldbench-auth-v1\0" || challenge || device public key
 * with the technician's key, present the owner-issued credential. The signer
 * is a callback so the key never reaches this code: in the app it is the key
 * store's signer (keystore.ts, a non-extractable WebCrypto key or a wrapped
 * seed), in the CLI a PEM read for the command.
 */
import { type SecurityGroup, authMessage, describeSecError, secErrorName } from '../../groups/security.ts';
import type { SecurityErrorName } from '../../protocol/security.ts';
import { SmpError } from '../../smp/errors.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { type DeviceRef, type Permission, verifyCredential } from '../../trust/credential.ts';
import { FieldbenchError } from '../../base/errors.ts';

export type AccessFailure =
  | 'not-authenticated'
  | 'permission'
  | 'bad-signature'
  | 'out-of-scope'
  | 'expired'
  | 'locked-out'
  | 'revoked'
  | 'nonce'
  | 'malformed'
  | 'signer'
  | 'credential'
  | 'wrong-type'
  | 'device';

export class AccessError extends FieldbenchError<AccessFailure> {
  constructor(
    code: AccessFailure,
    message: string,
  ) {
    super(code, message);
    this.name = 'AccessError';
  }
}

/** How the device's refusals of a login read as this op's failure codes. */
const SEC_CODE: Partial<Record<SecurityErrorName, AccessFailure>> = {
  NotAuthenticated: 'not-authenticated',
  Permission: 'permission',
  BadSignature: 'bad-signature',
  WrongTarget: 'out-of-scope',
  Expired: 'expired',
  Malformed: 'malformed',
  LockedOut: 'locked-out',
  Revoked: 'revoked',
  Nonce: 'nonce',
  WrongType: 'wrong-type',
};

export type Signer = (message: Uint8Array) => Promise<Uint8Array>;

export interface TechnicianSession {
  technician: string;
  permissions: string[];
}

/**
 * Authenticate the technician on this connection. Optionally checks the
 * credential locally first (bundle + permission + device), so an unusable
 * credential is explained without spending one of the device's attempts.
 * Throws AccessError with a reason.
 */
export async function authenticateTechnician(
  group: SecurityGroup,
  devicePublicKey: Uint8Array,
  credential: Uint8Array,
  sign: Signer,
  precheck?: { bundle: TrustBundle; permission?: Permission; device?: DeviceRef; now?: number },
): Promise<TechnicianSession> {
  if (precheck) {
    const v = await verifyCredential(credential, { bundle: precheck.bundle, permission: precheck.permission, device: precheck.device, now: precheck.now });
    if (!v.ok) throw new AccessError('credential', `the technician credential cannot be used: ${v.reason}`);
  }
  let challenge: Uint8Array;
  try {
    challenge = await group.challenge();
  } catch (e) {
    throw new AccessError('device', `could not get a login challenge: ${describeSecError(e)}`);
  }
  let sig: Uint8Array;
  try {
    sig = await sign(authMessage(challenge, devicePublicKey));
  } catch (e) {
    throw new AccessError('signer', `the technician key could not sign: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new AccessError('signer', 'the technician key produced no Ed25519 signature');
  try {
    return await group.authenticate(credential, sig);
  } catch (e) {
    const name = secErrorName(e);
    const code = name && SEC_CODE[name];
    if (code) throw new AccessError(code, `the device refused the login: ${describeSecError(e)}`);
    throw new AccessError('device', `login failed: ${describeSecError(e)}`);
  }
}

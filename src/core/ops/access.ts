/**
 * Technician login (NIST IR 8259A logical access): fetch a single-use
 * challenge, sign "fieldbench-auth-v1\0" || challenge || device public key
 * with the technician's key, present the owner-issued credential. The signer
 * is a callback so the key never reaches this code: in the app it is the key
 * store's signer (keystore.ts, a non-extractable WebCrypto key or a wrapped
 * seed), in the CLI a PEM read for the command.
 */
import { type SecurityGroup, authMessage, describeSecError } from '../groups/security.ts';
import { SmpError } from '../smp/errors.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { type DeviceRef, type Permission, verifyCredential } from '../trust/credential.ts';

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

export class AccessError extends Error {
  constructor(
    readonly code: AccessFailure,
    message: string,
  ) {
    super(message);
    this.name = 'AccessError';
  }
}

const SEC_CODE: Record<number, AccessFailure> = {
  1: 'not-authenticated',
  2: 'permission',
  3: 'bad-signature',
  4: 'out-of-scope',
  6: 'expired',
  7: 'malformed',
  9: 'locked-out',
  10: 'revoked',
  13: 'nonce',
  14: 'wrong-type',
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
    if (e instanceof SmpError && e.kind === 'group' && e.rc !== undefined && SEC_CODE[e.rc]) {
      throw new AccessError(SEC_CODE[e.rc], `the device refused the login: ${describeSecError(e)}`);
    }
    throw new AccessError('device', `login failed: ${describeSecError(e)}`);
  }
}

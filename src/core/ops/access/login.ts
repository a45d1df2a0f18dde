/**
 * Technician login (NIST IR 8259A logical access and data protection in
 * transit): the authenticated key exchange with the device (trust/session.ts,
 * modelled on EDHOC; SecurityGroup.openSecureSession) under the owner-issued
 * credential. It leaves a secure session on the client: every later request
 * goes protected, and a reset of the device renews it by itself. The signer
 * is a callback so the key never reaches this code: in the app it is the key
 * store's signer (keystore.ts, a non-extractable WebCrypto key or a wrapped
 * seed), in the CLI a PEM read for the command.
 */
import { type SecurityGroup, describeSecError, secErrorName } from '../../groups/security.ts';
import { SessionError } from '../../trust/session.ts';
import type { SecurityErrorName } from '../../protocol/security.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { type DeviceRef, type Permission, verifyCredential } from '../../trust/credential.ts';
import { FieldbenchError } from '../../base/errors.ts';
import { isLinkLoss } from '../outcome.ts';

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
  | 'device-identity'
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
  SessionRequired: 'not-authenticated',
  Protection: 'not-authenticated',
};

export type Signer = (message: Uint8Array) => Promise<Uint8Array>;

export interface TechnicianSession {
  technician: string;
  permissions: string[];
  /** The trust bundle version handed to the device in this login, if one was. */
  bundlePushed?: number;
}

/**
 * Authenticate the technician on this connection and open the secure session.
 * Optionally checks the credential locally first (bundle + permission + device),
 * so an unusable credential is explained without spending one of the device's
 * attempts. With `precheck.bundleBytes` (the held bundle's file), the bundle is
 * handed to the device inside the new session whenever the device's is older,
 * so its revocations and rotations apply on the device too.
 * Throws AccessError with a reason.
 */
export async function authenticateTechnician(
  group: SecurityGroup,
  devicePublicKey: Uint8Array,
  credential: Uint8Array,
  sign: Signer,
  precheck?: { bundle: TrustBundle; permission?: Permission; device?: DeviceRef; now?: number; bundleBytes?: Uint8Array },
): Promise<TechnicianSession> {
  if (precheck) {
    const v = await verifyCredential(credential, { bundle: precheck.bundle, permission: precheck.permission, device: precheck.device, now: precheck.now });
    if (!v.ok) throw new AccessError('credential', `the technician credential cannot be used: ${v.reason}`);
  }
  const refused = (e: unknown, what: string): AccessError => {
    const name = secErrorName(e);
    const code = name && SEC_CODE[name];
    if (code) return new AccessError(code, `the device refused the login: ${describeSecError(e)}`);
    return new AccessError('device', `${what}: ${describeSecError(e)}`);
  };
  let signerFailure: unknown;
  const signing = async (m: Uint8Array) => {
    try {
      const sig = await sign(m);
      if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new Error('the technician key produced no Ed25519 signature');
      return sig;
    } catch (e) {
      signerFailure = e;
      throw e;
    }
  };
  let session: TechnicianSession;
  try {
    const r = await group.openSecureSession(devicePublicKey, credential, signing);
    session = { technician: r.technician, permissions: r.permissions };
  } catch (e) {
    if (signerFailure !== undefined) throw new AccessError('signer', `the technician key could not sign: ${e instanceof Error ? e.message : String(e)}`);
    if (isLinkLoss(e)) throw e; // the link, not a refusal: the op's contract ends it `link`
    if (e instanceof SessionError) throw new AccessError('device-identity', e.message);
    throw refused(e, 'login failed');
  }
  if (precheck?.bundleBytes && precheck.bundle.version > 0) {
    try {
      if ((await group.bundleVersion()) < precheck.bundle.version) {
        const pushed = await group.pushBundle(precheck.bundleBytes);
        session.bundlePushed = pushed.version;
        if (pushed.ended) {
          group.client.protect(null);
          throw new AccessError('revoked', `trust bundle v${pushed.version} revokes this technician's credential or key: the device ended the session`);
        }
      }
    } catch (e) {
      if (e instanceof AccessError || isLinkLoss(e)) throw e;
      throw refused(e, 'could not hand the device the trust bundle');
    }
  }
  return session;
}

/** What the technician holds for a login (the app's Trust & keys page): any of it may be missing. */
export interface HeldLogin {
  credential?: Uint8Array | null;
  signer?: Signer | null;
  bundle?: TrustBundle | null;
  bundleBytes?: Uint8Array | null;
}

/**
 * The `authenticate` an op takes: asks the device who it is, then logs in with
 * what the technician holds, checked locally first for `permission` on that
 * device, handing the device the held bundle when its own is older. Refuses
 * (without a device attempt) when the credential, key or bundle is missing.
 */
export function technicianLogin(held: HeldLogin, permission: Permission): (g: SecurityGroup) => Promise<TechnicianSession> {
  return async (g) => {
    const { credential, signer, bundle, bundleBytes } = held;
    if (!credential || !signer || !bundle) throw new Error('load your credential and key on the Trust & keys page first');
    const device = await g.identity();
    return authenticateTechnician(g, device.devicePublicKey, credential, signer, { bundle, bundleBytes: bundleBytes ?? undefined, permission, device });
  };
}

/**
 * The login step of every op that changes the device (interfaces, wipe, rotate): null once
 * logged in, else why not and who refused (the device, or the tool's own checks on the signer
 * and credential). A lost link is rethrown: the op contract ends it `link`.
 */
export async function loginRefusal(authenticate: (group: SecurityGroup) => Promise<unknown>, g: SecurityGroup): Promise<{ message: string; by: 'device' | 'tool' } | null> {
  try {
    await authenticate(g);
    return null;
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    const byDevice = e instanceof AccessError && e.code !== 'signer' && e.code !== 'credential';
    return { message: (e as Error).message, by: byDevice ? 'device' : 'tool' };
  }
}

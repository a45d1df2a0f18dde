/**
 * Technician login (NIST IR 8259A logical access and data protection in
 * transit): an authenticated key exchange with the device (secure-channel.ts,
 * modelled on EDHOC): the tool's ephemeral X25519 key, the device's ephemeral
 * key and challenge signed by its certified identity key, the technician's
 * signature over the transcript under the owner-issued credential. The result
 * is a secure session installed on the client: every later request on this
 * connection goes protected (integrity, confidentiality, sequence numbers).
 * The signer is a callback so the key never reaches this code: in the app it
 * is the key store's signer (keystore.ts), in the CLI a PEM read for the command.
 */
import { type SecurityGroup, SEC, describeSecError } from '../groups/security.ts';
import {
  SecureChannel, constantTimeEqual, deviceSignedMessage, ephemeralX25519, mac2, mac3, pseudoRandomKey, sessionKeys, sharedSecret,
  technicianSignedMessage, transcript2, transcript3,
} from '../groups/secure-channel.ts';
import { OS } from '../groups/os.ts';
import { Group } from '../smp/header.ts';
import { SmpError } from '../smp/errors.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { type DeviceRef, type Permission, verifyCredential } from '../trust/credential.ts';
import { ed25519Verify } from '../trust/ed25519.ts';

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
  15: 'not-authenticated',
  16: 'not-authenticated',
};

export type Signer = (message: Uint8Array) => Promise<Uint8Array>;

export interface TechnicianSession {
  technician: string;
  permissions: string[];
  /** The trust bundle version pushed to the device in this login, if one was. */
  bundlePushed?: number;
}

/**
 * Authenticate the technician on this connection and open the secure session.
 * Optionally checks the credential locally first (bundle + permission + device),
 * so an unusable credential is explained without spending one of the device's
 * attempts. With `precheck.bundleBytes`, the held trust bundle is pushed inside
 * the new session whenever the device's is older, so its revocations and
 * rotations apply on the device too. Throws AccessError with a reason.
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
    if (e instanceof SmpError && e.kind === 'group' && e.rc !== undefined && SEC_CODE[e.rc]) {
      return new AccessError(SEC_CODE[e.rc], `the device refused the login: ${describeSecError(e)}`);
    }
    return new AccessError('device', `${what}: ${describeSecError(e)}`);
  };
  // A new login ends any session this client had: the exchange itself goes plain.
  group.client.protect(null);
  const eph = ephemeralX25519();
  let m2: Awaited<ReturnType<SecurityGroup['keyExchange']>>;
  try {
    m2 = await group.keyExchange(eph.publicKey);
  } catch (e) {
    throw refused(e, 'could not start the key exchange');
  }
  let prk: Uint8Array;
  let th2: Uint8Array;
  try {
    th2 = transcript2(eph.publicKey, m2.gY, m2.challenge, devicePublicKey);
    prk = pseudoRandomKey(sharedSecret(eph.privateKey, m2.gY), th2);
  } catch (e) {
    throw new AccessError('device-identity', `the device sent an unusable key-exchange key: ${(e as Error).message}`);
  } finally {
    eph.privateKey.fill(0);
  }
  // The device proves its certified identity key over this exchange before the technician signs anything.
  if (!(m2.sig instanceof Uint8Array) || m2.sig.length !== 64 || !(await ed25519Verify(m2.sig, deviceSignedMessage(th2, mac2(prk, th2)), devicePublicKey))) {
    throw new AccessError('device-identity', 'the device did not prove its identity key in the key exchange: not the device it claims to be (or a relay)');
  }
  const th3 = transcript3(th2, m2.sig, credential);
  let sig: Uint8Array;
  try {
    sig = await sign(technicianSignedMessage(th3, mac3(prk, th3)));
  } catch (e) {
    throw new AccessError('signer', `the technician key could not sign: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new AccessError('signer', 'the technician key produced no Ed25519 signature');
  let r: Awaited<ReturnType<SecurityGroup['authenticate']>>;
  try {
    r = await group.authenticate(credential, sig);
  } catch (e) {
    throw refused(e, 'login failed');
  }
  const keys = sessionKeys(prk, th3, sig);
  if (!r.kc || !constantTimeEqual(r.kc, keys.kc)) {
    throw new AccessError('device-identity', 'the device did not confirm the session keys');
  }
  group.client.protect(
    new SecureChannel(group.client, group.id, keys, { protectedId: SEC.Protected, handshakeIds: [SEC.AuthChallenge, SEC.Auth], resetGroup: Group.OS, resetId: OS.Reset }),
  );
  const session: TechnicianSession = { technician: r.technician, permissions: r.permissions };
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
      if (e instanceof AccessError) throw e;
      throw refused(e, 'could not hand the device the trust bundle');
    }
  }
  return session;
}

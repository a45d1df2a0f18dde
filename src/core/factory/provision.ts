/**
 * Provisioning over the wire, the station's half (the device's half is in
 * src/device/security.ts; the messages are in docs/PROTOCOL.md):
 *
 *  1. read the provisioning state: factory-fresh? which chip, model, hardware
 *     revision, and does it trust our manufacturer key?
 *  2. (re-provisioning only) the device proves it holds its CURRENT identity key (a fresh nonce),
 *     the authorization must name that key and its chip UID (and verify under the owner keys
 *     when given); then it is presented to the device;
 *  3. send a fresh nonce: the device generates its identity and X25519 keys in its
 *     secure element and signs the nonce, both keys, its chip UID, model and
 *     hardware revision with the new identity key (proof of possession);
 *  4. obtain the identifiers (the caller's allocator, only now that the device proved itself);
 *     the caller gets the offer and, when re-provisioning, the key being replaced: its chip UID
 *     check (identifiers.ts, `chipClaim`) refuses a UID already certified for another key;
 *  5. issue the identity certificate with the manufacturer key (a Signer: HSM or key file);
 *  6. send it: the device checks it binds its own keys and ids and chains to the
 *     manufacturer key it trusts, stores it and locks provisioning;
 *  7. read the identity and the certificate back and compare.
 *
 * The manufacturer key never reaches the device, and the device's private keys never leave it.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { type ProvisionOffer, type ProvisionState, SEC_RC, SecurityGroup, describeSecError, popMessage, provisionPopMessage } from '../groups/security.ts';
import { decodeReprovisionUnverified, verifyReprovision } from '../trust/reprovision.ts';
import type { ChipClaim } from './identifiers.ts';
import { SmpError } from '../smp/errors.ts';
import { fromHex } from '../trust/artifact.ts';
import { equalBytes as bytesEqual, toHex as hex } from '../base/bytes.ts';
import { ed25519Verify } from '../trust/ed25519.ts';
import { generateX25519, sharedSecret } from '../trust/seal.ts';
import { issueIdentity } from '../trust/identity.ts';
import { keyId } from '../trust/keys.ts';
import type { Signer } from '../trust/signer.ts';

export type ProvisionFailure =
  /** The device already has an identity and no (valid) re-provisioning authorization was given. */
  | 'already-provisioned'
  /** The device does not trust this station's manufacturer key: it would refuse the certificate. */
  | 'untrusted-manufacturer'
  /** The device is another model than the profile's. */
  | 'wrong-model'
  /** The proof of possession does not verify, or the offer contradicts the state the device reported. */
  | 'bad-proof'
  /** The re-provisioning authorization does not name this device (its current key and chip UID), or does not verify. */
  | 'bad-authorization'
  /** The device refused the certificate or the authorization (its reason is in the message). */
  | 'refused'
  /** What the device reports after provisioning is not what was issued. */
  | 'readback-mismatch';

export class ProvisionError extends Error {
  constructor(
    readonly code: ProvisionFailure,
    message: string,
    /** The device's own error code (security group), when it refused. */
    readonly deviceRc?: number,
  ) {
    super(message);
    this.name = 'ProvisionError';
  }
}

/** The identifiers a unit gets (hex strings as IdentifierPolicy writes them). */
export interface UnitIdentifiers {
  serial: string;
  /** 16 hex digits (EUI-64). */
  devEui?: string;
  /** 12 hex digits (EUI-48). */
  mac?: string;
}

export interface ProvisionRequest {
  /** The manufacturer key. */
  signer: Signer;
  /**
   * Called once the device has proved possession of its new keys; returns the identifiers to certify.
   * `replaces`: re-provisioning only, the identity key the device held until now (it proved it holds
   * it, and the authorization names it with the chip UID).
   */
  identifiers: (offer: ProvisionOffer, ctx: { replaces?: Uint8Array }) => Promise<UnitIdentifiers> | UnitIdentifiers;
  /** Owner keys: when given, the station verifies the re-provisioning authorization's signature too (the device always does). */
  ownerKeys?: Uint8Array[];
  /** The model the station expects (the profile's). */
  model?: string;
  /** Certificate validity: until this time. */
  notAfter: Date | number;
  /** An owner-signed re-provisioning authorization for this device (only for a provisioned device). */
  authorization?: Uint8Array;
  /** Called between the steps, e.g. for progress or fault injection in tests. */
  onStep?: (step: ProvisionStep) => void | Promise<void>;
}

export type ProvisionStep = 'state' | 'authorize' | 'begin' | 'identifiers' | 'issue' | 'install' | 'readback';

export interface ProvisionResult {
  serial: string;
  devEui?: string;
  mac?: string;
  chipUid: Uint8Array;
  model: string;
  hwRev: string;
  devicePublicKey: Uint8Array;
  deviceEncKey: Uint8Array;
  certificate: Uint8Array;
  /** SHA-256 of the certificate bytes. */
  certificateDigest: Uint8Array;
  /** Was this a re-provisioning (the device had an identity before)? */
  reprovisioned: boolean;
}

/** The chip UID claim of an offer, for the allocator's clone check (IdAllocator.allocate). */
export function chipClaim(offer: Pick<ProvisionOffer, 'chipUid' | 'devicePublicKey'>, ctx: { replaces?: Uint8Array } = {}): ChipClaim {
  return { uid: hex(offer.chipUid), key: hex(offer.devicePublicKey), ...(ctx.replaces ? { replaces: hex(ctx.replaces) } : {}) };
}

function refused(e: unknown, what: string): never {
  if (e instanceof SmpError && e.kind === 'group' && e.rc !== undefined) {
    const code: ProvisionFailure = e.rc === SEC_RC.AlreadyProvisioned ? 'already-provisioned' : 'refused';
    throw new ProvisionError(code, `the device refused ${what}: ${describeSecError(e)}`, e.rc);
  }
  throw e;
}

function idBytes(v: string | undefined, len: number, what: string): Uint8Array | undefined {
  if (v === undefined) return undefined;
  const b = fromHex(v);
  if (b.length !== len) throw new ProvisionError('bad-proof', `${what} ${v} is not ${len} bytes`);
  return b;
}

/** Give one device its identity over the wire (see the module comment). Throws ProvisionError, or SmpError when the link fails. */
export async function provisionIdentity(g: SecurityGroup, req: ProvisionRequest): Promise<ProvisionResult> {
  await req.onStep?.('state');
  const state: ProvisionState = await g.provisionState();
  const reprovisioned = state.state === 'provisioned';
  if (reprovisioned && !req.authorization) {
    throw new ProvisionError('already-provisioned', 'the device is already provisioned; re-provisioning needs an owner-signed authorization for this device', SEC_RC.AlreadyProvisioned);
  }
  const mfrKid = keyId(req.signer.publicKey);
  if (!state.manufacturerKids.some((k) => bytesEqual(k, mfrKid))) {
    throw new ProvisionError('untrusted-manufacturer', `the device trusts manufacturer key(s) ${state.manufacturerKids.map(hex).join(', ') || '(none)'}, not this station's ${hex(mfrKid)}`);
  }
  if (req.model !== undefined && state.model !== req.model) {
    throw new ProvisionError('wrong-model', `the device is a ${state.model}, the profile is for ${req.model}`);
  }
  let replaces: Uint8Array | undefined;
  if (req.authorization && reprovisioned) {
    await req.onStep?.('authorize');
    // The station's own checks (a clone accepts any authorization): it names this device's current
    // key and chip UID, and the device proves it holds that key; only then may a new key take the UID.
    const current = state.devicePublicKey;
    if (!current) throw new ProvisionError('bad-proof', 'the device reports itself provisioned but no identity key');
    let named: { devicePublicKey: Uint8Array; chipUid: Uint8Array };
    if (req.ownerKeys) {
      const v = await verifyReprovision(req.authorization, { ownerKeys: req.ownerKeys, devicePublicKey: current, chipUid: state.chipUid });
      if (!v.ok) throw new ProvisionError('bad-authorization', `the re-provisioning authorization is refused (${v.code}): ${v.reason}`);
      named = v.value;
    } else {
      try {
        named = decodeReprovisionUnverified(req.authorization);
      } catch (e) {
        throw new ProvisionError('bad-authorization', `the re-provisioning authorization cannot be read: ${(e as Error).message}`);
      }
    }
    if (!bytesEqual(named.devicePublicKey, current) || !bytesEqual(named.chipUid, state.chipUid)) {
      throw new ProvisionError('bad-authorization', `the re-provisioning authorization names key ${hex(keyId(named.devicePublicKey))} and chip ${hex(named.chipUid)}, not this device (${hex(keyId(current))}, ${hex(state.chipUid)})`);
    }
    const pn = crypto.getRandomValues(new Uint8Array(32));
    const psig = await g.prove(pn).catch((e) => refused(e, 'to prove it holds its current key'));
    if (!(await ed25519Verify(psig, popMessage(pn), current))) {
      throw new ProvisionError('bad-proof', `the device cannot prove it holds the identity key ${hex(keyId(current))} the authorization names: a clone of that unit`);
    }
    replaces = current;
  }
  if (req.authorization) {
    await g.provisionAuthorize(req.authorization).catch((e) => refused(e, 'the re-provisioning authorization'));
  }
  await req.onStep?.('begin');
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const offer = await g.provisionBegin(nonce).catch((e) => refused(e, 'to start provisioning'));
  if (!bytesEqual(offer.chipUid, state.chipUid) || offer.model !== state.model || offer.hwRev !== state.hwRev) {
    throw new ProvisionError('bad-proof', 'the device offered keys for another chip, model or hardware revision than it reported');
  }
  if (offer.devicePublicKey.length !== 32 || offer.deviceEncKey.length !== 32) throw new ProvisionError('bad-proof', 'the device offered keys of the wrong size');
  // A low-order X25519 key gives the all-zero secret: whatever is sealed to it opens for anyone. Never certify one.
  try {
    sharedSecret(generateX25519().privateKey, offer.deviceEncKey);
  } catch {
    throw new ProvisionError('bad-proof', 'the device offered a low-order X25519 key: secrets sealed to it would be readable by anyone');
  }
  const pop = provisionPopMessage({ nonce, devicePublicKey: offer.devicePublicKey, deviceEncKey: offer.deviceEncKey, chipUid: offer.chipUid, model: offer.model, hwRev: offer.hwRev });
  if (!(await ed25519Verify(offer.sig, pop, offer.devicePublicKey))) {
    throw new ProvisionError('bad-proof', `the device's signature over the station's nonce does not verify with the key it offered (${hex(keyId(offer.devicePublicKey))})`);
  }
  await req.onStep?.('identifiers');
  const ids = await req.identifiers(offer, replaces ? { replaces } : {});
  await req.onStep?.('issue');
  const certificate = await issueIdentity(
    {
      serial: ids.serial,
      model: offer.model,
      hwRev: offer.hwRev,
      ueid: offer.chipUid,
      devEui: idBytes(ids.devEui, 8, 'DevEUI'),
      mac: idBytes(ids.mac, 6, 'MAC address'),
      devicePublicKey: offer.devicePublicKey,
      deviceEncKey: offer.deviceEncKey,
      notAfter: req.notAfter,
    },
    req.signer,
  );
  await req.onStep?.('install');
  const installed = await g.provisionCert(certificate).catch((e) => refused(e, 'the identity certificate'));
  await req.onStep?.('readback');
  const identity = await g.identity();
  const back = await g.certificate();
  if (installed.serial !== ids.serial || identity.serial !== ids.serial || !bytesEqual(identity.devicePublicKey, offer.devicePublicKey) || !bytesEqual(back, certificate)) {
    throw new ProvisionError('readback-mismatch', 'after provisioning the device reports another serial, key or certificate than the one issued');
  }
  return {
    serial: ids.serial,
    devEui: ids.devEui,
    mac: ids.mac,
    chipUid: offer.chipUid,
    model: offer.model,
    hwRev: offer.hwRev,
    devicePublicKey: offer.devicePublicKey,
    deviceEncKey: offer.deviceEncKey,
    certificate,
    certificateDigest: sha256(certificate),
    reprovisioned,
  };
}

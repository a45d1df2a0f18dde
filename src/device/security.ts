/**
 * The reference device's security management: a modelled secure element that
 * generates and holds the device keys, the manufacturer-issued identity,
 * technician authentication, signed configuration applied atomically (A/B
 * records with a single pointer write), sealed secrets, interface
 * restrictions, wipe, attestation tokens and a monotonic security event log.
 *
 * It can be told to misbehave (wrong key, stale nonce, debug unlocked, unknown
 * firmware) so that every verdict of the app has a test.
 *
 * One file (over 500 lines) because it is one secure element: every handler
 * reads and changes the same private state (keys, session, counters, A/B
 * records); split, that state would have to be exposed between modules.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { ed25519Key } from '../core/trust/artifact.ts';
import { type TrustBundle, verifyBundle } from '../core/trust/bundle.ts';
import { type Permission, checkCredentialPermits, verifyCredential } from '../core/trust/credential.ts';
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from '../core/trust/ed25519.ts';
import { type DebugStatus, type InterfaceState, signEatToken } from '../core/trust/eat.ts';
import { type DeviceIdentityCert, verifyIdentity } from '../core/trust/identity.ts';
import { keyId } from '../core/trust/keys.ts';
import type { LifecycleState } from '../core/trust/psa.ts';
import { generateX25519, open as openSealed, x25519PublicKey } from '../core/trust/seal.ts';
import { type SignedConfig, verifyConfig } from '../core/trust/signed-config.ts';
import { type RotationTarget, SECURITY, isRotationValue, SEC, SEC_RC, popMessage, provisionPopMessage, rotationKeyId, rotationReceiptMessage } from '../core/protocol/security.ts';
import { SETTINGS } from '../core/protocol/settings.ts';
import { OS } from '../core/protocol/os.ts';
import { verifyReprovision } from '../core/trust/reprovision.ts';
import {
  PROTECT_OVERHEAD, type SessionKeys, deviceSignedMessage, ecdh, ephemeralX25519, mac2, mac3, parseProtected, protect, pseudoRandomKey,
  sessionKeys, technicianSignedMessage, transcript2, transcript3, unprotect,
} from '../core/trust/session.ts';
import { Group, Op, SMP_HEADER_SIZE, decodeHeader } from '../core/smp/header.ts';
import type { ReferenceDevice } from './device.ts';
import { type Arrival, type Body, type Connection, MgmtError, RC, type RequestContext } from './mgmt.ts';
import { containsBytes, equalBytes, fromLooseHex } from '../core/base/bytes.ts';

export { SEC_RC };

export interface Misbehaviour {
  /** Sign proofs and tokens with a key other than the certified one. */
  wrongKey?: boolean;
  /** Put the previous nonce into attestation tokens (a replayed token). */
  staleNonce?: boolean;
  /** Report debug as enabled. */
  debugUnlocked?: boolean;
  /** Report a firmware measurement no reference value knows. */
  unknownFirmware?: boolean;
  /** At provisioning, sign the station's nonce with a key other than the one offered (a cloned or faulty element). */
  badProvisionProof?: boolean;
}

export interface SecurityOptions {
  groupId?: number;
  serial?: string;
  model?: string;
  hwRev?: string;
  /** The chip's unique id as a UEID (RFC 9711; default a random UEID: 0x01 and 16 bytes), fixed in silicon. */
  ueid?: Uint8Array;
  mac?: Uint8Array;
  devEui?: Uint8Array;
  /** Manufacturer keys (Ed25519, raw) whose identity certificates the device accepts (its firmware's trust anchor). */
  manufacturerKeys?: Uint8Array[];
  lifecycle?: LifecycleState;
  debugStatus?: DebugStatus;
  /** Owner authority public keys (Ed25519, raw) the device trusts for credentials and configurations. */
  ownerKeys?: Uint8Array[];
  revokedCredentialIds?: Uint8Array[];
  revokedKeyIds?: Uint8Array[];
  maxAuthFailures?: number;
  lockoutMs?: number;
  misbehave?: Misbehaviour;
  /** Initial interface states (default: SMP open, shell open, debug disabled). */
  interfaces?: Record<string, InterfaceState>;
  /** Tests: called at each step of a configuration apply; may reboot the device there. */
  applyStep?: (step: ApplyStep) => void | Promise<void>;
  /**
   * The token bucket of signatures the device makes for peers without a session (proof of
   * possession, attestation tokens, key exchange message 2, provisioning offers): at most
   * `capacity` at once, refilled at `perSecond` (default 20 and 5).
   */
  signingBucket?: { capacity: number; perSecond: number };
  /** The model's configuration schema check: a problem (never quoting secret values) or null. */
  validateSettings?: (settings: SignedConfig['settings'], sealedNames: string[]) => string | null;
}

export type ApplyStep = 'verified' | 'staged' | 'committed';

interface ConfigRecord {
  sequence: number;
  digest: Uint8Array;
  settings: Record<string, unknown>;
  /** Sealed to the device: secrets stay encrypted at rest. */
  secrets?: Uint8Array;
}

interface StoredEvent {
  n: number;
  t: number;
  b: number;
  type: string;
  detail: string;
}

/** The public half of a candidate key pair (what a certificate must bind). */
interface CandidateKeys {
  readonly pub: Uint8Array;
  readonly encPub: Uint8Array;
}

/** What the device keeps per connection; a reboot, a closed link or a new identity ends it. */
interface ConnectionSecurity {
  boot: number;
  /** The identity it was made under (DeviceSecurity.identityEpoch): a (re-)provisioning ends every connection's state. */
  epoch: number;
  /** Set by a completed key exchange: the technician and the session keys go together. */
  auth: { technician: string; permissions: Permission[]; credentialId: Uint8Array; technicianKeyId: Uint8Array } | null;
  session: { keys: SessionKeys; lastSeq: number } | null;
  /** Message 2 of a key exchange in progress (single use). */
  handshake: { th2: Uint8Array; sig2: Uint8Array; prk: Uint8Array } | null;
  inbound: Map<number, { buf: Uint8Array; fill: number }>;
  token: { nonce: Uint8Array; bytes: Uint8Array } | null;
  /** Provisioning begun on this connection (candidate keys generated). */
  provisioning: boolean;
  /** A verified re-provisioning authorization presented on this connection, and the identity key it names. */
  reprovisionAuth: { id: Uint8Array; reason: string; pub: Uint8Array } | null;
}

const CHUNK_CAP = 4096;
/** The nonce sizes a PSA/EAT token may carry (RFC 9783): checked before any work. */
const EAT_NONCE_SIZES = [32, 48, 64] as const;
const MAX_EVENTS = 1000;
/**
 * Events anyone can cause without authenticating (refusals, tokens, forward clock writes, provisioning
 * offers). When the log is full these go first, so that a flood of them cannot push the record of a
 * login, a configuration, a wipe or a lockout out of the log.
 */
const UNAUTHENTICATED_EVENTS = new Set([
  'access-denied', 'auth-failure', 'auth-locked', 'bundle-rejected', 'clock-refused', 'clock-forward', 'config-rejected',
  'protection-failure', 'provision-refused', 'provision-begin', 'attested', 'signing-limited',
]);
/** Who may read the applied configuration (those who change or erase it) and the event log (state awareness, and why a configuration was refused). */
const CONFIG_READ: readonly Permission[] = ['configure', 'wipe'];
const EVENTS_READ: readonly Permission[] = ['attest', 'configure'];
const MAX_BLOB = 16384;
/** A pushed trust bundle may be larger (its firmware and configuration lists). */
const MAX_BUNDLE = 262144;

/**
 * The keys never leave this object; only signatures, public keys and decryptions do.
 * A factory-fresh element holds no identity: provisioning generates a candidate key
 * pair (identity Ed25519 + X25519) and activates it only once a certificate for it
 * has been checked. Until then (and after a reboot) the candidate is thrown away.
 */
class SecureElement {
  private seed: Uint8Array | null = null;
  private encPriv: Uint8Array | null = null;
  private pub: Uint8Array | null = null;
  private encPub: Uint8Array | null = null;
  /**
   * One candidate slot. It belongs to the provisioning that made it (its owner: one
   * connection's state, so one connection and one boot); `view` is what the checks see.
   */
  private candidate: { seed: Uint8Array; encPriv: Uint8Array; pub: Uint8Array; encPub: Uint8Array; owner: object; view: CandidateKeys } | null = null;
  private readonly rogueSeed: Uint8Array;
  roguePublicKey!: Uint8Array;

  constructor() {
    this.rogueSeed = crypto.getRandomValues(new Uint8Array(32));
  }

  async init(): Promise<void> {
    this.roguePublicKey = await ed25519PublicKey(this.rogueSeed);
  }

  get hasIdentity(): boolean {
    return this.pub !== null;
  }

  /** The identity key; a factory-fresh element has none. */
  get publicKey(): Uint8Array {
    if (!this.pub) throw new MgmtError(RC.ENOENT, SEC_RC.NotProvisioned);
    return this.pub;
  }

  get encPublicKey(): Uint8Array {
    if (!this.encPub) throw new MgmtError(RC.ENOENT, SEC_RC.NotProvisioned);
    return this.encPub;
  }

  /** Generate a new candidate key pair for `owner` (replacing any earlier candidate, whoever made it). */
  async generateCandidate(owner: object): Promise<CandidateKeys> {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const x = generateX25519();
    const pub = await ed25519PublicKey(seed);
    const encPub = x25519PublicKey(x.privateKey);
    const view: CandidateKeys = Object.freeze({ pub, encPub });
    this.candidate = { seed, encPriv: x.privateKey, pub, encPub, owner, view };
    return view;
  }

  /** The candidate keys, if `owner` made the candidate the element holds now. */
  candidateOf(owner: object): CandidateKeys | null {
    return this.candidate && this.candidate.owner === owner ? this.candidate.view : null;
  }

  signWithCandidate(msg: Uint8Array, rogue = false): Promise<Uint8Array> {
    if (!this.candidate) throw new MgmtError(RC.EBADSTATE, SEC_RC.ProvisionOrder);
    return ed25519Sign(msg, rogue ? this.rogueSeed : this.candidate.seed);
  }

  /**
   * The certified candidate becomes the identity (the old identity key is erased), only if it
   * is still the one that was checked: a begin elsewhere or a reboot meanwhile replaced or dropped it.
   */
  activateCandidate(checked: CandidateKeys): void {
    const c = this.candidate;
    if (!c || c.view !== checked) throw new MgmtError(RC.EBADSTATE, SEC_RC.ProvisionOrder);
    this.seed = c.seed;
    this.encPriv = c.encPriv;
    this.pub = c.pub;
    this.encPub = c.encPub;
    this.candidate = null;
  }

  dropCandidate(): void {
    this.candidate = null;
  }

  sign(msg: Uint8Array, rogue = false): Promise<Uint8Array> {
    if (!rogue && !this.seed) throw new MgmtError(RC.ENOENT, SEC_RC.NotProvisioned);
    return ed25519Sign(msg, rogue ? this.rogueSeed : this.seed!);
  }

  signToken(fn: (seed: Uint8Array) => Promise<Uint8Array>, rogue = false): Promise<Uint8Array> {
    if (!rogue && !this.seed) throw new MgmtError(RC.ENOENT, SEC_RC.NotProvisioned);
    return fn(rogue ? this.rogueSeed : this.seed!);
  }

  unseal(sealed: Uint8Array): Map<string, unknown> {
    if (!this.encPriv) throw new MgmtError(RC.ENOENT, SEC_RC.NotProvisioned);
    return openSealed(sealed, this.encPriv);
  }
}

export class DeviceSecurity {
  readonly groupId: number;
  readonly se = new SecureElement();
  identityCert: Uint8Array | null = null;
  opts: SecurityOptions & { serial: string; model: string; hwRev: string };
  misbehave: Misbehaviour;
  interfaces: Record<string, InterfaceState> = { smp_serial: 'open', shell: 'open', debug: 'disabled' };
  failedAuthCount = 0;
  private lockedUntil = 0;
  private events: StoredEvent[] = [];
  private nextEvent = 1;
  // Persistent configuration storage: two records and a pointer (one write flips it).
  private records: [ConfigRecord | null, ConfigRecord | null] = [null, null];
  private active: 0 | 1 | null = null;
  /** Highest sequence ever applied: survives wipe, so old configurations cannot be replayed. */
  private sequenceFloor = 0;
  /** The trusted-time floor (persistent, only moves forward): the latest signed time seen. */
  private timeFloorMs = 0;
  /** The trust bundle pushed by the tool (persistent): its anchors and revocations apply here. */
  private bundle: TrustBundle | null = null;
  private bootSeed = crypto.getRandomValues(new Uint8Array(32));
  private previousNonce: Uint8Array | null = null;
  /** Chip UID (UEID): fixed in silicon, reported before provisioning. */
  readonly chipUid: Uint8Array;
  /**
   * Signatures left for peers without a session, and when the bucket was last filled (host
   * milliseconds: not the device clock, which anyone may move forward). Kept across reboots: an
   * os reset is open to anyone and must not refill it.
   */
  private signTokens: number;
  private signTokensAt = Date.now();
  /** The bucket ran dry: logged once per dry spell, not once per refusal. */
  private signLimited = false;

  constructor(
    private readonly device: ReferenceDevice,
    opts: SecurityOptions = {},
  ) {
    this.groupId = opts.groupId ?? SECURITY.id;
    this.opts = { ...opts, serial: opts.serial ?? 'FB-0001', model: opts.model ?? 'fieldbench-ref', hwRev: opts.hwRev ?? 'rev-b' };
    this.misbehave = { ...opts.misbehave };
    if (opts.interfaces) this.interfaces = { ...opts.interfaces };
    if (opts.debugStatus === 'enabled') this.misbehave.debugUnlocked = true;
    this.chipUid = opts.ueid ?? Uint8Array.of(0x01, ...crypto.getRandomValues(new Uint8Array(16)));
    this.signTokens = this.bucket.capacity;
    if (this.chipUid.length < 7 || this.chipUid.length > 33) throw new Error('the chip UID (UEID) must be 7..33 bytes');
    device.onBoot(() => {
      // A candidate key pair lives in RAM only: a reboot drops it (provisioning starts again).
      this.se.dropCandidate();
      this.bootSeed = crypto.getRandomValues(new Uint8Array(32));
    });
  }

  /** First boot: the secure element starts factory-fresh (no identity until provisioned over the wire). */
  async init(): Promise<void> {
    await this.se.init();
    this.log('boot', 'factory-fresh: no identity');
  }

  get provisioned(): boolean {
    return this.se.hasIdentity && this.identityCert !== null;
  }

  get devicePublicKey(): Uint8Array {
    return this.se.publicKey;
  }

  /**
   * Tests only, to model a tampered or corrupted certificate store: replace the
   * stored certificate bytes (the device's keys stay as they are).
   */
  setIdentityCert(cert: Uint8Array): void {
    this.identityCert = cert;
  }

  private get bucket(): { capacity: number; perSecond: number } {
    return this.opts.signingBucket ?? { capacity: 20, perSecond: 5 };
  }

  /**
   * A signature for a peer without a session costs one token of the bucket; none left: EBUSY
   * (group rc 23, retry later), before any work. Requests inside an authenticated session are
   * not counted. Called after the request's cheap checks, so a malformed flood costs nothing.
   */
  private takeSigningToken(at: Arrival, what: string): void {
    if (at.protected && this.authOf(at.connection)) return;
    const { capacity, perSecond } = this.bucket;
    const now = Date.now();
    this.signTokens = Math.min(capacity, this.signTokens + (Math.max(0, now - this.signTokensAt) * perSecond) / 1000);
    this.signTokensAt = now;
    if (this.signTokens < 1) {
      if (!this.signLimited) this.log('signing-limited', `${what} refused: more than ${capacity} signatures without a session (${perSecond} per second)`);
      this.signLimited = true;
      throw new MgmtError(RC.EBUSY, SEC_RC.Busy);
    }
    this.signLimited = false;
    this.signTokens -= 1;
  }

  /** Bumped by every (re-)provisioning: connection state made under an earlier identity is void. */
  private identityEpoch = 0;

  /** A re-provisioning authorization on this connection that names the identity key the device holds now. */
  private mayReprovision(cs: ConnectionSecurity): boolean {
    return !!cs.reprovisionAuth && this.se.hasIdentity && equalBytes(cs.reprovisionAuth.pub, this.se.publicKey);
  }

  private requireProvisioned(): void {
    if (!this.provisioned) throw new MgmtError(RC.ENOENT, SEC_RC.NotProvisioned);
  }

  /** Provision step 1: generate the candidate keys and prove possession over the station's nonce. */
  private async provisionBegin(b: Body, at: Arrival): Promise<Body> {
    const nonce = this.nonce(b);
    const cs = this.stateOf(at.connection);
    if (this.provisioned && !this.mayReprovision(cs)) {
      this.log('provision-refused', 'already provisioned and no re-provisioning authorization presented');
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.AlreadyProvisioned);
    }
    this.takeSigningToken(at, 'provisioning offer');
    const { pub, encPub } = await this.se.generateCandidate(cs);
    cs.provisioning = true;
    const sig = await this.se.signWithCandidate(
      provisionPopMessage({ nonce, devicePublicKey: pub, deviceEncKey: encPub, chipUid: this.chipUid, model: this.opts.model, hwRev: this.opts.hwRev }),
      this.misbehave.badProvisionProof,
    );
    this.log('provision-begin', 'candidate identity keys generated');
    return { pub, enc_pub: encPub, uid: this.chipUid, model: this.opts.model, hw_rev: this.opts.hwRev, sig };
  }

  private async provisionAuthorize(b: Body, at: Arrival): Promise<Body> {
    this.requireProvisioned(); // before any byte is buffered
    const got = this.receive(SEC.ProvisionAuthorize, b, at);
    if (!(got instanceof Uint8Array)) return got;
    const cs = this.stateOf(at.connection);
    const current = this.se.publicKey;
    const v = await this.atDeviceTime((now) => verifyReprovision(got, { ownerKeys: this.opts.ownerKeys ?? [], now, devicePublicKey: current, chipUid: this.chipUid }));
    if (!v.ok) {
      this.log('provision-refused', `re-provisioning authorization rejected: ${v.reason}`);
      const rc = v.code === 'expired' || v.code === 'not-yet-valid' ? SEC_RC.Expired
        : v.code === 'wrong-target' ? SEC_RC.WrongTarget
        : v.code === 'wrong-type' ? SEC_RC.WrongType
        : v.code === 'schema' || v.code === 'malformed' || v.code === 'too-large' || v.code === 'trailing-bytes' ? SEC_RC.Malformed
        : SEC_RC.BadSignature;
      throw new MgmtError(RC.EACCESSDENIED, rc);
    }
    // Kept with the key it names: once that key is gone (re-provisioned meanwhile), it opens nothing.
    cs.reprovisionAuth = { id: v.value.authorizationId, reason: v.value.reason, pub: current };
    this.log('reprovision-authorized', `owner authorized re-provisioning: ${v.value.reason}`);
    return {};
  }

  /** Provision step 2: check the certificate binds the candidate keys and this chip, from a trusted manufacturer; then lock. */
  private async provisionCert(b: Body, at: Arrival): Promise<Body> {
    const cs = this.stateOf(at.connection);
    // Only the keys this connection's begin made (not another port's, not from before a reboot);
    // checked at every chunk, before any byte is buffered.
    const cand = this.se.candidateOf(cs);
    if (!cs.provisioning || !cand) throw new MgmtError(RC.EBADSTATE, SEC_RC.ProvisionOrder);
    if (this.provisioned && !this.mayReprovision(cs)) throw new MgmtError(RC.EACCESSDENIED, SEC_RC.AlreadyProvisioned);
    const got = this.receive(SEC.ProvisionCert, b, at);
    if (!(got instanceof Uint8Array)) return got;
    const anchors = (this.opts.manufacturerKeys ?? []).map((k) => ed25519Key(k));
    const bundle = { ...this.trustContext(), anchors: { manufacturer: anchors, firmware: [], owner: [] } };
    const v = await this.atDeviceTime((now) => verifyIdentity(got, { bundle, now }));
    // The check took time: another port's begin, a provisioning or a reboot may have happened meanwhile.
    if (this.stateOf(at.connection) !== cs || this.se.candidateOf(cs) !== cand) {
      this.log('provision-refused', 'candidate keys replaced or dropped while the certificate was checked');
      throw new MgmtError(RC.EBADSTATE, SEC_RC.ProvisionOrder);
    }
    if (this.provisioned && !this.mayReprovision(cs)) throw new MgmtError(RC.EACCESSDENIED, SEC_RC.AlreadyProvisioned);
    if (!v.ok) {
      this.log('provision-refused', `identity certificate rejected: ${v.reason}`);
      const rc = v.code === 'expired' || v.code === 'not-yet-valid' ? SEC_RC.Expired
        : v.code === 'wrong-type' ? SEC_RC.WrongType
        : v.code === 'schema' || v.code === 'malformed' || v.code === 'too-large' || v.code === 'trailing-bytes' ? SEC_RC.Malformed
        : SEC_RC.BadSignature;
      throw new MgmtError(RC.EACCESSDENIED, rc);
    }
    const c: DeviceIdentityCert = v.value;
    const binds =
      equalBytes(c.devicePublicKey, cand.pub) && equalBytes(c.deviceEncKey, cand.encPub) && !!c.ueid && equalBytes(c.ueid, this.chipUid) &&
      c.model === this.opts.model && c.hwRev === this.opts.hwRev;
    if (!binds) {
      this.log('provision-refused', `identity certificate for ${c.serial} does not bind this device`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.CertMismatch);
    }
    const again = this.provisioned;
    this.se.activateCandidate(cand);
    // A new identity: every connection's authentication, session, handshake, authorization and transfers end.
    this.identityEpoch++;
    this.identityCert = got;
    this.opts.serial = c.serial;
    this.opts.mac = c.mac;
    this.opts.devEui = c.devEui;
    this.opts.ueid = c.ueid;
    cs.provisioning = false;
    cs.reprovisionAuth = null;
    cs.auth = null;
    if (again) {
      // Secrets sealed to the old X25519 key are unreadable now: the configuration goes with the old identity.
      this.records = [null, null];
      this.active = null;
    }
    this.log('provisioned', `identity certificate ${again ? 're-' : ''}issued for ${c.serial}; provisioning locked`);
    return { serial: c.serial };
  }

  activeConfig(): ConfigRecord | null {
    return this.active === null ? null : this.records[this.active];
  }

  /** For tests of "secrets at rest": the raw persistent storage of configuration records. */
  storageSnapshot(): unknown {
    return { records: this.records, active: this.active };
  }

  log(type: string, detail: string): void {
    this.events.push({ n: this.nextEvent++, t: Math.floor(this.device.uptimeMs()), b: this.device.bootCount, type, detail });
    if (this.events.length > MAX_EVENTS) {
      // The oldest event anyone could have caused goes first; only a log of nothing else loses its oldest.
      const i = this.events.findIndex((e) => UNAUTHENTICATED_EVENTS.has(e.type));
      this.events.splice(i >= 0 ? i : 0, 1);
    }
  }

  eventLog(): readonly StoredEvent[] {
    return this.events;
  }

  private trustContext(): TrustBundle {
    if (this.bundle) return this.bundle;
    const owner = (this.opts.ownerKeys ?? []).map((k) => ed25519Key(k));
    return {
      version: 0,
      issued: 0,
      expires: Number.MAX_SAFE_INTEGER,
      anchors: { manufacturer: [], firmware: [], owner },
      revocations: { keyIds: this.opts.revokedKeyIds ?? [], certSerials: [], credentialIds: this.opts.revokedCredentialIds ?? [] },
      firmware: [],
      configurations: [],
      issuer: new Uint8Array(8),
      stale: false,
    };
  }

  private deviceRef() {
    return { serial: this.opts.serial, model: this.opts.model, keyId: keyId(this.se.publicKey) };
  }

  /** This connection's security state (authentication, challenge, transfers), fresh after a reboot. */
  private stateOf(c: Connection): ConnectionSecurity {
    let st = c.state.get(this) as ConnectionSecurity | undefined;
    if (!st || st.boot !== this.device.bootCount || st.epoch !== this.identityEpoch) {
      st = { boot: this.device.bootCount, epoch: this.identityEpoch, auth: null, session: null, handshake: null, inbound: new Map(), token: null, provisioning: false, reprovisionAuth: null };
      c.state.set(this, st);
    }
    return st;
  }

  /** The technician authenticated on this connection, if any. */
  authOf(c: Connection): ConnectionSecurity['auth'] {
    return this.stateOf(c).auth;
  }

  /**
   * A privileged command: it must come from an authenticated technician (rc 1), inside the
   * connection's protected session (rc 15: a session exists but the request came plain), under
   * a credential granting `p` (rc 2).
   */
  requirePermission(p: Permission, at: Arrival): void {
    this.requireAnyPermission([p], p, at);
  }

  /**
   * A read of what the owner keeps private (the applied configuration, the security event log): an
   * authenticated technician (rc 1), inside the session (rc 15), whose credential grants one of
   * `perms` (rc 2). Identity, certificate, provisioning state and interfaces stay public: they are
   * the evidence a technician checks before logging in (and the attestation token carries them).
   */
  requireAnyPermission(perms: readonly Permission[], what: string, at: Arrival): void {
    const auth = this.authOf(at.connection);
    if (!auth) {
      this.log('access-denied', `${what} without authentication`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.NotAuthenticated);
    }
    if (!at.protected) {
      this.log('access-denied', `${what} outside the protected session`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.SessionRequired);
    }
    if (!perms.some((p) => auth.permissions.includes(p))) {
      const lacks = perms.join(' or ');
      this.log('access-denied', `${auth.technician} lacks ${lacks}${what === lacks ? '' : ` for ${what}`}`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Permission);
    }
  }

  /** True when this request may use permission `p` (authenticated, protected, granted). */
  private permits(p: Permission, at: Arrival): boolean {
    const auth = this.authOf(at.connection);
    return !!auth && !!at.protected && auth.permissions.includes(p);
  }

  /** A privileged command of another group: refused with the security group's code, so the tool can tell why. */
  private requireForeign(p: Permission, at: Arrival): void {
    try {
      this.requirePermission(p, at);
    } catch (e) {
      if (e instanceof MgmtError && e.groupRc !== undefined) throw new MgmtError(e.rc, e.groupRc, undefined, this.groupId);
      throw e;
    }
  }

  /** Interface restriction, checked before every request. */
  guard(group: number, id: number, op: number, at: Arrival): void {
    if (group === this.groupId || group === Group.Enum) return;
    // No unsigned path on a provisioned device: Settings changes need the session and configure.
    if (group === Group.Settings && op === Op.Write && SETTINGS_WRITES.has(id) && this.provisioned) this.requireForeign('configure', at);
    if (group === Group.OS && (id === 6 || id === 0 || id === 8)) return; // params, echo, bootloader info
    const st = this.interfaces.smp_serial;
    if (st === 'disabled') throw new MgmtError(RC.EACCESSDENIED);
    if (st === 'authenticated') {
      if (!this.authOf(at.connection) || !at.protected) throw new MgmtError(RC.EACCESSDENIED);
      if (group === Group.Image && op === Op.Write) this.requireForeign('update', at);
    }
  }

  /** A nonce of 8..64 bytes (proof of possession), or exactly what an attestation token carries (32, 48 or 64). */
  private nonce(b: Body, sizes?: readonly number[]): Uint8Array {
    const n = b.nonce;
    if (!(n instanceof Uint8Array) || n.length < 8 || n.length > 64) throw new MgmtError(RC.EINVAL, SEC_RC.Nonce);
    if (sizes && !sizes.includes(n.length)) throw new MgmtError(RC.EINVAL, SEC_RC.Nonce);
    return n;
  }

  private slice(blob: Uint8Array, b: Body, ctx?: RequestContext): Body {
    const off = typeof b.off === 'number' ? b.off : 0;
    if (!Number.isInteger(off) || off < 0 || off > blob.length) throw new MgmtError(RC.EINVAL, SEC_RC.Offset);
    // Leave room for header and the map around the data.
    const room = Math.min(CHUNK_CAP, (ctx?.replyBudget ?? this.device.opts.bufSize) - 40);
    return { len: blob.length, off, data: blob.subarray(off, Math.min(blob.length, off + room)) };
  }

  /** Receive a chunked blob; returns the whole blob on the last chunk, else the reply to send. */
  private receive(cmd: number, b: Body, at: Arrival): Uint8Array | Body {
    const inbound = this.stateOf(at.connection).inbound;
    const off = b.off;
    const data = b.data;
    if (typeof off !== 'number' || !(data instanceof Uint8Array)) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    let st = inbound.get(cmd);
    if (off === 0) {
      // One transfer at a time per connection: a new one drops any other (a peer holds one buffer, not one per command).
      inbound.clear();
      const len = b.len;
      if (typeof len !== 'number' || !Number.isInteger(len) || len <= 0 || len > (cmd === SEC.BundlePush ? MAX_BUNDLE : MAX_BLOB)) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
      st = { buf: new Uint8Array(len), fill: 0 };
      inbound.set(cmd, st);
    }
    if (!st || off !== st.fill) throw new MgmtError(RC.EINVAL, SEC_RC.Offset);
    if (st.fill + data.length > st.buf.length) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    st.buf.set(data, st.fill);
    st.fill += data.length;
    if (st.fill < st.buf.length) return { off: st.fill };
    inbound.delete(cmd);
    return st.buf;
  }

  async attestationToken(nonce: Uint8Array): Promise<Uint8Array> {
    const mis = this.misbehave;
    const tokenNonce = mis.staleNonce && this.previousNonce ? this.previousNonce : nonce;
    this.previousNonce = nonce;
    const cfg = this.activeConfig();
    const firmware = this.device.firmware().map((f) => ({
      measurementType: 'PRoT',
      measurementValue: mis.unknownFirmware ? sha256(crypto.getRandomValues(new Uint8Array(16))) : f.sha256,
      version: f.version,
      signerId: f.signerId,
      measurementDescription: 'sha-256',
    }));
    return this.se.signToken(
      (seed) =>
        signEatToken(
          {
            nonce: tokenNonce,
            devicePublicKey: mis.wrongKey ? this.se.roguePublicKey : this.se.publicKey,
            implementationId: sha256(new TextEncoder().encode(`fieldbench reference implementation ${this.opts.model}`)),
            model: this.opts.model,
            lifecycle: this.opts.lifecycle ?? 'secured',
            bootSeed: this.bootSeed,
            bootCount: this.device.bootCount,
            uptimeSeconds: Math.floor(this.device.uptimeMs() / 1000),
            debugStatus: mis.debugUnlocked ? 'enabled' : (this.opts.debugStatus ?? 'disabled-since-boot'),
            softwareComponents: firmware,
            configDigest: cfg?.digest,
            interfaces: this.interfaces,
            failedAuthCount: this.failedAuthCount,
            securityCounter: this.device.securityCounter(),
            issuedAt: Math.max(0, Math.floor(this.trustedNow() / 1000)),
          },
          seed,
        ),
      mis.wrongKey,
    );
  }

  private async authenticate(b: Body, at: Arrival): Promise<Body> {
    const cs = this.stateOf(at.connection);
    // Checked before any byte is buffered (each chunk): provisioned, not locked out, a key exchange under way.
    this.requireProvisioned();
    if (Date.now() < this.lockedUntil) {
      this.log('auth-locked', 'authentication attempt during lockout');
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.LockedOut);
    }
    const fail = (rc: number, why: string): never => {
      this.failedAuthCount++;
      this.log('auth-failure', why);
      const max = this.opts.maxAuthFailures ?? 5;
      if (this.failedAuthCount % max === 0) {
        this.lockedUntil = Date.now() + (this.opts.lockoutMs ?? 30000);
        this.log('auth-lockout', `${max} failures: locked for ${this.opts.lockoutMs ?? 30000} ms`);
      }
      throw new MgmtError(RC.EACCESSDENIED, rc);
    };
    if (!cs.handshake) return fail(SEC_RC.Nonce, 'authentication without a fresh key exchange (message 1)');
    const got = this.receive(SEC.Auth, b, at);
    if (!(got instanceof Uint8Array)) return got;
    const sig = b.sig;
    if (!(sig instanceof Uint8Array) || sig.length !== 64) return fail(SEC_RC.Malformed, 'authentication without a signature');
    const hs = cs.handshake;
    if (!hs) return fail(SEC_RC.Nonce, 'authentication without a fresh key exchange (message 1)');
    cs.handshake = null; // single use
    const bundle = this.trustContext();
    const v = await this.atDeviceTime((now) => verifyCredential(got, { bundle, now }));
    if (!v.ok) {
      const rc =
        v.code === 'expired' || v.code === 'not-yet-valid' ? SEC_RC.Expired
        : v.code === 'revoked' ? SEC_RC.Revoked
        : v.code === 'wrong-type' ? SEC_RC.WrongType
        : v.code === 'schema' || v.code === 'malformed' || v.code === 'trailing-bytes' || v.code === 'too-large' ? SEC_RC.Malformed
        : SEC_RC.BadSignature;
      return fail(rc, `credential rejected: ${v.reason}`);
    }
    const cred = v.value;
    const th3 = transcript3(hs.th2, hs.sig2, got);
    if (!(await ed25519Verify(sig, technicianSignedMessage(th3, mac3(hs.prk, th3)), cred.publicKey))) {
      return fail(SEC_RC.BadSignature, `technician ${cred.technicianId}: key-exchange signature invalid`);
    }
    // The checks took time: a bundle pushed on another connection meanwhile (revoking this credential
    // or its key, or rotating out the owner key that signed it) decides, not the one checked against.
    if (this.trustContext() !== bundle && this.bundle !== null) {
      const again = await this.atDeviceTime((now) => verifyCredential(got, { bundle: this.trustContext(), now }));
      if (!again.ok) return fail(again.code === 'revoked' ? SEC_RC.Revoked : SEC_RC.BadSignature, `credential rejected by the trust bundle installed meanwhile: ${again.reason}`);
    }
    if (this.stateOf(at.connection) !== cs) throw new MgmtError(RC.EBADSTATE); // rebooted or re-provisioned meanwhile
    const scope = checkCredentialPermits({ ...cred, permissions: cred.permissions }, cred.permissions[0] ?? 'identify', this.deviceRef());
    if (!scope.ok && scope.code === 'out-of-scope') return fail(SEC_RC.WrongTarget, scope.reason);
    this.advanceFloor(cred.notBefore, 'credential');
    const keys = sessionKeys(hs.prk, th3, sig);
    cs.auth = { technician: cred.technicianId, permissions: cred.permissions, credentialId: cred.credentialId, technicianKeyId: keyId(cred.publicKey) };
    cs.session = { keys, lastSeq: 0 };
    this.log('auth', `technician ${cred.technicianId} authenticated (${cred.permissions.join(',')}); session keys derived`);
    return { technician: cred.technicianId, permissions: cred.permissions, kc: keys.kc };
  }

  /** Message 1 -> message 2 of the key exchange: the device's ephemeral key, challenge and signature. */
  private async keyExchange(b: Body, at: Arrival): Promise<Body> {
    this.requireProvisioned();
    const gX = b.g_x;
    if (!(gX instanceof Uint8Array) || gX.length !== 32) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    this.takeSigningToken(at, 'key exchange');
    const eph = ephemeralX25519();
    let secret: Uint8Array;
    try {
      secret = ecdh(eph.privateKey, gX);
    } catch {
      throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    } finally {
      eph.privateKey.fill(0);
    }
    const challenge = crypto.getRandomValues(new Uint8Array(32));
    const th2 = transcript2(gX, eph.publicKey, challenge, this.se.publicKey);
    const prk = pseudoRandomKey(secret, th2);
    secret.fill(0);
    const sig2 = await this.se.sign(deviceSignedMessage(th2, mac2(prk, th2)), this.misbehave.wrongKey);
    const cs = this.stateOf(at.connection);
    cs.handshake = { th2, sig2, prk };
    // A new exchange ends the connection's previous session.
    cs.auth = null;
    cs.session = null;
    return { challenge, g_y: eph.publicKey, sig: sig2 };
  }

  /** A protected request: check and open it, dispatch the inner packet, protect the reply. */
  private async unwrapProtected(b: Body, ctx: RequestContext): Promise<Body> {
    if (ctx.protected) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed); // no nesting
    const cs = this.stateOf(ctx.connection);
    const session = cs.session;
    if (!session) {
      this.log('protection-failure', 'protected request without a session on this connection');
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Protection);
    }
    const p = parseProtected(b);
    if (!p) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    const seq = p.seq;
    if (seq <= session.lastSeq) {
      this.log('protection-failure', `sequence ${seq} not above ${session.lastSeq}: replayed or reordered`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Protection);
    }
    const inner = unprotect(session.keys.t2d, 't2d', seq, p.ciphertext);
    if (!inner) {
      this.log('protection-failure', `sequence ${seq}: authentication tag invalid (tampered or injected)`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Protection);
    }
    session.lastSeq = seq;
    if (inner.length < SMP_HEADER_SIZE) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    const h = decodeHeader(inner);
    if (h.group === this.groupId && h.id === SEC.Protected) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    const budget = ctx.replyBudget - PROTECT_OVERHEAD;
    const reply = await this.device.handle(inner, { connection: ctx.connection, protected: true, replyBudget: budget });
    if (!reply) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    // The session may have ended meanwhile (a reboot): answer under the keys the request came with.
    return { s: seq, c: protect(session.keys.d2t, 'd2t', seq, reply) };
  }

  /**
   * The clock used for validity: the device clock as the device itself or an authorised technician
   * set it (not as an unauthenticated write moved it), never below the latest signed time seen.
   */
  trustedNow(): number {
    const clock = this.trustedClockOffsetMs === null ? this.device.now() : Date.now() + this.trustedClockOffsetMs;
    return Math.max(clock, this.timeFloorMs);
  }

  /**
   * The device clock's offset before the first unauthenticated write since the last trusted one
   * (null: the device clock is as the device or a technician with configure set it). Anyone may move
   * the clock forward, so that clock is never the one expiry is judged by: a jump to 2100 would
   * otherwise expire every credential, and no technician could log in to set it back.
   */
  private trustedClockOffsetMs: number | null = null;

  /**
   * Verify at the trusted time; when that says "not yet valid" and the device clock (moved forward
   * by a stock tool on a device without a battery-backed clock) is later, once more at that clock.
   * Expiry is always judged at the trusted time: a later clock can only make a start time pass.
   */
  private async atDeviceTime<T extends { ok: boolean; code?: string }>(verify: (now: number) => Promise<T>): Promise<T> {
    const t = this.trustedNow();
    const r = await verify(t);
    const c = this.device.now();
    if (!r.ok && r.code === 'not-yet-valid' && c > t) return verify(c);
    return r;
  }

  /** The trusted-time floor (ms since the epoch): the latest signed time the device has seen. */
  get timeFloor(): number {
    return this.timeFloorMs;
  }

  private advanceFloor(seconds: number, what: string): void {
    const ms = seconds * 1000;
    if (Number.isSafeInteger(ms) && ms > this.timeFloorMs) {
      this.timeFloorMs = ms;
      this.log('time-floor', `trusted time floor moved to ${new Date(ms).toISOString()} (${what})`);
    }
  }

  /**
   * os datetime write. Never below the trusted floor (rc 18). Backwards at all only inside an
   * authenticated session with the configure permission; anyone else may only move it forward
   * (a device without a battery-backed clock boots at 1970 and a stock tool sets it; a later
   * time can only make the device refuse more, never accept what has expired).
   */
  checkClock(newTimeMs: number, ctx: RequestContext): void {
    const allowed = this.permits('configure', ctx);
    // Whatever else happens, a write nobody authorised never becomes the clock validity is judged by.
    const keepTrusted = () => {
      if (allowed) this.trustedClockOffsetMs = null;
      else if (this.trustedClockOffsetMs === null) this.trustedClockOffsetMs = this.device.clockOffsetMs;
    };
    if (!this.provisioned) return keepTrusted();
    const at = new Date(newTimeMs).toISOString();
    if (newTimeMs < this.timeFloorMs) {
      this.log('clock-refused', `clock set to ${at}, below the trusted floor ${new Date(this.timeFloorMs).toISOString()}`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Clock, undefined, this.groupId);
    }
    if (!allowed && newTimeMs < this.device.now()) {
      this.log('clock-refused', `clock set back to ${at} without the configure permission in a session`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Clock, undefined, this.groupId);
    }
    keepTrusted();
    this.log(allowed ? 'clock' : 'clock-forward', `clock set to ${at}${allowed ? ` by ${this.authOf(ctx.connection)?.technician}` : ' (forward, unauthenticated)'}`);
  }

  /**
   * os reset into the bootloader (boot_mode 1): MCUboot serial recovery then writes the primary
   * slot directly, without a test boot or a revert; an interrupted or bad upload leaves no bootable
   * image. On a provisioned device that is an update: the update permission, in the session.
   */
  checkBootMode(mode: number, ctx: RequestContext): void {
    if (!this.provisioned) return;
    this.requireForeign('update', ctx);
    this.log('boot-mode', `reset into boot mode ${mode} by ${this.authOf(ctx.connection)?.technician}`);
  }

  /** Another connection's image upload may be taken over only with update inside a session (logged). */
  mayTakeOverUpload(ctx: RequestContext): boolean {
    if (!this.permits('update', ctx)) return false;
    this.log('upload-takeover', `image upload taken over from another connection by ${this.authOf(ctx.connection)?.technician}`);
    return true;
  }

  /** The held trust bundle's version (0: only what provisioning gave). */
  get bundleVersion(): number {
    return this.bundle?.version ?? 0;
  }

  /** Bundle push: owner-signed, chaining from the held owner keys, newer; then its revocations apply here. */
  private async pushBundle(b: Body, ctx: RequestContext): Promise<Body> {
    // Checked before any byte is buffered: a bundle may be large (MAX_BUNDLE).
    const auth = this.authOf(ctx.connection);
    if (!auth) throw new MgmtError(RC.EACCESSDENIED, SEC_RC.NotAuthenticated);
    if (!ctx.protected) throw new MgmtError(RC.EACCESSDENIED, SEC_RC.SessionRequired);
    const got = this.receive(SEC.BundlePush, b, ctx);
    if (!(got instanceof Uint8Array)) return got;
    const v = await this.atDeviceTime((now) =>
      verifyBundle(got, {
        ownerKeys: this.bundle ? undefined : (this.opts.ownerKeys ?? []),
        held: this.bundle ?? undefined,
        now,
      }),
    );
    if (!v.ok) {
      this.log('bundle-rejected', v.reason);
      // Not from the owner keys, older, expired: one answer (rc 17); undecodable: malformed.
      throw new MgmtError(RC.EACCESSDENIED, v.code === 'schema' || v.code === 'malformed' || v.code === 'trailing-bytes' || v.code === 'too-large' ? SEC_RC.Malformed : SEC_RC.StaleBundle);
    }
    if (v.value.version <= this.bundleVersion) {
      this.log('bundle-rejected', `bundle v${v.value.version} is not newer than the held v${this.bundleVersion}`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.StaleBundle);
    }
    this.bundle = v.value;
    this.advanceFloor(v.value.issued, `trust bundle v${v.value.version}`);
    this.log('bundle', `trust bundle v${v.value.version} installed by ${auth.technician}`);
    // Revocations take effect at once: sessions of revoked credentials or technician keys end.
    let ended = false;
    for (const c of [...this.device.connections, ctx.connection]) {
      const st = c.state.get(this) as ConnectionSecurity | undefined;
      const a = st?.auth;
      if (!st || !a) continue;
      if (containsBytes(v.value.revocations.credentialIds, a.credentialId) || containsBytes(v.value.revocations.keyIds, a.technicianKeyId)) {
        this.log('session-ended', `technician ${a.technician}: credential or key revoked by bundle v${v.value.version}`);
        if (c === ctx.connection) ended = true;
        else {
          st.auth = null;
          st.session = null;
        }
      }
    }
    if (ended) {
      // The reply still goes out under the session it was asked in; the session ends after it.
      const st = this.stateOf(ctx.connection);
      queueMicrotask(() => {
        st.auth = null;
        st.session = null;
      });
    }
    return { version: v.value.version, ended };
  }

  private async applyConfig(b: Body, at: Arrival): Promise<Body> {
    // Checked at every chunk, before any byte is buffered: no buffer for a peer that may not configure.
    this.requirePermission('configure', at);
    const got = this.receive(SEC.ConfigApply, b, at);
    if (!(got instanceof Uint8Array)) return got;
    const auth = this.authOf(at.connection)!;
    const held = Math.max(this.sequenceFloor, this.activeConfig()?.sequence ?? 0);
    const bundle = this.trustContext();
    const device = this.deviceRef();
    const v = await this.atDeviceTime((now) => verifyConfig(got, { bundle, now, device, heldSequence: held, requirePublished: bundle.configurations.length > 0 }));
    if (!v.ok) {
      this.log('config-rejected', v.reason);
      const rc =
        v.code === 'replayed' ? SEC_RC.Replayed
        : v.code === 'wrong-target' || v.code === 'out-of-scope' ? SEC_RC.WrongTarget
        : v.code === 'expired' || v.code === 'not-yet-valid' ? SEC_RC.Expired
        : v.code === 'schema' || v.code === 'malformed' || v.code === 'trailing-bytes' || v.code === 'too-large' ? SEC_RC.Malformed
        : v.code === 'revoked' ? SEC_RC.Revoked
        : v.code === 'wrong-type' ? SEC_RC.WrongType
        : SEC_RC.BadSignature;
      throw new MgmtError(RC.EACCESSDENIED, rc);
    }
    const cfg: SignedConfig = v.value;
    let sealedNames: string[] = [];
    if (cfg.secrets) {
      try {
        // Proves the secrets are for this device; only their names are kept, never the plaintext.
        sealedNames = [...this.se.unseal(cfg.secrets).keys()].map(String);
      } catch {
        this.log('config-rejected', `#${cfg.sequence}: secrets not decryptable by this device`);
        throw new MgmtError(RC.EACCESSDENIED, SEC_RC.DecryptFailed);
      }
    }
    const problem = this.opts.validateSettings?.(cfg.settings, sealedNames);
    if (problem) {
      this.log('config-rejected', `#${cfg.sequence}: ${problem}`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Malformed);
    }
    if (Object.keys(cfg.settings).some((k) => k.startsWith('rotate.')) && !auth.permissions.includes('rotate-keys')) {
      this.log('access-denied', `${auth.technician} lacks rotate-keys for configuration #${cfg.sequence}`);
      throw new MgmtError(RC.EACCESSDENIED, SEC_RC.RotationDenied);
    }
    // The same value rule as the rotate command, checked before anything is stored (not after the commit).
    let newDevEui: Uint8Array | undefined;
    if (Object.hasOwn(cfg.settings, 'rotate.devEui')) {
      const raw = cfg.settings['rotate.devEui'];
      try {
        newDevEui = typeof raw === 'string' && /^[0-9a-fA-F]{16}$/.test(raw) ? fromLooseHex(raw) : undefined;
      } catch {
        newDevEui = undefined;
      }
      if (!newDevEui || !isRotationValue('dev-eui', newDevEui)) {
        this.log('config-rejected', `#${cfg.sequence}: rotate.devEui is not a usable DevEUI (16 hex digits, not all zeros or ones)`);
        throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Malformed);
      }
    }
    // A reboot at any point before the pointer write abandons the apply (the handler dies with it).
    const gen = this.device.bootCount;
    await this.opts.applyStep?.('verified');
    if (this.device.bootCount !== gen) throw new MgmtError(RC.EBADSTATE);
    // From here to the pointer write one apply at a time: two connections applying at once would
    // stage into the same record, or commit an older sequence after a newer one.
    if (this.applying) throw new MgmtError(RC.EBUSY);
    this.applying = true;
    try {
      // The verification took time: another connection may have applied something newer meanwhile,
      // or the session may have ended (a re-provisioning).
      const stillAuthorised = () => this.authOf(at.connection) === auth;
      const newer = () => cfg.sequence > Math.max(this.sequenceFloor, this.activeConfig()?.sequence ?? 0);
      if (!stillAuthorised()) throw new MgmtError(RC.EBADSTATE);
      if (!newer()) {
        this.log('config-rejected', `#${cfg.sequence}: a configuration as new or newer was applied meanwhile`);
        throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Replayed);
      }
      const target: 0 | 1 = this.active === 0 ? 1 : 0;
      this.records[target] = { sequence: cfg.sequence, digest: cfg.digest, settings: JSON.parse(JSON.stringify(cfg.settings, (_k, x) => (x instanceof Uint8Array ? Array.from(x) : x))), secrets: cfg.secrets };
      await this.opts.applyStep?.('staged');
      if (this.device.bootCount !== gen || !stillAuthorised()) throw new MgmtError(RC.EBADSTATE); // rebooted mid-apply: the old record stays active
      this.active = target; // the single atomic write
      this.sequenceFloor = Math.max(this.sequenceFloor, cfg.sequence);
      this.advanceFloor(cfg.notBefore, `configuration #${cfg.sequence}`);
      if (newDevEui) this.opts.devEui = newDevEui;
    } finally {
      this.applying = false;
    }
    await this.opts.applyStep?.('committed');
    this.log('config-applied', `configuration #${cfg.sequence} applied by ${auth.technician}`);
    return { seq: cfg.sequence, digest: cfg.digest };
  }

  /** A configuration apply is between its checks and its pointer write. */
  private applying = false;

  /** The LoRaWAN network key (AppKey), held in the secure element's storage; never read out. */
  private appKey: Uint8Array | null = null;

  /** The key id of the network key the device holds (null: none); tests and the demo use it, it is not on the wire but in receipts. */
  get appKeyId(): Uint8Array | null {
    return this.appKey ? rotationKeyId(this.appKey) : null;
  }

  /**
   * Rotate the DevEUI or the network key: inside the session, under a credential
   * granting rotate-keys (the owner issued it). The new value arrives protected
   * by the session (confidential); the device answers with a receipt its
   * identity key signs, so the tool can prove which device rotated what.
   */
  private async rotate(b: Body, at: Arrival): Promise<Body> {
    this.requireProvisioned();
    this.requirePermission('rotate-keys', at);
    const what = b.what;
    const value = b.value;
    if (what !== 'dev-eui' && what !== 'app-key') throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    if (!(value instanceof Uint8Array) || !isRotationValue(what as RotationTarget, value)) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
    const nonce = this.nonce(b);
    const auth = this.authOf(at.connection)!;
    let old: Uint8Array;
    let now: Uint8Array;
    if (what === 'dev-eui') {
      old = this.opts.devEui ?? new Uint8Array(0);
      if (equalBytes(old, value)) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
      this.opts.devEui = Uint8Array.from(value);
      now = this.opts.devEui;
      this.log('rotated', `DevEUI rotated by ${auth.technician}`);
    } else {
      old = this.appKey ? rotationKeyId(this.appKey) : new Uint8Array(0);
      if (this.appKey && equalBytes(this.appKey, value)) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
      this.appKey = Uint8Array.from(value);
      now = rotationKeyId(this.appKey);
      this.log('rotated', `network key rotated by ${auth.technician}`);
    }
    const sig = await this.se.sign(rotationReceiptMessage({ what, old, new: now, nonce }), this.misbehave.wrongKey);
    return { what, old, new: now, sig };
  }

  groupDef() {
    const s = this;
    return {
      id: this.groupId,
      name: SECURITY.name,
      read: {
        [SEC.Identity]: () => {
          s.requireProvisioned();
          return {
          serial: s.opts.serial,
          model: s.opts.model,
          hw_rev: s.opts.hwRev,
          pub: s.se.publicKey,
          enc_pub: s.se.encPublicKey,
          ueid: s.opts.ueid,
          mac: s.opts.mac,
          dev_eui: s.opts.devEui,
          cert_len: s.identityCert?.length ?? 0,
          bundle_ver: s.bundleVersion,
          };
        },
        [SEC.ProvisionState]: () => ({
          state: s.provisioned ? 'provisioned' : 'unprovisioned',
          uid: s.chipUid,
          model: s.opts.model,
          hw_rev: s.opts.hwRev,
          mfr: (s.opts.manufacturerKeys ?? []).map((k) => keyId(k)),
          ...(s.provisioned ? { pub: s.se.publicKey } : {}),
        }),
        [SEC.Cert]: (b: Body, ctx: RequestContext) => {
          if (!s.identityCert) throw new MgmtError(RC.ENOENT);
          return s.slice(s.identityCert, b, ctx);
        },
        [SEC.Events]: (b: Body, ctx: RequestContext) => {
          s.requireAnyPermission(EVENTS_READ, 'security event log read', ctx);
          const from = typeof b.from === 'number' && b.from >= 0 ? b.from : 0;
          const out: StoredEvent[] = [];
          let size = 60;
          for (const e of s.events) {
            if (e.n < from) continue;
            const est = 30 + e.type.length + e.detail.length;
            if (size + est > ctx.replyBudget - 16 || out.length >= 32) {
              // A page always carries at least one event: its detail cut to what fits (a protected reply has less room).
              const room = ctx.replyBudget - 16 - size - 30 - e.type.length;
              if (out.length === 0 && room > 0) out.push({ ...e, detail: e.detail.slice(0, room) });
              break;
            }
            size += est;
            out.push(e);
          }
          const last = s.nextEvent - 1;
          const next = out.length ? out[out.length - 1].n + 1 : Math.max(from, s.events[0]?.n ?? last + 1);
          return { events: out.map((e) => ({ n: e.n, t: e.t, b: e.b, type: e.type, detail: e.detail })), next, last };
        },
        [SEC.AuthChallenge]: (b: Body, ctx: RequestContext) => s.keyExchange(b, ctx),
        [SEC.ConfigRead]: (_b: Body, ctx: RequestContext) => {
          s.requireAnyPermission(CONFIG_READ, 'configuration read', ctx);
          const c = s.activeConfig();
          return c ? { seq: c.sequence, digest: c.digest, settings: c.settings, secrets: c.secrets ? 'sealed' : undefined } : { seq: 0, settings: {} };
        },
        [SEC.Interfaces]: () => ({ interfaces: s.interfaces }),
      },
      write: {
        [SEC.Prove]: async (b: Body, ctx: RequestContext) => {
          s.requireProvisioned();
          const nonce = s.nonce(b);
          s.takeSigningToken(ctx, 'proof of possession');
          return { sig: await s.se.sign(popMessage(nonce), s.misbehave.wrongKey) };
        },
        [SEC.ProvisionBegin]: (b: Body, ctx: RequestContext) => s.provisionBegin(b, ctx),
        [SEC.ProvisionAuthorize]: (b: Body, ctx: RequestContext) => s.provisionAuthorize(b, ctx),
        [SEC.ProvisionCert]: (b: Body, ctx: RequestContext) => s.provisionCert(b, ctx),
        [SEC.Attest]: async (b: Body, ctx: RequestContext) => {
          s.requireProvisioned();
          const nonce = s.nonce(b, EAT_NONCE_SIZES);
          const cs = s.stateOf(ctx.connection);
          const off = typeof b.off === 'number' ? b.off : 0;
          if (off === 0 || !cs.token || !equalBytes(cs.token.nonce, nonce)) {
            if (off !== 0) throw new MgmtError(RC.EINVAL, SEC_RC.Offset);
            s.takeSigningToken(ctx, 'attestation token');
            cs.token = { nonce, bytes: await s.attestationToken(nonce) };
            s.log('attested', 'attestation token issued');
          }
          return s.slice(cs.token.bytes, b, ctx);
        },
        [SEC.Auth]: (b: Body, ctx: RequestContext) => s.authenticate(b, ctx),
        [SEC.Protected]: (b: Body, ctx: RequestContext) => s.unwrapProtected(b, ctx),
        [SEC.BundlePush]: (b: Body, ctx: RequestContext) => s.pushBundle(b, ctx),
        [SEC.ConfigApply]: (b: Body, ctx: RequestContext) => s.applyConfig(b, ctx),
        [SEC.Interfaces]: (b: Body, ctx: RequestContext) => {
          s.requirePermission('interfaces', ctx);
          const name = b.name;
          const state = b.state;
          // Own names only: an inherited one (toString, __proto__) is not an interface.
          if (typeof name !== 'string' || !Object.hasOwn(s.interfaces, name)) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
          if (state !== 'open' && state !== 'authenticated' && state !== 'disabled') throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
          if (name === 'debug' && state === 'open' && s.opts.lifecycle !== 'non-psa-rot-debug') throw new MgmtError(RC.EACCESSDENIED, SEC_RC.Permission);
          s.interfaces = { ...s.interfaces, [name]: state };
          s.log('interface', `${name} -> ${state} by ${s.authOf(ctx.connection)?.technician}`);
          return { interfaces: s.interfaces };
        },
        [SEC.Rotate]: (b: Body, ctx: RequestContext) => s.rotate(b, ctx),
        [SEC.Wipe]: async (b: Body, ctx: RequestContext) => {
          s.requirePermission('wipe', ctx);
          if (b.confirm !== true) throw new MgmtError(RC.EINVAL, SEC_RC.Malformed);
          // The other groups' configuration stores (Zephyr Settings) go back to factory values too.
          await s.device.wipe();
          s.records = [null, null];
          s.active = null;
          // The network key is a secret like the sealed ones: a wiped unit must not join its old network.
          s.appKey?.fill(0);
          s.appKey = null;
          s.log('wipe', `configuration, secrets, network key and settings erased by ${s.authOf(ctx.connection)?.technician}`);
          return {};
        },
      },
    };
  }
}

const SETTINGS_WRITES = new Set<number>([SETTINGS.ReadWrite, SETTINGS.Delete, SETTINGS.Commit, SETTINGS.LoadSave]);

/** Add the security group to a reference device. */
export async function installSecurity(device: ReferenceDevice, opts: SecurityOptions = {}): Promise<DeviceSecurity> {
  const sec = new DeviceSecurity(device, opts);
  await sec.init();
  device.registerGroup(sec.groupDef());
  device.accessGuard = (g, id, op, at) => sec.guard(g, id, op, at);
  device.clockGuard = (t, ctx) => sec.checkClock(t, ctx);
  device.bootModeGuard = (mode, ctx) => sec.checkBootMode(mode, ctx);
  device.takeoverGuard = (ctx) => sec.mayTakeOverUpload(ctx);
  return sec;
}

export { CHUNK_CAP };

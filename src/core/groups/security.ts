/**
 * fieldbench's security management group (application-defined; the id is
 * configurable and found through the Enum group by its name). It carries
 * identity, proof of possession, attestation, the security event log,
 * technician authentication, signed configuration, interface control and wipe.
 * Messages larger than the device's buffer move in chunks (off, len, data), as
 * the Image group does. docs/PROTOCOL.md has the CDDL.
 */
import type { Body, Protector, RequestOptions, SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import { Group, SMP_HEADER_SIZE } from '../smp/header.ts';
import { encodeCbor } from '../base/cbor.ts';
import { equalBytes } from '../base/bytes.ts';
import { OS } from '../protocol/os.ts';
import { type RotationTarget, SEC, SEC_RC, SECURITY, type SecurityErrorName } from '../protocol/security.ts';
import { ed25519Verify } from '../trust/ed25519.ts';
import {
  MAX_PROTECTED_SEQ, PROTECT_OVERHEAD, SessionError, type SessionKeys, deviceSignedMessage, ecdh, ephemeralX25519, mac2, mac3, parseProtected, protect,
  pseudoRandomKey, sessionKeys, technicianSignedMessage, transcript2, transcript3, unprotect,
} from '../trust/session.ts';

export { POP_CONTEXT, PROVISION_CONTEXT, ROTATION_SIZES, ROTATION_TARGETS, type RotationTarget, SEC, SEC_RC, SECURITY, popMessage, provisionPopMessage, rotationKeyId, rotationReceiptMessage } from '../protocol/security.ts';

/** A rotation as the device reports it: old and new (DevEUI, or key ids), signed by its identity key. */
export interface RotationReceipt {
  what: RotationTarget;
  old: Uint8Array;
  new: Uint8Array;
  sig: Uint8Array;
}

export const SECURITY_GROUP_NAME = SECURITY.name;
/** Default id; devices may use another, so look it up with findGroup(listGroups(...), SECURITY_GROUP_NAME). */
export const SECURITY_GROUP_DEFAULT_ID = SECURITY.id;

/** First group id Zephyr leaves to applications (MGMT_GROUP_ID_PERUSER): ours is one of them, the standard groups are below. */
const PERUSER_GROUP = 64;

/** The protocol's name of a security group failure (SEC_RC key), or undefined (also for another group's error). */
export function secErrorName(e: unknown): SecurityErrorName | undefined {
  if (!(e instanceof SmpError && e.kind === 'group' && e.rc !== undefined)) return undefined;
  if (e.group !== undefined && e.group < PERUSER_GROUP) return undefined;
  return SECURITY.errorName(e.rc);
}

export function describeSecError(e: unknown): string {
  const text = secErrorName(e) && (e as SmpError).rc !== undefined ? SECURITY.errorText((e as SmpError).rc!) : undefined;
  if (text) return text;
  return e instanceof Error ? e.message : String(e);
}

/** Waits before each new try of a signing request the device answered busy (rc 23: its bucket of signatures for peers without a session is empty). */
export const BUSY_RETRY_MS = [300, 600, 900, 1200] as const;

/**
 * A signing request (proof, attestation, key exchange, provisioning offer): when the device says it
 * is busy (rate limited), wait and ask again a few times (it refills a few signatures a second), then
 * give up with its answer. A cancel stops the wait at once.
 */
export async function whenNotBusy<T>(request: () => Promise<T>, opts?: RequestOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request();
    } catch (e) {
      if (secErrorName(e) !== 'Busy' || attempt >= BUSY_RETRY_MS.length) throw e;
      const signal = opts?.signal;
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(done, BUSY_RETRY_MS[attempt]);
        function done() {
          signal?.removeEventListener('abort', stop);
          resolve();
        }
        function stop() {
          clearTimeout(t);
          reject(signal!.reason instanceof Error ? signal!.reason : e);
        }
        if (signal?.aborted) stop();
        else signal?.addEventListener('abort', stop, { once: true });
      });
    }
  }
}

export interface DeviceIdentity {
  serial: string;
  model: string;
  hwRev: string;
  devicePublicKey: Uint8Array;
  deviceEncKey: Uint8Array;
  ueid?: Uint8Array;
  mac?: Uint8Array;
  devEui?: Uint8Array;
  certLength: number;
}

function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SmpError('decode', `security group reply lacks ${what}`);
  return v;
}
function text(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new SmpError('decode', `security group reply lacks ${what}`);
  return v;
}
function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new SmpError('decode', `security group reply lacks ${what}`);
  return v;
}

export class SecurityGroup {
  constructor(
    readonly client: SmpClient,
    readonly id: number = SECURITY_GROUP_DEFAULT_ID,
    /** Largest blob accepted from a device (certificates, tokens). */
    readonly maxBlob = 16384,
  ) {}

  async identity(opts?: RequestOptions): Promise<DeviceIdentity> {
    const r = await this.client.read(this.id, SEC.Identity, {}, opts);
    return {
      serial: text(r.serial, 'serial'),
      model: text(r.model, 'model'),
      hwRev: text(r.hw_rev, 'hw_rev'),
      devicePublicKey: bytes(r.pub, 'pub'),
      deviceEncKey: bytes(r.enc_pub, 'enc_pub'),
      ueid: r.ueid instanceof Uint8Array ? r.ueid : undefined,
      mac: r.mac instanceof Uint8Array ? r.mac : undefined,
      devEui: r.dev_eui instanceof Uint8Array ? r.dev_eui : undefined,
      certLength: uint(r.cert_len ?? 0, 'cert_len'),
    };
  }

  /** The manufacturer-signed identity certificate, read in chunks. */
  certificate(opts?: RequestOptions): Promise<Uint8Array> {
    return this.readBlob(SEC.Cert, {}, opts);
  }

  async prove(nonce: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    const r = await whenNotBusy(() => this.client.write(this.id, SEC.Prove, { nonce }, opts), opts);
    return bytes(r.sig, 'sig');
  }

  /** Request a fresh attestation token for `nonce`; the token comes back in chunks. */
  attest(nonce: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    return whenNotBusy(() => this.readBlob(SEC.Attest, { nonce }, opts, 'write'), opts);
  }

  async events(from: number, opts?: RequestOptions): Promise<{ events: SecurityEvent[]; next: number; last: number }> {
    const r = await this.client.read(this.id, SEC.Events, { from }, opts);
    if (!Array.isArray(r.events)) throw new SmpError('decode', 'events reply lacks "events"');
    const events = (r.events as Record<string, unknown>[]).map((e) => ({
      n: uint(e.n, 'event n'),
      uptimeMs: uint(e.t, 'event t'),
      boot: uint(e.b ?? 0, 'event b'),
      type: text(e.type, 'event type'),
      detail: typeof e.detail === 'string' ? e.detail : '',
    }));
    return { events, next: uint(r.next, 'next'), last: uint(r.last, 'last') };
  }

  /** Every event from `from` on, page by page. */
  async allEvents(from = 0, opts?: RequestOptions): Promise<SecurityEvent[]> {
    const out: SecurityEvent[] = [];
    let next = from;
    for (let pages = 0; pages < 10000; pages++) {
      const page = await this.events(next, opts);
      out.push(...page.events);
      if (page.events.length === 0 || page.next > page.last) break;
      if (page.next <= next) throw new SmpError('decode', 'event log paging did not advance');
      next = page.next;
    }
    return out;
  }

  /** Key exchange message 1 -> 2: send the tool's ephemeral X25519 key; the device answers with its own, a challenge and its signature. */
  async keyExchange(gX: Uint8Array, opts?: RequestOptions): Promise<{ challenge: Uint8Array; gY: Uint8Array; sig: Uint8Array }> {
    const r = await whenNotBusy(() => this.client.read(this.id, SEC.AuthChallenge, { g_x: gX }, opts), opts);
    return { challenge: bytes(r.challenge, 'challenge'), gY: bytes(r.g_y, 'g_y'), sig: bytes(r.sig, 'sig') };
  }

  /**
   * The whole key exchange (trust/session.ts): messages 1-4, the device's proof of its identity
   * key checked before the technician signs anything, the session keys confirmed. Device
   * refusals surface as the SmpError they were; a device that cannot prove its key, or does
   * not confirm the keys, as SessionError 'key-exchange'; a failing signer as its own error.
   */
  async keyExchangeLogin(
    devicePublicKey: Uint8Array,
    credential: Uint8Array,
    sign: (message: Uint8Array) => Promise<Uint8Array>,
    opts?: RequestOptions,
  ): Promise<{ technician: string; permissions: string[]; keys: SessionKeys }> {
    const eph = ephemeralX25519();
    const m2 = await this.keyExchange(eph.publicKey, opts);
    let prk: Uint8Array;
    let th2: Uint8Array;
    try {
      th2 = transcript2(eph.publicKey, m2.gY, m2.challenge, devicePublicKey);
      prk = pseudoRandomKey(ecdh(eph.privateKey, m2.gY), th2);
    } finally {
      eph.privateKey.fill(0);
    }
    if (m2.sig.length !== 64 || !(await ed25519Verify(m2.sig, deviceSignedMessage(th2, mac2(prk, th2)), devicePublicKey))) {
      throw new SessionError('key-exchange', 'the device did not prove its identity key in the key exchange: not the device it claims to be (or a relay)');
    }
    const th3 = transcript3(th2, m2.sig, credential);
    const sig = await sign(technicianSignedMessage(th3, mac3(prk, th3)));
    if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new SessionError('key-exchange', 'the technician key produced no Ed25519 signature');
    const r = await this.authenticate(credential, sig, opts);
    const keys = sessionKeys(prk, th3, sig);
    if (!r.kc || !equalBytes(r.kc, keys.kc)) throw new SessionError('key-exchange', 'the device did not confirm the session keys');
    return { technician: r.technician, permissions: r.permissions, keys };
  }

  /**
   * Authenticate and open the secure session on this client: from now on every request but the
   * key exchange goes protected. When the device ends the session (a reset, or it answers a
   * protected request with rc 16), the channel runs a new key exchange with the same credential
   * and signer before the next request, once, transparently for the op that caused it.
   */
  async openSecureSession(
    devicePublicKey: Uint8Array,
    credential: Uint8Array,
    sign: (message: Uint8Array) => Promise<Uint8Array>,
    opts?: RequestOptions,
  ): Promise<{ technician: string; permissions: string[]; channel: SecureChannel }> {
    // A new login ends any session this client had: the exchange itself goes plain.
    this.client.protect(null);
    const first = await this.keyExchangeLogin(devicePublicKey, credential, sign, opts);
    const id = this.id;
    const max = this.maxBlob;
    const channel = new SecureChannel(id, this.client, first.keys, async (client) =>
      (await (client === this.client ? this : new SecurityGroup(client, id, max)).keyExchangeLogin(devicePublicKey, credential, sign)).keys);
    this.client.protect(channel);
    return { technician: first.technician, permissions: first.permissions, channel };
  }

  /** Key exchange message 3 -> 4: the credential and the technician's signature; the device confirms the keys. */
  async authenticate(credential: Uint8Array, sig: Uint8Array, opts?: RequestOptions): Promise<{ technician: string; permissions: string[]; kc?: Uint8Array }> {
    const r = await this.writeBlob(SEC.Auth, credential, { sig }, opts);
    return {
      technician: text(r.technician, 'technician'),
      permissions: Array.isArray(r.permissions) ? (r.permissions as unknown[]).filter((p): p is string => typeof p === 'string') : [],
      kc: r.kc instanceof Uint8Array ? r.kc : undefined,
    };
  }

  /** The version of the trust bundle the device holds (0: only what provisioning gave it). */
  async bundleVersion(opts?: RequestOptions): Promise<number> {
    const r = await this.client.read(this.id, SEC.Identity, {}, opts);
    return uint(r.bundle_ver ?? 0, 'bundle_ver');
  }

  /** Hand the device a trust bundle (inside the session); it installs it if it chains from its owner keys and is newer. */
  async pushBundle(bundle: Uint8Array, opts?: RequestOptions): Promise<{ version: number; ended: boolean }> {
    const r = await this.writeBlob(SEC.BundlePush, bundle, {}, opts);
    return { version: uint(r.version, 'version'), ended: r.ended === true };
  }

  async readConfig(opts?: RequestOptions): Promise<{ sequence: number; digest?: Uint8Array; settings: Record<string, unknown> }> {
    const r = await this.client.read(this.id, SEC.ConfigRead, {}, opts);
    return {
      sequence: uint(r.seq ?? 0, 'seq'),
      digest: r.digest instanceof Uint8Array ? r.digest : undefined,
      settings: r.settings && typeof r.settings === 'object' ? (r.settings as Record<string, unknown>) : {},
    };
  }

  /** Send a signed configuration; the device verifies it and applies it whole, or not at all. */
  async applyConfig(signed: Uint8Array, opts?: RequestOptions): Promise<{ sequence: number; digest: Uint8Array }> {
    const r = await this.writeBlob(SEC.ConfigApply, signed, {}, opts);
    return { sequence: uint(r.seq, 'seq'), digest: bytes(r.digest, 'digest') };
  }

  async interfaces(opts?: RequestOptions): Promise<Record<string, string>> {
    const r = await this.client.read(this.id, SEC.Interfaces, {}, opts);
    if (!r.interfaces || typeof r.interfaces !== 'object') throw new SmpError('decode', 'interfaces reply lacks "interfaces"');
    return r.interfaces as Record<string, string>;
  }

  async setInterface(name: string, state: 'open' | 'authenticated' | 'disabled', opts?: RequestOptions): Promise<Record<string, string>> {
    const r = await this.client.write(this.id, SEC.Interfaces, { name, state }, opts);
    return (r.interfaces ?? {}) as Record<string, string>;
  }

  /** Is the device factory-fresh? (answered without authentication) */
  async provisionState(opts?: RequestOptions): Promise<ProvisionState> {
    const r = await this.client.read(this.id, SEC.ProvisionState, {}, opts);
    const state = text(r.state, 'state');
    if (state !== 'unprovisioned' && state !== 'provisioned') throw new SmpError('decode', `unknown provisioning state ${JSON.stringify(state)}`);
    return {
      state,
      chipUid: bytes(r.uid, 'uid'),
      model: text(r.model, 'model'),
      hwRev: text(r.hw_rev, 'hw_rev'),
      manufacturerKids: Array.isArray(r.mfr) ? (r.mfr as unknown[]).filter((k): k is Uint8Array => k instanceof Uint8Array) : [],
      devicePublicKey: r.pub instanceof Uint8Array ? r.pub : undefined,
    };
  }

  /** Ask the device to generate its keys; it answers with them and a signature over provisionPopMessage. */
  async provisionBegin(nonce: Uint8Array, opts?: RequestOptions): Promise<ProvisionOffer> {
    const r = await whenNotBusy(() => this.client.write(this.id, SEC.ProvisionBegin, { nonce }, opts), opts);
    return {
      devicePublicKey: bytes(r.pub, 'pub'),
      deviceEncKey: bytes(r.enc_pub, 'enc_pub'),
      chipUid: bytes(r.uid, 'uid'),
      model: text(r.model, 'model'),
      hwRev: text(r.hw_rev, 'hw_rev'),
      sig: bytes(r.sig, 'sig'),
    };
  }

  /** Present an owner-signed re-provisioning authorization (valid for this connection). */
  async provisionAuthorize(authorization: Uint8Array, opts?: RequestOptions): Promise<void> {
    await this.writeBlob(SEC.ProvisionAuthorize, authorization, {}, opts);
  }

  /** Send the identity certificate; the device checks it binds its own keys and ids, stores it and locks provisioning. */
  async provisionCert(cert: Uint8Array, opts?: RequestOptions): Promise<{ serial: string }> {
    const r = await this.writeBlob(SEC.ProvisionCert, cert, {}, opts);
    return { serial: text(r.serial, 'serial') };
  }

  /** Rotate the DevEUI or the network key (inside the session, rotate-keys); the device answers with a signed receipt. */
  async rotate(what: RotationTarget, value: Uint8Array, nonce: Uint8Array, opts?: RequestOptions): Promise<RotationReceipt> {
    const r = await this.client.write(this.id, SEC.Rotate, { what, value, nonce }, opts);
    if (r.what !== what) throw new SmpError('decode', `rotation reply is for ${JSON.stringify(r.what)}, not ${what}`);
    return { what, old: bytes(r.old, 'old'), new: bytes(r.new, 'new'), sig: bytes(r.sig, 'sig') };
  }

  async wipe(opts?: RequestOptions): Promise<void> {
    await this.client.write(this.id, SEC.Wipe, { confirm: true }, opts);
  }

  /** Read a blob in chunks: each reply carries len (total), off and data. */
  private async readBlob(cmd: number, extra: Record<string, unknown>, opts?: RequestOptions, op: 'read' | 'write' = 'read'): Promise<Uint8Array> {
    let out: Uint8Array | null = null;
    let off = 0;
    for (;;) {
      const body = { ...extra, off };
      const r = op === 'read' ? await this.client.read(this.id, cmd, body, opts) : await this.client.write(this.id, cmd, body, opts);
      const len = uint(r.len, 'len');
      const roff = uint(r.off, 'off');
      const data = bytes(r.data, 'data');
      if (len > this.maxBlob) throw new SmpError('decode', `device offers ${len} bytes, more than the ${this.maxBlob} accepted`);
      if (roff !== off) throw new SmpError('decode', `device answered offset ${roff} for ${off}`);
      if (!out) out = new Uint8Array(len);
      else if (out.length !== len) throw new SmpError('decode', 'blob length changed during the transfer');
      if (off + data.length > len) throw new SmpError('decode', 'device sent more than it announced');
      out.set(data, off);
      off += data.length;
      if (off === len) return out;
      if (data.length === 0) throw new SmpError('decode', 'device sent an empty chunk before the end');
    }
  }

  /** Write a blob in chunks sized to the device buffer; `final` fields ride on the last chunk. */
  private async writeBlob(cmd: number, blob: Uint8Array, final: Record<string, unknown>, opts?: RequestOptions): Promise<Record<string, unknown>> {
    let off = 0;
    for (;;) {
      const head: Record<string, unknown> = off === 0 ? { len: blob.length, off } : { off };
      const room = this.chunkRoom(head, final);
      if (room <= 0) throw new SmpError('too-large', 'device buffer too small for the security group');
      const end = Math.min(blob.length, off + room);
      const last = end === blob.length;
      const body = { ...head, data: blob.subarray(off, end), ...(last ? final : {}) };
      const r = await this.client.write(this.id, cmd, body, opts);
      if (last) return r;
      const next = uint(r.off, 'off');
      if (next !== end) throw new SmpError('decode', `device expects offset ${next}, sent up to ${end}`);
      off = end;
    }
  }

  /** Largest data length whose whole request fits the device buffer (worst case: with the final fields). */
  private chunkRoom(head: Record<string, unknown>, final: Record<string, unknown>): number {
    const fixed = SMP_HEADER_SIZE + encodeCbor({ ...head, data: new Uint8Array(0), ...final }).length;
    // A bstr header grows from 1 to 3 bytes as data passes 23 and 255 bytes.
    return this.client.maxPacket - fixed - 2;
  }
}

/**
 * The tool's half of a secure session, installed on the SmpClient: every request except the
 * key exchange itself goes as a protected request ({s, c}, trust/session.ts), and every reply
 * is opened and checked (tag, direction, sequence). After the device resets the keys are dead
 * on both sides; the channel renews them with a new key exchange before the next request.
 */
export class SecureChannel implements Protector {
  readonly overhead = PROTECT_OVERHEAD;
  /** Key exchanges run after the first (each after a reset or a refused session). */
  renewals = 0;
  private seq = 0;
  private stale = false;
  private renewing: Promise<void> | null = null;

  constructor(
    readonly groupId: number,
    private client: SmpClient,
    private keys: SessionKeys,
    private readonly renewKeys: (client: SmpClient) => Promise<SessionKeys>,
  ) {}

  /**
   * The op reopened the link (a new connection: the device has no session for it): protect the
   * new client from now on, with a new key exchange before its first request.
   */
  moveTo(client: SmpClient): void {
    if (this.client === client) return;
    this.client.protect(null);
    this.client = client;
    this.stale = true;
    client.protect(this);
  }

  covers(group: number, id: number): boolean {
    return !(group === this.groupId && (id === SEC.AuthChallenge || id === SEC.Auth || id === SEC.Protected));
  }

  async ready(): Promise<void> {
    if (this.stale) await this.renew();
  }

  /** Run a new key exchange (shared by concurrent callers). */
  renew(): Promise<void> {
    this.renewing ??= this.renewKeys(this.client)
      .then((k) => {
        this.keys = k;
        this.seq = 0;
        this.stale = false;
        this.renewals++;
      })
      .finally(() => {
        this.renewing = null;
      });
    return this.renewing;
  }

  /** A covered request was refused with rc 16 (the device has no session for us: it reset): renew once. */
  async recover(e: unknown): Promise<boolean> {
    if (!(e instanceof SmpError && e.kind === 'group' && e.group === this.groupId && e.rc === SEC_RC.Protection)) return false;
    try {
      await this.renew();
    } catch (r) {
      throw new SmpError('closed', `the device ended the secure session and a new key exchange failed: ${describeSecError(r)}`);
    }
    return true;
  }

  wrap(inner: Uint8Array): { group: number; id: number; body: Body; open(reply: Body): Uint8Array } {
    if (this.seq >= MAX_PROTECTED_SEQ) throw new SmpError('closed', 'session sequence exhausted: authenticate again');
    const s = ++this.seq;
    const keys = this.keys;
    return {
      group: this.groupId,
      id: SEC.Protected,
      body: { s, c: protect(keys.t2d, 't2d', s, inner) },
      open(reply) {
        const p = parseProtected(reply);
        if (!p || p.seq !== s) throw new SmpError('decode', `protected reply carries sequence ${String(reply.s)}, not ${s}`);
        const pt = unprotect(keys.d2t, 'd2t', s, p.ciphertext);
        if (!pt) throw new SmpError('decode', 'protected reply fails its authentication tag (tampered or injected)');
        return pt;
      },
    };
  }

  /** A reset reboots the device, which ends its session: renew before the next request. */
  after(group: number, id: number): void {
    if (group === Group.OS && id === OS.Reset) this.stale = true;
  }
}

/**
 * Carry a secure session over to a reopened link (the update op's reconnect): when `from` had one,
 * `to` gets it, renewed by a new key exchange before its first request. False when there was none.
 */
export function carrySecureSession(from: SmpClient, to: SmpClient): boolean {
  const ch = from.protection;
  if (!(ch instanceof SecureChannel)) return false;
  ch.moveTo(to);
  return true;
}

export interface ProvisionState {
  state: 'unprovisioned' | 'provisioned';
  chipUid: Uint8Array;
  model: string;
  hwRev: string;
  /** Key ids of the manufacturer keys the device accepts certificates from. */
  manufacturerKids: Uint8Array[];
  /** The current identity key, once provisioned. */
  devicePublicKey?: Uint8Array;
}

export interface ProvisionOffer {
  devicePublicKey: Uint8Array;
  deviceEncKey: Uint8Array;
  chipUid: Uint8Array;
  model: string;
  hwRev: string;
  sig: Uint8Array;
}

export interface SecurityEvent {
  /** Monotonic event counter (never reused, survives reboots). */
  n: number;
  /** Milliseconds since that boot. */
  uptimeMs: number;
  /** Boot count at the time. */
  boot: number;
  type: string;
  detail: string;
}

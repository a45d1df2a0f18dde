/**
 * fieldbench's security management group (application-defined; the id is
 * configurable and found through the Enum group by its name). It carries
 * identity, proof of possession, attestation, the security event log,
 * technician authentication, signed configuration, interface control and wipe.
 * Messages larger than the device's buffer move in chunks (off, len, data), as
 * the Image group does. docs/PROTOCOL.md has the CDDL.
 */
import type { RequestOptions, SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import { SMP_HEADER_SIZE } from '../smp/header.ts';
import { encodeCbor } from '../smp/cbor.ts';

export const SECURITY_GROUP_NAME = 'fieldbench_sec';
/** Default id; devices may use another, so look it up with findGroup(listGroups(...), SECURITY_GROUP_NAME). */
export const SECURITY_GROUP_DEFAULT_ID = 96;

export const SEC = {
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
  /** A request protected by the session (secure-channel.ts): {s, c} both ways. */
  Protected: 11,
  /** Hand the device the held trust bundle (chunked); it installs it if it chains and is newer. */
  BundlePush: 12,
} as const;

/** Group-specific error codes (v2 `err.rc`): the one table, used by the device and the tool. */
export const SEC_RC = {
  NotAuthenticated: 1,
  Permission: 2,
  BadSignature: 3,
  WrongTarget: 4,
  Replayed: 5,
  Expired: 6,
  Malformed: 7,
  DecryptFailed: 8,
  LockedOut: 9,
  Revoked: 10,
  Offset: 11,
  RotationDenied: 12,
  Nonce: 13,
  WrongType: 14,
  SessionRequired: 15,
  Protection: 16,
  StaleBundle: 17,
  Clock: 18,
} as const;

export const SEC_ERR: Record<number, string> = {
  [SEC_RC.NotAuthenticated]: 'not authenticated: present a technician credential first',
  [SEC_RC.Permission]: 'permission denied by the technician credential',
  [SEC_RC.BadSignature]: 'signature invalid',
  [SEC_RC.WrongTarget]: 'not for this device (target or scope)',
  [SEC_RC.Replayed]: 'replayed: sequence number not above the one applied',
  [SEC_RC.Expired]: 'expired or not yet valid',
  [SEC_RC.Malformed]: 'malformed or schema violation',
  [SEC_RC.DecryptFailed]: 'secrets could not be decrypted by this device',
  [SEC_RC.LockedOut]: 'locked out after repeated authentication failures',
  [SEC_RC.Revoked]: 'revoked',
  [SEC_RC.Offset]: 'transfer out of order (offset mismatch)',
  [SEC_RC.RotationDenied]: 'key or identifier rotation not permitted',
  [SEC_RC.Nonce]: 'nonce missing or of the wrong size',
  [SEC_RC.WrongType]: 'wrong kind of artifact (for example a credential sent as a configuration)',
  [SEC_RC.SessionRequired]: 'privileged command outside the authenticated session: it must arrive protected',
  [SEC_RC.Protection]: 'protected request refused: no session, a bad authentication tag, or a replayed or reordered sequence number',
  [SEC_RC.StaleBundle]: 'trust bundle refused: not newer than the one the device holds, or not from its owner',
  [SEC_RC.Clock]: 'clock change refused: without permission, or below the latest signed time the device has seen',
};

/** Domain separation for signatures the device makes (proof of possession; the key exchange has its own, secure-channel.ts). */
export const POP_CONTEXT = new TextEncoder().encode('fieldbench-pop-v1\0');

export function popMessage(nonce: Uint8Array): Uint8Array {
  const m = new Uint8Array(POP_CONTEXT.length + nonce.length);
  m.set(POP_CONTEXT);
  m.set(nonce, POP_CONTEXT.length);
  return m;
}

export function describeSecError(e: unknown): string {
  if (e instanceof SmpError && e.kind === 'group' && e.rc !== undefined && SEC_ERR[e.rc]) return SEC_ERR[e.rc];
  return e instanceof Error ? e.message : String(e);
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
    const r = await this.client.write(this.id, SEC.Prove, { nonce }, opts);
    return bytes(r.sig, 'sig');
  }

  /** Request a fresh attestation token for `nonce`; the token comes back in chunks. */
  attest(nonce: Uint8Array, opts?: RequestOptions): Promise<Uint8Array> {
    return this.readBlob(SEC.Attest, { nonce }, opts, 'write');
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
    const r = await this.client.read(this.id, SEC.AuthChallenge, { g_x: gX }, opts);
    return { challenge: bytes(r.challenge, 'challenge'), gY: bytes(r.g_y, 'g_y'), sig: bytes(r.sig, 'sig') };
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

/**
 * What a configurable device holds (signed configuration or stock settings),
 * the configure op's types, and how device refusals map to failure codes.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { SEC, type DeviceIdentity, SecurityGroup, describeSecError, secErrorName } from '../../groups/security.ts';
import type { SecurityErrorName } from '../../protocol/security.ts';
import { MGMT_RC } from '../../protocol/mgmt.ts';
import { SETTINGS_ERR, SETTINGS_GROUP, describeSettingsError, readSetting } from '../../groups/settings.ts';
import { toHex } from '../../base/bytes.ts';
import type { SmpClient } from '../../smp/client.ts';
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import type { TrustFailure } from '../../trust/result.ts';
import type { SettingValue } from '../../trust/signed-config.ts';
import { type ConfigSchema, type SchemaIssue, SettingValueError, decodeSettingValue, settingsKeyOf } from './schema.ts';
import { findSecurityGroup } from '../identification/identify.ts';
import { FieldbenchError } from '../../base/errors.ts';
import { type Failed, type Outcome, failed } from '../outcome.ts';

export const UNSIGNED_NOTE = 'configuration is not signed on this device';

/** Why a device with the security group would not show its configuration, in words (the app and the CLI). */
export const CONFIG_LOGIN_REASON = 'the device shows its configuration only to a logged-in technician whose credential grants configure or wipe: log in first';

// ---------------------------------------------------------------- types

/** What a device currently holds. */
export interface CurrentConfig {
  /** 'signed': the security group's applied configuration; 'settings': a stock device's settings tree; 'none': nothing applied yet. */
  source: 'signed' | 'settings' | 'none';
  /** Sequence of the applied signed configuration (0 when none). */
  sequence: number;
  /** SHA-256 of the applied signed configuration. */
  digest?: Uint8Array;
  settings: Record<string, SettingValue>;
  /** The device holds sealed secrets (signed configurations). */
  secretsSealed: boolean;
  /** Secret fields a stock device was not asked for (their values are never read). */
  hidden: string[];
  /** The signed configuration's bytes when the local library has them (found by digest). */
  signed?: Uint8Array;
}

export type DisplayValue = string;

export interface ConfigChanges {
  added: { key: string; value: DisplayValue }[];
  removed: { key: string; value: DisplayValue }[];
  changed: { key: string; from: DisplayValue; to: DisplayValue }[];
  unchanged: number;
}

export interface ConfigDiff {
  before: Record<string, DisplayValue>;
  after: Record<string, DisplayValue>;
  changes: ConfigChanges;
}

export type ConfigFailure =
  | TrustFailure
  | 'unsupported'
  | 'no-schema'
  | 'secrets'
  | 'not-authenticated'
  | 'locked-out'
  | 'rotation-denied'
  | 'transfer'
  | 'backup'
  | 'login'
  | 'needs-newer'
  | 'unsigned-not-confirmed'
  | 'access-denied'
  | 'device';

export type ConfigureProgress =
  | { kind: 'checking' }
  | { kind: 'diff'; diff: ConfigDiff; sequence: number; target: string }
  | { kind: 'backing-up' }
  | { kind: 'authenticating' }
  | { kind: 'sending'; sent: number; total: number };

/** What a done signed apply leaves: the sequence and digest the device now holds. */
export interface ConfigureResult {
  sequence: number;
  digest: Uint8Array;
  /** The sequence the device held before (0: none). */
  previousSequence?: number;
  /** The trust bundle version handed to the device at login (its revocations and rotations now apply there). */
  bundlePushed?: number;
}

/** A failed configure op names the schema issues when there are any. */
export interface ConfigFailureDetails {
  issues?: SchemaIssue[];
}

export type ConfigureOutcome = Outcome<ConfigureResult, ConfigFailure, ConfigFailureDetails>;
export type ConfigureState = ConfigureProgress | ConfigureOutcome;

/**
 * A configure op's failure: the code, the reason in words, who refused (the
 * tool's own checks or the device) and, for schema refusals, the issues. A
 * refusal is final (the same request is refused again); only a device or
 * transfer failure may pass on a second try.
 */
export function configFailed(code: ConfigFailure, reason: string, by: 'tool' | 'device', issues?: SchemaIssue[]): Failed<ConfigFailure, ConfigFailureDetails> {
  return failed(code, reason, { by, retryable: by === 'device' && (code === 'device' || code === 'transfer'), ...(issues ? { details: { issues } } : {}) });
}

export interface ConfigureContext {
  /** A verified trust bundle (its owner anchors sign configurations). */
  bundle: TrustBundle;
  /** Highest sequence the tool knows was applied (inventory); the device's own is read too. */
  heldSequence?: number;
  deviceIdentity: DeviceIdentity;
  /**
   * The technician login (authenticateTechnician with the key store's or a PEM's signer). It may
   * say which trust bundle version it handed the device (a device with an older bundle gets the held one).
   * It is given the op's own group (bound to the op's cancellable session): log in through it, so a
   * cancel also stops the login's requests.
   */
  authenticate: (group: SecurityGroup) => Promise<void | { bundlePushed?: number }>;
  /** Keep what the device holds before it changes (storeConfigBackup); a failure stops the apply. */
  backup: (current: CurrentConfig) => Promise<void>;
  /** Asked after the diff; false cancels. Without it the op goes on (the caller may stop iterating instead). */
  confirm?: (diff: ConfigDiff) => Promise<boolean>;
  schema?: ConfigSchema;
  /** The device's security group (found through Enum when absent). */
  group?: SecurityGroup;
  /** Find a signed configuration in the local library by its SHA-256 (hex), for backups. */
  library?: (digestHex: string) => Promise<Uint8Array | undefined>;
  now?: number;
  /** Also check that the configuration is listed in the bundle's published configurations. */
  requirePublished?: boolean;
  /** Cancels the op: it stops at once and ends `cancelled`. */
  signal?: AbortSignal;
}

export class ConfigureError extends FieldbenchError<ConfigFailure> {
  constructor(
    code: ConfigFailure,
    message: string,
  ) {
    super(code, message);
    this.name = 'ConfigureError';
  }
}

// ---------------------------------------------------------------- device errors

/** How the device's refusals of a configuration read as this op's failure codes (every security group error has one). */
const DEVICE_CODE: Record<SecurityErrorName, ConfigFailure> = {
  NotAuthenticated: 'not-authenticated',
  Permission: 'permission',
  BadSignature: 'bad-signature',
  WrongTarget: 'wrong-target',
  Replayed: 'replayed',
  Expired: 'expired',
  Malformed: 'schema',
  DecryptFailed: 'secrets',
  LockedOut: 'locked-out',
  Revoked: 'revoked',
  Offset: 'transfer',
  RotationDenied: 'rotation-denied',
  // a missing or wrong-sized nonce in a configure exchange is a malformed request
  Nonce: 'malformed',
  WrongType: 'wrong-type',
  SessionRequired: 'not-authenticated',
  // refusals that are not about this configuration: the device's answer in words
  Protection: 'device',
  StaleBundle: 'device',
  Clock: 'device',
  AlreadyProvisioned: 'device',
  NotProvisioned: 'device',
  CertMismatch: 'device',
  ProvisionOrder: 'device',
  Busy: 'device',
};

/** A device's refusal (SEC_ERR) as a failure code and a sentence. */
export function deviceRejection(e: unknown): { code: ConfigFailure; reason: string } {
  if (e instanceof SmpError) {
    const name = secErrorName(e);
    if (name) return { code: DEVICE_CODE[name], reason: `the device refused the configuration: ${describeSecError(e)}` };
    if (e.kind === 'rc' && e.rc === MGMT_RC.EACCESSDENIED) return { code: 'access-denied', reason: 'the device denied access (interface restricted)' };
    if (e.kind === 'rc' && e.rc === MGMT_RC.EBADSTATE) return { code: 'device', reason: 'the device was reset during the apply; it keeps the configuration it had (read it again)' };
  }
  return { code: 'device', reason: `the apply failed: ${e instanceof Error ? e.message : String(e)}` };
}

/** The device's own sentence for its last configuration rejection (security event log), if it has one. */
export async function rejectionDetail(g: SecurityGroup): Promise<string | undefined> {
  try {
    const { last } = await g.events(Number.MAX_SAFE_INTEGER);
    const recent = await g.allEvents(Math.max(0, last - 7));
    const ev = [...recent].reverse().find((e) => e.type === 'config-rejected' || e.type === 'access-denied');
    return ev?.detail || undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- read

function settingsFromDevice(v: unknown): Record<string, SettingValue> {
  if (!v || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return {};
  return v as Record<string, SettingValue>;
}

export async function readSigned(g: SecurityGroup, library?: ConfigureContext['library']): Promise<CurrentConfig> {
  const r = await g.client.read(g.id, SEC.ConfigRead, {});
  const sequence = typeof r.seq === 'number' && Number.isSafeInteger(r.seq) && r.seq >= 0 ? r.seq : 0;
  const digest = r.digest instanceof Uint8Array && r.digest.length === 32 ? r.digest : undefined;
  const cur: CurrentConfig = {
    source: digest ? 'signed' : 'none',
    sequence,
    digest,
    settings: settingsFromDevice(r.settings),
    secretsSealed: r.secrets === 'sealed',
    hidden: [],
  };
  if (digest && library) {
    const bytes = await library(toHex(digest));
    if (bytes && toHex(sha256(bytes)) === toHex(digest)) cur.signed = bytes;
  }
  return cur;
}

/** A stock device's settings, field by field; secret fields are not read. */
export async function readStockSettings(c: SmpClient, schema: ConfigSchema): Promise<CurrentConfig> {
  const settings: Record<string, SettingValue> = {};
  const hidden: string[] = [];
  for (const [name, f] of Object.entries(schema.fields)) {
    if (f.secret) {
      hidden.push(name);
      continue;
    }
    const key = settingsKeyOf(schema, name);
    try {
      const r = await readSetting(c, key);
      if (r.maxSize !== undefined && r.value.length >= r.maxSize) throw new ConfigureError('device', `${name}: the device caps reads at ${r.maxSize} bytes; the value may be longer`);
      settings[name] = decodeSettingValue(f, name, r.value);
    } catch (e) {
      if (e instanceof SmpError && e.kind === 'group' && e.group === SETTINGS_GROUP && e.rc === SETTINGS_ERR.KeyNotFound) continue;
      if (e instanceof SettingValueError || e instanceof ConfigureError) throw e;
      throw new ConfigureError(e instanceof SmpError && e.notSupported ? 'unsupported' : 'device', describeSettingsError(e, key));
    }
  }
  return { source: Object.keys(settings).length ? 'settings' : 'none', sequence: 0, settings, secretsSealed: false, hidden };
}

/**
 * What the device holds now: the security group's configuration, or (stock
 * devices) the schema's fields read from the Settings group. Throws ConfigureError.
 */
export async function readCurrentConfig(
  session: SmpSession,
  opts: { group?: SecurityGroup | null; schema?: ConfigSchema; library?: ConfigureContext['library'] } = {},
): Promise<CurrentConfig> {
  const g = opts.group === undefined ? await findSecurityGroup(session) : opts.group;
  if (g) {
    try {
      return await readSigned(g, opts.library);
    } catch (e) {
      const name = secErrorName(e);
      if (name === 'NotAuthenticated' || name === 'SessionRequired') throw new ConfigureError('not-authenticated', CONFIG_LOGIN_REASON);
      if (name === 'Permission') throw new ConfigureError('permission', `the device refused: ${describeSecError(e)} (reading the configuration needs configure or wipe)`);
      throw new ConfigureError('device', `could not read the configuration: ${describeSecError(e)}`);
    }
  }
  if (!opts.schema) throw new ConfigureError('no-schema', 'this device has no security group; reading its settings needs the model schema');
  return readStockSettings(session.client, opts.schema);
}

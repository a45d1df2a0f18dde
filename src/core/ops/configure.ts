/**
 * Configuration (NIST IR 8259A "device configuration" and "data protection"):
 * apply an owner-signed configuration to a device that has the security
 * group, with every check made by the tool first (signature, target,
 * sequence above the device's, validity window, schema, secrets addressed to
 * this device) and again by the device; a backup of what the device held is
 * kept before anything changes, the technician logs in, the configuration
 * moves in chunks and the device applies it whole or not at all.
 *
 * Stock devices (no security group, but Zephyr's Settings group) can be
 * written unsigned, only with an explicit confirmation, and the result says
 * so. Secret fields are never sent in cleartext: signed configurations carry
 * them sealed to the device; a stock device, having no key to seal to, does
 * not get them.
 *
 * Every function that talks to a device is an async generator of states; the
 * UI and the CLI only render them.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { SEC, type DeviceIdentity, SecurityGroup, describeSecError } from '../groups/security.ts';
import { SETTINGS_ERR, SETTINGS_GROUP, commitSettings, describeSettingsError, readSetting, saveSettings, writeSetting } from '../groups/settings.ts';
import { decodeCbor, encodeDeterministic } from '../smp/cbor.ts';
import { toHex } from '../smp/bytes.ts';
import type { SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import type { SmpSession } from '../smp/session.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { keyId } from '../trust/keys.ts';
import type { TrustFailure } from '../trust/result.ts';
import { type SettingValue, type SignedConfig, decodeConfigUnverified, secretsAddressedTo, verifyConfig } from '../trust/signed-config.ts';
import { AccessError } from './access.ts';
import {
  type ConfigSchema, type SchemaIssue, SettingValueError, decodeSettingValue, encodeSettingValue, formatIssues, isSecretField, schemaForModel, settingsKeyOf,
  validateSettings,
} from './config-schema.ts';
import { findSecurityGroup } from './identify.ts';
import { addBackup } from '../store/artifacts.ts';
import type { BackupRecord, FieldbenchDB } from '../store/db.ts';
import type { DeviceIdentifiersInput } from '../store/ids.ts';

export const UNSIGNED_NOTE = 'configuration is not signed on this device';

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
  | 'cancelled'
  | 'needs-newer'
  | 'unsigned-not-confirmed'
  | 'access-denied'
  | 'device';

export type ConfigureState =
  | { kind: 'checking' }
  | { kind: 'diff'; diff: ConfigDiff; sequence: number; target: string }
  | { kind: 'backing-up' }
  | { kind: 'authenticating' }
  | { kind: 'sending'; sent: number; total: number }
  | { kind: 'applied'; sequence: number; digest: Uint8Array }
  | { kind: 'error'; code: ConfigFailure; reason: string; by: 'tool' | 'device'; issues?: SchemaIssue[] };

export interface ConfigureContext {
  /** A verified trust bundle (its owner anchors sign configurations). */
  bundle: TrustBundle;
  /** Highest sequence the tool knows was applied (inventory); the device's own is read too. */
  heldSequence?: number;
  deviceIdentity: DeviceIdentity;
  /** The technician login (authenticateTechnician with the key store's or a PEM's signer). */
  authenticate: () => Promise<void>;
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
}

export class ConfigureError extends Error {
  constructor(
    readonly code: ConfigFailure,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigureError';
  }
}

// ---------------------------------------------------------------- display and diff

function display(v: unknown): DisplayValue {
  if (v instanceof Uint8Array) return `h'${toHex(v)}'`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  return JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? `h'${toHex(x)}'` : x));
}

function same(a: unknown, b: unknown): boolean {
  return display(a) === display(b);
}

/** Display form of a set of settings; secret fields show as hidden, never their value. */
export function displaySettings(settings: Record<string, unknown>, schema?: ConfigSchema): Record<string, DisplayValue> {
  const out: Record<string, DisplayValue> = {};
  for (const [k, v] of Object.entries(settings)) out[k] = isSecretField(schema, k) ? 'secret (not shown)' : display(v);
  return out;
}

export function sealedLabel(n: number): DisplayValue {
  return `sealed (${n} bytes)`;
}

/** The key under which the sealed secrets slot shows in a diff. */
export const SECRETS_KEY = '(sealed secrets)';

/** Changes between two display maps. */
export function diffDisplay(before: Record<string, DisplayValue>, after: Record<string, DisplayValue>): ConfigChanges {
  const changes: ConfigChanges = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const k of Object.keys(after).sort()) {
    if (!Object.hasOwn(before, k)) changes.added.push({ key: k, value: after[k] });
    else if (before[k] !== after[k]) changes.changed.push({ key: k, from: before[k], to: after[k] });
    else changes.unchanged++;
  }
  for (const k of Object.keys(before).sort()) if (!Object.hasOwn(after, k)) changes.removed.push({ key: k, value: before[k] });
  return changes;
}

/** Diff two sets of settings (secret fields are compared but never shown). */
export function diffSettings(a: Record<string, unknown>, b: Record<string, unknown>, schema?: ConfigSchema): ConfigChanges {
  const before = displaySettings(a, schema);
  const after = displaySettings(b, schema);
  for (const k of Object.keys(after)) {
    if (isSecretField(schema, k) && Object.hasOwn(a, k)) {
      // Same mask on both sides: show "changed" when the hidden values differ.
      if (!same(a[k], b[k])) after[k] = 'secret (changed, not shown)';
    }
  }
  return diffDisplay(before, after);
}

function currentDisplay(c: CurrentConfig, schema?: ConfigSchema): Record<string, DisplayValue> {
  const d = displaySettings(c.settings, schema);
  if (c.secretsSealed) d[SECRETS_KEY] = 'sealed';
  for (const h of c.hidden) d[h] = 'secret (not read)';
  return d;
}

/** Diff of a device's current configuration and a signed configuration. */
export function diffAgainst(current: CurrentConfig, next: Pick<SignedConfig, 'settings' | 'secrets'>, schema?: ConfigSchema): ConfigDiff {
  const before = currentDisplay(current, schema);
  const after = displaySettings(next.settings, schema);
  if (next.secrets) after[SECRETS_KEY] = sealedLabel(next.secrets.length);
  // Secrets a stock device holds unread stay as they are.
  for (const h of current.hidden) if (!Object.hasOwn(after, h)) after[h] = before[h];
  return { before, after, changes: diffDisplay(before, after) };
}

/** Diff of two signed configurations (decoded without verification: display only). */
export function diffSignedConfigs(a: Uint8Array, b: Uint8Array, schema?: ConfigSchema): ConfigDiff & { from: number; to: number } {
  const ca = decodeConfigUnverified(a);
  const cb = decodeConfigUnverified(b);
  const before = displaySettings(ca.settings, schema);
  if (ca.secrets) before[SECRETS_KEY] = sealedLabel(ca.secrets.length);
  const after = displaySettings(cb.settings, schema);
  if (cb.secrets) after[SECRETS_KEY] = sealedLabel(cb.secrets.length);
  return { before, after, changes: diffDisplay(before, after), from: ca.sequence, to: cb.sequence };
}

export function formatChanges(c: ConfigChanges): string {
  const lines: string[] = [];
  for (const x of c.added) lines.push(`  + ${x.key} = ${x.value}`);
  for (const x of c.changed) lines.push(`  ~ ${x.key}: ${x.from} -> ${x.to}`);
  for (const x of c.removed) lines.push(`  - ${x.key} (was ${x.value})`);
  if (!lines.length) lines.push('  (no changes)');
  if (c.unchanged) lines.push(`  (${c.unchanged} unchanged)`);
  return lines.join('\n');
}

// ---------------------------------------------------------------- device errors

const DEVICE_CODE: Record<number, ConfigFailure> = {
  1: 'not-authenticated',
  2: 'permission',
  3: 'bad-signature',
  4: 'wrong-target',
  5: 'replayed',
  6: 'expired',
  7: 'schema',
  8: 'secrets',
  9: 'locked-out',
  10: 'revoked',
  11: 'transfer',
  12: 'rotation-denied',
  13: 'malformed',
  14: 'wrong-type',
};

/** A device's refusal (SEC_ERR) as a failure code and a sentence. */
export function deviceRejection(e: unknown): { code: ConfigFailure; reason: string } {
  if (e instanceof SmpError) {
    if (e.kind === 'group' && e.rc !== undefined && DEVICE_CODE[e.rc]) return { code: DEVICE_CODE[e.rc], reason: `the device refused the configuration: ${describeSecError(e)}` };
    if (e.kind === 'rc' && e.rc === 11) return { code: 'access-denied', reason: 'the device denied access (interface restricted)' };
    if (e.kind === 'rc' && e.rc === 6) return { code: 'device', reason: 'the device was reset during the apply; it keeps the configuration it had (read it again)' };
  }
  return { code: 'device', reason: `the apply failed: ${e instanceof Error ? e.message : String(e)}` };
}

/** The device's own sentence for its last configuration rejection (security event log), if it has one. */
async function rejectionDetail(g: SecurityGroup): Promise<string | undefined> {
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

async function readSigned(g: SecurityGroup, library?: ConfigureContext['library']): Promise<CurrentConfig> {
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
      throw new ConfigureError('device', `could not read the configuration: ${describeSecError(e)}`);
    }
  }
  if (!opts.schema) throw new ConfigureError('no-schema', 'this device has no security group; reading its settings needs the model schema');
  return readStockSettings(session.client, opts.schema);
}

// ---------------------------------------------------------------- backups

const SNAPSHOT_FORMAT = 'fieldbench-config-snapshot';

export interface ConfigSnapshot {
  source: CurrentConfig['source'];
  sequence: number;
  digest?: Uint8Array;
  settings: Record<string, SettingValue>;
  secretsSealed: boolean;
  taken: number;
}

/**
 * The bytes a backup keeps: the signed configuration itself when the library
 * has it (so it can be re-applied), else a snapshot of what was read (secret
 * fields never included: signed devices do not reveal them, stock devices are
 * not asked).
 */
export function configBackupBytes(current: CurrentConfig, taken = Date.now()): Uint8Array {
  if (current.signed) return current.signed;
  return encodeDeterministic(
    new Map<string, unknown>([
      ['format', SNAPSHOT_FORMAT],
      ['v', 1],
      ['source', current.source],
      ['seq', current.sequence],
      ['digest', current.digest],
      ['settings', current.settings],
      ['sealed', current.secretsSealed],
      ['taken', Math.floor(taken)],
    ]),
  );
}

export function decodeSnapshot(bytes: Uint8Array): ConfigSnapshot | null {
  let v: unknown;
  try {
    v = decodeCbor(bytes);
  } catch {
    return null;
  }
  if (!(v instanceof Map) || v.get('format') !== SNAPSHOT_FORMAT || v.get('v') !== 1) return null;
  const toObj = (x: unknown): unknown => (x instanceof Map ? Object.fromEntries([...x].map(([k, y]) => [k, toObj(y)])) : Array.isArray(x) ? x.map(toObj) : x);
  const source = v.get('source');
  return {
    source: source === 'signed' || source === 'settings' ? source : 'none',
    sequence: typeof v.get('seq') === 'number' ? (v.get('seq') as number) : 0,
    digest: v.get('digest') instanceof Uint8Array ? (v.get('digest') as Uint8Array) : undefined,
    settings: (toObj(v.get('settings')) ?? {}) as Record<string, SettingValue>,
    secretsSealed: v.get('sealed') === true,
    taken: typeof v.get('taken') === 'number' ? (v.get('taken') as number) : 0,
  };
}

/** Validator for addBackup (src/core/store/artifacts.ts): a signed configuration or a snapshot. */
export function backupValidator(bytes: Uint8Array): { ok: true; meta: Record<string, unknown> } | { ok: false; reason: string } {
  const snap = decodeSnapshot(bytes);
  if (snap) return { ok: true, meta: { backup: 'snapshot', sequence: snap.sequence } };
  try {
    const c = decodeConfigUnverified(bytes);
    return { ok: true, meta: { backup: 'signed', sequence: c.sequence } };
  } catch (e) {
    return { ok: false, reason: `not a configuration backup: ${(e as Error).message}` };
  }
}

/** Keep a backup of what the device holds in the local store (artifact + backup record, one transaction). */
export function storeConfigBackup(
  db: FieldbenchDB,
  who: { deviceId: number; device: DeviceIdentifiersInput },
  current: CurrentConfig,
  reason = 'before configure',
): Promise<BackupRecord> {
  return addBackup(db, { ...who, reason, configSeq: current.sequence, config: configBackupBytes(current) }, backupValidator);
}

// ---------------------------------------------------------------- apply (signed)

function toolError(code: ConfigFailure, reason: string, issues?: SchemaIssue[]): ConfigureState {
  return issues ? { kind: 'error', code, reason, by: 'tool', issues } : { kind: 'error', code, reason, by: 'tool' };
}

function describeTarget(c: SignedConfig): string {
  const t = c.target;
  return t.kind === 'key' ? `device key ${toHex(t.keyId)}` : t.kind === 'serial' ? `device ${t.serial}` : t.kind === 'model' ? `model ${t.model}` : `group ${t.group}`;
}

/** A client that reports the config-apply bytes it sends. */
function progressClient(c: SmpClient, groupId: number, onSent: (n: number) => void): SmpClient {
  const wrapped = {
    get maxPacket() {
      return c.maxPacket;
    },
    read: (g: number, id: number, body?: Record<string, unknown>, o?: Parameters<SmpClient['read']>[3]) => c.read(g, id, body, o),
    write: async (g: number, id: number, body: Record<string, unknown> = {}, o?: Parameters<SmpClient['write']>[3]) => {
      const r = await c.write(g, id, body, o);
      if (g === groupId && id === SEC.ConfigApply && body.data instanceof Uint8Array) onSent(body.data.length);
      return r;
    },
  };
  return wrapped as unknown as SmpClient;
}

/**
 * Check a signed configuration against what the tool knows, without a device:
 * signature and issuer, validity, target, sequence, schema, secrets addressee.
 */
export async function checkSignedConfig(
  signed: Uint8Array,
  ctx: { bundle: TrustBundle; deviceIdentity: Pick<DeviceIdentity, 'serial' | 'model' | 'devicePublicKey' | 'deviceEncKey'>; heldSequence?: number; schema?: ConfigSchema; now?: number; requirePublished?: boolean },
): Promise<{ ok: true; config: SignedConfig } | { ok: false; code: ConfigFailure; reason: string; issues?: SchemaIssue[] }> {
  const id = ctx.deviceIdentity;
  const v = await verifyConfig(signed, {
    bundle: ctx.bundle,
    now: ctx.now,
    device: { serial: id.serial, model: id.model, keyId: keyId(id.devicePublicKey) },
    heldSequence: ctx.heldSequence,
    requirePublished: ctx.requirePublished,
  });
  if (!v.ok) return { ok: false, code: v.code, reason: v.reason };
  const cfg = v.value;
  const schema = ctx.schema ?? schemaForModel(id.model);
  if (schema) {
    const secretNames = cfg.secrets ? Object.keys(schema.fields).filter((k) => schema.fields[k].secret) : [];
    const issues = validateSettings(schema, cfg.settings, { sealed: secretNames });
    if (issues.length) return { ok: false, code: 'schema', reason: `configuration #${cfg.sequence} does not fit model ${schema.model}: ${formatIssues(issues)}`, issues };
  }
  if (cfg.secrets && !secretsAddressedTo(cfg, id.deviceEncKey)) {
    return { ok: false, code: 'secrets', reason: `the secrets in configuration #${cfg.sequence} are sealed to another device's key; this device could not open them` };
  }
  return { ok: true, config: cfg };
}

/** Apply an owner-signed configuration to a device with the security group. */
export async function* applySignedConfig(session: SmpSession, signed: Uint8Array, ctx: ConfigureContext): AsyncGenerator<ConfigureState> {
  yield { kind: 'checking' };
  let g: SecurityGroup | null;
  try {
    g = ctx.group ?? (await findSecurityGroup(session));
  } catch (e) {
    yield { kind: 'error', code: 'device', reason: `could not talk to the device: ${(e as Error).message}`, by: 'device' };
    return;
  }
  if (!g) {
    yield toolError('unsupported', 'this device has no security group, so it cannot verify a signed configuration; a stock device can only be written unsigned, with explicit confirmation');
    return;
  }
  let current: CurrentConfig;
  try {
    current = await readSigned(g, ctx.library);
  } catch (e) {
    yield { kind: 'error', code: 'device', reason: `could not read the current configuration: ${describeSecError(e)}`, by: 'device' };
    return;
  }
  const held = Math.max(ctx.heldSequence ?? 0, current.sequence);
  const schema = ctx.schema ?? schemaForModel(ctx.deviceIdentity.model);
  const check = await checkSignedConfig(signed, { bundle: ctx.bundle, deviceIdentity: ctx.deviceIdentity, heldSequence: held, schema, now: ctx.now, requirePublished: ctx.requirePublished });
  if (!check.ok) {
    yield toolError(check.code, check.reason, check.issues);
    return;
  }
  const cfg = check.config;
  const diff = diffAgainst(current, cfg, schema);
  yield { kind: 'diff', diff, sequence: cfg.sequence, target: describeTarget(cfg) };
  if (ctx.confirm && !(await ctx.confirm(diff))) {
    yield toolError('cancelled', 'not applied: the technician did not confirm');
    return;
  }
  yield { kind: 'backing-up' };
  try {
    await ctx.backup(current);
  } catch (e) {
    yield toolError('backup', `not applied: the backup of the current configuration failed (${(e as Error).message})`);
    return;
  }
  yield { kind: 'authenticating' };
  try {
    await ctx.authenticate();
  } catch (e) {
    const byDevice = e instanceof AccessError && e.code !== 'signer' && e.code !== 'credential';
    yield { kind: 'error', code: 'login', reason: `not applied: ${(e as Error).message}`, by: byDevice ? 'device' : 'tool' };
    return;
  }
  // Send, reporting progress as the chunks are acknowledged.
  const total = signed.length;
  let sent = 0;
  const queue: ConfigureState[] = [{ kind: 'sending', sent: 0, total }];
  let wake: (() => void) | null = null;
  let result: { ok: true; sequence: number; digest: Uint8Array } | { ok: false; error: unknown } | null = null;
  const tracked = new SecurityGroup(
    progressClient(session.client, g.id, (n) => {
      sent += n;
      queue.push({ kind: 'sending', sent, total });
      wake?.();
    }),
    g.id,
  );
  tracked.applyConfig(signed).then(
    (r) => {
      result = { ok: true, ...r };
      wake?.();
    },
    (error: unknown) => {
      result = { ok: false, error };
      wake?.();
    },
  );
  for (;;) {
    if (queue.length) {
      yield queue.shift()!;
      continue;
    }
    if (result) break;
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
  const res = result as unknown as { ok: true; sequence: number; digest: Uint8Array } | { ok: false; error: unknown };
  if (!res.ok) {
    const rej = deviceRejection(res.error);
    const detail = res.error instanceof SmpError && res.error.kind === 'group' ? await rejectionDetail(g) : undefined;
    yield { kind: 'error', code: rej.code, reason: detail ? `${rej.reason} (${detail})` : rej.reason, by: 'device' };
    return;
  }
  if (res.sequence !== cfg.sequence || toHex(res.digest) !== toHex(cfg.digest)) {
    yield { kind: 'error', code: 'device', reason: `the device reports configuration #${res.sequence} (${toHex(res.digest).slice(0, 16)}…), not #${cfg.sequence} as sent: read it again`, by: 'device' };
    return;
  }
  yield { kind: 'applied', sequence: res.sequence, digest: res.digest };
}

// ---------------------------------------------------------------- restore

export type RestorePlan =
  | { kind: 'reapply'; sequence: number; signed: Uint8Array }
  | { kind: 'needs-owner'; reason: string; sequence: number; settings: Record<string, DisplayValue> }
  | { kind: 'unsigned'; settings: Record<string, SettingValue> };

/**
 * What restoring a backup can do: re-apply a backed-up signed configuration
 * only while its sequence is above the device's (never, once a newer one was
 * applied: the device refuses replays), write a stock device's snapshot back
 * (unsigned), or explain that the owner must sign the settings again.
 */
export function planRestore(backup: Uint8Array, current: CurrentConfig, schema?: ConfigSchema): RestorePlan {
  const snap = decodeSnapshot(backup);
  if (snap) {
    if (current.source === 'settings' || (current.source === 'none' && snap.source === 'settings')) return { kind: 'unsigned', settings: snap.settings };
    return {
      kind: 'needs-owner',
      sequence: snap.sequence,
      settings: displaySettings(snap.settings, schema),
      reason:
        `this backup holds what configuration #${snap.sequence} set, but not the signed configuration itself; the device accepts only owner-signed ` +
        `configurations with a sequence above ${current.sequence}. Send these settings to the owner to sign as a new configuration.`,
    };
  }
  let c;
  try {
    c = decodeConfigUnverified(backup);
  } catch (e) {
    return { kind: 'needs-owner', sequence: 0, settings: {}, reason: `the backup is not readable: ${(e as Error).message}` };
  }
  if (c.sequence > current.sequence) return { kind: 'reapply', sequence: c.sequence, signed: backup };
  return {
    kind: 'needs-owner',
    sequence: c.sequence,
    settings: displaySettings(c.settings, schema),
    reason:
      `the backup is configuration #${c.sequence}; the device has applied #${current.sequence} and refuses any sequence not above it ` +
      `(replay protection). Restoring these settings needs a newer signed configuration from the owner (sequence ${current.sequence + 1} or more).`,
  };
}

/** Restore a backup (re-apply a still-fresh signed configuration, or write a stock device's settings back with confirmation). */
export async function* restoreFromBackup(
  session: SmpSession,
  backup: Uint8Array,
  ctx: ConfigureContext & { confirmUnsigned?: boolean },
): AsyncGenerator<ConfigureState | UnsignedState> {
  yield { kind: 'checking' };
  let current: CurrentConfig;
  try {
    current = await readCurrentConfig(session, { group: ctx.group, schema: ctx.schema ?? schemaForModel(ctx.deviceIdentity.model), library: ctx.library });
  } catch (e) {
    yield toolError(e instanceof ConfigureError ? e.code : 'device', (e as Error).message);
    return;
  }
  const plan = planRestore(backup, current, ctx.schema);
  if (plan.kind === 'needs-owner') {
    yield toolError('needs-newer', plan.reason);
    return;
  }
  if (plan.kind === 'reapply') {
    yield* applySignedConfig(session, plan.signed, ctx);
    return;
  }
  const schema = ctx.schema ?? schemaForModel(ctx.deviceIdentity.model);
  if (!schema) {
    yield toolError('no-schema', 'restoring settings needs the model schema');
    return;
  }
  yield* writeUnsignedSettings(session, plan.settings, { schema, confirmUnsigned: ctx.confirmUnsigned === true, group: null });
}

// ---------------------------------------------------------------- stock devices (unsigned)

export type UnsignedState =
  | { kind: 'checking' }
  | { kind: 'diff'; diff: ConfigDiff; unsigned: true }
  | { kind: 'writing'; written: number; total: number; name: string }
  | { kind: 'committing' }
  | { kind: 'saving' }
  | { kind: 'written'; unsigned: true; note: typeof UNSIGNED_NOTE; changes: ConfigChanges; saved: boolean }
  | { kind: 'error'; code: ConfigFailure; reason: string; by: 'tool' | 'device'; issues?: SchemaIssue[] };

/**
 * Write settings to a stock device through Zephyr's Settings group: no
 * signature, no sequence, no replay protection, so it needs
 * `confirmUnsigned: true` and every result says so. Values are checked
 * against the schema; secret fields are refused (the device has no key to
 * seal them to, and they would cross the link in cleartext). Writes go to
 * RAM, then commit, then save (persist), and are read back.
 */
export async function* writeUnsignedSettings(
  session: SmpSession,
  values: Record<string, SettingValue>,
  opts: { schema: ConfigSchema; confirmUnsigned: boolean; save?: boolean; group?: SecurityGroup | null; confirm?: (diff: ConfigDiff) => Promise<boolean> },
): AsyncGenerator<UnsignedState> {
  yield { kind: 'checking' };
  if (opts.confirmUnsigned !== true) {
    yield { kind: 'error', code: 'unsigned-not-confirmed', reason: `${UNSIGNED_NOTE}: anyone on this link could write it too. Confirm explicitly (confirmUnsigned / --confirm-unsigned) to write anyway.`, by: 'tool' };
    return;
  }
  const schema = opts.schema;
  const secrets = Object.keys(values).filter((k) => isSecretField(schema, k));
  if (secrets.length) {
    yield {
      kind: 'error',
      code: 'secrets',
      reason: `${secrets.join(', ')} ${secrets.length > 1 ? 'are' : 'is'} secret: this device has no security group, hence no key to seal secrets to, and they are never sent in cleartext`,
      by: 'tool',
    };
    return;
  }
  const issues = validateSettings(schema, values, { partial: true });
  if (issues.length) {
    yield { kind: 'error', code: 'schema', reason: `not written: ${formatIssues(issues)}`, by: 'tool', issues };
    return;
  }
  let current: CurrentConfig;
  try {
    current = await readStockSettings(session.client, schema);
  } catch (e) {
    yield { kind: 'error', code: e instanceof ConfigureError ? e.code : 'device', reason: (e as Error).message, by: 'device' };
    return;
  }
  const after = { ...current.settings, ...values };
  const diff: ConfigDiff = { before: currentDisplay(current, schema), after: { ...displaySettings(after, schema), ...Object.fromEntries(current.hidden.map((h) => [h, 'secret (not read)'])) }, changes: diffSettings(current.settings, after, schema) };
  yield { kind: 'diff', diff, unsigned: true };
  if (opts.confirm && !(await opts.confirm(diff))) {
    yield { kind: 'error', code: 'cancelled', reason: 'not written: the technician did not confirm', by: 'tool' };
    return;
  }
  const names = Object.keys(values);
  let written = 0;
  for (const name of names) {
    const key = settingsKeyOf(schema, name);
    yield { kind: 'writing', written, total: names.length, name };
    try {
      await writeSetting(session.client, key, encodeSettingValue(schema.fields[name], name, values[name]));
    } catch (e) {
      yield { kind: 'error', code: e instanceof SmpError && e.kind === 'rc' && e.rc === 11 ? 'access-denied' : 'device', reason: `${name} not written: ${describeSettingsError(e, key)}`, by: 'device' };
      return;
    }
    written++;
  }
  yield { kind: 'writing', written, total: names.length, name: '' };
  yield { kind: 'committing' };
  try {
    await commitSettings(session.client);
  } catch (e) {
    yield { kind: 'error', code: 'device', reason: `written but not committed: ${describeSettingsError(e)}`, by: 'device' };
    return;
  }
  const save = opts.save !== false;
  if (save) {
    yield { kind: 'saving' };
    try {
      await saveSettings(session.client);
    } catch (e) {
      yield { kind: 'error', code: 'device', reason: `applied but not saved (lost at the next reset): ${describeSettingsError(e)}`, by: 'device' };
      return;
    }
  }
  try {
    const back = await readStockSettings(session.client, schema);
    const wrong = names.filter((n) => !same(back.settings[n], values[n]));
    if (wrong.length) {
      yield { kind: 'error', code: 'device', reason: `the device reads back different values for ${wrong.join(', ')}`, by: 'device' };
      return;
    }
  } catch (e) {
    yield { kind: 'error', code: 'device', reason: `written, but could not be read back: ${(e as Error).message}`, by: 'device' };
    return;
  }
  yield { kind: 'written', unsigned: true, note: UNSIGNED_NOTE, changes: diff.changes, saved: save };
}

// ---------------------------------------------------------------- runners

/** Run an op to its end (CLI, tests): the final state. */
export async function runToEnd<S extends { kind: string }>(gen: AsyncGenerator<S>, onState?: (s: S) => void): Promise<S> {
  let last: S | undefined;
  for await (const s of gen) {
    onState?.(s);
    last = s;
  }
  if (!last) throw new Error('the operation produced no state');
  return last;
}

/** Audit details of a configure run (no settings values, no secrets: keys and sequence only). */
export function auditDetails(s: ConfigureState | UnsignedState, extra: { sequence?: number; digest?: Uint8Array } = {}): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (s.kind === 'applied') {
    d.sequence = s.sequence;
    d.digest = toHex(s.digest);
  } else if (s.kind === 'written') {
    d.signed = false;
    d.note = s.note;
    d.keys = [...s.changes.added, ...s.changes.changed, ...s.changes.removed].map((c) => c.key);
  } else if (s.kind === 'error') {
    d.code = s.code;
    d.by = s.by;
    d.reason = s.reason;
  }
  if (extra.sequence !== undefined) d.sequence ??= extra.sequence;
  if (extra.digest) d.digest ??= toHex(extra.digest);
  return d;
}

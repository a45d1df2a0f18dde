/**
 * Apply a signed configuration (NIST IR 8259A "device configuration" and "data protection"):
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
 * The pieces: read.ts (what the device holds, its refusals), diff.ts,
 * backup.ts, apply.ts (this), restore.ts, unsigned.ts (stock devices).
 * Every function that talks to a device is an async generator of states; the
 * UI and the CLI only render them.
 */
import { SEC, type DeviceIdentity, SecurityGroup, describeSecError, secErrorName } from '../../groups/security.ts';
import { toHex } from '../../base/bytes.ts';
import type { SmpClient } from '../../smp/client.ts';
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { keyId } from '../../trust/keys.ts';
import { type SignedConfig, secretsAddressedTo, verifyConfig } from '../../trust/signed-config.ts';
import { AccessError } from '../access/login.ts';
import { type ConfigSchema, type SchemaIssue, formatIssues, schemaForModel, validateSettings } from './schema.ts';
import { findSecurityGroup } from '../identification/identify.ts';
import { diffAgainst } from './diff.ts';
import {
  type ConfigFailure, type ConfigFailureDetails, type ConfigureContext, type ConfigureProgress, type ConfigureResult, type ConfigureState, type CurrentConfig,
  configFailed, deviceRejection, readSigned, rejectionDetail,
} from './read.ts';
import { type Failed, type Op, type OutcomeKind, cancellableSession, cancelled, contract, done, runOp, unsupported } from '../outcome.ts';
import type { ConfigRunState } from './restore.ts';

// ---------------------------------------------------------------- apply (signed)

/** A refusal by the tool's own checks. */
export function toolError(code: ConfigFailure, reason: string, issues?: SchemaIssue[]): Failed<ConfigFailure, ConfigFailureDetails> {
  return configFailed(code, reason, 'tool', issues);
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

/** Apply an owner-signed configuration to a device with the security group: progress states, then one Outcome. */
export function applySignedConfig(session: SmpSession, signed: Uint8Array, ctx: ConfigureContext): Op<ConfigureProgress, ConfigureResult, ConfigFailure, ConfigFailureDetails> {
  return contract(applyBody(cancellableSession(session, ctx.signal), signed, ctx), { signal: ctx.signal });
}

async function* applyBody(session: SmpSession, signed: Uint8Array, ctx: ConfigureContext): AsyncGenerator<ConfigureState> {
  yield { kind: 'checking' };
  let g: SecurityGroup | null;
  try {
    // The caller's group rebound to this op's session, so a cancel stops its requests too.
    g = ctx.group ? new SecurityGroup(session.client, ctx.group.id) : await findSecurityGroup(session);
  } catch (e) {
    if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e; // the link: the contract's 'link'
    yield configFailed('device', `could not talk to the device: ${(e as Error).message}`, 'device');
    return;
  }
  if (!g) {
    yield unsupported('this device has no security group, so it cannot verify a signed configuration; a stock device can only be written unsigned, with explicit confirmation');
    return;
  }
  const schema = ctx.schema ?? schemaForModel(ctx.deviceIdentity.model);
  // The tool's own checks first, against the sequence the tool knows: a configuration it must refuse costs no login.
  const early = await checkSignedConfig(signed, { bundle: ctx.bundle, deviceIdentity: ctx.deviceIdentity, heldSequence: ctx.heldSequence ?? 0, schema, now: ctx.now, requirePublished: ctx.requirePublished });
  if (!early.ok) {
    yield toolError(early.code, early.reason, early.issues);
    return;
  }
  // The device shows what it holds only inside a technician's session (configure): log in before the diff.
  yield { kind: 'authenticating' };
  let bundlePushed: number | undefined;
  try {
    bundlePushed = (await ctx.authenticate(g))?.bundlePushed;
  } catch (e) {
    const byDevice = e instanceof AccessError && e.code !== 'signer' && e.code !== 'credential';
    if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e;
    yield configFailed('login', `not applied: ${(e as Error).message}`, byDevice ? 'device' : 'tool');
    return;
  }
  let current: CurrentConfig;
  try {
    current = await readSigned(g, ctx.library);
  } catch (e) {
    if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e;
    // refused (no session, no configure): the device's own code; anything else is the device's failure
    yield configFailed(secErrorName(e) ? deviceRejection(e).code : 'device', `not applied: could not read the current configuration: ${describeSecError(e)}`, 'device');
    return;
  }
  const held = Math.max(ctx.heldSequence ?? 0, current.sequence);
  const check = held > (ctx.heldSequence ?? 0) ? await checkSignedConfig(signed, { bundle: ctx.bundle, deviceIdentity: ctx.deviceIdentity, heldSequence: held, schema, now: ctx.now, requirePublished: ctx.requirePublished }) : early;
  if (!check.ok) {
    yield toolError(check.code, check.reason, check.issues);
    return;
  }
  const cfg = check.config;
  const diff = diffAgainst(current, cfg, schema);
  yield { kind: 'diff', diff, sequence: cfg.sequence, target: describeTarget(cfg) };
  if (ctx.confirm && !(await ctx.confirm(diff))) {
    yield cancelled('not applied: the technician did not confirm');
    return;
  }
  yield { kind: 'backing-up' };
  try {
    await ctx.backup(current);
  } catch (e) {
    yield toolError('backup', `not applied: the backup of the current configuration failed (${(e as Error).message})`);
    return;
  }
  // Send, reporting progress as the chunks are acknowledged.
  const total = signed.length;
  let sent = 0;
  // Said before the first chunk goes out, so a cancel here sends nothing.
  yield { kind: 'sending', sent: 0, total };
  const queue: ConfigureState[] = [];
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
    if (res.error instanceof SmpError && (res.error.kind === 'closed' || res.error.kind === 'timeout')) throw res.error;
    const rej = deviceRejection(res.error);
    const detail = res.error instanceof SmpError && res.error.kind === 'group' ? await rejectionDetail(g) : undefined;
    yield configFailed(rej.code, detail ? `${rej.reason} (${detail})` : rej.reason, 'device');
    return;
  }
  if (res.sequence !== cfg.sequence || toHex(res.digest) !== toHex(cfg.digest)) {
    yield configFailed('device', `the device reports configuration #${res.sequence} (${toHex(res.digest).slice(0, 16)}…), not #${cfg.sequence} as sent: read it again`, 'device');
    return;
  }
  yield done({ sequence: res.sequence, digest: res.digest, previousSequence: current.sequence, ...(bundlePushed !== undefined ? { bundlePushed } : {}) });
}

// ---------------------------------------------------------------- runners

/** Run a configure op to its end (CLI, tests): its Outcome (runOp, outcome.ts). */
export function runToEnd<S extends { kind: string }>(op: AsyncGenerator<S>, onState?: (s: S) => void): Promise<Extract<S, { kind: OutcomeKind }>> {
  return runOp(op, { onState }) as Promise<Extract<S, { kind: OutcomeKind }>>;
}

/** Audit details of a configure run (no settings values, no secrets: keys and sequence only). */
export function auditDetails(s: ConfigRunState, extra: { sequence?: number; digest?: Uint8Array } = {}): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (s.kind === 'done' && 'sequence' in s.result) {
    d.sequence = s.result.sequence;
    d.digest = toHex(s.result.digest);
    if (s.result.previousSequence !== undefined) d.previousSequence = s.result.previousSequence;
    if (s.result.bundlePushed !== undefined) d.bundlePushed = s.result.bundlePushed;
  } else if (s.kind === 'done' && 'unsigned' in s.result) {
    const r = s.result;
    d.signed = false;
    d.note = r.note;
    d.keys = [...r.changes.added, ...r.changes.changed, ...r.changes.removed].map((c) => c.key);
  } else if (s.kind === 'failed') {
    d.code = s.code;
    d.by = s.by;
    d.reason = s.reason;
  } else if (s.kind === 'cancelled' || s.kind === 'unsupported') {
    d.reason = s.reason;
  }
  if (extra.sequence !== undefined) d.sequence ??= extra.sequence;
  if (extra.digest) d.digest ??= toHex(extra.digest);
  return d;
}

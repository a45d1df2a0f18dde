/** Restore a configuration backup: plan what it would change, then apply it as a signed configuration. */
import type { SmpSession } from '../../groups/session.ts';
import { type SettingValue, decodeConfigUnverified } from '../../trust/signed-config.ts';
import { type ConfigSchema, schemaForModel } from './schema.ts';
import { applySignedConfig, toolError } from './apply.ts';
import { decodeSnapshot } from './backup.ts';
import { displaySettings } from './diff.ts';
import {
  type ConfigFailure, type ConfigFailureDetails, type ConfigureContext, ConfigureError, type ConfigureProgress, type ConfigureResult, type ConfigureState, type CurrentConfig, type DisplayValue,
  configFailed, readCurrentConfig,
} from './read.ts';
import { findSecurityGroup } from '../identification/identify.ts';
import { AccessError } from '../access/login.ts';
import { type UnsignedProgress, type UnsignedResult, type UnsignedState, writeUnsignedSettings } from './unsigned.ts';
import { SmpError } from '../../smp/errors.ts';
import { type Op, type Outcome, contract } from '../outcome.ts';

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
/** Any configuration op's states: a signed apply's, an unsigned write's, or a restore's (either). */
export type ConfigRunState = ConfigureProgress | UnsignedProgress | Outcome<ConfigureResult | UnsignedResult, ConfigFailure, ConfigFailureDetails>;

export function restoreFromBackup(session: SmpSession, backup: Uint8Array, ctx: ConfigureContext & { confirmUnsigned?: boolean }): Op<ConfigureProgress | UnsignedProgress, ConfigureResult | UnsignedResult, ConfigFailure, ConfigFailureDetails> {
  return contract<ConfigureProgress | UnsignedProgress, ConfigureResult | UnsignedResult, ConfigFailure, ConfigFailureDetails>(restoreBody(session, backup, ctx), { signal: ctx.signal });
}

async function* restoreBody(session: SmpSession, backup: Uint8Array, ctx: ConfigureContext & { confirmUnsigned?: boolean }): AsyncGenerator<ConfigureState | UnsignedState> {
  yield { kind: 'checking' };
  let current: CurrentConfig;
  let loggedIn: Awaited<ReturnType<ConfigureContext['authenticate']>> | undefined;
  let authenticate = ctx.authenticate;
  try {
    const group = ctx.group === undefined ? await findSecurityGroup(session) : ctx.group;
    if (group) {
      // A device with the security group shows its configuration only inside a technician's session:
      // log in once, for the read and for the re-apply.
      yield { kind: 'authenticating' };
      try {
        loggedIn = await ctx.authenticate(group);
      } catch (e) {
        if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e;
        yield configFailed('login', `not restored: ${(e as Error).message}`, e instanceof AccessError && e.code !== 'signer' && e.code !== 'credential' ? 'device' : 'tool');
        return;
      }
      authenticate = async () => loggedIn;
    }
    current = await readCurrentConfig(session, { group, schema: ctx.schema ?? schemaForModel(ctx.deviceIdentity.model), library: ctx.library });
  } catch (e) {
    if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e;
    yield toolError(e instanceof ConfigureError ? e.code : 'device', (e as Error).message);
    return;
  }
  const plan = planRestore(backup, current, ctx.schema);
  if (plan.kind === 'needs-owner') {
    yield toolError('needs-newer', plan.reason);
    return;
  }
  if (plan.kind === 'reapply') {
    yield* applySignedConfig(session, plan.signed, { ...ctx, authenticate });
    return;
  }
  const schema = ctx.schema ?? schemaForModel(ctx.deviceIdentity.model);
  if (!schema) {
    yield toolError('no-schema', 'restoring settings needs the model schema');
    return;
  }
  yield* writeUnsignedSettings(session, plan.settings, { schema, confirmUnsigned: ctx.confirmUnsigned === true, group: null, signal: ctx.signal });
}

/**
 * Authorised wipe (NIST IR 8259A capability 3, data protection): erase the
 * device's configuration and the secrets sealed to it, behind a typed
 * confirmation and a technician login with the `wipe` permission (the device
 * checks it again). What a wipe keeps, by design (docs/SECURITY.md "Wipe"):
 * the identity (certificate and keys in the secure element: the device is still
 * who it was, so a wiped unit can be redeployed and still proves itself), the
 * highest configuration sequence ever applied (old configurations cannot be
 * replayed onto a wiped device), the trusted time floor and the security event
 * log (the wipe itself is logged).
 *
 *   wipeDevice(session, ctx)   finding-group → identifying → confirming → authenticating → wiping → checking → done
 *
 * `ctx.confirm(serial)` returns what the technician typed (null: declined →
 * cancelled); anything but the device's own serial fails `not-confirmed`
 * without a login. After the wipe the op reads the configuration back: it must
 * be gone.
 */
import type { SmpSession } from '../../groups/session.ts';
import { SecurityGroup, describeSecError, secErrorName } from '../../groups/security.ts';
import { loginRefusal } from '../access/login.ts';
import { UNSUPPORTED_REASON, findSecurityGroup } from '../identification/identify.ts';
import { type Op, type Outcome, cancelled, isLinkLoss, cancellableSession, contract, done, failed, unsupported } from '../outcome.ts';

export type WipeProgress =
  | { kind: 'finding-group' }
  | { kind: 'identifying' }
  | { kind: 'confirming'; serial: string; model: string }
  | { kind: 'authenticating' }
  | { kind: 'wiping' }
  | { kind: 'checking' };

export const WIPE_ERASES = ['the applied configuration', 'the secrets sealed to the device'] as const;
export const WIPE_KEEPS = ['the identity (certificate and keys)', 'the highest configuration sequence (no replay)', 'the trusted time floor', 'the security event log'] as const;

export interface WipeResult {
  serial: string;
  /** Sequence of the configuration that was erased (0: there was none). */
  erasedSequence: number;
  erased: readonly string[];
  kept: readonly string[];
}

export type WipeFailure = 'not-confirmed' | 'login' | 'permission' | 'refused' | 'not-erased' | 'device';
export type WipeOutcome = Outcome<WipeResult, WipeFailure>;
export type WipeState = WipeProgress | WipeOutcome;

export interface WipeContext {
  /** Ask the technician to type the device's serial; resolve to what was typed, or null to decline. */
  confirm: (serial: string, model: string) => Promise<string | null>;
  /** The technician login, through the op's own group (so a cancel stops it too). */
  authenticate: (group: SecurityGroup) => Promise<unknown>;
  group?: SecurityGroup;
  signal?: AbortSignal;
}


async function* wipeBody(session: SmpSession, ctx: WipeContext): AsyncGenerator<WipeState> {
  yield { kind: 'finding-group' };
  const g = ctx.group ? new SecurityGroup(session.client, ctx.group.id) : await findSecurityGroup(session);
  if (!g) {
    yield unsupported(UNSUPPORTED_REASON);
    return;
  }
  yield { kind: 'identifying' };
  let serial: string;
  let model: string;
  try {
    ({ serial, model } = await g.identity());
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    yield failed('device', `could not read who the device is: ${describeSecError(e)}`, { by: 'device' });
    return;
  }
  yield { kind: 'confirming', serial, model };
  const typed = await ctx.confirm(serial, model);
  if (typed === null) {
    yield cancelled('not wiped: the technician did not confirm');
    return;
  }
  if (typed.trim() !== serial) {
    yield failed('not-confirmed', `not wiped: "${typed.trim()}" is not this device's serial (${serial})`, { by: 'tool' });
    return;
  }
  yield { kind: 'authenticating' };
  const refused = await loginRefusal(ctx.authenticate, g);
  if (refused) {
    yield failed('login', `not wiped: ${refused.message}`, { by: refused.by });
    return;
  }
  // What is erased: read inside the session (the device shows its configuration only to a technician with wipe or configure).
  let sequence: number;
  try {
    sequence = (await g.readConfig()).sequence;
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    yield failed('device', `not wiped: could not read the configuration to be erased: ${describeSecError(e)}`, { by: 'device' });
    return;
  }
  yield { kind: 'wiping' };
  try {
    await g.wipe();
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    const name = secErrorName(e);
    if (name === 'Permission') yield failed('permission', `not wiped: the device refused: ${describeSecError(e)} (the credential needs the wipe permission)`, { by: 'device' });
    else if (name) yield failed('refused', `not wiped: the device refused: ${describeSecError(e)}`, { by: 'device' });
    else yield failed('device', `not wiped: ${describeSecError(e)}`, { by: 'device' });
    return;
  }
  yield { kind: 'checking' };
  const after = await g.readConfig();
  if (after.sequence !== 0 || Object.keys(after.settings).length > 0) {
    yield failed('not-erased', `the device says it wiped, but still reports configuration #${after.sequence}`, { by: 'device' });
    return;
  }
  yield done({ serial, erasedSequence: sequence, erased: WIPE_ERASES, kept: WIPE_KEEPS });
}

/** Erase the device's configuration and secrets (typed confirmation, `wipe` permission). */
export function wipeDevice(session: SmpSession, ctx: WipeContext): Op<WipeProgress, WipeResult, WipeFailure> {
  return contract(wipeBody(cancellableSession(session, ctx.signal), ctx), { signal: ctx.signal });
}

/**
 * Logical access to interfaces (NIST IR 8259A capability 4): read the device's
 * interfaces (SMP over serial, the shell, debug, ...) and open, restrict or
 * disable them. Reading is open; a change needs a technician login with the
 * `interfaces` permission, and the device checks it again on every write
 * (docs/SECURITY.md). Two ops, each ending in one Outcome (outcome.ts):
 *
 *   readInterfaces(session)                      finding-group → reading → done {interfaces}
 *   setInterfaces(session, changes, ctx)         … → authenticating → setting (each) → done {before, interfaces, changed}
 *
 * Changes are checked against the device's own list before anything is sent:
 * an unknown name or state fails `unknown-interface` / `bad-state` by the tool.
 * A change that is already in place needs no login and sends nothing.
 */
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { SecurityGroup, describeSecError, secErrorName } from '../../groups/security.ts';
import { loginRefusal } from './login.ts';
import { FieldbenchError } from '../../base/errors.ts';
import { UNSUPPORTED_REASON, findSecurityGroup } from '../identification/identify.ts';
import { type Op, type Outcome, cancellableSession, isLinkLoss, contract, done, failed, unsupported } from '../outcome.ts';

export { INTERFACE_STATES, type InterfaceState, INTERFACE_STATE_WORDS, INTERFACE_STATE_LABELS, INTERFACE_NAME_WORDS, interfaceWords } from '../../base/interface-words.ts';
import { INTERFACE_STATES, type InterfaceState } from '../../base/interface-words.ts';

export interface InterfaceChange {
  name: string;
  state: InterfaceState;
}

export type InterfacesProgress =
  | { kind: 'finding-group' }
  | { kind: 'reading' }
  | { kind: 'authenticating' }
  | { kind: 'setting'; name: string; state: InterfaceState; index: number; total: number };

export interface InterfacesResult {
  /** The device's interfaces now (as it reports them after the last change). */
  interfaces: Record<string, string>;
  /** Before any change (setInterfaces only). */
  before?: Record<string, string>;
  /** What changed, in order (setInterfaces only; empty when everything was already so). */
  changed?: { name: string; from: string; to: InterfaceState }[];
}

export type InterfacesFailure = 'unknown-interface' | 'bad-state' | 'login' | 'permission' | 'refused' | 'device';
export type InterfacesOutcome = Outcome<InterfacesResult, InterfacesFailure>;
export type InterfacesState = InterfacesProgress | InterfacesOutcome;

export interface InterfacesContext {
  signal?: AbortSignal;
  /** The device's security group (found through Enum when absent). */
  group?: SecurityGroup;
}

export interface SetInterfacesContext extends InterfacesContext {
  /** The technician login, through the op's own group (so a cancel stops it too). */
  authenticate: (group: SecurityGroup) => Promise<unknown>;
}

/** Parse `name=state` (CLI, forms): a typed error (code 'bad-state') names what is wrong. */
export function parseInterfaceChange(text: string): InterfaceChange {
  const m = /^([A-Za-z0-9_.-]+)=(\w+)$/.exec(text.trim());
  if (!m) throw new FieldbenchError('bad-state', `"${text}" is not NAME=STATE (for example smp_serial=authenticated)`);
  const state = m[2] as InterfaceState;
  if (!INTERFACE_STATES.includes(state)) throw new FieldbenchError('bad-state', `"${m[2]}" is not an interface state: use ${INTERFACE_STATES.join(', ')}`);
  return { name: m[1], state };
}

async function groupOf(session: SmpSession, ctx: InterfacesContext): Promise<SecurityGroup | null> {
  // The caller's group rebound to this op's session, so a cancel stops its requests too.
  return ctx.group ? new SecurityGroup(session.client, ctx.group.id) : findSecurityGroup(session);
}


async function* readBody(session: SmpSession, ctx: InterfacesContext): AsyncGenerator<InterfacesState> {
  yield { kind: 'finding-group' };
  const g = await groupOf(session, ctx);
  if (!g) {
    yield unsupported(UNSUPPORTED_REASON);
    return;
  }
  yield { kind: 'reading' };
  let interfaces: Record<string, string>;
  try {
    interfaces = await g.interfaces();
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    if (e instanceof SmpError && e.notSupported) {
      yield unsupported('this device does not report its interfaces');
      return;
    }
    yield failed('device', `could not read the interfaces: ${describeSecError(e)}`, { by: 'device' });
    return;
  }
  yield done({ interfaces });
}

/** The device's interfaces and their states. */
export function readInterfaces(session: SmpSession, ctx: InterfacesContext = {}): Op<InterfacesProgress, InterfacesResult, InterfacesFailure> {
  return contract(readBody(cancellableSession(session, ctx.signal), ctx), { signal: ctx.signal });
}

function refusal(e: unknown): { code: InterfacesFailure; reason: string } {
  const name = secErrorName(e);
  const words = describeSecError(e);
  if (name === 'Permission') return { code: 'permission', reason: `the device refused: ${words} (the credential needs the interfaces permission)` };
  if (name === 'NotAuthenticated' || name === 'SessionRequired') return { code: 'login', reason: `the device refused: ${words}` };
  if (name) return { code: 'refused', reason: `the device refused: ${words}` };
  return { code: 'device', reason: `the device failed: ${words}` };
}

async function* setBody(session: SmpSession, changes: InterfaceChange[], ctx: SetInterfacesContext): AsyncGenerator<InterfacesState> {
  for (const c of changes) {
    if (!INTERFACE_STATES.includes(c.state)) {
      yield failed('bad-state', `"${c.state}" is not an interface state: use ${INTERFACE_STATES.join(', ')}`, { by: 'tool' });
      return;
    }
  }
  let before: Record<string, string> | undefined;
  for await (const s of readBody(session, ctx)) {
    if (s.kind === 'done') before = s.result.interfaces;
    else if (s.kind === 'failed' || s.kind === 'cancelled' || s.kind === 'unsupported') {
      yield s;
      return;
    } else yield s;
  }
  const now: Record<string, string> = { ...before! };
  for (const c of changes) {
    if (!Object.hasOwn(now, c.name)) {
      const names = Object.keys(now);
      yield failed('unknown-interface', `this device has no interface "${c.name}"${names.length ? ` (it has ${names.join(', ')})` : ''}`, { by: 'tool' });
      return;
    }
  }
  // Last word per name wins; only real changes are sent.
  const wanted = new Map<string, InterfaceState>();
  for (const c of changes) wanted.set(c.name, c.state);
  const todo = [...wanted].filter(([name, state]) => now[name] !== state);
  if (todo.length === 0) {
    yield done({ interfaces: now, before, changed: [] });
    return;
  }
  const g = (await groupOf(session, ctx))!;
  yield { kind: 'authenticating' };
  const refused = await loginRefusal(ctx.authenticate, g);
  if (refused) {
    yield failed('login', `nothing changed: ${refused.message}`, { by: refused.by });
    return;
  }
  const changed: { name: string; from: string; to: InterfaceState }[] = [];
  let reported = now;
  for (let i = 0; i < todo.length; i++) {
    const [name, state] = todo[i];
    yield { kind: 'setting', name, state, index: i, total: todo.length };
    try {
      reported = await g.setInterface(name, state);
    } catch (e) {
      if (isLinkLoss(e)) throw e;
      const r = refusal(e);
      const done_ = changed.length ? ` (already changed: ${changed.map((c) => `${c.name} ${c.to}`).join(', ')})` : '';
      yield failed(r.code, `${name} not set to ${state}: ${r.reason}${done_}`, { by: 'device', details: { changed } });
      return;
    }
    if (reported[name] !== state) {
      yield failed('device', `the device reports ${name} ${reported[name] ?? 'missing'} after being set to ${state}`, { by: 'device', details: { changed } });
      return;
    }
    changed.push({ name, from: now[name], to: state });
  }
  yield done({ interfaces: reported, before, changed });
}

/** Open, restrict or disable interfaces (login with the `interfaces` permission first). */
export function setInterfaces(session: SmpSession, changes: InterfaceChange[], ctx: SetInterfacesContext): Op<InterfacesProgress, InterfacesResult, InterfacesFailure> {
  return contract(setBody(cancellableSession(session, ctx.signal), changes, ctx), { signal: ctx.signal });
}

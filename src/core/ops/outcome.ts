/**
 * The one op contract. Every operation that talks to a device is an async
 * generator of typed progress states that ends in exactly ONE Outcome:
 *
 *   done         { kind: 'done', result }                      it did what was asked
 *   failed       { kind: 'failed', code, reason, retryable }   it did not; `code` is from the
 *                                                              op's own closed union (plus the
 *                                                              CommonFailure codes), `reason`
 *                                                              is plain words for a person,
 *                                                              `retryable` says whether the same
 *                                                              request may succeed if run again
 *   cancelled    { kind: 'cancelled', reason }                 the caller's signal stopped it
 *   unsupported  { kind: 'unsupported', reason }               the device cannot do this at all
 *
 * Rules (checked for every op by tests/unit/op-contract.test.ts):
 *  - the Outcome is the LAST state, and there is exactly one;
 *  - the op never throws (a bug or a lost link becomes `failed`);
 *  - every state is plain data (structuredClone and a JSON round trip keep it);
 *  - when the caller's AbortSignal fires, the op stops promptly, sends nothing
 *    more, and ends `cancelled`;
 *  - reasons never repeat themselves ("refused: ... refused: ...").
 *
 * `contract()` wraps an op body so the first four hold by construction;
 * `runOp()` runs any op to its end (CLI, tests, app controllers).
 * Policy over outcomes (audit entries, inventory updates) lives in each
 * capability's record functions, never in the UI.
 */
import { SmpError } from '../smp/errors.ts';
import type { SmpClient } from '../smp/client.ts';
import type { SmpSession } from '../smp/session.ts';

/** Failure codes every op may end with, on top of its own. */
export type CommonFailure =
  /** The link closed or the device stopped answering. */
  | 'link'
  /** The device answered with an error or a reply that makes no sense for the request. */
  | 'device'
  /** A defect: the op threw, or ended without an outcome. */
  | 'internal';

export interface Done<R> {
  kind: 'done';
  result: R;
}

export interface Failed<C extends string = string, D = unknown> {
  kind: 'failed';
  code: C | CommonFailure;
  /** Plain words, one sentence or a few clauses; never repeats itself. */
  reason: string;
  /** Running the same request again may succeed (a lost link, a busy device); false: it will be refused again. */
  retryable: boolean;
  /** Who refused: the tool's own checks, or the device. */
  by?: 'tool' | 'device';
  /** Op-specific, serialisable extras (schema issues, bytes sent...). */
  details?: D;
}

export interface Cancelled<D = unknown> {
  kind: 'cancelled';
  reason: string;
  details?: D;
}

export interface Unsupported {
  kind: 'unsupported';
  reason: string;
}

export type Outcome<R, C extends string = string, D = unknown> = Done<R> | Failed<C, D> | Cancelled<D> | Unsupported;

/** An op: progress states S, then one Outcome. */
export type Op<S extends { kind: string }, R, C extends string = string, D = unknown> = AsyncGenerator<S | Outcome<R, C, D>, void, undefined>;

export const OUTCOME_KINDS = ['done', 'failed', 'cancelled', 'unsupported'] as const;
export type OutcomeKind = (typeof OUTCOME_KINDS)[number];

/** The final states of an op type. */
export type OutcomeOf<O> = O extends AsyncGenerator<infer T, unknown, unknown> ? Extract<T, { kind: OutcomeKind }> : never;
/** The progress states of an op type. */
export type StateOf<O> = O extends AsyncGenerator<infer T, unknown, unknown> ? T : never;

export function isOutcome<T extends { kind: string }>(s: T): s is Extract<T, { kind: OutcomeKind }> {
  return (OUTCOME_KINDS as readonly string[]).includes(s.kind);
}

// ---------------------------------------------------------------- constructors

export function done<R>(result: R): Done<R> {
  return { kind: 'done', result };
}

export function failed<C extends string, D = never>(
  code: C,
  reason: string,
  opts: { retryable?: boolean; by?: 'tool' | 'device'; details?: D } = {},
): Failed<C, D> {
  const f: Failed<C, D> = { kind: 'failed', code, reason, retryable: opts.retryable ?? false };
  if (opts.by) f.by = opts.by;
  if (opts.details !== undefined) f.details = opts.details;
  return f;
}

export function cancelled<D = never>(reason = 'cancelled', details?: D): Cancelled<D> {
  return details === undefined ? { kind: 'cancelled', reason } : { kind: 'cancelled', reason, details };
}

export function unsupported(reason: string): Unsupported {
  return { kind: 'unsupported', reason };
}

// ---------------------------------------------------------------- reasons

/** The plain words of an error (its own `reason` when it has one, else its message). */
export function reasonOf(e: unknown): string {
  if (e && typeof e === 'object' && typeof (e as { reason?: unknown }).reason === 'string') return (e as { reason: string }).reason;
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * "context: cause", without saying the same thing twice: when the cause
 * already starts with the context (or with the context's leading verb, as in
 * "refused: refused ..."), the cause is given alone.
 */
export function because(context: string, cause: unknown): string {
  const c = (typeof cause === 'string' ? cause : reasonOf(cause)).trim();
  const ctx = context.trim().replace(/:$/, '');
  if (!c) return ctx;
  if (!ctx) return c;
  const lc = c.toLowerCase();
  if (lc.startsWith(ctx.toLowerCase())) return c;
  const verb = ctx.toLowerCase().split(/\s+/).slice(-1)[0];
  if (verb && lc.startsWith(`${verb}:`)) return `${ctx}: ${c.slice(verb.length + 1).trim()}`;
  return `${ctx}: ${c}`;
}

/**
 * A clause the reason says twice, or null. Clauses are the parts between
 * ':' ';' and '(' ')'; two clauses repeat when they are equal, or when two
 * begin with the same refusal word (rejected, refused, failed, denied).
 */
export function repeatedClause(reason: string): string | null {
  const clauses = reason
    .toLowerCase()
    .split(/[:;()]\s*/)
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  const seen = new Set<string>();
  const verbs = new Set<string>();
  for (const c of clauses) {
    if (c.length > 3 && seen.has(c)) return c;
    seen.add(c);
    const first = /^(?:(?:the\s+)?(?:device|tool)\s+)?(rejected|refused|failed|denied)\b/.exec(c)?.[1];
    if (first) {
      if (verbs.has(first)) return c;
      verbs.add(first);
    }
  }
  return null;
}

// ---------------------------------------------------------------- thrown errors

/** A lost link or silence: ops rethrow it so the contract ends them `link` (retryable). */
export function isLinkLoss(e: unknown): e is SmpError {
  return e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout');
}

/**
 * A thrown error as a failure: a lost link or silence is `link` (retryable),
 * another SMP error (an error reply, an undecodable reply) is `device`,
 * anything else is `internal` (a defect).
 */
export function thrownFailure(e: unknown): Failed<never, never> {
  if (isLinkLoss(e)) {
    return failed('link', because('the device link failed', e.message), { retryable: true, by: 'device' }) as Failed<never, never>;
  }
  if (e instanceof SmpError) return failed('device', because('the device answered with an error', e.message), { retryable: false, by: 'device' }) as Failed<never, never>;
  return failed('internal', because('internal error', e), { retryable: false, by: 'tool' }) as Failed<never, never>;
}

// ---------------------------------------------------------------- the wrapper

export interface ContractOptions {
  signal?: AbortSignal;
  /** The reason of the cancelled outcome (default "cancelled"). */
  cancelledReason?: () => string;
  /** The whole cancelled outcome, when the op says how far it got (details); wins over cancelledReason. */
  cancelled?: () => Cancelled<unknown>;
}

/**
 * Run an op body under the contract: it may yield progress states and one
 * Outcome, and may throw; the caller sees progress states, then exactly one
 * Outcome. When `signal` fires, the body is closed at its next yield (or its
 * pending request fails, since requests carry the signal: see
 * cancellableSession) and the outcome is `cancelled`; a failure that happens
 * after the signal fired is reported as `cancelled` too. An op's own
 * `cancelled` outcome (with its own reason) passes through.
 */
export async function* contract<S extends { kind: string }, R, C extends string, D>(
  body: AsyncGenerator<S | Outcome<R, C, D>, unknown, undefined>,
  opts: ContractOptions = {},
): Op<S, R, C, D> {
  const { signal } = opts;
  const cancel = (): Cancelled<D> => (opts.cancelled?.() as Cancelled<D> | undefined) ?? cancelled(opts.cancelledReason?.() ?? 'cancelled');
  try {
    for (;;) {
      if (signal?.aborted) {
        yield cancel();
        return;
      }
      let r: IteratorResult<S | Outcome<R, C, D>, unknown>;
      try {
        r = await body.next();
      } catch (e) {
        yield signal?.aborted ? cancel() : thrownFailure(e);
        return;
      }
      if (r.done) {
        yield signal?.aborted ? cancel() : failed('internal', 'the operation ended without an outcome', { by: 'tool' });
        return;
      }
      const s = r.value;
      if (isOutcome(s)) {
        yield s.kind === 'failed' && signal?.aborted ? cancel() : s;
        return;
      }
      yield s;
    }
  } finally {
    // Ends the body too when the caller stops iterating early (its finally blocks run).
    await body.return(undefined).catch(() => {});
  }
}

/**
 * A view of the session whose client sends every request with `signal`
 * (unless the request gives its own), so a cancel fails the pending request
 * at once instead of waiting for its timeout, and nothing more is sent.
 */
export function cancellableSession(session: SmpSession, signal: AbortSignal | undefined): SmpSession {
  if (!signal) return session;
  return Object.create(session, { client: { value: cancellableClient(session.client, signal), enumerable: true } }) as SmpSession;
}

export function cancellableClient(client: SmpClient, signal: AbortSignal | undefined): SmpClient {
  if (!signal) return client;
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'read' || prop === 'write') {
        return (group: number, id: number, body?: Record<string, unknown>, o?: { signal?: AbortSignal; timeoutMs?: number }) => {
          if (signal.aborted) return Promise.reject(new SmpError('closed', 'request cancelled'));
          return target[prop](group, id, body, { ...o, signal: o?.signal ?? signal });
        };
      }
      if (prop === 'request') {
        return (op: 0 | 2, group: number, id: number, body?: Record<string, unknown>, o?: { signal?: AbortSignal; timeoutMs?: number }) => {
          if (signal.aborted) return Promise.reject(new SmpError('closed', 'request cancelled'));
          return target.request(op, group, id, body, { ...o, signal: o?.signal ?? signal });
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

// ---------------------------------------------------------------- running

export interface RunOptions<T> {
  /** Every state, the outcome included, in order. */
  onState?: (s: T) => void;
}

/**
 * Run an op to its end and return its Outcome. Never throws (unless onState
 * does): an op that throws, ends without an outcome or keeps yielding after
 * it gives `failed` (code `internal`); the op is closed in every case.
 */
export async function runOp<T extends { kind: string }>(op: AsyncGenerator<T, unknown, undefined>, opts: RunOptions<T> = {}): Promise<Extract<T, { kind: OutcomeKind }> | Failed<never>> {
  try {
    for (;;) {
      let r: IteratorResult<T, unknown>;
      try {
        r = await op.next();
      } catch (e) {
        const f = thrownFailure(e);
        opts.onState?.(f as unknown as T);
        return f;
      }
      if (r.done) {
        const f = failed('internal', 'the operation ended without an outcome', { by: 'tool' }) as Failed<never>;
        opts.onState?.(f as unknown as T);
        return f;
      }
      opts.onState?.(r.value);
      if (isOutcome(r.value)) return r.value;
    }
  } finally {
    await op.return(undefined).catch(() => {});
  }
}

/** The result of a done outcome, or throws OpFailedError (for callers that want exceptions: scripts, tests). */
export async function resultOf<R>(op: AsyncGenerator<{ kind: string } | Outcome<R>, unknown, undefined>): Promise<R> {
  const o = (await runOp(op)) as Outcome<R>;
  if (o.kind === 'done') return o.result;
  throw new OpFailedError(o);
}

export class OpFailedError extends Error {
  readonly code: string;
  constructor(readonly outcome: Failed | Cancelled | Unsupported) {
    super(outcome.reason);
    this.name = 'OpFailedError';
    this.code = outcome.kind === 'failed' ? outcome.code : outcome.kind;
  }
}

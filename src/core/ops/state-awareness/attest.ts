/**
 * Attest a device (NIST IR 8259A "cybersecurity state awareness"): send a
 * fresh random nonce, fetch the device's signed attestation token (EAT, PSA
 * profile) and appraise it against the trust bundle's firmware reference
 * measurements, revocations and published configurations, with the device
 * key taken from a verified identity. Also: read the security event log.
 *
 * Ops (outcome.ts): progress states, then one Outcome; the UI and CLI render
 * them, record.ts stores the outcome.
 */
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { type SecurityEvent, SecurityGroup, describeSecError, secErrorName } from '../../groups/security.ts';
import { loginRefusal } from '../access/login.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { type Appraisal, type ReferenceMeasurement, appraiseToken } from '../../trust/eat.ts';
import { toHex } from '../../base/bytes.ts';
import { UNSUPPORTED_REASON, findSecurityGroup } from '../identification/identify.ts';
import { type Op, type Outcome, cancellableSession, contract, done, failed, unsupported } from '../outcome.ts';

export type AttestProgress = { kind: 'finding-group' } | { kind: 'requesting-token'; nonce: Uint8Array } | { kind: 'appraising'; bytes: number };

/** The appraisal (trusted, warning or untrusted, with its reasons), the nonce sent and the evidence received. */
export interface AttestResult {
  appraisal: Appraisal;
  nonce: Uint8Array;
  evidence: Uint8Array;
}

/**
 * Why an attestation ends without an appraisal (on top of link/device/internal).
 * Evidence that does not verify is NOT a failure: it is a done outcome with an
 * untrusted appraisal.
 */
export type AttestFailure = 'no-verified-identity';

export type AttestOutcome = Outcome<AttestResult, AttestFailure>;
export type AttestState = AttestProgress | AttestOutcome;

export interface AttestContext {
  /** A verified trust bundle. */
  bundle: TrustBundle;
  /** From a VERIFIED identity (identifyDevice's done.identity.devicePublicKey). */
  devicePublicKey: Uint8Array;
  now?: Date | number;
  groupId?: number;
  /** Nonce length in bytes (32, 48 or 64); default 32. */
  nonceBytes?: 32 | 48 | 64;
  signal?: AbortSignal;
}

/** Appraisal inputs from a verified trust bundle. */
export function appraisalInputs(bundle: TrustBundle): { referenceMeasurements: ReferenceMeasurement[]; revokedKeyIds: Set<string>; publishedConfigs: Set<string> } {
  return {
    referenceMeasurements: bundle.firmware.map((f) => ({
      sha256: toHex(f.sha256),
      version: f.version,
      model: f.model,
      signerId: toHex(f.signerKid),
      securityCounter: f.securityCounter,
    })),
    revokedKeyIds: new Set(bundle.revocations.keyIds.map(toHex)),
    publishedConfigs: new Set(bundle.configurations.map(toHex)),
  };
}

/** An untrusted appraisal for evidence that could not even be fetched whole. */
function rejected(detail: string): Appraisal {
  return { verdict: 'untrusted', reasons: [{ check: 'format', result: 'fail', detail }], claims: null };
}

/** Belt and braces: 'trusted' or 'warning' only with a passed signature check. */
function guard(a: Appraisal): Appraisal {
  const signed = a.reasons.some((r) => r.check === 'signature' && r.result === 'pass');
  if (a.verdict !== 'untrusted' && (!signed || !a.claims)) {
    return { verdict: 'untrusted', reasons: [...a.reasons, { check: 'signature', result: 'fail', detail: 'no verified signature: the token cannot be trusted' }], claims: null };
  }
  return a;
}

function errorMessage(e: unknown): string {
  if (e instanceof SmpError) return describeSecError(e);
  return e instanceof Error ? e.message : String(e);
}

async function group(session: SmpSession, groupId: number | undefined): Promise<SecurityGroup | null> {
  return groupId !== undefined ? new SecurityGroup(session.client, groupId) : findSecurityGroup(session);
}

export function attestDevice(session: SmpSession, ctx: AttestContext): Op<AttestProgress, AttestResult, AttestFailure> {
  return contract(attestBody(cancellableSession(session, ctx.signal), ctx), { signal: ctx.signal });
}

async function* attestBody(session: SmpSession, ctx: AttestContext): AsyncGenerator<AttestState> {
  if (!(ctx.devicePublicKey instanceof Uint8Array) || ctx.devicePublicKey.length !== 32) {
    yield failed('no-verified-identity', 'attestation needs the device key from a verified identity: identify the device first', { by: 'tool' });
    return;
  }
  yield { kind: 'finding-group' };
  const g = await group(session, ctx.groupId);
  if (!g) {
    yield unsupported(UNSUPPORTED_REASON);
    return;
  }
  const nonce = crypto.getRandomValues(new Uint8Array(ctx.nonceBytes ?? 32));
  yield { kind: 'requesting-token', nonce };
  let evidence: Uint8Array;
  try {
    evidence = await g.attest(nonce);
  } catch (e) {
    if (e instanceof SmpError && e.notSupported) {
      yield unsupported(UNSUPPORTED_REASON);
      return;
    }
    if (e instanceof SmpError && (e.kind === 'decode' || e.kind === 'group' || e.kind === 'rc')) {
      yield done({ appraisal: rejected(`the device did not deliver a usable attestation token: ${errorMessage(e)}`), nonce, evidence: new Uint8Array(0) });
      return;
    }
    throw e;
  }
  yield { kind: 'appraising', bytes: evidence.length };
  const inputs = appraisalInputs(ctx.bundle);
  const appraisal = guard(
    await appraiseToken(evidence, {
      devicePublicKey: ctx.devicePublicKey,
      expectedNonce: nonce,
      referenceMeasurements: inputs.referenceMeasurements,
      revokedKeyIds: inputs.revokedKeyIds,
      publishedConfigs: inputs.publishedConfigs,
      now: ctx.now,
    }),
  );
  yield done({ appraisal, nonce, evidence });
}

// ---------------------------------------------------------------- event log

export type EventsProgress = { kind: 'finding-group' } | { kind: 'authenticating' } | { kind: 'reading-events'; page: number; received: number };

export interface EventsResult {
  events: SecurityEvent[];
  /** Counter to read from next time. */
  next: number;
  /** The device's newest counter. */
  last: number;
  /** Stopped at `max` events: more are kept on the device. */
  truncated: boolean;
}

/**
 * The device's paging made no sense; the device shows its log only inside a technician's session
 * (`not-authenticated`: no login, or the login was refused: `login`; `permission`: the credential
 * grants neither attest nor configure). On top of link/device/internal.
 */
export type EventsFailure = 'out-of-order' | 'not-authenticated' | 'login' | 'permission';

/** Why the device would not show its event log, in words (the same for the app and the CLI). */
export const EVENTS_LOGIN_REASON = "the device shows its security event log only to a logged-in technician whose credential grants attest or configure: log in first";

export type EventsOutcome = Outcome<EventsResult, EventsFailure>;
export type EventsState = EventsProgress | EventsOutcome;

export interface EventsContext {
  /** First event counter to read (default 0: from the oldest kept). */
  from?: number;
  /** Stop after this many events (default 5000); `truncated` tells. */
  max?: number;
  groupId?: number;
  signal?: AbortSignal;
  /**
   * The technician login (authenticateTechnician with the attest permission), run first unless this
   * connection already holds a secure session. Without it the read goes as it is, and a device that
   * keeps its log private refuses it (`not-authenticated`).
   */
  authenticate?: (group: SecurityGroup) => Promise<unknown>;
}

/** Read the security event log page by page (the device sizes pages to its buffer). */
export function readSecurityEvents(session: SmpSession, ctx: EventsContext = {}): Op<EventsProgress, EventsResult, EventsFailure> {
  return contract(eventsBody(cancellableSession(session, ctx.signal), ctx), { signal: ctx.signal });
}

async function* eventsBody(session: SmpSession, ctx: EventsContext): AsyncGenerator<EventsState> {
  yield { kind: 'finding-group' };
  const g = await group(session, ctx.groupId);
  if (!g) {
    yield unsupported(UNSUPPORTED_REASON);
    return;
  }
  if (ctx.authenticate && !session.client.protectedSession) {
    yield { kind: 'authenticating' };
    const refused = await loginRefusal(ctx.authenticate, g);
    if (refused) {
      yield failed('login', `the event log was not read: ${refused.message}`, { by: refused.by });
      return;
    }
  }
  const max = ctx.max ?? 5000;
  const events: SecurityEvent[] = [];
  let next = Math.max(0, ctx.from ?? 0);
  let last = 0;
  for (let page = 1; ; page++) {
    yield { kind: 'reading-events', page, received: events.length };
    let r;
    try {
      r = await g.events(next);
    } catch (e) {
      if (e instanceof SmpError && e.notSupported && page === 1) {
        yield unsupported(UNSUPPORTED_REASON);
        return;
      }
      const name = secErrorName(e);
      if (name === 'NotAuthenticated' || name === 'SessionRequired') {
        yield failed('not-authenticated', EVENTS_LOGIN_REASON, { by: 'device' });
        return;
      }
      if (name === 'Permission') {
        yield failed('permission', `the device refused: ${describeSecError(e)} (reading the event log needs attest or configure)`, { by: 'device' });
        return;
      }
      throw e;
    }
    last = r.last;
    for (const ev of r.events) {
      if (events.length && ev.n <= events[events.length - 1].n) {
        yield failed('out-of-order', `the device's event log is out of order: #${ev.n} after #${events[events.length - 1].n}`, { by: 'device' });
        return;
      }
      events.push(ev);
    }
    if (r.events.length === 0 || r.next > r.last) {
      next = r.next;
      break;
    }
    if (r.next <= next) {
      yield failed('out-of-order', "the device's event log paging did not advance", { by: 'device' });
      return;
    }
    next = r.next;
    if (events.length >= max) {
      yield done({ events, next, last, truncated: true });
      return;
    }
  }
  yield done({ events, next, last, truncated: false });
}

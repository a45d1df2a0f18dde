/**
 * Attest a device (NIST IR 8259A "cybersecurity state awareness"): send a
 * fresh random nonce, fetch the device's signed attestation token (EAT, PSA
 * profile) and appraise it against the trust bundle's firmware reference
 * measurements, revocations and published configurations, with the device
 * key taken from a verified identity. Also: read the security event log.
 *
 * States only; the UI and CLI render them, record.ts stores the outcome.
 */
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { type SecurityEvent, SecurityGroup, describeSecError } from '../../groups/security.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { type Appraisal, type ReferenceMeasurement, appraiseToken } from '../../trust/eat.ts';
import { UNSUPPORTED_REASON, findSecurityGroup } from '../identification/identify.ts';
import { toHex } from '../../base/bytes.ts';

export type AttestState =
  | { kind: 'finding-group' }
  | { kind: 'requesting-token'; nonce: Uint8Array }
  | { kind: 'appraising'; bytes: number }
  | { kind: 'done'; appraisal: Appraisal; nonce: Uint8Array; evidence: Uint8Array }
  | { kind: 'unsupported'; reason: string }
  | { kind: 'error'; message: string };

export interface AttestContext {
  /** A verified trust bundle. */
  bundle: TrustBundle;
  /** From a VERIFIED identity (identifyDevice's done.identity.devicePublicKey). */
  devicePublicKey: Uint8Array;
  now?: Date | number;
  groupId?: number;
  /** Nonce length in bytes (32, 48 or 64); default 32. */
  nonceBytes?: 32 | 48 | 64;
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

export async function* attestDevice(session: SmpSession, ctx: AttestContext): AsyncGenerator<AttestState> {
  try {
    if (!(ctx.devicePublicKey instanceof Uint8Array) || ctx.devicePublicKey.length !== 32) {
      yield { kind: 'error', message: 'attestation needs the device key from a verified identity: identify the device first' };
      return;
    }
    yield { kind: 'finding-group' };
    const g = await group(session, ctx.groupId);
    if (!g) {
      yield { kind: 'unsupported', reason: UNSUPPORTED_REASON };
      return;
    }
    const nonce = crypto.getRandomValues(new Uint8Array(ctx.nonceBytes ?? 32));
    yield { kind: 'requesting-token', nonce };
    let evidence: Uint8Array;
    try {
      evidence = await g.attest(nonce);
    } catch (e) {
      if (e instanceof SmpError && e.notSupported) {
        yield { kind: 'unsupported', reason: UNSUPPORTED_REASON };
        return;
      }
      if (e instanceof SmpError && (e.kind === 'decode' || e.kind === 'group' || e.kind === 'rc')) {
        yield { kind: 'done', appraisal: rejected(`the device did not deliver a usable attestation token: ${errorMessage(e)}`), nonce, evidence: new Uint8Array(0) };
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
    yield { kind: 'done', appraisal, nonce, evidence };
  } catch (e) {
    yield { kind: 'error', message: errorMessage(e) };
  }
}

export async function runAttest(session: SmpSession, ctx: AttestContext, onState?: (s: AttestState) => void): Promise<Extract<AttestState, { kind: 'done' | 'unsupported' | 'error' }>> {
  for await (const s of attestDevice(session, ctx)) {
    onState?.(s);
    if (s.kind === 'done' || s.kind === 'unsupported' || s.kind === 'error') return s;
  }
  return { kind: 'error', message: 'attestation ended without a result' };
}

// ---------------------------------------------------------------- event log

export type EventsState =
  | { kind: 'finding-group' }
  | { kind: 'reading-events'; page: number; received: number }
  | { kind: 'done'; events: SecurityEvent[]; next: number; last: number; truncated: boolean }
  | { kind: 'unsupported'; reason: string }
  | { kind: 'error'; message: string };

export interface EventsContext {
  /** First event counter to read (default 0: from the oldest kept). */
  from?: number;
  /** Stop after this many events (default 5000); `truncated` tells. */
  max?: number;
  groupId?: number;
}

/** Read the security event log page by page (the device sizes pages to its buffer). */
export async function* readSecurityEvents(session: SmpSession, ctx: EventsContext = {}): AsyncGenerator<EventsState> {
  try {
    yield { kind: 'finding-group' };
    const g = await group(session, ctx.groupId);
    if (!g) {
      yield { kind: 'unsupported', reason: UNSUPPORTED_REASON };
      return;
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
          yield { kind: 'unsupported', reason: UNSUPPORTED_REASON };
          return;
        }
        throw e;
      }
      last = r.last;
      for (const ev of r.events) {
        if (events.length && ev.n <= events[events.length - 1].n) throw new SmpError('decode', `event log out of order: #${ev.n} after #${events[events.length - 1].n}`);
        events.push(ev);
      }
      if (r.events.length === 0 || r.next > r.last) {
        next = r.next;
        break;
      }
      if (r.next <= next) throw new SmpError('decode', 'event log paging did not advance');
      next = r.next;
      if (events.length >= max) {
        yield { kind: 'done', events, next, last, truncated: true };
        return;
      }
    }
    yield { kind: 'done', events, next, last, truncated: false };
  } catch (e) {
    yield { kind: 'error', message: errorMessage(e) };
  }
}

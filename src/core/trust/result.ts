/**
 * Verdict types shared by every trust artifact (identity certificate,
 * technician credential, signed configuration, trust bundle).
 *
 * A verifier never throws on bad input: it returns `{ ok: false, code, reason }`
 * where `code` is one of the stable codes below and `reason` is a sentence
 * suitable for showing to a technician.
 */
import type { CoseFailure } from './cose.ts';
import { FieldbenchError } from '../base/errors.ts';

export type TrustFailure =
  | CoseFailure
  | 'expired'
  | 'not-yet-valid'
  | 'revoked'
  | 'wrong-issuer'
  | 'wrong-role'
  | 'wrong-type'
  | 'out-of-scope'
  | 'wrong-target'
  | 'replayed'
  | 'schema'
  | 'stale'
  | 'permission';

export type TrustResult<T> =
  | { ok: true; value: T; signer: Uint8Array }
  | { ok: false; code: TrustFailure; reason: string };

export function fail<T = never>(code: TrustFailure, reason: string): TrustResult<T> {
  return { ok: false, code, reason };
}

/** Thrown by the issue* functions when the fields to sign are invalid. */
export class TrustArtifactError extends FieldbenchError<TrustFailure> {
  constructor(code: TrustFailure, message: string) {
    super(code, message);
    this.name = 'TrustArtifactError';
  }
}

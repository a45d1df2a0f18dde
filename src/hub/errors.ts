/**
 * Errors the hub returns: a stable code (tests and clients act on it), a
 * sentence that says what to do, and the HTTP status. Anything else that
 * goes wrong is reported as 'internal' without its details (they go to the
 * hub's log under an id the caller can quote).
 */
export type HubErrorCode =
  | 'bad-request'
  | 'malformed'
  | 'modified'
  | 'broken-chain'
  | 'bad-signature'
  | 'unknown-signer'
  | 'signer-mismatch'
  | 'bad-credential'
  | 'expired-credential'
  | 'revoked'
  | 'permission'
  | 'unauthenticated'
  | 'clock-skew'
  | 'replayed'
  | 'rate-limited'
  | 'too-large'
  | 'gap'
  | 'fork'
  | 'predecessor-failed'
  | 'not-found'
  | 'exhausted'
  | 'bad-bundle'
  | 'stale-bundle'
  | 'bad-campaign'
  | 'missing-artifact'
  | 'config'
  | 'internal';

export class HubError extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
    readonly status = 400,
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

/**
 * The one error base class. Every error fieldbench throws on purpose extends
 * it and carries a `code`: a short, stable, machine-readable word (tests and
 * front ends match on it, never on the wording). Subclasses narrow the code to
 * their own closed union.
 */
export class FieldbenchError<C extends string = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.name = 'FieldbenchError';
  }
}

/** The code of a FieldbenchError, or undefined for anything else. */
export function errorCode(e: unknown): string | undefined {
  return e instanceof FieldbenchError ? e.code : undefined;
}

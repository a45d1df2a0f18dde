/**
 * The CLI's command contract. Each verb lives in src/cli/commands/<area>.ts and
 * exports a `commands` record; src/cli/main.ts gathers them.
 *
 * Exit status everywhere: 0 accepted or done, 1 rejected (reason on stderr),
 * 2 bad usage or unreadable input.
 */
import { FieldbenchError } from '../core/base/errors.ts';
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
}

export interface CliCommand {
  /** One line for `fieldbench help`. */
  summary: string;
  /** Usage text printed on bad usage. */
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

/** A file or value the user gave cannot be used (exit status 2). */
export class InputError extends FieldbenchError<'input'> {
  constructor(message: string) {
    super('input', message);
    this.name = 'InputError';
  }
}

export const EXIT_OK = 0;
export const EXIT_REJECTED = 1;
export const EXIT_USAGE = 2;

export class UsageError extends FieldbenchError<'usage'> {
  constructor(message: string) {
    super('usage', message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string[]>;
  has(name: string): boolean;
  get(name: string): string | undefined;
  all(name: string): string[];
  require(name: string): string;
}

/**
 * Parse `--name value`, `--name=value` and boolean `--flag` options.
 * `booleans` lists the flags that take no value; any other flag needs one.
 * Unknown flags are a UsageError when `known` is given.
 */
export function parseArgs(argv: string[], spec: { booleans?: string[]; known?: string[] } = {}): ParsedArgs {
  const booleans = new Set(spec.booleans ?? []);
  const known = spec.known ? new Set([...spec.known, ...booleans]) : undefined;
  const flags = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      let name = a.slice(2);
      let value: string | undefined;
      const eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.slice(eq + 1);
        name = name.slice(0, eq);
      }
      if (known && !known.has(name)) throw new UsageError(`unknown option --${name}`);
      if (booleans.has(name)) {
        if (value !== undefined) throw new UsageError(`--${name} takes no value`);
        value = 'true';
      } else if (value === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
        value = argv[++i];
      }
      const list = flags.get(name) ?? [];
      list.push(value);
      flags.set(name, list);
    } else {
      positional.push(a);
    }
  }
  return {
    positional,
    flags,
    has: (n) => flags.has(n),
    get: (n) => flags.get(n)?.at(-1),
    all: (n) => flags.get(n) ?? [],
    require(n) {
      const v = flags.get(n)?.at(-1);
      if (v === undefined) throw new UsageError(`--${n} is required`);
      return v;
    },
  };
}

/** An error class a verb turns into "bad input" (exit status 2), e.g. TrustArtifactError. */
export type InputErrorClass = abstract new (...args: never[]) => Error;

/**
 * A verb from its summary, usage and body, with the one error policy every verb shares: a
 * UsageError prints the message and the usage, an InputError (or an error of one of `inputErrors`:
 * the verb's own "this file or value cannot be used" errors) prints the message; both exit 2.
 * Anything else propagates (main.ts: exit 1).
 */
export function command<I extends CliIo = CliIo>(summary: string, usage: string, run: (argv: string[], io: I) => Promise<number>, opts: { inputErrors?: InputErrorClass[] } = {}): CliCommand {
  const inputErrors = opts.inputErrors ?? [];
  return {
    summary,
    usage,
    async run(argv, io) {
      try {
        return await run(argv, io as I);
      } catch (e) {
        if (e instanceof UsageError) {
          io.err(`error: ${e.message}\n${usage}\n`);
          return EXIT_USAGE;
        }
        if (e instanceof InputError || inputErrors.some((c) => e instanceof c)) {
          io.err(`error: ${(e as Error).message}\n`);
          return EXIT_USAGE;
        }
        throw e;
      }
    },
  };
}

/**
 * Where a station's signing key lives, from the command line, as one Signer:
 *
 *   --manufacturer-key FILE [--pass-env VAR]   a wrapped key file (fieldbench key wrap; passphrase from
 *                                              $VAR, default FIELDBENCH_KEY_PASSPHRASE), or a PEM private
 *                                              key in clear (accepted with a warning: demos and tests)
 *   --pkcs11 MODULE (--slot ID | --token-label LABEL) --key-label LABEL [--pin-env VAR]
 *                                              a key inside an HSM (PIN from $VAR, default FIELDBENCH_PKCS11_PIN)
 *
 * The option naming the key file is a parameter (`--manufacturer-key` for the
 * bench, `--key` for `profile sign`), the PKCS#11 options are the same for all.
 * Secrets (passphrase, PIN) come from the environment only, never from argv
 * (which every user of the machine can read in ps).
 */
import { type CliIo, InputError, type ParsedArgs, UsageError } from './command.ts';
import { readText } from './files.ts';
import { KeyFormatError, parsePem } from '../core/trust/keys.ts';
import { memorySigner, type Signer, SignerError } from '../core/trust/signer.ts';
import { isWrappedKeyFile, wrappedSigner } from '../core/trust/wrapped-key.ts';

type Env = Record<string, string | undefined>;

export const PKCS11_OPTIONS = ['pkcs11', 'slot', 'token-label', 'key-label', 'pin-env'];
export const DEFAULT_PASS_ENV = 'FIELDBENCH_KEY_PASSPHRASE';
export const DEFAULT_PIN_ENV = 'FIELDBENCH_PKCS11_PIN';

/** The options signerFromArgs reads, for parseArgs' `known` list. */
export function signerOptionNames(keyOption = 'manufacturer-key'): string[] {
  return [keyOption, 'pass-env', ...PKCS11_OPTIONS];
}

export function signerUsage(keyOption = 'manufacturer-key', what = 'manufacturer key'): string {
  return (
    `  the ${what}: --${keyOption} FILE [--pass-env VAR]   (wrapped key file, passphrase in $VAR, default ${DEFAULT_PASS_ENV})\n` +
    `      or --pkcs11 MODULE.so (--slot ID | --token-label LABEL) --key-label LABEL [--pin-env VAR]   (HSM; PIN in $VAR, default ${DEFAULT_PIN_ENV})`
  );
}

export interface OpenedSigner extends Signer {
  /** For logs: "pkcs11 token "line-1" key "mfr"", "wrapped key file mfr.key". */
  readonly describe: string;
  /** Zero the key held in memory / close the HSM session. */
  close(): void;
}

export interface SignerArgsOptions {
  /** The option that names a key file (default 'manufacturer-key'). */
  keyOption?: string;
  /** What the key is, for messages (default 'manufacturer key'). */
  what?: string;
  /** Warnings (a key in clear) go here; default io.err. */
  warn?: (text: string) => void;
}

function secretFromEnv(env: Env, a: Pick<ParsedArgs, 'get'>, option: string, dflt: string, what: string): string {
  const name = a.get(option) ?? dflt;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`--${option}: ${JSON.stringify(name)} is not an environment variable name`);
  const v = env[name];
  if (v === undefined || v === '') throw new InputError(`the ${what} is read from the environment variable ${name}, which is not set`);
  return v;
}

function asInput(e: unknown, where: string): never {
  if (e instanceof SignerError) throw new InputError(`${where}: ${e.message}`);
  throw e;
}

/**
 * Turn the CLI options into a Signer (see the module comment). Returns
 * undefined when none of the options is given; throws UsageError for a
 * contradictory or incomplete set, InputError for a key that cannot be used
 * (wrong passphrase or PIN, no such token or key, unreadable file).
 */
export async function signerFromArgs(a: Pick<ParsedArgs, 'get' | 'has'>, io: CliIo & { env?: Env }, opts: SignerArgsOptions = {}): Promise<OpenedSigner | undefined> {
  const keyOption = opts.keyOption ?? 'manufacturer-key';
  const what = opts.what ?? 'manufacturer key';
  const env = io.env ?? process.env;
  const warn = opts.warn ?? ((t: string) => io.err(t));
  const file = a.get(keyOption);
  const module = a.get('pkcs11');
  if (file !== undefined && module !== undefined) throw new UsageError(`give the ${what} either as --${keyOption} FILE or through --pkcs11, not both`);
  if (file === undefined && module === undefined) {
    for (const o of ['slot', 'token-label', 'key-label', 'pin-env']) if (a.has(o)) throw new UsageError(`--${o} needs --pkcs11 MODULE`);
    if (a.has('pass-env')) throw new UsageError(`--pass-env needs --${keyOption} FILE`);
    return undefined;
  }
  if (module !== undefined) {
    if (a.has('pass-env')) throw new UsageError('--pass-env is for key files; an HSM takes --pin-env');
    const keyLabel = a.get('key-label');
    if (!keyLabel) throw new UsageError('--pkcs11 needs --key-label LABEL (the key\'s CKA_LABEL)');
    const slot = a.get('slot');
    const tokenLabel = a.get('token-label');
    if (slot === undefined && tokenLabel === undefined) throw new UsageError('--pkcs11 needs --slot ID or --token-label LABEL');
    if (slot !== undefined && !/^\d+$/.test(slot)) throw new UsageError(`--slot: ${JSON.stringify(slot)} is not a slot id (a decimal number)`);
    const pin = secretFromEnv(env, a, 'pin-env', DEFAULT_PIN_ENV, 'token PIN');
    const { pkcs11Signer } = await import('../core/trust/pkcs11.ts');
    const s = await pkcs11Signer({ module, slot, tokenLabel, keyLabel, pin }).catch((e) => asInput(e, `${what} in ${module}`));
    const where = tokenLabel !== undefined ? `token ${JSON.stringify(tokenLabel)}` : `slot ${slot}`;
    return { kind: s.kind, publicKey: s.publicKey, sign: (m) => s.sign(m), describe: `PKCS#11 ${where} key ${JSON.stringify(keyLabel)}`, close: () => s.close() };
  }
  for (const o of PKCS11_OPTIONS) if (a.has(o)) throw new UsageError(`--${o} is for --pkcs11, not for --${keyOption}`);
  const text = await readText(io, file!, what);
  if (isWrappedKeyFile(text)) {
    const pass = secretFromEnv(env, a, 'pass-env', DEFAULT_PASS_ENV, `passphrase of ${file}`);
    const s = await wrappedSigner(text, pass).catch((e) => asInput(e, file!));
    return { kind: s.kind, publicKey: s.publicKey, sign: (m) => s.sign(m), describe: `wrapped key file ${file}`, close: () => s.forget() };
  }
  if (a.has('pass-env')) throw new InputError(`${file} is not a wrapped key file, so --pass-env has nothing to unlock`);
  let pem;
  try {
    pem = parsePem(text);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new InputError(`${file}: neither a wrapped key file nor a PEM private key (${e.message})`);
    throw e;
  }
  if (pem.kind !== 'ed25519-private') throw new InputError(`${file} holds a public key; the ${what} must be the Ed25519 private key (or an HSM key through --pkcs11)`);
  warn(`warning: ${file} is the ${what} in clear; for production wrap it (fieldbench key wrap --in ${file} --out KEY.wrapped) or move it into an HSM (fieldbench hsm import)\n`);
  const s = memorySigner(pem.seed);
  pem.seed.fill(0);
  return { kind: 'file', publicKey: s.publicKey, sign: (m) => s.sign(m), describe: `key file ${file} (in clear)`, close: () => s.forget() };
}

/** As signerFromArgs, but the key is required. */
export async function requireSignerFromArgs(a: Pick<ParsedArgs, 'get' | 'has'>, io: CliIo & { env?: Env }, opts: SignerArgsOptions = {}): Promise<OpenedSigner> {
  const s = await signerFromArgs(a, io, opts);
  if (!s) throw new UsageError(`the ${opts.what ?? 'manufacturer key'} is required: --${opts.keyOption ?? 'manufacturer-key'} FILE or --pkcs11 MODULE ...`);
  return s;
}

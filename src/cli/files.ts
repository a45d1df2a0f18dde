/**
 * Reading the CLI's input files: bytes, text and PEM keys. One implementation
 * for every verb, so that an unreadable file or an unusable key is reported
 * the same way everywhere.
 *
 * Everything here throws InputError for input that cannot be read or used;
 * the verbs report it on stderr and exit 2 (src/cli/main.ts does the same for
 * one a verb lets through).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CliIo } from './command.ts';
import type { CoseKey } from '../core/trust/cose.ts';
import { ed25519PublicKey, ed25519PublicKeyProblem } from '../core/trust/ed25519.ts';
import { IhexError } from '../core/trust/ihex.ts';
import { KeyFormatError, type ParsedPem, parsePem } from '../core/trust/keys.ts';
import { readFirmwareFile } from '../core/trust/ihex.ts';
import { FieldbenchError } from '../core/base/errors.ts';

/** A file that cannot be read, parsed or used as given: exit 2. */
export class InputError extends FieldbenchError<'input'> {
  constructor(message: string) {
    super('input', message);
    this.name = 'InputError';
  }
}

/**
 * The bytes of `path` (relative to io.cwd). `what` names the file in the
 * message: "cannot read [WHAT ]PATH: CODE".
 */
export async function readInput(io: CliIo, path: string, what?: string): Promise<Uint8Array> {
  let b: Buffer;
  try {
    b = await readFile(resolve(io.cwd, path));
  } catch (e) {
    throw new InputError(`cannot read ${what ? `${what} ` : ''}${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** As readInput, decoded as UTF-8 (a byte order mark is kept, as readFile(path, 'utf8') keeps it). */
export async function readText(io: CliIo, path: string, what?: string): Promise<string> {
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(await readInput(io, path, what));
}

/** A firmware file as imgtool reads it: Intel HEX when named *.hex, raw binary otherwise. */
export async function readFirmware(io: CliIo, path: string): Promise<ReturnType<typeof readFirmwareFile>> {
  const raw = await readInput(io, path);
  try {
    return readFirmwareFile(path, raw);
  } catch (e) {
    if (e instanceof IhexError) throw new InputError(`${path}: ${e.message}`);
    throw e;
  }
}

/** parsePem, with a KeyFormatError reported against the file it came from. */
export function parsePemAt(text: string, path: string): ParsedPem {
  try {
    return parsePem(text);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new InputError(`${path}: ${e.message}`);
    throw e;
  }
}

/** The PEM key in `path`: Ed25519 private or public, or P-256 public. */
export async function readPem(io: CliIo, path: string, what?: string): Promise<ParsedPem> {
  return parsePemAt(await readText(io, path, what), path);
}

export interface PublicKeyOptions {
  /** What the key is for the messages: "owner key", "firmware signing key". */
  what?: string;
  /**
   * Refuse a private key (default: use its public half). For keys a user
   * should only ever hold the public half of, such as an owner's.
   */
  publicOnly?: boolean;
}

const KIND_NAMES: Record<ParsedPem['kind'], string> = {
  'ed25519-private': 'an Ed25519 private key',
  'ed25519-public': 'an Ed25519 public key',
  'p256-public': 'a P-256 public key',
  'p256-private': 'a P-256 private key',
};

async function ed25519PublicOf(k: ParsedPem, path: string, opts: PublicKeyOptions): Promise<Uint8Array> {
  let pub: Uint8Array;
  if (k.kind === 'ed25519-public') pub = k.publicKey;
  else if (k.kind === 'ed25519-private') {
    if (opts.publicOnly) throw new InputError(`${path} is a private key: give the PUBLIC ${opts.what ?? 'key'} here (openssl pkey -in ${path} -pubout)`);
    pub = await ed25519PublicKey(k.seed);
  } else throw new InputError(`${path}: ${opts.what ? `the ${opts.what}` : 'the key'} must be Ed25519; this is ${KIND_NAMES[k.kind]}`);
  const problem = ed25519PublicKeyProblem(pub);
  if (problem) throw new InputError(`${path}: ${opts.what ? `${opts.what}: ` : ''}${problem}`);
  return pub;
}

/** An Ed25519 public key (32 bytes) from a public PEM, or derived from a private one unless `publicOnly`. */
export async function readEd25519Public(io: CliIo, path: string, opts: PublicKeyOptions = {}): Promise<Uint8Array> {
  return ed25519PublicOf(await readPem(io, path, opts.what), path, opts);
}

/** An Ed25519 private key: its 32-byte seed. */
export async function readEd25519Private(io: CliIo, path: string, what?: string): Promise<Uint8Array> {
  const k = await readPem(io, path, what);
  if (k.kind !== 'ed25519-private') throw new InputError(`${path} holds a public key; signing needs the Ed25519 private key`);
  return k.seed;
}

/** A parsed PEM key as a public COSE_Key: Ed25519 (a private key gives its public half) or P-256. */
export async function publicCoseKey(k: ParsedPem, path: string, what?: string): Promise<CoseKey> {
  if (k.kind === 'p256-public' || k.kind === 'p256-private') return { kty: 'EC2', crv: 'P-256', x: k.x, y: k.y };
  return { kty: 'OKP', crv: 'Ed25519', x: await ed25519PublicOf(k, path, { what }) };
}

/** A verification key that may be Ed25519 or P-256 (ES256), from a PEM file. */
export async function readPublicKey(io: CliIo, path: string, what?: string): Promise<CoseKey> {
  return publicCoseKey(await readPem(io, path, what), path, what);
}

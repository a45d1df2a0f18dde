/**
 * A verification key from whatever file a verifier is handed: PEM (public or private: a
 * private key gives its public half), JWK (RFC 7517, also with RFC 8792 line folding as the
 * IETF examples ship them), COSE_Key (RFC 9052 section 7), for a signing key (Ed25519 or
 * P-256) or a symmetric MAC key (JWK "oct", COSE_Key kty 4). Nothing here signs: a private
 * part is checked against its public part and then dropped.
 */
import { p256 } from '@noble/curves/nist.js';
import { ed25519 as curvesEd25519 } from '@noble/curves/ed25519.js';
import { CborError, decodeCbor, encodeDeterministic } from '../base/cbor.ts';
import type { CoseKey } from './cose.ts';
import { KeyFormatError, decodeCoseKey, parsePem } from './keys.ts';
import { ed25519PublicKey } from './ed25519.ts';
import { equalBytes } from '../base/bytes.ts';

export type VerificationKey =
  | { kind: 'sign'; key: CoseKey; format: 'pem' | 'jwk' | 'cose-key'; hadPrivate: boolean }
  | { kind: 'mac'; key: Uint8Array; format: 'jwk' | 'cose-key' | 'raw'; hadPrivate: true };

const MAX_KEY_FILE = 64 * 1024;

function b64url(s: unknown, what: string): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new KeyFormatError(`JWK ${what} must be base64url text`);
  const std = s.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** A public key derived from a private scalar or seed, or a KeyFormatError (noble throws its own errors). */
function derive(f: () => Uint8Array, what: string): Uint8Array {
  try {
    return f();
  } catch {
    throw new KeyFormatError(`${what} is not a valid private key`);
  }
}

/** RFC 8792 section 7: undo '\'-folding ("NOTE: '\' line wrapping per RFC 8792" header, backslash at line end, leading spaces of the next line). */
export function unfoldRfc8792(text: string): string {
  const lines = text.split(/\r?\n/);
  const header = lines.findIndex((l) => /line wrapping per RFC 8792/.test(l));
  if (header < 0) return text;
  const body = lines.slice(header + 1);
  while (body.length && body[0].trim() === '') body.shift();
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const l = body[i];
    if (l.endsWith('\\') && i + 1 < body.length) {
      out += l.slice(0, -1);
      body[i + 1] = body[i + 1].replace(/^\s*\\?/, '');
    } else out += l + '\n';
  }
  return out;
}

function fromJwk(j: Record<string, unknown>): VerificationKey {
  if (j.kty === 'oct') {
    const k = b64url(j.k, 'k');
    if (k.length < 16) throw new KeyFormatError(`JWK oct key is ${k.length} bytes; an HMAC key is at least 16`);
    return { kind: 'mac', key: k, format: 'jwk', hadPrivate: true };
  }
  if (j.kty === 'EC') {
    if (j.crv !== 'P-256') throw new KeyFormatError(`JWK EC curve ${String(j.crv)} is not supported (P-256)`);
    const x = b64url(j.x, 'x');
    const y = b64url(j.y, 'y');
    if (x.length !== 32 || y.length !== 32) throw new KeyFormatError('JWK P-256 x and y are 32 bytes each');
    try {
      p256.Point.fromBytes(Uint8Array.of(4, ...x, ...y)).assertValidity();
    } catch {
      throw new KeyFormatError('JWK P-256 public key is not a point on the curve');
    }
    let hadPrivate = false;
    if (j.d !== undefined) {
      const d = b64url(j.d, 'd');
      const pub = derive(() => p256.getPublicKey(d, false), 'JWK d');
      if (!equalBytes(pub.subarray(1, 33), x) || !equalBytes(pub.subarray(33), y)) throw new KeyFormatError('JWK d does not belong to x, y');
      hadPrivate = true;
    }
    return { kind: 'sign', key: { kty: 'EC2', crv: 'P-256', x, y }, format: 'jwk', hadPrivate };
  }
  if (j.kty === 'OKP') {
    if (j.crv !== 'Ed25519') throw new KeyFormatError(`JWK OKP curve ${String(j.crv)} is not supported (Ed25519)`);
    const x = b64url(j.x, 'x');
    if (x.length !== 32) throw new KeyFormatError('JWK Ed25519 x is 32 bytes');
    let hadPrivate = false;
    if (j.d !== undefined) {
      const d = b64url(j.d, 'd');
      if (!equalBytes(derive(() => curvesEd25519.getPublicKey(d), 'JWK d'), x)) throw new KeyFormatError('JWK d does not belong to x');
      hadPrivate = true;
    }
    return { kind: 'sign', key: decodeCoseKey(encodeDeterministic(new Map<number, unknown>([[1, 1], [-1, 6], [-2, x]]))), format: 'jwk', hadPrivate };
  }
  throw new KeyFormatError(`JWK kty ${JSON.stringify(j.kty)} is not supported (EC, OKP or oct)`);
}

function fromCoseKey(m: Map<unknown, unknown>, bytes: Uint8Array): VerificationKey {
  const kty = m.get(1);
  if (kty === 4) {
    const k = m.get(-1);
    if (!(k instanceof Uint8Array) || k.length < 16) throw new KeyFormatError('COSE_Key symmetric k (-1) must be at least 16 bytes');
    return { kind: 'mac', key: k, format: 'cose-key', hadPrivate: true };
  }
  if (!m.has(-4)) return { kind: 'sign', key: decodeCoseKey(bytes), format: 'cose-key', hadPrivate: false };
  const d = m.get(-4);
  if (!(d instanceof Uint8Array)) throw new KeyFormatError('COSE_Key d (-4) must be bytes');
  const pub = new Map(m);
  pub.delete(-4);
  const key = decodeCoseKey(encodeDeterministic(pub));
  const derived = derive(() => (key.kty === 'OKP' ? curvesEd25519.getPublicKey(d) : p256.getPublicKey(d, false).subarray(1)), 'COSE_Key d (-4)');
  const have = key.kty === 'OKP' ? key.x : Uint8Array.of(...key.x, ...key.y);
  if (!equalBytes(derived, have)) throw new KeyFormatError('COSE_Key d (-4) does not belong to its public part');
  return { kind: 'sign', key, format: 'cose-key', hadPrivate: true };
}

/**
 * Read a verification key. `rawMac`: the file is a bare symmetric key (bytes), as TF-M's
 * tfm-hs-iak.bin. Throws KeyFormatError with a reason naming what is wrong.
 */
export async function parseVerificationKey(bytes: Uint8Array, opts: { rawMac?: boolean } = {}): Promise<VerificationKey> {
  if (bytes.length === 0) throw new KeyFormatError('the key file is empty');
  if (bytes.length > MAX_KEY_FILE) throw new KeyFormatError(`the key file is ${bytes.length} bytes; a key file is at most ${MAX_KEY_FILE}`);
  if (opts.rawMac) {
    if (bytes.length < 16) throw new KeyFormatError(`an HMAC key is at least 16 bytes; this one is ${bytes.length}`);
    return { kind: 'mac', key: bytes, format: 'raw', hadPrivate: true };
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
    const k = parsePem(text);
    if (k.kind === 'ed25519-private') {
      return { kind: 'sign', key: { kty: 'OKP', crv: 'Ed25519', x: await ed25519PublicKey(k.seed) }, format: 'pem', hadPrivate: true };
    }
    if (k.kind === 'ed25519-public') return { kind: 'sign', key: { kty: 'OKP', crv: 'Ed25519', x: k.publicKey }, format: 'pem', hadPrivate: false };
    return { kind: 'sign', key: { kty: 'EC2', crv: 'P-256', x: k.x, y: k.y }, format: 'pem', hadPrivate: k.kind === 'p256-private' };
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || /line wrapping per RFC 8792/.test(trimmed)) {
    let j: unknown;
    try {
      j = JSON.parse(unfoldRfc8792(trimmed));
    } catch (e) {
      throw new KeyFormatError(`the key file looks like JSON (a JWK) but does not parse: ${(e as Error).message}`);
    }
    if (!j || typeof j !== 'object' || Array.isArray(j)) throw new KeyFormatError('a JWK is a JSON object');
    const keys = (j as { keys?: unknown }).keys;
    if (Array.isArray(keys)) {
      if (keys.length !== 1) throw new KeyFormatError(`the JWK set holds ${keys.length} keys; give a file with exactly one`);
      return fromJwk(keys[0] as Record<string, unknown>);
    }
    return fromJwk(j as Record<string, unknown>);
  }
  let m: unknown;
  try {
    m = decodeCbor(bytes);
  } catch (e) {
    throw new KeyFormatError(
      `not a PEM, JWK or COSE_Key file (${e instanceof CborError ? e.message : 'not CBOR'}); for a bare HMAC key file use --hmac-key`,
    );
  }
  if (!(m instanceof Map)) throw new KeyFormatError('a COSE_Key is a CBOR map');
  return fromCoseKey(m, bytes);
}

/**
 * Key formats: PEM (PKCS#8 Ed25519 private keys as OpenSSL writes them, SubjectPublicKeyInfo
 * for Ed25519 and P-256 public keys), COSE_Key (RFC 9052 section 7 / RFC 9053), and key ids.
 * Every rejection is a KeyFormatError with a message naming what is wrong.
 */
import { ed25519 as curvesEd25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { CborError, decodeCbor, encodeDeterministic } from '../base/cbor.ts';
import type { CoseKey } from './cose.ts';
import { KeyFormatError, ed25519PublicKeyProblem } from './ed25519.ts';
import { concatBytes, equalBytes } from '../base/bytes.ts';

export { KeyFormatError };

export type ParsedPem =
  | { kind: 'ed25519-private'; seed: Uint8Array }
  | { kind: 'ed25519-public'; publicKey: Uint8Array }
  | { kind: 'p256-public'; x: Uint8Array; y: Uint8Array }
  /** A P-256 private key (SEC1 or PKCS#8): only its public half is ever used (ES256 is verify-only here). */
  | { kind: 'p256-private'; x: Uint8Array; y: Uint8Array };

// DER prefixes (RFC 8410, RFC 5480)
const OID_ED25519 = Uint8Array.of(0x06, 0x03, 0x2b, 0x65, 0x70);
const OID_EC_PUBLIC_KEY = Uint8Array.of(0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);
const OID_P256 = Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07);
const PKCS8_ED25519_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, ...OID_ED25519, 0x04, 0x22, 0x04, 0x20);
const SPKI_ED25519_PREFIX = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, ...OID_ED25519, 0x03, 0x21, 0x00);
const SPKI_P256_PREFIX = Uint8Array.of(0x30, 0x59, 0x30, 0x13, ...OID_EC_PUBLIC_KEY, ...OID_P256, 0x03, 0x42, 0x00, 0x04);

// ---------------------------------------------------------------- base64 / PEM armour

function toBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string, label: string): Uint8Array {
  const s = text.replace(/[\r\n\t ]/g, '');
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) {
    throw new KeyFormatError(`PEM block "${label}" does not contain valid base64`);
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function armour(label: string, der: Uint8Array): string {
  const b64 = toBase64(der);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

// ---------------------------------------------------------------- minimal strict DER reader

interface Tlv {
  tag: number;
  start: number; // first content byte
  end: number; // one past the last content byte
}

function readTlv(b: Uint8Array, pos: number, limit: number, what: string): Tlv {
  if (pos + 2 > limit) throw new KeyFormatError(`DER: truncated ${what}`);
  const tag = b[pos];
  let len = b[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw new KeyFormatError(`DER: unsupported length encoding in ${what}`);
    if (start + n > limit) throw new KeyFormatError(`DER: truncated ${what}`);
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[start + i];
    if (b[start] === 0 || len < 0x80) throw new KeyFormatError(`DER: non-minimal length in ${what}`);
    start += n;
  }
  if (start + len > limit) throw new KeyFormatError(`DER: truncated ${what}`);
  return { tag, start, end: start + len };
}

function expectTag(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) throw new KeyFormatError(`DER: expected ${what}`);
  return t;
}

// ---------------------------------------------------------------- PKCS#8 / SPKI

function parsePkcs8(der: Uint8Array): ParsedPem {
  const top = expectTag(readTlv(der, 0, der.length, 'PrivateKeyInfo'), 0x30, 'PrivateKeyInfo SEQUENCE');
  if (top.end !== der.length) throw new KeyFormatError('DER: trailing bytes after PrivateKeyInfo');
  const ver = expectTag(readTlv(der, top.start, top.end, 'version'), 0x02, 'version INTEGER');
  if (ver.end - ver.start !== 1 || der[ver.start] > 1) throw new KeyFormatError('PKCS#8: unsupported version');
  const alg = expectTag(readTlv(der, ver.end, top.end, 'AlgorithmIdentifier'), 0x30, 'AlgorithmIdentifier SEQUENCE');
  const algBody = der.subarray(alg.start, alg.end);
  if (!equalBytes(algBody, OID_ED25519)) {
    if (algBody.length >= OID_EC_PUBLIC_KEY.length && equalBytes(algBody.subarray(0, OID_EC_PUBLIC_KEY.length), OID_EC_PUBLIC_KEY)) {
      const params = algBody.subarray(OID_EC_PUBLIC_KEY.length);
      if (!equalBytes(params, OID_P256)) throw new KeyFormatError('EC private key on a curve other than P-256 (prime256v1) is not supported');
      const outer = expectTag(readTlv(der, alg.end, top.end, 'privateKey'), 0x04, 'privateKey OCTET STRING');
      let pos = outer.end;
      if (pos < top.end && der[pos] === 0xa0) pos = readTlv(der, pos, top.end, 'attributes').end;
      if (pos !== top.end) throw new KeyFormatError('PKCS#8: unexpected fields after the private key');
      return parseSec1(der.slice(outer.start, outer.end), true);
    }
    throw new KeyFormatError('PKCS#8: not an Ed25519 key (OID 1.3.101.112 expected, with no parameters)');
  }
  const outer = expectTag(readTlv(der, alg.end, top.end, 'privateKey'), 0x04, 'privateKey OCTET STRING');
  const inner = expectTag(readTlv(der, outer.start, outer.end, 'CurvePrivateKey'), 0x04, 'CurvePrivateKey OCTET STRING');
  if (inner.end !== outer.end || inner.end - inner.start !== 32) throw new KeyFormatError('PKCS#8: Ed25519 private key must be a 32-byte seed');
  const seed = der.slice(inner.start, inner.end);
  let pos = outer.end;
  if (pos < top.end && der[pos] === 0xa0) pos = readTlv(der, pos, top.end, 'attributes').end;
  if (pos < top.end && der[pos] === 0x81) {
    // OneAsymmetricKey (RFC 5958) v2: embedded public key must match the seed
    const pk = readTlv(der, pos, top.end, 'publicKey');
    if (der[ver.start] !== 1) throw new KeyFormatError('PKCS#8: public key present in a version 1 structure');
    if (pk.end - pk.start !== 33 || der[pk.start] !== 0) throw new KeyFormatError('PKCS#8: embedded public key must be 32 bytes');
    if (!equalBytes(der.subarray(pk.start + 1, pk.end), curvesEd25519.getPublicKey(seed))) {
      throw new KeyFormatError('PKCS#8: embedded public key does not belong to the private key');
    }
    pos = pk.end;
  }
  if (pos !== top.end) throw new KeyFormatError('PKCS#8: unexpected fields after the private key');
  return { kind: 'ed25519-private', seed };
}

function parseSpki(der: Uint8Array): ParsedPem {
  const top = expectTag(readTlv(der, 0, der.length, 'SubjectPublicKeyInfo'), 0x30, 'SubjectPublicKeyInfo SEQUENCE');
  if (top.end !== der.length) throw new KeyFormatError('DER: trailing bytes after SubjectPublicKeyInfo');
  const alg = expectTag(readTlv(der, top.start, top.end, 'AlgorithmIdentifier'), 0x30, 'AlgorithmIdentifier SEQUENCE');
  const bits = expectTag(readTlv(der, alg.end, top.end, 'subjectPublicKey'), 0x03, 'subjectPublicKey BIT STRING');
  if (bits.end !== top.end) throw new KeyFormatError('SPKI: unexpected fields after the public key');
  if (bits.end - bits.start < 1 || der[bits.start] !== 0) throw new KeyFormatError('SPKI: public key BIT STRING has unused bits');
  const key = der.slice(bits.start + 1, bits.end);
  const algBody = der.subarray(alg.start, alg.end);
  if (equalBytes(algBody, OID_ED25519)) {
    const problem = ed25519PublicKeyProblem(key);
    if (problem) throw new KeyFormatError(problem);
    return { kind: 'ed25519-public', publicKey: key };
  }
  if (equalBytes(algBody, concatBytes(OID_EC_PUBLIC_KEY, OID_P256))) {
    const { x, y } = p256Point(key);
    return { kind: 'p256-public', x, y };
  }
  if (algBody.length >= OID_EC_PUBLIC_KEY.length && equalBytes(algBody.subarray(0, OID_EC_PUBLIC_KEY.length), OID_EC_PUBLIC_KEY)) {
    throw new KeyFormatError('EC public key on a curve other than P-256 (prime256v1) is not supported');
  }
  throw new KeyFormatError('SPKI: unsupported key algorithm (Ed25519 or P-256 expected)');
}

/**
 * SEC1 ECPrivateKey (RFC 5915): SEQUENCE { version 1, privateKey OCTET STRING, [0] curve OID,
 * [1] public key BIT STRING }. P-256 only; the public key is derived from the scalar, and an
 * embedded one must match it. `inPkcs8`: the curve came from the PKCS#8 algorithm identifier.
 */
function parseSec1(der: Uint8Array, inPkcs8: boolean): ParsedPem {
  const top = expectTag(readTlv(der, 0, der.length, 'ECPrivateKey'), 0x30, 'ECPrivateKey SEQUENCE');
  if (top.end !== der.length) throw new KeyFormatError('DER: trailing bytes after ECPrivateKey');
  const ver = expectTag(readTlv(der, top.start, top.end, 'version'), 0x02, 'version INTEGER');
  if (ver.end - ver.start !== 1 || der[ver.start] !== 1) throw new KeyFormatError('ECPrivateKey: version must be 1');
  const priv = expectTag(readTlv(der, ver.end, top.end, 'privateKey'), 0x04, 'privateKey OCTET STRING');
  if (priv.end - priv.start !== 32) throw new KeyFormatError('ECPrivateKey: a P-256 private key is 32 bytes');
  const d = der.slice(priv.start, priv.end);
  let pos = priv.end;
  let curveSeen = inPkcs8;
  if (pos < top.end && der[pos] === 0xa0) {
    const params = readTlv(der, pos, top.end, 'parameters');
    if (!equalBytes(der.subarray(params.start, params.end), OID_P256)) throw new KeyFormatError('EC private key on a curve other than P-256 (prime256v1) is not supported');
    curveSeen = true;
    pos = params.end;
  }
  if (!curveSeen) throw new KeyFormatError('ECPrivateKey: the curve is not named (P-256 expected)');
  let pub: Uint8Array;
  try {
    pub = p256.getPublicKey(d, false);
  } catch {
    throw new KeyFormatError('ECPrivateKey: the private scalar is not valid for P-256');
  }
  if (pos < top.end && der[pos] === 0xa1) {
    const wrap = readTlv(der, pos, top.end, 'publicKey');
    const bits = expectTag(readTlv(der, wrap.start, wrap.end, 'publicKey BIT STRING'), 0x03, 'publicKey BIT STRING');
    if (bits.end !== wrap.end || bits.end - bits.start < 2 || der[bits.start] !== 0) throw new KeyFormatError('ECPrivateKey: malformed public key');
    const embedded = p256Point(der.slice(bits.start + 1, bits.end));
    if (!equalBytes(embedded.x, pub.slice(1, 33)) || !equalBytes(embedded.y, pub.slice(33, 65))) throw new KeyFormatError('ECPrivateKey: embedded public key does not belong to the private key');
    pos = wrap.end;
  }
  if (pos !== top.end) throw new KeyFormatError('ECPrivateKey: unexpected fields after the key');
  return { kind: 'p256-private', x: pub.slice(1, 33), y: pub.slice(33, 65) };
}

/** Validate a SEC1 P-256 point (uncompressed or compressed) and return affine x, y. */
function p256Point(sec1: Uint8Array): { x: Uint8Array; y: Uint8Array } {
  let raw: Uint8Array;
  try {
    raw = p256.Point.fromBytes(sec1).toBytes(false);
  } catch {
    throw new KeyFormatError('P-256 public key is not a valid point on the curve');
  }
  return { x: raw.slice(1, 33), y: raw.slice(33, 65) };
}

/** Parse one PEM block: Ed25519 PKCS#8 private key, Ed25519 or P-256 SubjectPublicKeyInfo. */
export function parsePem(text: string): ParsedPem {
  if (typeof text !== 'string') throw new KeyFormatError('PEM input must be text');
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const blocks = [...text.matchAll(re)];
  if (blocks.length === 0) {
    if (/-----BEGIN /.test(text)) throw new KeyFormatError('PEM block has no matching END line');
    throw new KeyFormatError('no PEM block found (expected -----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY-----)');
  }
  if (blocks.length > 1) {
    throw new KeyFormatError(`expected one PEM block, found ${blocks.length} (${blocks.map((b) => b[1]).join(', ')})`);
  }
  const [, label, body] = blocks[0];
  if (/^[A-Za-z-]+:/m.test(body)) throw new KeyFormatError('PEM headers (e.g. Proc-Type) are not supported; the key may be encrypted');
  switch (label) {
    case 'PRIVATE KEY':
      return parsePkcs8(fromBase64(body, label));
    case 'PUBLIC KEY':
      return parseSpki(fromBase64(body, label));
    case 'ENCRYPTED PRIVATE KEY':
      throw new KeyFormatError('encrypted private keys are not supported; decrypt first (openssl pkey -in key.pem -out plain.pem)');
    case 'EC PRIVATE KEY':
      return parseSec1(fromBase64(body, label), false);
    default:
      throw new KeyFormatError(`unsupported PEM block "${label}" (expected PRIVATE KEY or PUBLIC KEY)`);
  }
}

function checkLen(b: unknown, n: number, what: string): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array) || b.length !== n) {
    throw new KeyFormatError(`${what} must be ${n} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
  }
}

/** PKCS#8 PEM of an Ed25519 seed, byte-identical to `openssl genpkey -algorithm ed25519`. */
export function privateKeyPem(seed: Uint8Array): string {
  checkLen(seed, 32, 'Ed25519 seed');
  return armour('PRIVATE KEY', concatBytes(PKCS8_ED25519_PREFIX, seed));
}

/** SubjectPublicKeyInfo PEM of an Ed25519 public key (as `openssl pkey -pubout` writes it). */
export function publicKeyPem(pub: Uint8Array): string {
  checkLen(pub, 32, 'Ed25519 public key');
  return armour('PUBLIC KEY', concatBytes(SPKI_ED25519_PREFIX, pub));
}

/** SubjectPublicKeyInfo PEM of a P-256 public key (uncompressed point). */
export function p256PublicKeyPem(x: Uint8Array, y: Uint8Array): string {
  checkLen(x, 32, 'P-256 x');
  checkLen(y, 32, 'P-256 y');
  p256Point(concatBytes(Uint8Array.of(4), x, y));
  return armour('PUBLIC KEY', concatBytes(SPKI_P256_PREFIX, x, y));
}

/** DER SubjectPublicKeyInfo of an Ed25519 key (44 bytes; MCUboot's KEYHASH is SHA-256 of it). */
export function ed25519Spki(pub: Uint8Array): Uint8Array {
  checkLen(pub, 32, 'Ed25519 public key');
  return concatBytes(SPKI_ED25519_PREFIX, pub);
}

// ---------------------------------------------------------------- COSE_Key

const KTY_OKP = 1;
const KTY_EC2 = 2;
const CRV_P256 = 1;
const CRV_ED25519 = 6;
const L_KTY = 1;
const L_KID = 2;
const L_ALG = 3;
const L_CRV = -1;
const L_X = -2;
const L_Y = -3;
const L_D = -4;

/** Encode a COSE_Key (deterministic CBOR). `opts.d` adds the private part (Ed25519 seed). */
export function encodeCoseKey(k: CoseKey, opts?: { d?: Uint8Array }): Uint8Array {
  const m = new Map<number, unknown>();
  if (k.kty === 'OKP' && k.crv === 'Ed25519') {
    checkLen(k.x, 32, 'Ed25519 x');
    m.set(L_KTY, KTY_OKP).set(L_CRV, CRV_ED25519).set(L_X, k.x);
    if (opts?.d !== undefined) {
      checkLen(opts.d, 32, 'Ed25519 d');
      m.set(L_D, opts.d);
    }
  } else if (k.kty === 'EC2' && k.crv === 'P-256') {
    checkLen(k.x, 32, 'P-256 x');
    checkLen(k.y, 32, 'P-256 y');
    if (opts?.d !== undefined) throw new KeyFormatError('P-256 private keys are not supported');
    m.set(L_KTY, KTY_EC2).set(L_CRV, CRV_P256).set(L_X, k.x).set(L_Y, k.y);
  } else {
    throw new KeyFormatError('COSE_Key: only OKP/Ed25519 and EC2/P-256 keys are supported');
  }
  if (k.kid !== undefined) {
    if (!(k.kid instanceof Uint8Array)) throw new KeyFormatError('COSE_Key kid must be bytes');
    m.set(L_KID, k.kid);
  }
  return encodeDeterministic(m);
}

/** Decode a COSE_Key including an optional private part `d` (Ed25519 seed). */
export function decodeCoseKeyWithPrivate(b: Uint8Array): { key: CoseKey; d?: Uint8Array } {
  if (!(b instanceof Uint8Array)) throw new KeyFormatError('COSE_Key must be bytes');
  let m: unknown;
  try {
    m = decodeCbor(b);
  } catch (e) {
    throw new KeyFormatError(`COSE_Key is not valid CBOR: ${e instanceof CborError ? e.message : String(e)}`);
  }
  if (!(m instanceof Map)) throw new KeyFormatError('COSE_Key must be a CBOR map');
  const kty = m.get(L_KTY);
  const crv = m.get(L_CRV);
  const kid = m.get(L_KID);
  const alg = m.get(L_ALG);
  if (kid !== undefined && !(kid instanceof Uint8Array)) throw new KeyFormatError('COSE_Key kid (2) must be a byte string');
  const withKid = <T extends object>(k: T): T => (kid instanceof Uint8Array ? { ...k, kid } : k);
  if (kty === KTY_OKP) {
    if (crv !== CRV_ED25519) throw new KeyFormatError(`COSE_Key: OKP curve ${String(crv)} is not supported (Ed25519 = 6)`);
    if (alg !== undefined && alg !== -8 && alg !== -19) throw new KeyFormatError(`COSE_Key: alg ${String(alg)} does not fit an Ed25519 key`);
    const x = m.get(L_X);
    checkLen(x, 32, 'COSE_Key Ed25519 x (-2)');
    const problem = ed25519PublicKeyProblem(x);
    if (problem) throw new KeyFormatError(problem);
    const d = m.get(L_D);
    const key = withKid({ kty: 'OKP' as const, crv: 'Ed25519' as const, x });
    if (d === undefined) return { key };
    checkLen(d, 32, 'COSE_Key Ed25519 d (-4)');
    if (!equalBytes(curvesEd25519.getPublicKey(d), x)) throw new KeyFormatError('COSE_Key: d does not belong to x');
    return { key, d };
  }
  if (kty === KTY_EC2) {
    if (crv !== CRV_P256) throw new KeyFormatError(`COSE_Key: EC2 curve ${String(crv)} is not supported (P-256 = 1)`);
    if (alg !== undefined && alg !== -7) throw new KeyFormatError(`COSE_Key: alg ${String(alg)} does not fit a P-256 key`);
    if (m.has(L_D)) throw new KeyFormatError('COSE_Key: P-256 private keys are not supported');
    const x = m.get(L_X);
    const y = m.get(L_Y);
    checkLen(x, 32, 'COSE_Key P-256 x (-2)');
    let pt: { x: Uint8Array; y: Uint8Array };
    if (y instanceof Uint8Array) {
      checkLen(y, 32, 'COSE_Key P-256 y (-3)');
      pt = p256Point(concatBytes(Uint8Array.of(4), x, y));
    } else if (typeof y === 'boolean') {
      pt = p256Point(concatBytes(Uint8Array.of(y ? 3 : 2), x)); // RFC 9053 section 7.1.1: y sign bit
    } else throw new KeyFormatError('COSE_Key P-256 y (-3) missing');
    return { key: withKid({ kty: 'EC2' as const, crv: 'P-256' as const, x: pt.x, y: pt.y }) };
  }
  throw new KeyFormatError(`COSE_Key: key type ${String(kty)} is not supported (OKP = 1, EC2 = 2)`);
}

/** Decode a public COSE_Key. A key carrying a private part is refused (use decodeCoseKeyWithPrivate). */
export function decodeCoseKey(b: Uint8Array): CoseKey {
  const { key, d } = decodeCoseKeyWithPrivate(b);
  if (d !== undefined) throw new KeyFormatError('COSE_Key carries a private key (d, -4) where a public key was expected');
  return key;
}

/** Key id: the first 8 bytes of SHA-256(pub). Used as the COSE kid. */
export function keyId(pub: Uint8Array): Uint8Array {
  if (!(pub instanceof Uint8Array) || pub.length === 0) throw new KeyFormatError('keyId needs public key bytes');
  return sha256(pub).slice(0, 8);
}

/** COSE key for an Ed25519 public key, with kid = keyId(pub) unless given. */
export function ed25519CoseKey(pub: Uint8Array, kid: Uint8Array = keyId(pub)): CoseKey {
  const problem = ed25519PublicKeyProblem(pub);
  if (problem) throw new KeyFormatError(problem);
  return { kty: 'OKP', crv: 'Ed25519', x: pub, kid };
}

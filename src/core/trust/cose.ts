/**
 * COSE_Sign1 (RFC 9052 section 4.2) and COSE_Sign (section 4.1) for the trust layer.
 *
 * Rules (docs/SECURITY.md, "Signature verification rules"):
 *  - the Sig_structure is built over the protected header bytes exactly as received
 *    (an empty map, h'A0', counts as no protected parameters: h'', RFC 9052 section 3);
 *  - `alg` is read from the protected bucket only; an alg that is only unprotected is rejected;
 *  - `crit` must be protected, a non-empty array of labels present in the protected bucket,
 *    each understood by this verifier (or named by the caller in `criticalLabels`);
 *  - a label may not appear twice in a bucket nor in both buckets;
 *  - unknown algorithms are 'unsupported-alg', never valid;
 *  - one CBOR item only ('trailing-bytes'), at most `maxBytes` (default 64 KiB, 'too-large');
 *  - everything we produce is deterministic CBOR (RFC 8949 section 4.2.1).
 * Supported: EdDSA (-8) and Ed25519 (-19) with Ed25519 keys (strict RFC 8032, see ed25519.ts),
 * ES256 (-7) verification with P-256 keys (raw r||s, SHA-256; high-S accepted as COSE allows).
 */
import { p256 } from '@noble/curves/nist.js';
import { CborError, CborTrailingBytesError, decodeUnique, encodeDeterministic, Tag } from '../base/cbor.ts';
import { ed25519Sign, ed25519Verify } from './ed25519.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalBytes, toHex } from '../base/bytes.ts';

export type CoseKey =
  | { kty: 'OKP'; crv: 'Ed25519'; x: Uint8Array; kid?: Uint8Array }
  | { kty: 'EC2'; crv: 'P-256'; x: Uint8Array; y: Uint8Array; kid?: Uint8Array };

export type HeaderMap = Map<number | string, unknown>;

export interface Sign1 {
  protectedBytes: Uint8Array;
  protected: HeaderMap;
  unprotected: HeaderMap;
  payload: Uint8Array | null;
  signature: Uint8Array;
  tagged: boolean;
}

export type CoseFailure =
  | 'malformed'
  | 'trailing-bytes'
  | 'too-large'
  | 'unsupported-alg'
  | 'crit'
  | 'bad-signature'
  | 'no-key'
  | 'key-mismatch';

export class CoseError extends FieldbenchError<CoseFailure> {
  constructor(
    code: CoseFailure,
    message: string,
  ) {
    super(code, message);
    this.name = 'CoseError';
  }
}

export type CoseVerdict =
  | { ok: true; alg: number; kid?: Uint8Array; payload: Uint8Array; message: Sign1; keyIndex: number }
  | { ok: false; code: CoseFailure; reason: string };

export interface CoseVerifyOptions {
  externalAad?: Uint8Array;
  /** Payload of a detached message (payload field nil). Supplying it for an attached payload is an error. */
  detachedPayload?: Uint8Array;
  /** Largest accepted message, default 64 KiB. */
  maxBytes?: number;
  /** Extra protected labels the caller processes itself and therefore allows in `crit`. */
  criticalLabels?: ReadonlyArray<number | string>;
}

export const DEFAULT_MAX_BYTES = 64 * 1024;
/**
 * The limit of a generic verifier (`fieldbench cose verify`): messages a person checks on a
 * laptop, such as signed release files. The tight DEFAULT_MAX_BYTES stays for what goes to a
 * device or comes from one.
 */
export const GENERIC_MAX_BYTES = 16 * 1024 * 1024;

/** Header labels (RFC 9052 table 3). */
export const HDR = { alg: 1, crit: 2, contentType: 3, kid: 4, iv: 5, partialIv: 6, counterSignature: 7 } as const;
/** Algorithms (RFC 9053, RFC 9864). */
export const ALG = { EdDSA: -8, Ed25519: -19, ES256: -7 } as const;

/** Labels this verifier itself understands when they are listed in `crit`. */
const UNDERSTOOD_CRIT = new Set<number | string>([HDR.alg, HDR.contentType, HDR.kid]);

const TAG_SIGN1 = 18;
const TAG_SIGN = 98;

// ---------------------------------------------------------------- CBOR checks

/**
 * COSE structures are read well-formed (RFC 8949 appendix C), at most 32 levels deep,
 * with no floats (a float such as 1.0 would decode as the integer 1 and could pose as
 * a label or an algorithm value) and no duplicate map keys (which a decoder merges).
 */
const COSE_CBOR = { noFloats: true, maxDepth: 32 } as const;

/** Decode exactly one well-formed CBOR item with no duplicate map keys. */
function decodeStrict(bytes: Uint8Array, what: string): unknown {
  try {
    return decodeUnique(bytes, COSE_CBOR);
  } catch (e) {
    if (e instanceof CborTrailingBytesError) throw new CoseError('trailing-bytes', `${e.count} trailing byte(s) after the ${what}`);
    throw new CoseError('malformed', `${what}: ${e instanceof CborError ? e.message : 'invalid CBOR'}`);
  }
}

// ---------------------------------------------------------------- headers

function isLabel(k: unknown): k is number | string {
  return typeof k === 'string' || (typeof k === 'number' && Number.isSafeInteger(k));
}

function checkHeaderMap(m: unknown, where: string): HeaderMap {
  if (!(m instanceof Map)) throw new CoseError('malformed', `${where} header is not a map`);
  for (const k of m.keys()) if (!isLabel(k)) throw new CoseError('malformed', `${where} header has a label that is neither int nor text`);
  return m as HeaderMap;
}

function decodeProtected(bytes: Uint8Array, where: string): HeaderMap {
  if (bytes.length === 0) return new Map();
  let m: unknown;
  try {
    m = decodeStrict(bytes, `${where} protected header`);
  } catch (e) {
    // trailing bytes inside the protected bstr make the message malformed, not "trailing"
    if (e instanceof CoseError) throw new CoseError('malformed', e.message);
    throw e;
  }
  return checkHeaderMap(m, `${where} protected`);
}

function checkBuckets(prot: HeaderMap, unprot: HeaderMap, where: string): void {
  for (const k of unprot.keys()) {
    if (prot.has(k)) throw new CoseError('malformed', `${where}: label ${String(k)} appears in both header buckets`);
  }
  const kidP = prot.get(HDR.kid);
  const kidU = unprot.get(HDR.kid);
  if ((kidP !== undefined && !(kidP instanceof Uint8Array)) || (kidU !== undefined && !(kidU instanceof Uint8Array))) {
    throw new CoseError('malformed', `${where}: kid must be a byte string`);
  }
}

function checkCrit(prot: HeaderMap, unprot: HeaderMap, extra: ReadonlyArray<number | string> | undefined, where: string): void {
  if (unprot.has(HDR.crit)) throw new CoseError('crit', `${where}: crit (2) must be in the protected header`);
  if (!prot.has(HDR.crit)) return;
  const crit = prot.get(HDR.crit);
  if (!Array.isArray(crit) || crit.length === 0) throw new CoseError('crit', `${where}: crit must be a non-empty array of labels`);
  for (const l of crit) {
    if (!isLabel(l)) throw new CoseError('crit', `${where}: crit entry is not a label`);
    if (!prot.has(l)) throw new CoseError('crit', `${where}: critical label ${String(l)} is not in the protected header`);
    if (!UNDERSTOOD_CRIT.has(l) && !(extra && extra.includes(l))) {
      throw new CoseError('crit', `${where}: critical header ${String(l)} is not understood`);
    }
  }
}

/** The algorithm, taken from the protected bucket only. */
function protectedAlg(prot: HeaderMap, unprot: HeaderMap, where: string): number {
  if (!prot.has(HDR.alg)) {
    if (unprot.has(HDR.alg)) {
      throw new CoseError('unsupported-alg', `${where}: alg (1) is only in the unprotected header; it must be protected`);
    }
    throw new CoseError('unsupported-alg', `${where}: no alg (1) in the protected header`);
  }
  const alg = prot.get(HDR.alg);
  if (alg !== ALG.EdDSA && alg !== ALG.Ed25519 && alg !== ALG.ES256) {
    throw new CoseError('unsupported-alg', `${where}: unsupported algorithm ${typeof alg === 'string' ? JSON.stringify(alg) : String(alg)}`);
  }
  return alg;
}

function kidOf(prot: HeaderMap, unprot: HeaderMap): Uint8Array | undefined {
  return (prot.get(HDR.kid) ?? unprot.get(HDR.kid)) as Uint8Array | undefined;
}

// ---------------------------------------------------------------- Sig_structure

function headLen(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

function writeHead(out: Uint8Array, pos: number, mt: number, n: number): number {
  const m = mt << 5;
  if (n < 24) out[pos++] = m | n;
  else if (n < 0x100) {
    out[pos++] = m | 24;
    out[pos++] = n;
  } else if (n < 0x10000) {
    out[pos++] = m | 25;
    out[pos++] = n >> 8;
    out[pos++] = n & 0xff;
  } else if (n < 0x100000000) {
    out[pos++] = m | 26;
    out[pos++] = (n >>> 24) & 0xff;
    out[pos++] = (n >>> 16) & 0xff;
    out[pos++] = (n >>> 8) & 0xff;
    out[pos++] = n & 0xff;
  } else {
    out[pos++] = m | 27;
    let v = n;
    for (let i = 7; i >= 0; i--) {
      out[pos + i] = v % 256;
      v = Math.floor(v / 256);
    }
    pos += 8;
  }
  return pos;
}

const textEnc = new TextEncoder();
const CTX = {
  Signature1: textEnc.encode('Signature1'),
  Signature: textEnc.encode('Signature'),
  CounterSignature: textEnc.encode('CounterSignature'),
  CounterSignature0: textEnc.encode('CounterSignature0'),
};
const EMPTY = new Uint8Array(0);

/**
 * Sig_structure (RFC 9052 section 4.4), deterministic CBOR:
 * [context, body_protected, (sign_protected,) external_aad, payload].
 * `signProtected` is included for 'Signature' / 'CounterSignature' contexts.
 */
export function sigStructure(
  context: 'Signature1' | 'Signature' | 'CounterSignature' | 'CounterSignature0',
  bodyProtected: Uint8Array,
  signProtected: Uint8Array | null,
  externalAad: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  const ctx = CTX[context];
  const fields = signProtected ? [ctx, bodyProtected, signProtected, externalAad, payload] : [ctx, bodyProtected, externalAad, payload];
  let len = 1;
  for (const f of fields) len += headLen(f.length) + f.length;
  const out = new Uint8Array(len);
  out[0] = 0x80 | fields.length;
  let pos = 1;
  fields.forEach((f, i) => {
    pos = writeHead(out, pos, i === 0 ? 3 : 2, f.length);
    out.set(f, pos);
    pos += f.length;
  });
  return out;
}

// ---------------------------------------------------------------- decode

/**
 * The protected bytes that enter the Sig_structure: exactly as received, except that a
 * protected bucket holding an empty map (h'A0') counts as "no protected header parameters":
 * RFC 9052 section 3 makes the zero-length bstr the form used in the structures for
 * cryptographic computation (cose-wg sign-pass-01 checks this).
 */
function signedProtected(bytes: Uint8Array, map: HeaderMap): Uint8Array {
  return map.size === 0 ? EMPTY : bytes;
}

function checkInput(bytes: unknown, maxBytes: number | undefined): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new CoseError('malformed', 'COSE message must be a byte array');
  const max = typeof maxBytes === 'number' && maxBytes >= 0 ? maxBytes : DEFAULT_MAX_BYTES;
  if (bytes.length > max) throw new CoseError('too-large', `COSE message is ${bytes.length} bytes; the limit is ${max}`);
  if (bytes.length === 0) throw new CoseError('malformed', 'empty COSE message');
}

function untag(v: unknown, expected: number, name: string): { body: unknown; tagged: boolean } {
  if (v instanceof Tag) {
    if (v.tag !== expected) throw new CoseError('malformed', `CBOR tag ${v.tag} is not the ${name} tag ${expected}`);
    return { body: v.value, tagged: true };
  }
  return { body: v, tagged: false };
}

/**
 * The first steps of decoding a COSE_Sign1 or a COSE_Sign: size, one strict CBOR item,
 * the tag if any, an array of 4 whose protected header is a bstr and payload a bstr or nil.
 * The fourth item (signature or signatures) is the caller's to check.
 */
function signedParts(bytes: Uint8Array, maxBytes: number | undefined, tag: number, name: string) {
  checkInput(bytes, maxBytes);
  const { body, tagged } = untag(decodeStrict(bytes, name), tag, name);
  if (!Array.isArray(body) || body.length !== 4) throw new CoseError('malformed', `${name} must be an array of 4 items`);
  const [pb, u, payload, last] = body as unknown[];
  if (!(pb instanceof Uint8Array)) throw new CoseError('malformed', 'protected header must be a byte string');
  if (!(payload === null || payload instanceof Uint8Array)) throw new CoseError('malformed', 'payload must be a byte string or nil');
  return { pb, u, payload, last, tagged };
}

/** Both header buckets of a message or signature, each checked and checked against the other. */
function headerBuckets(pb: Uint8Array, u: unknown, where: string): { protected: HeaderMap; unprotected: HeaderMap } {
  const prot = decodeProtected(pb, where);
  const unprot = checkHeaderMap(u, `${where} unprotected`);
  checkBuckets(prot, unprot, where);
  return { protected: prot, unprotected: unprot };
}

/** Decode (not verify) a COSE_Sign1, tagged (18) or untagged. Throws CoseError. */
export function decodeSign1(bytes: Uint8Array, opts?: { maxBytes?: number }): Sign1 {
  const { pb, u, payload, last: signature, tagged } = signedParts(bytes, opts?.maxBytes, TAG_SIGN1, 'COSE_Sign1');
  if (!(signature instanceof Uint8Array)) throw new CoseError('malformed', 'signature must be a byte string');
  return { protectedBytes: pb, ...headerBuckets(pb, u, 'COSE_Sign1'), payload, signature, tagged };
}

export interface CoseSignature {
  protectedBytes: Uint8Array;
  protected: HeaderMap;
  unprotected: HeaderMap;
  signature: Uint8Array;
}
export interface CoseSign {
  protectedBytes: Uint8Array;
  protected: HeaderMap;
  unprotected: HeaderMap;
  payload: Uint8Array | null;
  signatures: CoseSignature[];
  tagged: boolean;
}

/** Decode (not verify) a COSE_Sign (multi-signer), tagged (98) or untagged. Throws CoseError. */
export function decodeSign(bytes: Uint8Array, opts?: { maxBytes?: number }): CoseSign {
  const { pb, u, payload, last: sigs, tagged } = signedParts(bytes, opts?.maxBytes, TAG_SIGN, 'COSE_Sign');
  if (!Array.isArray(sigs) || sigs.length === 0) throw new CoseError('malformed', 'COSE_Sign needs a non-empty array of COSE_Signature');
  const buckets = headerBuckets(pb, u, 'COSE_Sign');
  const signatures = sigs.map((s, i): CoseSignature => {
    const where = `COSE_Signature ${i}`;
    if (!Array.isArray(s) || s.length !== 3) throw new CoseError('malformed', `${where} must be an array of 3 items`);
    const [spb, su, sig] = s;
    if (!(spb instanceof Uint8Array)) throw new CoseError('malformed', `${where}: protected header must be a byte string`);
    if (!(sig instanceof Uint8Array)) throw new CoseError('malformed', `${where}: signature must be a byte string`);
    return { protectedBytes: spb, ...headerBuckets(spb, su, where), signature: sig };
  });
  return { protectedBytes: pb, ...buckets, payload, signatures, tagged };
}

// ---------------------------------------------------------------- verify

function keyFitsAlg(k: CoseKey, alg: number): boolean {
  if (alg === ALG.ES256) return k.kty === 'EC2' && k.crv === 'P-256';
  return k.kty === 'OKP' && k.crv === 'Ed25519';
}

async function verifyRaw(alg: number, key: CoseKey, tbs: Uint8Array, sig: Uint8Array): Promise<boolean> {
  try {
    if (alg === ALG.ES256) {
      if (key.kty !== 'EC2' || sig.length !== 64 || key.x.length !== 32 || key.y.length !== 32) return false;
      const pub = new Uint8Array(65);
      pub[0] = 4;
      pub.set(key.x, 1);
      pub.set(key.y, 33);
      // COSE (RFC 9053 section 2.1) does not forbid high-S; WebCrypto/OpenSSL signers emit it.
      return p256.verify(sig, tbs, pub, { prehash: true, lowS: false, format: 'compact' }) === true;
    }
    if (key.kty !== 'OKP') return false;
    return await ed25519Verify(sig, tbs, key.x);
  } catch {
    return false;
  }
}

function keyList(keys: CoseKey | CoseKey[]): CoseKey[] {
  if (Array.isArray(keys)) return keys;
  return keys ? [keys] : [];
}

/** Pick candidate keys: by kid when the message names one, else every key; then by algorithm. */
function candidates(keys: CoseKey[], kid: Uint8Array | undefined, alg: number, where: string): number[] {
  if (keys.length === 0) throw new CoseError('no-key', `${where}: no verification key supplied`);
  let idx = keys.map((_, i) => i);
  if (kid) {
    idx = idx.filter((i) => !keys[i]?.kid || equalBytes(keys[i].kid as Uint8Array, kid));
    if (idx.length === 0) throw new CoseError('no-key', `${where}: no key with kid ${toHex(kid)}`);
  }
  idx = idx.filter((i) => keys[i] && keyFitsAlg(keys[i], alg));
  if (idx.length === 0) throw new CoseError('key-mismatch', `${where}: no candidate key is usable with algorithm ${alg}`);
  return idx;
}

function failure(e: unknown): { ok: false; code: CoseFailure; reason: string } {
  if (e instanceof CoseError) return { ok: false, code: e.code, reason: e.message };
  return { ok: false, code: 'malformed', reason: `unexpected error: ${e instanceof Error ? e.message : String(e)}` };
}

function resolvePayload(payload: Uint8Array | null, opts: CoseVerifyOptions | undefined): Uint8Array {
  const detached = opts?.detachedPayload;
  if (payload === null) {
    if (!(detached instanceof Uint8Array)) throw new CoseError('malformed', 'payload is detached (nil) and no detached payload was supplied');
    return detached;
  }
  if (detached !== undefined) throw new CoseError('malformed', 'a detached payload was supplied but the message carries its payload');
  return payload;
}

function aadOf(opts: CoseVerifyOptions | undefined): Uint8Array {
  const aad = opts?.externalAad;
  if (aad === undefined) return EMPTY;
  if (!(aad instanceof Uint8Array)) throw new CoseError('malformed', 'external AAD must be a byte array');
  return aad;
}

/** Verify a COSE_Sign1 against one or more candidate keys. Never throws. */
export async function verifySign1(bytes: Uint8Array, keys: CoseKey | CoseKey[], opts?: CoseVerifyOptions): Promise<CoseVerdict> {
  try {
    const msg = decodeSign1(bytes, opts);
    checkCrit(msg.protected, msg.unprotected, opts?.criticalLabels, 'COSE_Sign1');
    const alg = protectedAlg(msg.protected, msg.unprotected, 'COSE_Sign1');
    const payload = resolvePayload(msg.payload, opts);
    const kid = kidOf(msg.protected, msg.unprotected);
    const list = keyList(keys);
    const idx = candidates(list, kid, alg, 'COSE_Sign1');
    if (msg.signature.length !== 64) {
      return { ok: false, code: 'bad-signature', reason: `signature must be 64 bytes for algorithm ${alg}, got ${msg.signature.length}` };
    }
    const tbs = sigStructure('Signature1', signedProtected(msg.protectedBytes, msg.protected), null, aadOf(opts), payload);
    for (const i of idx) {
      if (await verifyRaw(alg, list[i], tbs, msg.signature)) {
        return kid ? { ok: true, alg, kid, payload, message: msg, keyIndex: i } : { ok: true, alg, payload, message: msg, keyIndex: i };
      }
    }
    return { ok: false, code: 'bad-signature', reason: `signature does not verify under ${idx.length === 1 ? 'the candidate key' : `any of ${idx.length} candidate keys`}` };
  } catch (e) {
    return failure(e);
  }
}

export type CoseSignerVerdict =
  | { index: number; ok: true; alg: number; kid?: Uint8Array; keyIndex: number }
  | { index: number; ok: false; code: CoseFailure; reason: string; kid?: Uint8Array };

/** `ok` only if the structure is valid and every signer verifies; `signers` has each signer's verdict. */
export type CoseSignVerdict =
  | { ok: true; payload: Uint8Array; message: CoseSign; signers: CoseSignerVerdict[] }
  | { ok: false; code: CoseFailure; reason: string; signers: CoseSignerVerdict[] };

/**
 * Verify a COSE_Sign (multi-signer, tag 98). External AAD applies to every signer unless
 * `externalAadFor` gives one per signer index. Never throws.
 */
export async function verifySign(
  bytes: Uint8Array,
  keys: CoseKey | CoseKey[],
  opts?: CoseVerifyOptions & { externalAadFor?: (signerIndex: number) => Uint8Array | undefined },
): Promise<CoseSignVerdict> {
  let msg: CoseSign;
  let payload: Uint8Array;
  try {
    msg = decodeSign(bytes, opts);
    checkCrit(msg.protected, msg.unprotected, opts?.criticalLabels, 'COSE_Sign');
    if (msg.protected.has(HDR.alg) || msg.unprotected.has(HDR.alg)) {
      // RFC 9052 puts alg in each COSE_Signature; a body alg is ambiguous.
      throw new CoseError('malformed', 'COSE_Sign: alg belongs in each signer, not in the body headers');
    }
    payload = resolvePayload(msg.payload, opts);
  } catch (e) {
    return { ...failure(e), signers: [] };
  }
  const list = keyList(keys);
  const signers: CoseSignerVerdict[] = [];
  for (let s = 0; s < msg.signatures.length; s++) {
    const sg = msg.signatures[s];
    const kid = kidOf(sg.protected, sg.unprotected);
    try {
      const where = `COSE_Signature ${s}`;
      checkCrit(sg.protected, sg.unprotected, opts?.criticalLabels, where);
      const alg = protectedAlg(sg.protected, sg.unprotected, where);
      const idx = candidates(list, kid, alg, where);
      if (sg.signature.length !== 64) throw new CoseError('bad-signature', `${where}: signature must be 64 bytes, got ${sg.signature.length}`);
      const aad = opts?.externalAadFor ? (opts.externalAadFor(s) ?? EMPTY) : aadOf(opts);
      const tbs = sigStructure(
        'Signature',
        signedProtected(msg.protectedBytes, msg.protected),
        signedProtected(sg.protectedBytes, sg.protected),
        aad,
        payload,
      );
      let hit = -1;
      for (const i of idx) {
        if (await verifyRaw(alg, list[i], tbs, sg.signature)) {
          hit = i;
          break;
        }
      }
      if (hit < 0) throw new CoseError('bad-signature', `${where}: signature does not verify`);
      signers.push(kid ? { index: s, ok: true, alg, kid, keyIndex: hit } : { index: s, ok: true, alg, keyIndex: hit });
    } catch (e) {
      const f = failure(e);
      signers.push(kid ? { index: s, ok: false, code: f.code, reason: f.reason, kid } : { index: s, ok: false, code: f.code, reason: f.reason });
    }
  }
  const bad = signers.find((v) => !v.ok);
  if (bad && !bad.ok) return { ok: false, code: bad.code, reason: bad.reason, signers };
  return { ok: true, payload, message: msg, signers };
}

// ---------------------------------------------------------------- sign

export interface SignSign1Options {
  payload: Uint8Array;
  /** 32-byte Ed25519 seed (or `sign`, for a key held elsewhere: an HSM, a key file). */
  privateKey?: Uint8Array;
  /** Signs the Sig_structure with a key this process never sees (Ed25519, 64-byte signature). */
  sign?: (toBeSigned: Uint8Array) => Promise<Uint8Array>;
  alg?: -8 | -19;
  /** Placed in the protected header (bound to the signature). */
  kid?: Uint8Array;
  protectedExtra?: Map<number | string, unknown>;
  unprotected?: Map<number | string, unknown>;
  externalAad?: Uint8Array;
  /** Default true (tag 18). */
  tagged?: boolean;
  /** Emit nil as payload; the verifier supplies it as `detachedPayload`. */
  detached?: boolean;
}

/** Produce a deterministic-CBOR COSE_Sign1 signed with Ed25519. Throws CoseError / KeyFormatError. */
export async function signSign1(opts: SignSign1Options): Promise<Uint8Array> {
  const alg = opts.alg ?? ALG.EdDSA;
  if (alg !== ALG.EdDSA && alg !== ALG.Ed25519) throw new CoseError('unsupported-alg', `cannot sign with algorithm ${String(alg)}`);
  if (!(opts.payload instanceof Uint8Array)) throw new CoseError('malformed', 'payload must be a byte array');
  const prot: HeaderMap = new Map([[HDR.alg, alg]]);
  if (opts.kid !== undefined) {
    if (!(opts.kid instanceof Uint8Array)) throw new CoseError('malformed', 'kid must be a byte array');
    prot.set(HDR.kid, opts.kid);
  }
  for (const [k, v] of opts.protectedExtra ?? []) {
    if (!isLabel(k)) throw new CoseError('malformed', 'header labels must be int or text');
    if (prot.has(k)) throw new CoseError('malformed', `protected label ${String(k)} is set by signSign1 (alg/kid)`);
    prot.set(k, v);
  }
  const unprot: HeaderMap = new Map();
  for (const [k, v] of opts.unprotected ?? []) {
    if (!isLabel(k)) throw new CoseError('malformed', 'header labels must be int or text');
    if (prot.has(k)) throw new CoseError('malformed', `label ${String(k)} cannot be in both header buckets`);
    if (k === HDR.alg || k === HDR.crit) throw new CoseError('malformed', `label ${k} must be protected`);
    unprot.set(k, v);
  }
  // our own crit must pass our own verifier
  checkCrit(prot, unprot, [...prot.keys()].filter((k) => k !== HDR.crit), 'signSign1');
  let protectedBytes: Uint8Array;
  try {
    protectedBytes = encodeDeterministic(prot);
  } catch (e) {
    throw new CoseError('malformed', `protected header: ${(e as Error).message}`);
  }
  const aad = opts.externalAad ?? EMPTY;
  const tbs = sigStructure('Signature1', protectedBytes, null, aad, opts.payload);
  if (!opts.sign && !opts.privateKey) throw new CoseError('malformed', 'signSign1 needs a private key or a signer');
  const signature = opts.sign ? await opts.sign(tbs) : await ed25519Sign(tbs, opts.privateKey!);
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new CoseError('malformed', 'the signer did not return a 64-byte Ed25519 signature');
  const body = [protectedBytes, unprot, opts.detached ? null : opts.payload, signature];
  try {
    return encodeDeterministic(opts.tagged === false ? body : new Tag(body, TAG_SIGN1));
  } catch (e) {
    throw new CoseError('malformed', `unprotected header: ${(e as Error).message}`);
  }
}


/**
 * COSE_Mac0 (RFC 9052 section 6.2, CBOR tag 17) with HMAC (RFC 9053 section 3.1):
 * alg 5 = HMAC 256/256 (HMAC-SHA-256, full 32-byte tag), 6 = HMAC 384/384,
 * 7 = HMAC 512/512. The truncated HMAC 256/64 (alg 4) is not accepted.
 * PSA tokens (RFC 9783) use COSE_Mac0 for symmetric initial attestation keys.
 *
 *   COSE_Mac0 = [ protected: bstr, unprotected: {}, payload: bstr / nil, tag: bstr ]
 *   MAC_structure = [ "MAC0", protected: bstr, external_aad: bstr, payload: bstr ]
 *   tag = HMAC(key, encode(MAC_structure))
 *
 * Rules enforced here (same spirit as cose.ts for COSE_Sign1):
 *  - exactly one CBOR item, tag 17 or untagged (opts.requireTag makes the tag
 *    mandatory), at most `maxBytes`;
 *  - protected is a bstr holding a map (or empty), alg MUST be in the protected
 *    bucket; a label may not appear in both buckets;
 *  - crit (label 2) must be a non-empty array of labels this code understands
 *    (1 alg, 3 content type, 4 kid), otherwise 'crit';
 *  - the tag is compared in constant time over its full length;
 *  - an HMAC key shorter than half the hash output (RFC 2104) is refused.
 * verifyMac0 never throws: every failure is a typed verdict.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { CborError, Tag, decodeCbor, encodeCbor } from '../base/cbor.ts';
import type { CoseFailure } from './cose.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalBytes } from '../base/bytes.ts';

export const COSE_MAC0_TAG = 17;
export const DEFAULT_MAX_BYTES = 64 * 1024;

/** COSE algorithm id -> hash, tag length, minimum key length. */
const HMAC_ALGS = {
  5: { name: 'HMAC 256/256', hash: sha256, tagLen: 32, minKey: 16 },
  6: { name: 'HMAC 384/384', hash: sha384, tagLen: 48, minKey: 24 },
  7: { name: 'HMAC 512/512', hash: sha512, tagLen: 64, minKey: 32 },
} as const;
export type HmacAlg = keyof typeof HMAC_ALGS;

const UNDERSTOOD_CRIT = new Set<unknown>([1, 3, 4]);

export interface Mac0 {
  protectedBytes: Uint8Array;
  protected: Map<number | string, unknown>;
  unprotected: Map<number | string, unknown>;
  payload: Uint8Array | null;
  tag: Uint8Array;
  tagged: boolean;
}

export class Mac0Error extends FieldbenchError<CoseFailure> {
  constructor(code: CoseFailure, message: string) {
    super(code, message);
    this.name = 'Mac0Error';
  }
}

export type Mac0Verdict =
  | { ok: true; alg: HmacAlg; kid?: Uint8Array; payload: Uint8Array; message: Mac0 }
  | { ok: false; code: CoseFailure; reason: string };

function isHeaderMap(v: unknown): v is Map<number | string, unknown> {
  if (!(v instanceof Map)) return false;
  for (const k of v.keys()) if (typeof k !== 'string' && !(typeof k === 'number' && Number.isInteger(k))) return false;
  return true;
}

/** Parse a COSE_Mac0 without checking the tag. Throws Mac0Error. */
export function decodeMac0(bytes: Uint8Array, opts: { maxBytes?: number; requireTag?: boolean } = {}): Mac0 {
  const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new Mac0Error('malformed', 'empty input is not a COSE_Mac0');
  if (bytes.length > max) throw new Mac0Error('too-large', `COSE_Mac0 is ${bytes.length} bytes, more than the ${max}-byte limit`);
  let item: unknown;
  try {
    item = decodeCbor(bytes);
  } catch (e) {
    const msg = (e as Error).message;
    if (e instanceof CborError && /trailing/.test(msg)) throw new Mac0Error('trailing-bytes', 'bytes follow the COSE_Mac0 item');
    throw new Mac0Error('malformed', `not valid CBOR: ${msg}`);
  }
  let tagged = false;
  if (item instanceof Tag) {
    if (item.tag !== COSE_MAC0_TAG) throw new Mac0Error('malformed', `CBOR tag ${item.tag} is not COSE_Mac0 (17)`);
    tagged = true;
    item = item.value;
  } else if (opts.requireTag) {
    throw new Mac0Error('malformed', 'COSE_Mac0 must carry CBOR tag 17');
  }
  if (!Array.isArray(item) || item.length !== 4) throw new Mac0Error('malformed', 'COSE_Mac0 must be an array of 4 items');
  const [protectedBytes, unprotected, payload, tag] = item as unknown[];
  if (!(protectedBytes instanceof Uint8Array)) throw new Mac0Error('malformed', 'protected header must be a byte string');
  if (!isHeaderMap(unprotected)) throw new Mac0Error('malformed', 'unprotected header must be a map with integer or text labels');
  if (payload !== null && !(payload instanceof Uint8Array)) throw new Mac0Error('malformed', 'payload must be a byte string or nil');
  if (!(tag instanceof Uint8Array)) throw new Mac0Error('malformed', 'MAC tag must be a byte string');
  let prot: Map<number | string, unknown>;
  if (protectedBytes.length === 0) prot = new Map();
  else {
    let p: unknown;
    try {
      p = decodeCbor(protectedBytes);
    } catch (e) {
      throw new Mac0Error('malformed', `protected header is not valid CBOR: ${(e as Error).message}`);
    }
    if (!isHeaderMap(p)) throw new Mac0Error('malformed', 'protected header must encode a map with integer or text labels');
    prot = p;
  }
  for (const k of prot.keys()) {
    if (unprotected.has(k)) throw new Mac0Error('malformed', `header label ${String(k)} appears in both buckets`);
  }
  return { protectedBytes, protected: prot, unprotected, payload, tag, tagged };
}

/** encode(["MAC0", protected, external_aad, payload]) */
export function mac0Structure(protectedBytes: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['MAC0', protectedBytes, externalAad, payload]);
}

function algOf(m: Mac0): HmacAlg {
  if (m.unprotected.has(1)) throw new Mac0Error('unsupported-alg', 'alg must be in the protected header');
  const alg = m.protected.get(1);
  if (alg === undefined) throw new Mac0Error('unsupported-alg', 'protected header has no alg');
  if (alg !== 5 && alg !== 6 && alg !== 7) {
    throw new Mac0Error('unsupported-alg', `alg ${String(alg)} is not HMAC 256/256 (5), 384/384 (6) or 512/512 (7)`);
  }
  return alg;
}

function checkCrit(m: Mac0): void {
  if (m.unprotected.has(2)) throw new Mac0Error('crit', 'crit must be in the protected header');
  if (!m.protected.has(2)) return;
  const crit = m.protected.get(2);
  if (!Array.isArray(crit) || crit.length === 0) throw new Mac0Error('crit', 'crit must be a non-empty array of labels');
  for (const label of crit) {
    if (!UNDERSTOOD_CRIT.has(label)) throw new Mac0Error('crit', `critical header ${String(label)} is not understood`);
    if (!m.protected.has(label as number)) throw new Mac0Error('crit', `critical header ${String(label)} is not in the protected header`);
  }
}

/** Verify a COSE_Mac0 with a raw HMAC key. Never throws. */
export async function verifyMac0(
  bytes: Uint8Array,
  key: Uint8Array,
  opts: { externalAad?: Uint8Array; detachedPayload?: Uint8Array; maxBytes?: number; requireTag?: boolean } = {},
): Promise<Mac0Verdict> {
  try {
    const m = decodeMac0(bytes, opts);
    checkCrit(m);
    const alg = algOf(m);
    const spec = HMAC_ALGS[alg];
    if (!(key instanceof Uint8Array) || key.length === 0) return { ok: false, code: 'no-key', reason: 'no HMAC key given' };
    if (key.length < spec.minKey) {
      return { ok: false, code: 'no-key', reason: `HMAC key of ${key.length} bytes is shorter than the ${spec.minKey} bytes ${spec.name} needs` };
    }
    let payload: Uint8Array;
    if (m.payload === null) {
      if (!opts.detachedPayload) return { ok: false, code: 'malformed', reason: 'payload is detached and none was given' };
      payload = opts.detachedPayload;
    } else {
      if (opts.detachedPayload) return { ok: false, code: 'malformed', reason: 'a detached payload was given but the message carries one' };
      payload = m.payload;
    }
    if (m.tag.length !== spec.tagLen) {
      return { ok: false, code: 'bad-signature', reason: `MAC tag is ${m.tag.length} bytes, ${spec.name} needs ${spec.tagLen}` };
    }
    const expected = hmac(spec.hash, key, mac0Structure(m.protectedBytes, opts.externalAad ?? new Uint8Array(0), payload));
    if (!equalBytes(expected, m.tag)) return { ok: false, code: 'bad-signature', reason: 'MAC tag does not match (wrong key or altered token)' };
    const kid = m.protected.get(4) ?? m.unprotected.get(4);
    return { ok: true, alg, kid: kid instanceof Uint8Array ? kid : undefined, payload, message: m };
  } catch (e) {
    if (e instanceof Mac0Error) return { ok: false, code: e.code, reason: e.message };
    return { ok: false, code: 'malformed', reason: `cannot verify COSE_Mac0: ${(e as Error)?.message ?? String(e)}` };
  }
}

/**
 * Produce a COSE_Mac0 (tagged by default). Used by tests and by tools that
 * make PSA-style MAC tokens; fieldbench devices sign with Ed25519 instead.
 */
export function createMac0(opts: {
  payload: Uint8Array;
  key: Uint8Array;
  alg?: HmacAlg;
  kid?: Uint8Array;
  unprotected?: Map<number | string, unknown>;
  externalAad?: Uint8Array;
  tagged?: boolean;
}): Uint8Array {
  const alg = opts.alg ?? 5;
  const spec = HMAC_ALGS[alg];
  if (!spec) throw new Mac0Error('unsupported-alg', `alg ${String(alg)} is not an HMAC algorithm`);
  if (opts.key.length < spec.minKey) throw new Mac0Error('no-key', `HMAC key must be at least ${spec.minKey} bytes`);
  const prot = new Map<number, unknown>([[1, alg]]);
  if (opts.kid) prot.set(4, opts.kid);
  const protectedBytes = encodeCbor(prot);
  const tag = hmac(spec.hash, opts.key, mac0Structure(protectedBytes, opts.externalAad ?? new Uint8Array(0), opts.payload));
  const arr = [protectedBytes, opts.unprotected ?? new Map(), opts.payload, tag];
  return encodeCbor(opts.tagged === false ? arr : new Tag(arr, COSE_MAC0_TAG));
}

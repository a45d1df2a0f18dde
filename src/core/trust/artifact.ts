/**
 * The envelope every fieldbench trust artifact shares, and the schema reader
 * the artifact modules use.
 *
 * Envelope: a tagged COSE_Sign1 (RFC 9052), alg EdDSA (-8) over Ed25519,
 * protected header {1: alg, 3: content type, 4: kid (as cose.ts places it)}.
 * The content type (header 3, a text string in the protected bucket) names
 * the artifact type, so a credential can never be accepted as a configuration:
 * the verifier of type X rejects any other label with code 'wrong-type' before
 * it looks at the payload.
 *
 * Payload: a deterministically encoded CBOR map with small integer keys, decoded
 * strictly (decodeStrict: duplicate keys, floats, indefinite lengths and any
 * non-deterministic encoding are refused as 'schema', so a payload has one reading)
 * (docs/FORMATS.md has the CDDL). Key rules, the same for every artifact:
 *  - known keys must have the documented type and size;
 *  - an unknown NEGATIVE integer key is a critical extension this verifier does
 *    not understand: rejected ('schema');
 *  - an unknown non-negative integer key is a non-critical extension: ignored;
 *  - any non-integer key is rejected ('schema').
 *
 * Times in payloads are integer seconds since the Unix epoch. Verifier
 * contexts take `now` as a Date or a number of MILLISECONDS (Date.now()).
 */
import { decodeStrict, encodeDeterministic } from '../base/cbor.ts';
import { CoseError, decodeSign1, signSign1, verifySign1, type CoseKey, type CoseFailure } from './cose.ts';
import { ed25519PublicKey } from './ed25519.ts';
import { keyId } from './keys.ts';
import type { Signer } from './signer.ts';
import { TrustArtifactError, type TrustFailure, type TrustResult } from './result.ts';
import { FieldbenchError } from '../base/errors.ts';
import { containsBytes, equalBytes, fromLooseHex, toHex } from '../base/bytes.ts';

export type ArtifactType = 'identity' | 'credential' | 'config' | 'bundle' | 'reprovision' | 'profile' | 'campaign';
export type Role = 'manufacturer' | 'firmware' | 'owner';
export type Anchors = Record<Role, CoseKey[]>;

export const CONTENT_TYPES: Record<ArtifactType, string> = {
  identity: 'application/vnd.fieldbench.identity+cbor',
  credential: 'application/vnd.fieldbench.credential+cbor',
  config: 'application/vnd.fieldbench.config+cbor',
  bundle: 'application/vnd.fieldbench.bundle+cbor',
  reprovision: 'application/vnd.fieldbench.reprovision+cbor',
  profile: 'application/vnd.fieldbench.station-profile+cbor',
  campaign: 'application/vnd.fieldbench.campaign+cbor',
};

export const ARTIFACT_NAMES: Record<ArtifactType, string> = {
  identity: 'device identity certificate',
  credential: 'technician credential',
  config: 'signed configuration',
  bundle: 'trust bundle',
  reprovision: 're-provisioning authorization',
  profile: 'station profile',
  campaign: 'campaign',
};

/** Upper bound on the whole encoded artifact. */
export const MAX_BYTES: Record<ArtifactType, number> = {
  identity: 2048,
  credential: 8192,
  config: 65536,
  bundle: 262144,
  reprovision: 1024,
  profile: 131072,
  campaign: 65536,
};

/** Which anchor role signs which artifact. */
export const SIGNING_ROLE: Record<ArtifactType, Role> = {
  identity: 'manufacturer',
  credential: 'owner',
  config: 'owner',
  bundle: 'owner',
  reprovision: 'owner',
  profile: 'owner',
  campaign: 'owner',
};

export type Clock = Date | number | undefined;

/** Seconds since the epoch for a verifier context's `now` (Date or ms). */
export function nowSeconds(now: Clock): number {
  const ms = now === undefined ? Date.now() : typeof now === 'number' ? now : now.getTime();
  return Math.floor(ms / 1000);
}

/** Allowed clock skew (seconds) when checking notBefore / issued. */
export const DEFAULT_SKEW = 300;

const ROLE_NAMES: Record<Role, string> = { manufacturer: 'manufacturer', firmware: 'firmware signing', owner: 'owner' };

export function rawPublicKey(k: CoseKey): Uint8Array {
  if (k.kty === 'OKP') return k.x;
  const out = new Uint8Array(65);
  out[0] = 4;
  out.set(k.x, 1);
  out.set(k.y, 33);
  return out;
}

/** Key id of an anchor: first 8 bytes of SHA-256 over the raw public key (Ed25519: 32 bytes; P-256: SEC1 uncompressed). */
export function coseKeyId(k: CoseKey): Uint8Array {
  return keyId(rawPublicKey(k));
}

export function ed25519Key(pub: Uint8Array): CoseKey {
  return { kty: 'OKP', crv: 'Ed25519', x: pub };
}

/** Hex as people write it (see fromLooseHex); not hex is a schema failure. */
export function fromHex(s: string): Uint8Array {
  try {
    return fromLooseHex(s);
  } catch {
    throw new TrustArtifactError('schema', `not a hex string: ${s}`);
  }
}

/** Sign an artifact payload (a Map with integer keys) as a tagged COSE_Sign1. */
export async function signArtifact(type: ArtifactType, payload: Map<number, unknown>, signerSeed: Uint8Array | Signer): Promise<Uint8Array> {
  const external = !(signerSeed instanceof Uint8Array);
  if (!external && signerSeed.length !== 32) {
    throw new TrustArtifactError('schema', 'the signing key must be a 32-byte Ed25519 seed');
  }
  if (external && (!(signerSeed.publicKey instanceof Uint8Array) || signerSeed.publicKey.length !== 32)) {
    throw new TrustArtifactError('schema', `the ${signerSeed.kind} signer has no 32-byte Ed25519 public key`);
  }
  const pub = external ? signerSeed.publicKey : await ed25519PublicKey(signerSeed);
  const bytes = await signSign1({
    payload: encodeDeterministic(payload),
    ...(external ? { sign: (m: Uint8Array) => signerSeed.sign(m) } : { privateKey: signerSeed }),
    alg: -8,
    kid: keyId(pub),
    protectedExtra: new Map<number | string, unknown>([[3, CONTENT_TYPES[type]]]),
    tagged: true,
  });
  if (bytes.length > MAX_BYTES[type]) {
    throw new TrustArtifactError('too-large', `${ARTIFACT_NAMES[type]} is ${bytes.length} bytes, over the ${MAX_BYTES[type]}-byte limit`);
  }
  return bytes;
}

/** Key id of the key that signs with `signer` (an Ed25519 seed or a Signer): an artifact's issuer field. */
export async function signerKeyId(signer: Uint8Array | Signer): Promise<Uint8Array> {
  return keyId(signer instanceof Uint8Array ? await ed25519PublicKey(signer) : signer.publicKey);
}

/** The fields every issuer fills the same way: the validity window in seconds (from now by default) and its own key id. */
export async function issuedFields(
  input: { notBefore?: Date | number; notAfter: Date | number },
  signer: Uint8Array | Signer,
): Promise<Validity & { issuer: Uint8Array }> {
  return { notBefore: toSeconds(input.notBefore ?? new Date()), notAfter: toSeconds(input.notAfter), issuer: await signerKeyId(signer) };
}

/** Issue an artifact: check `payload` with the verifier's own parser (throws TrustArtifactError), then sign it. */
export async function issueArtifact(
  type: ArtifactType,
  payload: Map<number, unknown>,
  parse: (payload: Map<unknown, unknown>) => unknown,
  signer: Uint8Array | Signer,
): Promise<Uint8Array> {
  checkIssue(() => parse(payload), ARTIFACT_NAMES[type]);
  return signArtifact(type, payload, signer);
}

/** Which of our artifact types a byte string claims to be (by its protected content type), or undefined. */
export function artifactTypeOf(bytes: Uint8Array): ArtifactType | undefined {
  try {
    const m = decodeSign1(bytes, { maxBytes: MAX_BYTES.bundle });
    const ct = m.protected.get(3);
    for (const t of Object.keys(CONTENT_TYPES) as ArtifactType[]) if (CONTENT_TYPES[t] === ct) return t;
  } catch {
    /* not ours */
  }
  return undefined;
}

export interface Envelope {
  payload: Map<unknown, unknown>;
  signer: CoseKey;
  signerKid: Uint8Array;
}

const NOT_VERIFIED: ReadonlySet<CoseFailure> = new Set(['bad-signature', 'no-key', 'key-mismatch']);

function messageKid(m: { protected: Map<number | string, unknown>; unprotected: Map<number | string, unknown> }): Uint8Array | undefined {
  const k = m.protected.get(4) ?? m.unprotected.get(4);
  return k instanceof Uint8Array ? k : undefined;
}

/**
 * Check the envelope of an artifact of `type`: size, COSE structure, type
 * label, signature by a key of the right role, and that the signer is not
 * revoked. Returns the decoded payload map.
 */
export async function openEnvelope(
  bytes: Uint8Array,
  type: ArtifactType,
  anchors: Partial<Anchors>,
  revokedKeyIds?: readonly Uint8Array[],
): Promise<TrustResult<Envelope>> {
  const name = ARTIFACT_NAMES[type];
  if (!(bytes instanceof Uint8Array)) return { ok: false, code: 'malformed', reason: `${name}: input is not a byte string` };
  const max = MAX_BYTES[type];
  if (bytes.length > max) return { ok: false, code: 'too-large', reason: `${name} is ${bytes.length} bytes, over the ${max}-byte limit` };
  let msg;
  try {
    msg = decodeSign1(bytes, { maxBytes: max });
  } catch (e) {
    if (e instanceof CoseError) return { ok: false, code: e.code, reason: `${name}: ${e.message}` };
    return { ok: false, code: 'malformed', reason: `${name}: ${(e as Error).message}` };
  }
  if (!msg.tagged) return { ok: false, code: 'malformed', reason: `${name}: COSE_Sign1 tag 18 is missing` };
  const ct = msg.protected.get(3);
  if (ct !== CONTENT_TYPES[type]) {
    const other = (Object.keys(CONTENT_TYPES) as ArtifactType[]).find((t) => CONTENT_TYPES[t] === ct);
    const what = other ? article(ARTIFACT_NAMES[other]) : ct === undefined ? 'a COSE message without a content type' : `content type ${JSON.stringify(String(ct))}`;
    return { ok: false, code: 'wrong-type', reason: `expected ${article(name)}, but this is ${what}` };
  }
  const role = SIGNING_ROLE[type];
  const keys = anchors[role] ?? [];
  const verdict = keys.length > 0
    ? await verifySign1(bytes, keys, { maxBytes: max })
    : ({ ok: false, code: 'no-key', reason: 'no keys' } as const);
  if (!verdict.ok) {
    if (!NOT_VERIFIED.has(verdict.code)) return { ok: false, code: verdict.code, reason: `${name}: ${verdict.reason}` };
    for (const other of Object.keys(ROLE_NAMES) as Role[]) {
      if (other === role) continue;
      const otherKeys = anchors[other] ?? [];
      if (otherKeys.length === 0) continue;
      const v2 = await verifySign1(bytes, otherKeys, { maxBytes: max });
      if (v2.ok) {
        return { ok: false, code: 'wrong-role', reason: `${name} is signed by ${article(ROLE_NAMES[other])} key, but only ${ROLE_NAMES[role]} keys may sign it` };
      }
    }
    const kid = messageKid(msg);
    if (kid && !keys.some((k) => equalBytes(coseKeyId(k), kid) || (k.kid !== undefined && equalBytes(k.kid, kid)))) {
      if (containsBytes(revokedKeyIds, kid)) return { ok: false, code: 'revoked', reason: `${name} is signed by revoked key ${toHex(kid)}` };
      return { ok: false, code: 'wrong-issuer', reason: `${name} is signed by key ${toHex(kid)}, which is not a trusted ${ROLE_NAMES[role]} key` };
    }
    if (keys.length === 0) return { ok: false, code: 'wrong-issuer', reason: `no trusted ${ROLE_NAMES[role]} key is known to verify this ${name}` };
    return { ok: false, code: 'bad-signature', reason: `${name}: signature does not verify under the trusted ${ROLE_NAMES[role]} key(s)` };
  }
  const signer = keys[verdict.keyIndex];
  const signerKid = coseKeyId(signer);
  if (containsBytes(revokedKeyIds, signerKid)) {
    return { ok: false, code: 'revoked', reason: `${name} is signed by revoked ${ROLE_NAMES[role]} key ${toHex(signerKid)}` };
  }
  let payload: unknown;
  try {
    // Strict: one reading only (no duplicate keys, floats, indefinite lengths or other encodings).
    payload = decodeStrict(verdict.payload);
  } catch (e) {
    return { ok: false, code: 'schema', reason: `${name}: payload is not deterministically encoded CBOR (${(e as Error).message})` };
  }
  if (!(payload instanceof Map)) return { ok: false, code: 'schema', reason: `${name}: payload is not a CBOR map` };
  return { ok: true, value: { payload, signer, signerKid }, signer: rawPublicKey(signer) };
}

/**
 * The steps every artifact verifier starts with: the envelope (openEnvelope),
 * the payload parsed by `parse` (schema failures become 'schema'), and the
 * payload's issuer field naming the key that actually signed.
 */
export async function openArtifact<T extends { issuer: Uint8Array }>(
  bytes: Uint8Array,
  type: ArtifactType,
  anchors: Partial<Anchors>,
  revokedKeyIds: readonly Uint8Array[] | undefined,
  parse: (payload: Map<unknown, unknown>) => T,
): Promise<TrustResult<T> & ({ ok: false } | { ok: true; signerKid: Uint8Array })> {
  const name = ARTIFACT_NAMES[type];
  const env = await openEnvelope(bytes, type, anchors, revokedKeyIds);
  if (!env.ok) return env;
  const parsed = parsePayload(() => parse(env.value.payload), name);
  if (!parsed.ok) return parsed;
  if (!equalBytes(parsed.value.issuer, env.value.signerKid)) {
    return { ok: false, code: 'schema', reason: `${name}: issuer field ${toHex(parsed.value.issuer)} does not name the signing key ${toHex(env.value.signerKid)}` };
  }
  return { ok: true, value: parsed.value, signer: env.signer, signerKid: env.value.signerKid };
}

/** openArtifact against the anchors and revoked keys of a verified trust bundle. */
export function openBundleArtifact<T extends { issuer: Uint8Array }>(
  bytes: Uint8Array,
  type: ArtifactType,
  bundle: { anchors: Partial<Anchors>; revocations: { keyIds: readonly Uint8Array[] } },
  parse: (payload: Map<unknown, unknown>) => T,
): ReturnType<typeof openArtifact<T>> {
  return openArtifact(bytes, type, bundle.anchors, bundle.revocations.keyIds, parse);
}

/** openArtifact against the owner keys a device or station holds itself (no bundle, no revocations). */
export function openOwnerArtifact<T extends { issuer: Uint8Array }>(
  bytes: Uint8Array,
  type: ArtifactType,
  ownerKeys: readonly Uint8Array[],
  parse: (payload: Map<unknown, unknown>) => T,
): ReturnType<typeof openArtifact<T>> {
  return openArtifact(bytes, type, { owner: ownerKeys.map((k) => ed25519Key(k)) }, [], parse);
}

/** Raised inside schema parsing; turned into a 'schema' failure. */
export class SchemaError extends FieldbenchError<'schema'> {
  constructor(message: string) {
    super('schema', message);
    this.name = 'SchemaError';
  }
}

const MAX_UINT = Number.MAX_SAFE_INTEGER;

/** Typed reader over an integer-keyed payload map. */
export class Fields {
  constructor(
    readonly map: Map<unknown, unknown>,
    known: readonly number[],
    readonly where: string,
  ) {
    const k = new Set(known);
    for (const key of map.keys()) {
      if (typeof key !== 'number' || !Number.isInteger(key)) throw new SchemaError(`${where}: unexpected non-integer key ${describe(key)}`);
      if (!k.has(key) && key < 0) throw new SchemaError(`${where}: unknown critical field ${key}`);
    }
  }

  private need(key: number, label: string, optional: boolean): unknown {
    const v = this.map.get(key);
    if (v === undefined && !optional) throw new SchemaError(`${this.where}: required field ${label} (${key}) is missing`);
    return v;
  }

  tstr(key: number, label: string, opt: { min?: number; max: number; optional?: boolean }): string | undefined {
    const v = this.need(key, label, !!opt.optional);
    if (v === undefined) return undefined;
    return checkText(v, `${this.where}.${label}`, opt.min ?? 1, opt.max);
  }

  bstr(key: number, label: string, opt: { min?: number; max: number; optional?: boolean }): Uint8Array | undefined {
    const v = this.need(key, label, !!opt.optional);
    if (v === undefined) return undefined;
    return checkBytes(v, `${this.where}.${label}`, opt.min ?? 0, opt.max);
  }

  uint(key: number, label: string, opt: { optional?: boolean; max?: number } = {}): number | undefined {
    const v = this.need(key, label, !!opt.optional);
    if (v === undefined) return undefined;
    return checkUint(v, `${this.where}.${label}`, opt.max);
  }

  array(key: number, label: string, opt: { min?: number; max: number; optional?: boolean }): unknown[] | undefined {
    const v = this.need(key, label, !!opt.optional);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw new SchemaError(`${this.where}.${label}: expected an array, got ${describe(v)}`);
    if (v.length < (opt.min ?? 0) || v.length > opt.max) throw new SchemaError(`${this.where}.${label}: ${v.length} entries, allowed ${opt.min ?? 0}..${opt.max}`);
    return v;
  }

  map_(key: number, label: string, opt: { optional?: boolean } = {}): Map<unknown, unknown> | undefined {
    const v = this.need(key, label, !!opt.optional);
    if (v === undefined) return undefined;
    if (!(v instanceof Map)) throw new SchemaError(`${this.where}.${label}: expected a map, got ${describe(v)}`);
    return v;
  }
}

export function checkText(v: unknown, where: string, min: number, max: number): string {
  if (typeof v !== 'string') throw new SchemaError(`${where}: expected text, got ${describe(v)}`);
  if (v.length < min || v.length > max) throw new SchemaError(`${where}: length ${v.length}, allowed ${min}..${max}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new SchemaError(`${where}: control characters are not allowed`);
  return v;
}

export function checkBytes(v: unknown, where: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SchemaError(`${where}: expected a byte string, got ${describe(v)}`);
  if (v.length < min || v.length > max) {
    throw new SchemaError(min === max ? `${where}: must be ${min} bytes, got ${v.length}` : `${where}: ${v.length} bytes, allowed ${min}..${max}`);
  }
  return v;
}

export function checkUint(v: unknown, where: string, max = MAX_UINT): number {
  if (typeof v === 'bigint') throw new SchemaError(`${where}: integer out of range`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new SchemaError(`${where}: expected an unsigned integer, got ${describe(v)}`);
  if (v > max) throw new SchemaError(`${where}: ${v} exceeds ${max}`);
  return v;
}

function article(noun: string): string {
  return `${/^[aeiou]/i.test(noun) ? 'an' : 'a'} ${noun}`;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `a ${v.length}-byte string`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'a map';
  if (typeof v === 'string') return `text ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

export interface Validity {
  /** Seconds since the epoch. */
  notBefore: number;
  /** Seconds since the epoch (exclusive). */
  notAfter: number;
}

export function checkValidityFields(v: Validity, where: string): void {
  if (v.notAfter <= v.notBefore) throw new SchemaError(`${where}: notAfter must be later than notBefore`);
}

/** Validity window against a clock. Returns a failure or undefined. */
export function checkWindow(v: Validity, now: Clock, name: string, skew = DEFAULT_SKEW): { code: TrustFailure; reason: string } | undefined {
  const t = nowSeconds(now);
  if (t + skew < v.notBefore) return { code: 'not-yet-valid', reason: `${name} is not valid before ${iso(v.notBefore)} (now ${iso(t)})` };
  if (t >= v.notAfter) return { code: 'expired', reason: `${name} expired at ${iso(v.notAfter)} (now ${iso(t)})` };
  return undefined;
}

export function iso(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString().replace('.000Z', 'Z');
}

/** Run a payload parser, mapping SchemaError to a 'schema' failure. */
export function parsePayload<T>(parse: () => T, name: string): { ok: true; value: T } | { ok: false; code: 'schema'; reason: string } {
  try {
    return { ok: true, value: parse() };
  } catch (e) {
    if (e instanceof SchemaError) return { ok: false, code: 'schema', reason: `${name}: ${e.message}` };
    return { ok: false, code: 'schema', reason: `${name}: ${(e as Error).message}` };
  }
}

/** Validate input fields at issue time by running the verifier's own parser; throws TrustArtifactError. */
export function checkIssue<T>(parse: () => T, name: string): T {
  const r = parsePayload(parse, name);
  if (!r.ok) throw new TrustArtifactError('schema', r.reason);
  return r.value;
}

/** Seconds for an issue-time field given as Date or seconds. */
export function toSeconds(v: Date | number): number {
  return typeof v === 'number' ? Math.floor(v) : Math.floor(v.getTime() / 1000);
}

export function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}

/**
 * Decode an artifact's payload WITHOUT verifying its signature (for display
 * only: `fieldbench inspect`). Throws SchemaError / CoseError.
 */
export function unverifiedPayload(bytes: Uint8Array, type: ArtifactType): Map<unknown, unknown> {
  const m = decodeSign1(bytes, { maxBytes: MAX_BYTES[type] });
  if (m.protected.get(3) !== CONTENT_TYPES[type]) throw new SchemaError(`not ${article(ARTIFACT_NAMES[type])}`);
  if (m.payload === null) throw new SchemaError('detached payload');
  let p: unknown;
  try {
    p = decodeStrict(m.payload);
  } catch (e) {
    throw new SchemaError(`payload is not deterministically encoded CBOR (${(e as Error).message})`);
  }
  if (!(p instanceof Map)) throw new SchemaError('payload is not a CBOR map');
  return p;
}

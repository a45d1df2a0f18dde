/**
 * Artifact library import: recognise a dropped or picked file (as `fieldbench
 * inspect` does), validate it with the trust verifiers BEFORE it is stored,
 * and store it content-addressed (putArtifact: same bytes stored once).
 *
 * What is checked per kind:
 *   bundle      verifyBundle against the held bundle (signature by one of its
 *               owner keys, no rollback) or, for the first bundle, against the
 *               owner public key the user gives (enrolment)
 *   credential  verifyCredential against the held bundle
 *   config      verifyConfig against the held bundle (any target; the device
 *               and sequence are checked when it is applied)
 *   identity    verifyIdentity against the held bundle
 *   firmware    an MCUboot image (binary, or Intel HEX flattened as imgtool
 *               reads it) signed by a firmware key of the held bundle
 *               (verifyImage, as MCUboot would)
 * A PEM public key is not stored: it is returned as a candidate owner key for
 * verifying the first bundle. Private keys are refused (they belong in the
 * technician key store).
 *
 * Framework-free: runs in the browser and in Node.
 */
import { putArtifact, ArtifactStoreError, ARTIFACT_LIMITS, listArtifacts, type ArtifactValidation } from '../store/artifacts.ts';
import { StoreFullError, type ArtifactKind, type ArtifactRecord, type FieldbenchDB } from '../store/db.ts';
import { artifactTypeOf, ARTIFACT_NAMES, rawPublicKey, type ArtifactType } from '../trust/artifact.ts';
import { decodeBundleUnverified, findFirmware, verifyBundle, type TrustBundle } from '../trust/bundle.ts';
import { verifyCredential } from '../trust/credential.ts';
import { describeTarget, verifyConfig } from '../trust/signed-config.ts';
import { verifyIdentity } from '../trust/identity.ts';
import { keyId, parsePem } from '../trust/keys.ts';
import { IMAGE_MAGIC, IMAGE_MAGIC_V1, TLV, parseImage, versionString } from '../trust/mcuboot/parse.ts';
import { readFirmwareFile } from '../trust/ihex.ts';
import { verifyImage } from '../trust/mcuboot/verify.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex } from '../base/bytes.ts';

/** Largest file read at all: an Intel HEX of the largest firmware is about 2.8 times its size. */
export const MAX_IMPORT_FILE_BYTES = 3 * ARTIFACT_LIMITS.firmware;

export type Detection =
  | { ok: true; kind: ArtifactKind; bytes: Uint8Array; label: string; note?: string }
  | { ok: true; kind: 'owner-key'; publicKey: Uint8Array; kid: string; label: string }
  | { ok: false; code: ImportFailure; reason: string };

export type ImportFailure =
  | 'empty'
  | 'too-large'
  | 'unrecognised'
  | 'private-key'
  | 'no-bundle'
  | 'invalid'
  | 'kind-mismatch'
  | 'store-full';

export type ImportOutcome =
  | { ok: true; kind: ArtifactKind; record: ArtifactRecord; created: boolean; summary: string }
  | { ok: true; kind: 'owner-key'; publicKey: Uint8Array; kid: string; summary: string }
  | { ok: false; code: ImportFailure; reason: string };

export const KIND_NAMES: Record<ArtifactKind, string> = {
  firmware: 'firmware image',
  config: ARTIFACT_NAMES.config,
  bundle: ARTIFACT_NAMES.bundle,
  credential: ARTIFACT_NAMES.credential,
  identity: ARTIFACT_NAMES.identity,
};

const td = new TextDecoder();

function u32le(b: Uint8Array): number {
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

function looksLikeIhex(name: string, bytes: Uint8Array): boolean {
  if (/\.hex$/i.test(name)) return true;
  if (bytes[0] !== 0x3a /* ':' */) return false;
  return /^:[0-9A-Fa-f]{10,}\r?\n/.test(td.decode(bytes.subarray(0, 600)));
}

/**
 * What a file is, without verifying anything (and without a database).
 * Intel HEX is flattened to the binary image it describes.
 */
export function detectArtifact(name: string, bytes: Uint8Array): Detection {
  if (bytes.length === 0) return { ok: false, code: 'empty', reason: `${name} is empty` };
  if (bytes.length > MAX_IMPORT_FILE_BYTES) {
    return { ok: false, code: 'too-large', reason: `${name} is ${bytes.length} bytes; files over ${MAX_IMPORT_FILE_BYTES} bytes are not read` };
  }
  const head = td.decode(bytes.subarray(0, 4096));
  if (/-----BEGIN [A-Z0-9 ]+-----/.test(head)) {
    if (/-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(head)) {
      return { ok: false, code: 'private-key', reason: `${name} is a private key: private keys are never stored in the library (import it into the technician key store instead)` };
    }
    try {
      const k = parsePem(td.decode(bytes));
      if (k.kind === 'ed25519-public') {
        const kid = toHex(keyId(k.publicKey));
        return { ok: true, kind: 'owner-key', publicKey: k.publicKey, kid, label: `Ed25519 public key ${kid}` };
      }
      if (k.kind === 'ed25519-private') return { ok: false, code: 'private-key', reason: `${name} is a private key: private keys are never stored in the library` };
      return { ok: false, code: 'unrecognised', reason: `${name} is a ${k.kind} key; owner keys are Ed25519` };
    } catch (e) {
      return { ok: false, code: 'unrecognised', reason: `${name} is a PEM file that is not a supported key: ${(e as Error).message}` };
    }
  }
  let image = bytes;
  let note: string | undefined;
  if (looksLikeIhex(name, bytes)) {
    try {
      const f = readFirmwareFile(/\.hex$/i.test(name) ? name : `${name}.hex`, bytes);
      image = f.data;
      note = `Intel HEX at 0x${(f.baseAddr ?? 0).toString(16)}, flattened to ${image.length} bytes`;
    } catch (e) {
      return { ok: false, code: 'unrecognised', reason: `${name} is not a valid Intel HEX file: ${(e as Error).message}` };
    }
  }
  if (image.length >= 32 && (u32le(image) === IMAGE_MAGIC || u32le(image) === IMAGE_MAGIC_V1)) {
    if (image.length > ARTIFACT_LIMITS.firmware) {
      return { ok: false, code: 'too-large', reason: `the firmware image is ${image.length} bytes; at most ${ARTIFACT_LIMITS.firmware} are accepted` };
    }
    return { ok: true, kind: 'firmware', bytes: image, label: 'MCUboot image', note };
  }
  if (note) return { ok: false, code: 'unrecognised', reason: `${name} is Intel HEX but does not hold an MCUboot image (sign it with imgtool first)` };
  const type: ArtifactType | undefined = artifactTypeOf(bytes);
  if (type === 'reprovision' || type === 'profile') {
    return { ok: false, code: 'unrecognised', reason: `${name} is a ${ARTIFACT_NAMES[type]}: it is used once by a station, not kept in the library` };
  }
  if (type === 'campaign') {
    return { ok: false, code: 'unrecognised', reason: `${name} is a ${ARTIFACT_NAMES[type]}: campaigns come from the hub and are shown on the Sync page; import the image and configuration it names` };
  }
  if (type) {
    if (bytes.length > ARTIFACT_LIMITS[type]) {
      return { ok: false, code: 'too-large', reason: `the ${ARTIFACT_NAMES[type]} is ${bytes.length} bytes; at most ${ARTIFACT_LIMITS[type]} are accepted` };
    }
    return { ok: true, kind: type, bytes, label: ARTIFACT_NAMES[type] };
  }
  return {
    ok: false,
    code: 'unrecognised',
    reason: `${name} is not a trust bundle, signed configuration, technician credential, identity certificate, MCUboot image or owner public key`,
  };
}

export interface LibraryTrust {
  /** The held, verified trust bundle (heldBundle()). */
  bundle?: TrustBundle | null;
  /** Owner public keys (Ed25519, 32 bytes) given at enrolment, for the first bundle. */
  ownerKeys?: Uint8Array[];
  /** ms since epoch; default now. */
  now?: number;
}

const hex = toHex;
const iso = (s: number) => new Date(s * 1000).toISOString();

/** Checks one artifact of a detected kind against the trust it is given. Never throws. */
export async function validateArtifact(kind: ArtifactKind, bytes: Uint8Array, trust: LibraryTrust): Promise<ArtifactValidation> {
  const bundle = trust.bundle ?? null;
  const now = trust.now ?? Date.now();
  if (kind === 'bundle') {
    if (!bundle && !trust.ownerKeys?.length) {
      return { ok: false, code: 'no-bundle', reason: 'no trust bundle is held yet: add the owner public key (PEM) first, then this bundle is checked against it' };
    }
    const r = bundle ? await verifyBundle(bytes, { held: bundle, now }) : await verifyBundle(bytes, { ownerKeys: trust.ownerKeys, now });
    if (!r.ok) return r;
    const b = r.value;
    return {
      ok: true,
      meta: { version: b.version, issued: iso(b.issued), expires: iso(b.expires), issuer: hex(b.issuer), firmware: b.firmware.length, configurations: b.configurations.length },
    };
  }
  if (!bundle) {
    return { ok: false, code: 'no-bundle', reason: `a ${KIND_NAMES[kind]} is checked against the trust bundle: import the trust bundle first` };
  }
  switch (kind) {
    case 'credential': {
      const r = await verifyCredential(bytes, { bundle, now });
      if (!r.ok) return r;
      const c = r.value;
      return { ok: true, meta: { technician: c.technicianId, name: c.name, permissions: c.permissions.join(' '), models: c.models.join(' '), notAfter: iso(c.notAfter), credentialId: hex(c.credentialId) } };
    }
    case 'config': {
      const r = await verifyConfig(bytes, { bundle, now });
      if (!r.ok) return r;
      const c = r.value;
      return { ok: true, meta: { target: describeTarget(c.target), sequence: c.sequence, settings: Object.keys(c.settings).length, secrets: c.secrets ? 'sealed' : 'none', notAfter: iso(c.notAfter), digest: hex(c.digest) } };
    }
    case 'identity': {
      const r = await verifyIdentity(bytes, { bundle, now });
      if (!r.ok) return r;
      const c = r.value;
      return { ok: true, meta: { serial: c.serial, model: c.model, hwRev: c.hwRev, deviceKey: hex(c.devicePublicKey), notAfter: iso(c.notAfter) } };
    }
    case 'firmware': {
      let keys: Uint8Array[];
      try {
        keys = bundle.anchors.firmware.filter((k) => k.kty === 'OKP').map(rawPublicKey);
      } catch (e) {
        return { ok: false, code: 'invalid', reason: `the bundle's firmware keys are unusable: ${(e as Error).message}` };
      }
      if (!keys.length) return { ok: false, code: 'no-key', reason: 'the trust bundle lists no Ed25519 firmware signing key' };
      const rep = await verifyImage(bytes, { keys, maxImageSize: ARTIFACT_LIMITS.firmware });
      if (!rep.ok) return { ok: false, code: 'bad-signature', reason: `the firmware image was rejected: ${rep.reason}` };
      // A bundle lists an image by its file digest or by its measurement (the image's SHA256 TLV), as the update check does.
      const hashTlv = parseImage(bytes).tlvs.find((t) => t.type === TLV.SHA256)?.value;
      const listed = findFirmware(bundle, sha256(bytes)) ?? (hashTlv ? findFirmware(bundle, hashTlv) : undefined);
      return {
        ok: true,
        meta: {
          version: rep.version ?? versionString(parseImage(bytes).header.version),
          ...(rep.securityCounter !== undefined ? { securityCounter: rep.securityCounter } : {}),
          model: listed?.model ?? '(not listed in the bundle)',
          listed: listed ? 'yes' : 'no',
        },
      };
    }
  }
  return { ok: false, code: 'invalid', reason: `unknown kind ${String(kind)}` };
}

/**
 * Recognise, validate and store one file. Never throws for bad input: every
 * refusal is an outcome with a code and a reason for the user.
 */
export async function importArtifact(db: FieldbenchDB, name: string, bytes: Uint8Array, trust: LibraryTrust): Promise<ImportOutcome> {
  const d = detectArtifact(name, bytes);
  if (!d.ok) return d;
  if (d.kind === 'owner-key') return { ok: true, kind: 'owner-key', publicKey: d.publicKey, kid: d.kid, summary: `${d.label}: used to check the first trust bundle (not stored)` };
  let failure: { code: ImportFailure; reason: string } | undefined;
  const validator = async (b: Uint8Array, k: ArtifactKind): Promise<ArtifactValidation> => {
    const v = await validateArtifact(k, b, trust);
    if (!v.ok) failure = { code: v.code === 'no-bundle' ? 'no-bundle' : 'invalid', reason: `${name}: ${v.reason}` };
    return v;
  };
  try {
    const { record, created } = await putArtifact(db, d.kind, d.bytes, validator, { name, now: trust.now });
    const summary = `${KIND_NAMES[d.kind]} ${created ? 'added' : 'was already in the library'}${d.note ? ` (${d.note})` : ''}`;
    return { ok: true, kind: d.kind, record, created, summary };
  } catch (e) {
    if (failure) return { ok: false, ...failure };
    if (e instanceof StoreFullError) return { ok: false, code: 'store-full', reason: `${name}: ${e.message}` };
    if (e instanceof ArtifactStoreError) {
      const code: ImportFailure = e.code === 'too-large' || e.code === 'empty' || e.code === 'kind-mismatch' ? e.code : 'invalid';
      return { ok: false, code, reason: `${name}: ${e.message}` };
    }
    throw e;
  }
}

/**
 * The trust bundle the library holds: the highest-version stored bundle that
 * still verifies under its own owner anchors (expired ones are returned with
 * stale: true). Null when none is stored.
 */
export async function heldBundle(db: FieldbenchDB, ownerKeys: Uint8Array[], now = Date.now()): Promise<TrustBundle | null> {
  // Never trust a bundle on its own say-so: start from the pinned owner keys and follow the
  // chain upwards (a newer bundle must verify under the held one's owner anchors, or the pins).
  if (ownerKeys.length === 0) return null;
  const recs = await listArtifacts(db, 'bundle');
  const byVersion: { rec: ArtifactRecord; version: number }[] = [];
  for (const rec of recs) {
    try {
      byVersion.push({ rec, version: decodeBundleUnverified(rec.bytes).version });
    } catch {
      /* unreadable records are skipped */
    }
  }
  byVersion.sort((a, b) => a.version - b.version);
  let held: TrustBundle | null = null;
  for (const { rec } of byVersion) {
    const keys = held ? [...held.anchors.owner.map(rawPublicKey), ...ownerKeys] : ownerKeys;
    const r = await verifyBundle(rec.bytes, { ownerKeys: keys, heldVersion: held?.version, now, allowStale: true });
    if (r.ok) held = r.value;
  }
  return held;
}

/** Stored artifacts for display (bytes left out), newest first. */
export interface LibraryItem {
  sha256: string;
  kind: ArtifactKind;
  size: number;
  added: number;
  name?: string;
  meta?: Record<string, unknown>;
}

export async function listLibrary(db: FieldbenchDB, kind?: ArtifactKind): Promise<LibraryItem[]> {
  const recs = await listArtifacts(db, kind);
  return recs
    .map(({ sha256, kind, size, added, name, meta }) => ({ sha256, kind, size, added, name, meta }))
    .sort((a, b) => b.added - a.added || a.sha256.localeCompare(b.sha256));
}

/** What each recorded detail of an artifact is called, in words. */
const META_LABELS: Record<string, string> = {
  version: 'version',
  issued: 'issued',
  expires: 'valid until',
  issuer: 'issued by key',
  firmware: 'firmware images listed',
  configurations: 'configurations listed',
  technician: 'technician',
  name: 'name',
  permissions: 'may',
  models: 'for models',
  notAfter: 'valid until',
  credentialId: 'credential id',
  target: 'for',
  sequence: 'sequence',
  settings: 'settings',
  secrets: 'secrets',
  digest: 'digest',
  serial: 'serial',
  model: 'model',
  hwRev: 'hardware revision',
  deviceKey: 'device key',
  securityCounter: 'security counter',
  listed: 'in the trust bundle',
  backup: 'backup',
};
const DATE_KEYS = new Set(['issued', 'expires', 'notAfter']);
const HEX_KEYS = new Set(['issuer', 'credentialId', 'digest', 'deviceKey']);
const BACKUP_WORDS: Record<string, string> = { snapshot: 'the settings as read from the device', signed: 'the signed configuration itself' };

/**
 * An artifact's recorded details as the library shows them: labels in words,
 * dates as the local calendar date, long hex shortened (the full value is the
 * title), a configuration sequence as "#N".
 */
export function describeMeta(meta: Record<string, unknown> | undefined): { key: string; label: string; value: string; full?: string }[] {
  if (!meta) return [];
  return Object.entries(meta).map(([key, v]) => {
    const label = META_LABELS[key] ?? key;
    const text = String(v);
    if (DATE_KEYS.has(key) && typeof v === 'string' && !Number.isNaN(Date.parse(v))) {
      const d = new Date(v);
      return { key, label, value: `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`, full: v };
    }
    if (HEX_KEYS.has(key) && text.length > 20) return { key, label, value: `${text.slice(0, 16)}…`, full: text };
    if (key === 'sequence') return { key, label: 'configuration', value: `#${text}` };
    if (key === 'backup') return { key, label, value: BACKUP_WORDS[text] ?? text };
    if (key === 'permissions') return { key, label, value: text.split(' ').join(', ') };
    return { key, label, value: text };
  });
}

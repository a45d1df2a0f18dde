/**
 * MCUboot image format: parse, verify (as bootutil/image_validate.c does for
 * an Ed25519 build), and sign (byte-identical to imgtool's `sign`).
 *
 * Layout (all little endian):
 *   header (32 bytes, padded to ih_hdr_size) | body (ih_img_size) |
 *   [protected TLV area: info 0x6908 + TLVs, ih_protect_tlv_size bytes] |
 *   unprotected TLV area: info 0x6907 + TLVs | [padding / swap trailer]
 * The image hash and the signature cover header + body + protected TLVs.
 *
 * Numbers follow mcu-tools/mcuboot boot/bootutil/include/bootutil/image.h.
 */
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { sha1 } from '@noble/hashes/legacy.js';
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from './ed25519.ts';
import { readIhexBinary, type IhexSegment } from './ihex.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalBytes, toHex } from '../base/bytes.ts';

export const IMAGE_MAGIC = 0x96f3b83d;
export const IMAGE_MAGIC_V1 = 0x96f3b83c;
export const IMAGE_HEADER_SIZE = 32;
export const TLV_INFO_MAGIC = 0x6907;
export const TLV_PROT_INFO_MAGIC = 0x6908;
const TLV_INFO_SIZE = 4;
const TLV_SIZE = 4;

export const IMAGE_F = {
  PIC: 0x01,
  ENCRYPTED_AES128: 0x04,
  ENCRYPTED_AES256: 0x08,
  NON_BOOTABLE: 0x10,
  RAM_LOAD: 0x20,
  ROM_FIXED: 0x100,
  COMPRESSED_LZMA1: 0x200,
  COMPRESSED_LZMA2: 0x400,
  COMPRESSED_ARM_THUMB: 0x800,
} as const;

export const TLV = {
  KEYHASH: 0x01,
  PUBKEY: 0x02,
  SHA256: 0x10,
  SHA384: 0x11,
  SHA512: 0x12,
  RSA2048_PSS: 0x20,
  ECDSA224: 0x21,
  ECDSA_SIG: 0x22,
  RSA3072_PSS: 0x23,
  ED25519: 0x24,
  SIG_PURE: 0x25,
  ENC_RSA2048: 0x30,
  ENC_KW: 0x31,
  ENC_EC256: 0x32,
  ENC_X25519: 0x33,
  ENC_X25519_SHA512: 0x34,
  DEPENDENCY: 0x40,
  SEC_CNT: 0x50,
  BOOT_RECORD: 0x60,
  DECOMP_SIZE: 0x70,
  DECOMP_SHA: 0x71,
  DECOMP_SIGNATURE: 0x72,
  COMP_DEC_SIZE: 0x73,
  UUID_VID: 0x74,
  UUID_CID: 0x75,
} as const;

const TLV_NAMES = new Map<number, string>(Object.entries(TLV).map(([k, v]) => [v, k]));

/** A TLV type's name, 'VENDOR_xxxx' in the vendor-reserved ranges, 'UNKNOWN_xxxx' otherwise. */
export function tlvName(type: number): string {
  const n = TLV_NAMES.get(type);
  if (n) return n;
  const h = type.toString(16).padStart(4, '0');
  return (type & 0xff) >= 0xa0 && type !== 0xffff ? `VENDOR_${h}` : `UNKNOWN_${h}`;
}

/** TLVs MCUboot (MCUBOOT_USE_TLV_ALLOW_LIST) accepts outside the protected area. */
const ALLOWED_UNPROTECTED = new Set<number>([
  TLV.KEYHASH, TLV.PUBKEY, TLV.SHA256, TLV.SHA384, TLV.SHA512, TLV.RSA2048_PSS, TLV.ECDSA224,
  TLV.ECDSA_SIG, TLV.RSA3072_PSS, TLV.ED25519, TLV.SIG_PURE, TLV.ENC_RSA2048, TLV.ENC_KW,
  TLV.ENC_EC256, TLV.ENC_X25519, TLV.ENC_X25519_SHA512,
]);

export type McubootErrorCode =
  | 'truncated' // the file ends before a structure the header or a TLV info declares
  | 'bad-magic' // not an MCUboot image (or the legacy v1 format)
  | 'bad-header' // header fields inconsistent (hdr_size < 32, ...)
  | 'bad-tlv' // TLV info magic/size wrong, a TLV overruns its area, ...
  | 'oversized' // the image is larger than the slot / limit it must fit
  | 'bad-version' // version string or number out of the header's range
  | 'bad-option' // signing option invalid
  | 'bad-input'; // signing input unusable

export class McubootError extends FieldbenchError<McubootErrorCode> {
  constructor(
    code: McubootErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'McubootError';
  }
}

export interface ImageVersion {
  major: number;
  minor: number;
  revision: number;
  build: number;
}

export interface ImageHeader {
  magic: number;
  loadAddr: number;
  hdrSize: number;
  protectTlvSize: number;
  imgSize: number;
  flags: number;
  version: ImageVersion;
}

export interface ImageTlv {
  type: number;
  name: string;
  /** Offset of the value in the file. */
  offset: number;
  length: number;
  protected: boolean;
  /** View into the image bytes (not a copy). */
  value: Uint8Array;
}

export interface McubootImage {
  bytes: Uint8Array;
  header: ImageHeader;
  flagNames: string[];
  /** Offset of the first TLV info (= hdr_size + img_size). */
  tlvOffset: number;
  /** End of the signed region: header + body + protected TLVs. */
  signedEnd: number;
  /** End of the unprotected TLV area (MCUboot's tlv_end). */
  end: number;
  /** Bytes after `end` (slot padding / swap trailer); not part of the image proper. */
  trailingBytes: number;
  tlvs: ImageTlv[];
}

export function versionString(v: ImageVersion): string {
  return `${v.major}.${v.minor}.${v.revision}+${v.build}`;
}

const VERSION_RE = /^([1-9]\d*|0)(\.([1-9]\d*|0)(\.([1-9]\d*|0)(\+([1-9]\d*|0))?)?)?$/;

/** Parse 'maj[.min[.rev[+build]]]' as imgtool does; throws McubootError('bad-version'). */
export function parseVersion(text: string): ImageVersion {
  const m = VERSION_RE.exec(text);
  if (!m) throw new McubootError('bad-version', `invalid version '${text}': expected maj.min.rev+build with later parts optional`);
  const v = { major: Number(m[1]), minor: Number(m[3] ?? 0), revision: Number(m[5] ?? 0), build: Number(m[7] ?? 0) };
  if (v.major > 0xff || v.minor > 0xff || v.revision > 0xffff || v.build > 0xffffffff) {
    throw new McubootError('bad-version', `version '${text}' out of range (major, minor <= 255, revision <= 65535, build <= 4294967295)`);
  }
  return v;
}

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const hex = (n: number, w = 0) => '0x' + n.toString(16).padStart(w, '0');

export function parseHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length < IMAGE_HEADER_SIZE) {
    throw new McubootError('truncated', `file is ${bytes.length} bytes, shorter than the ${IMAGE_HEADER_SIZE}-byte image header`);
  }
  const magic = u32(bytes, 0);
  if (magic !== IMAGE_MAGIC) {
    if (magic === IMAGE_MAGIC_V1) throw new McubootError('bad-magic', 'legacy MCUboot v1 image (magic 0x96f3b83c) is not supported');
    if (magic === 0xffffffff) throw new McubootError('bad-magic', 'no image: header is erased flash (0xffffffff)');
    throw new McubootError('bad-magic', `not an MCUboot image: magic ${hex(magic, 8)}, expected ${hex(IMAGE_MAGIC, 8)}`);
  }
  return {
    magic,
    loadAddr: u32(bytes, 4),
    hdrSize: u16(bytes, 8),
    protectTlvSize: u16(bytes, 10),
    imgSize: u32(bytes, 12),
    flags: u32(bytes, 16),
    version: { major: bytes[20], minor: bytes[21], revision: u16(bytes, 22), build: u32(bytes, 24) },
  };
}

export function flagNames(flags: number): string[] {
  const out: string[] = [];
  let rest = flags;
  for (const [k, v] of Object.entries(IMAGE_F)) {
    if (flags & v) {
      out.push(k);
      rest &= ~v;
    }
  }
  if (rest) out.push(`UNKNOWN_${hex(rest >>> 0, 8)}`);
  return out;
}

function readArea(bytes: Uint8Array, start: number, size: number, isProt: boolean, out: ImageTlv[]): void {
  const end = start + size;
  let off = start + TLV_INFO_SIZE;
  const what = isProt ? 'protected' : 'unprotected';
  while (off < end) {
    if (end - off < TLV_SIZE) {
      throw new McubootError('bad-tlv', `${what} TLV area: ${end - off} stray byte(s) at ${hex(off)} where a TLV header should start`);
    }
    const type = u16(bytes, off);
    const len = u16(bytes, off + 2);
    if (len > end - off - TLV_SIZE) {
      throw new McubootError('bad-tlv', `${what} TLV ${tlvName(type)} at ${hex(off)} declares ${len} bytes, overrunning its area by ${len - (end - off - TLV_SIZE)}`);
    }
    const v = off + TLV_SIZE;
    out.push({ type, name: tlvName(type), offset: v, length: len, protected: isProt, value: bytes.subarray(v, v + len) });
    off = v + len;
  }
}

/**
 * Parse an image: header and both TLV areas, every offset and length checked
 * against the file. Throws McubootError. `maxImageSize` (the slot size) bounds
 * header + body + TLVs as MCUboot's bootutil_max_image_size does.
 */
export function parseImage(bytes: Uint8Array, opts: { maxImageSize?: number } = {}): McubootImage {
  const header = parseHeader(bytes);
  const { hdrSize, imgSize, protectTlvSize } = header;
  if (hdrSize < IMAGE_HEADER_SIZE) {
    throw new McubootError('bad-header', `ih_hdr_size ${hdrSize} is smaller than the ${IMAGE_HEADER_SIZE}-byte header`);
  }
  if (hdrSize > bytes.length) {
    throw new McubootError('truncated', `ih_hdr_size ${hex(hdrSize)} runs past the end of the ${bytes.length}-byte file`);
  }
  const tlvOffset = hdrSize + imgSize; // JS numbers: no 32-bit wrap
  if (tlvOffset + TLV_INFO_SIZE > bytes.length) {
    throw new McubootError(
      'truncated',
      `ih_img_size ${hex(imgSize)} puts the TLV area at ${hex(tlvOffset)}, past the end of the ${bytes.length}-byte file`,
    );
  }
  let off = tlvOffset;
  let magic = u16(bytes, off);
  let tot = u16(bytes, off + 2);
  const tlvs: ImageTlv[] = [];
  if (magic === TLV_PROT_INFO_MAGIC) {
    if (protectTlvSize !== tot) {
      throw new McubootError('bad-tlv', `protected TLV area is ${tot} bytes but the header's ih_protect_tlv_size says ${protectTlvSize}`);
    }
    if (tot < TLV_INFO_SIZE) throw new McubootError('bad-tlv', `protected TLV area size ${tot} is smaller than its own info header`);
    if (off + tot + TLV_INFO_SIZE > bytes.length) {
      throw new McubootError('truncated', `protected TLV area (${tot} bytes at ${hex(off)}) runs past the end of the file`);
    }
    readArea(bytes, off, tot, true, tlvs);
    off += tot;
    magic = u16(bytes, off);
    tot = u16(bytes, off + 2);
  } else if (protectTlvSize !== 0) {
    throw new McubootError('bad-tlv', `header declares ${protectTlvSize} bytes of protected TLVs but there is no protected TLV info (0x6908) at ${hex(off)}`);
  }
  if (magic !== TLV_INFO_MAGIC) {
    throw new McubootError('bad-tlv', `no TLV info at ${hex(off)}: magic ${hex(magic, 4)}, expected ${hex(TLV_INFO_MAGIC, 4)}`);
  }
  if (tot < TLV_INFO_SIZE) throw new McubootError('bad-tlv', `TLV area size ${tot} is smaller than its own info header`);
  const end = off + tot;
  if (end > bytes.length) {
    throw new McubootError('truncated', `TLV area (${tot} bytes at ${hex(off)}) runs ${end - bytes.length} byte(s) past the end of the file`);
  }
  if (opts.maxImageSize !== undefined && end > opts.maxImageSize) {
    throw new McubootError('oversized', `image with TLVs is ${end} bytes, larger than the ${opts.maxImageSize}-byte limit`);
  }
  readArea(bytes, off, tot, false, tlvs);
  return {
    bytes,
    header,
    flagNames: flagNames(header.flags),
    tlvOffset,
    signedEnd: tlvOffset + protectTlvSize,
    end,
    trailingBytes: bytes.length - end,
    tlvs,
  };
}

// ---------------------------------------------------------------- keys

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): 44 bytes in all. */
const ED25519_SPKI_PREFIX = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00);

/** The public key as MCUboot embeds it and as imgtool hashes it: DER SubjectPublicKeyInfo. */
export function ed25519Spki(pub: Uint8Array): Uint8Array {
  if (pub.length !== 32) throw new McubootError('bad-option', `Ed25519 public key must be 32 bytes, got ${pub.length}`);
  const out = new Uint8Array(44);
  out.set(ED25519_SPKI_PREFIX, 0);
  out.set(pub, 12);
  return out;
}

function spkiToRaw(der: Uint8Array): Uint8Array | undefined {
  if (der.length !== 44) return undefined;
  for (let i = 0; i < ED25519_SPKI_PREFIX.length; i++) if (der[i] !== ED25519_SPKI_PREFIX[i]) return undefined;
  return der.subarray(12);
}

/** KEYHASH TLV value for a key: SHA-256 (or SHA-512 for --sha 512 images) of its SPKI DER. */
export function keyHash(pub: Uint8Array, alg: 'sha256' | 'sha512' = 'sha256'): Uint8Array {
  const spki = ed25519Spki(pub);
  return alg === 'sha512' ? sha512(spki) : sha256(spki);
}

// ---------------------------------------------------------------- verify

export type CheckResult = 'pass' | 'fail' | 'absent';
export type CheckName = 'format' | 'size' | 'encryption' | 'unprotected-tlvs' | 'hash' | 'key' | 'signature' | 'security-counter' | 'vendor-id' | 'class-id';
export interface ImageCheck {
  name: CheckName;
  result: CheckResult;
  reason: string;
}

export type HashAlg = 'sha256' | 'sha384' | 'sha512';

export interface ImageVerifyReport {
  ok: boolean;
  verdict: 'accept' | 'reject';
  /** First failing check's reason, or a summary on acceptance. */
  reason: string;
  checks: ImageCheck[];
  image?: McubootImage;
  version?: string;
  hashAlg?: HashAlg;
  /** The image digest (header + body + protected TLVs) as computed. */
  digest?: Uint8Array;
  pure: boolean;
  /** Index into `opts.keys` of the key whose signature verified. */
  keyIndex?: number;
  securityCounter?: number;
}

export interface VerifyImageOptions {
  /** Trusted Ed25519 public keys (32 bytes raw). */
  keys: Uint8Array[];
  /** Refuse images without a valid signature from a trusted key (default true). */
  requireSignature?: boolean;
  /** Reject if the image's SEC_CNT is below this (implies the counter is required). */
  minSecurityCounter?: number;
  requireSecurityCounter?: boolean;
  /** Expected UUID_VID / UUID_CID (16 bytes); when given the TLV is required and must match. */
  vendorId?: Uint8Array;
  classId?: Uint8Array;
  /** Slot size: header + body + TLVs must fit. */
  maxImageSize?: number;
  /** Skip MCUboot's allow list of unprotected TLVs (MCUBOOT_USE_TLV_ALLOW_LIST). */
  allowAnyUnprotectedTlv?: boolean;
}

/**
 * Digest of a large region: WebCrypto where the runtime has it (several times
 * faster than JavaScript on megabytes of firmware), @noble/hashes otherwise.
 */
async function digestOf(alg: HashAlg, data: Uint8Array, fallback: (m: Uint8Array) => Uint8Array): Promise<Uint8Array> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle && data.length >= 4096) {
    try {
      const name = alg === 'sha256' ? 'SHA-256' : alg === 'sha384' ? 'SHA-384' : 'SHA-512';
      return new Uint8Array(await subtle.digest(name, data as Uint8Array<ArrayBuffer>));
    } catch {
      /* fall through to the JavaScript implementation */
    }
  }
  return fallback(data);
}

const HASH_TLVS: Record<number, { alg: HashAlg; len: number; fn: (m: Uint8Array) => Uint8Array }> = {
  [TLV.SHA256]: { alg: 'sha256', len: 32, fn: (m) => sha256(m) },
  [TLV.SHA384]: { alg: 'sha384', len: 48, fn: (m) => sha384(m) },
  [TLV.SHA512]: { alg: 'sha512', len: 64, fn: (m) => sha512(m) },
};

interface TrustedKeyInfo {
  raw: Uint8Array;
  spki: Uint8Array;
  h256: Uint8Array;
  h512: Uint8Array;
}

/**
 * Verify an image as MCUboot's bootloader would (Ed25519 build), plus host
 * policy. Never throws: malformed input is a rejection with a reason.
 *
 * Key selection follows bootutil: a KEYHASH (0x01) or PUBKEY (0x02) TLV picks
 * the trusted key for the ED25519 (0x24) TLV that follows it; signatures not
 * preceded by a trusted key are ignored. Unlike bootutil (which keeps the
 * last result), any signature made under a trusted key that fails rejects the
 * image: there is no fallback to other keys.
 */
export async function verifyImage(bytes: Uint8Array, opts: VerifyImageOptions): Promise<ImageVerifyReport> {
  const checks: ImageCheck[] = [];
  const add = (name: CheckName, result: CheckResult, reason: string) => checks.push({ name, result, reason });
  const requireSig = opts.requireSignature ?? true;
  const finish = (extra: Partial<ImageVerifyReport>): ImageVerifyReport => {
    const failed = checks.find((c) => c.result === 'fail');
    const ok = !failed;
    return {
      ok,
      verdict: ok ? 'accept' : 'reject',
      reason: failed ? failed.reason : extra.reason ?? 'accepted',
      checks,
      pure: false,
      ...extra,
      ...(failed ? { reason: failed.reason } : {}),
    };
  };

  let img: McubootImage;
  try {
    img = parseImage(bytes, { maxImageSize: opts.maxImageSize });
  } catch (e) {
    if (e instanceof McubootError) {
      add(e.code === 'oversized' ? 'size' : 'format', 'fail', e.message);
      return finish({});
    }
    add('format', 'fail', `unreadable image: ${(e as Error).message}`);
    return finish({});
  }
  const version = versionString(img.header.version);
  add('format', 'pass', `MCUboot image ${version}: header ${img.header.hdrSize} B, body ${img.header.imgSize} B, ${img.tlvs.length} TLV(s)`);
  add(
    'size',
    opts.maxImageSize === undefined ? 'absent' : 'pass',
    opts.maxImageSize === undefined ? 'no slot size given' : `${img.end} of ${opts.maxImageSize} bytes`,
  );

  const signed = bytes.subarray(0, img.signedEnd);
  const encrypted = (img.header.flags & (IMAGE_F.ENCRYPTED_AES128 | IMAGE_F.ENCRYPTED_AES256)) !== 0;
  add(
    'encryption',
    encrypted ? 'fail' : 'absent',
    encrypted ? 'image is encrypted: its hash covers the plaintext, which cannot be checked without the device key' : 'image is not encrypted',
  );

  // unprotected allow list
  if (!opts.allowAnyUnprotectedTlv) {
    const bad = img.tlvs.filter((t) => !t.protected && !ALLOWED_UNPROTECTED.has(t.type));
    add(
      'unprotected-tlvs',
      bad.length ? 'fail' : 'pass',
      bad.length
        ? `TLV ${bad.map((t) => t.name).join(', ')} must be in the protected TLV area but is unprotected (not covered by the signature)`
        : 'only signature, key, hash and encryption TLVs outside the protected area',
    );
  }

  // SIG_PURE: presence decides, value must be 1 (bootutil_check_for_pure)
  const pureTlvs = img.tlvs.filter((t) => t.type === TLV.SIG_PURE);
  let pure = false;
  let pureBad: string | undefined;
  if (pureTlvs.length) {
    const p = pureTlvs[0];
    if (pureTlvs.length > 1) pureBad = 'more than one SIG_PURE TLV';
    else if (p.length !== 1 || p.value[0] !== 1) pureBad = `SIG_PURE TLV must hold the single byte 0x01 (has ${p.length} byte(s): ${toHex(p.value.subarray(0, 8))})`;
    else pure = true;
  }

  // hash
  const hashTlvs = img.tlvs.filter((t) => HASH_TLVS[t.type] !== undefined);
  let digest: Uint8Array | undefined;
  let hashAlg: HashAlg | undefined;
  let hashOk = false;
  if (hashTlvs.length === 0) {
    add('hash', pure ? 'absent' : 'fail', pure ? 'no image hash TLV (pure signature covers the image itself)' : 'no image hash TLV (SHA256 0x10 / SHA384 0x11 / SHA512 0x12)');
  } else if (hashTlvs.length > 1) {
    add('hash', 'fail', `${hashTlvs.length} image hash TLVs (${hashTlvs.map((t) => t.name).join(', ')}); exactly one is allowed`);
  } else {
    const t = hashTlvs[0];
    const h = HASH_TLVS[t.type];
    hashAlg = h.alg;
    if (t.protected) {
      add('hash', 'fail', `${t.name} TLV is inside the protected area it would have to cover`);
    } else if (t.length !== h.len) {
      add('hash', 'fail', `${t.name} TLV is ${t.length} bytes, expected ${h.len}`);
    } else {
      digest = await digestOf(h.alg, signed, h.fn);
      hashOk = equalBytes(digest, t.value);
      add(
        'hash',
        hashOk ? 'pass' : 'fail',
        hashOk
          ? `${h.alg.toUpperCase()} ${toHex(digest)} matches header + body + protected TLVs`
          : `${h.alg.toUpperCase()} mismatch: image hashes to ${toHex(digest)}, TLV says ${toHex(t.value)} (image modified or corrupt)`,
      );
    }
  }

  // keys and signatures
  const trusted: TrustedKeyInfo[] = [];
  for (const k of opts.keys) {
    if (!(k instanceof Uint8Array) || k.length !== 32) {
      add('key', 'fail', 'a trusted key is not a 32-byte Ed25519 public key');
      return finish({ image: img, version, pure, hashAlg, digest });
    }
    const spki = ed25519Spki(k);
    trusted.push({ raw: k, spki, h256: sha256(spki), h512: sha512(spki) });
  }
  // bootutil stops at a hash mismatch; a signature over a digest the image does not have proves nothing
  const sigMessage = pure ? signed : hashOk ? digest : undefined;
  let current = -1;
  let currentDesc = '';
  const keyNotes: string[] = [];
  let passed = -1;
  let sigFail: string | undefined;
  let untrustedSigs = 0;
  let ed25519Sigs = 0;
  for (const t of img.tlvs) {
    if (t.type === TLV.KEYHASH) {
      if (t.length !== 32 && t.length !== 64) {
        const note = `KEYHASH TLV is ${t.length} bytes; expected 32 (SHA-256) or 64 (SHA-512)`;
        keyNotes.push(note);
        sigFail ??= note;
        current = -1;
        continue;
      }
      current = trusted.findIndex((k) => equalBytes(t.length === 32 ? k.h256 : k.h512, t.value));
      currentDesc = `key hash ${toHex(t.value.subarray(0, 8))}…`;
      keyNotes.push(current >= 0 ? `${currentDesc} names trusted key #${current}` : `${currentDesc} names no trusted key`);
    } else if (t.type === TLV.PUBKEY) {
      const raw = spkiToRaw(t.value);
      current = raw ? trusted.findIndex((k) => equalBytes(k.raw, raw)) : -1;
      currentDesc = raw ? `public key ${toHex(raw.subarray(0, 8))}…` : `non-Ed25519 public key (${t.length} bytes)`;
      keyNotes.push(current >= 0 ? `${currentDesc} is trusted key #${current}` : `${currentDesc} is not trusted`);
    } else if (t.type === TLV.ED25519) {
      ed25519Sigs++;
      if (current < 0) {
        untrustedSigs++;
        continue;
      }
      const k = current;
      current = -1;
      if (t.length !== 64) {
        sigFail ??= `ED25519 TLV is ${t.length} bytes, expected 64`;
        continue;
      }
      if (pureBad) {
        sigFail ??= pureBad;
        continue;
      }
      if (!sigMessage) {
        sigFail ??= 'signature not checked: the image hash is missing or does not match';
        continue;
      }
      const good = await safeVerify(t.value, sigMessage, trusted[k].raw);
      if (good) {
        if (passed < 0) passed = k;
      } else {
        sigFail ??= `Ed25519 signature by trusted key #${k} (${currentDesc}) does not verify over the ${pure ? 'image (pure)' : 'image digest'}`;
      }
    }
  }
  const namedTrusted = keyNotes.some((n) => n.includes('trusted key #'));
  const unsignedImage = keyNotes.length === 0 && ed25519Sigs === 0;
  if (trusted.length === 0 && requireSig) {
    add('key', 'fail', 'no trusted keys given: signatures are required but nothing can be verified');
  } else if (namedTrusted) {
    add('key', 'pass', keyNotes.join('; '));
  } else if (unsignedImage) {
    add('key', requireSig ? 'fail' : 'absent', `image is unsigned (no KEYHASH/PUBKEY or ED25519 TLV)${requireSig ? ' and signatures are required' : ''}`);
  } else {
    add('key', requireSig ? 'fail' : 'absent', keyNotes.length ? keyNotes.join('; ') : 'no KEYHASH/PUBKEY TLV names the signing key');
  }
  if (sigFail) {
    add('signature', 'fail', sigFail);
  } else if (passed >= 0) {
    add('signature', 'pass', `Ed25519 ${pure ? 'pure signature over the image' : `signature over the ${hashAlg?.toUpperCase()} digest`} verifies with trusted key #${passed}`);
  } else if (ed25519Sigs > 0) {
    add('signature', requireSig ? 'fail' : 'absent', `${untrustedSigs} Ed25519 signature(s), none by a trusted key`);
  } else {
    const others = img.tlvs.filter((t) => t.type >= 0x20 && t.type <= 0x23).map((t) => t.name);
    add(
      'signature',
      requireSig ? 'fail' : 'absent',
      others.length ? `image is signed with ${others.join(', ')}, not Ed25519` : 'image is unsigned (no ED25519 TLV) and signatures are required',
    );
    if (!requireSig) checks[checks.length - 1].reason = others.length ? `only ${others.join(', ')} signatures` : 'image is unsigned (no ED25519 TLV)';
  }

  // security counter
  const sc = img.tlvs.filter((t) => t.type === TLV.SEC_CNT);
  let securityCounter: number | undefined;
  const needCounter = opts.requireSecurityCounter || opts.minSecurityCounter !== undefined;
  if (sc.length === 0) {
    add('security-counter', needCounter ? 'fail' : 'absent', needCounter ? 'no security counter (SEC_CNT) TLV but rollback protection requires one' : 'no security counter TLV');
  } else if (sc.length > 1) {
    add('security-counter', 'fail', 'more than one SEC_CNT TLV');
  } else if (!sc[0].protected) {
    add('security-counter', 'fail', 'SEC_CNT TLV is outside the protected area (not covered by the signature)');
  } else if (sc[0].length !== 4) {
    add('security-counter', 'fail', `SEC_CNT TLV is ${sc[0].length} bytes, expected 4`);
  } else {
    securityCounter = u32(sc[0].value, 0);
    if (opts.minSecurityCounter !== undefined && securityCounter < opts.minSecurityCounter) {
      add('security-counter', 'fail', `security counter ${securityCounter} is below the device's ${opts.minSecurityCounter} (rollback)`);
    } else {
      add('security-counter', 'pass', `security counter ${securityCounter}${opts.minSecurityCounter !== undefined ? ` >= ${opts.minSecurityCounter}` : ''}`);
    }
  }

  uuidCheck(img, TLV.UUID_VID, 'vendor-id', 'vendor', opts.vendorId, add);
  uuidCheck(img, TLV.UUID_CID, 'class-id', 'image class', opts.classId, add);

  return finish({
    image: img,
    version,
    hashAlg,
    digest,
    pure,
    keyIndex: passed >= 0 && !sigFail ? passed : undefined,
    securityCounter,
    reason: `accepted: ${version}${passed >= 0 ? `, signed by trusted key #${passed}` : ', no trusted Ed25519 signature checked (signatures not required)'}`,
  });
}

function uuidCheck(
  img: McubootImage,
  type: number,
  name: CheckName,
  what: string,
  expected: Uint8Array | undefined,
  add: (n: CheckName, r: CheckResult, reason: string) => void,
): void {
  const found = img.tlvs.filter((t) => t.type === type);
  if (found.length === 0) {
    add(name, expected ? 'fail' : 'absent', expected ? `no ${what} UUID TLV but one is required` : `no ${what} UUID TLV`);
    return;
  }
  const t = found[0];
  if (found.length > 1) return add(name, 'fail', `more than one ${tlvName(type)} TLV`);
  if (!t.protected) return add(name, 'fail', `${tlvName(type)} TLV is outside the protected area`);
  if (t.length !== 16) return add(name, 'fail', `${tlvName(type)} TLV is ${t.length} bytes, expected 16`);
  const u = formatUuid(t.value);
  if (!expected) return add(name, 'pass', `${what} UUID ${u} (no expected value configured)`);
  if (!equalBytes(expected, t.value)) return add(name, 'fail', `${what} UUID ${u} does not match the expected ${formatUuid(expected)}`);
  add(name, 'pass', `${what} UUID ${u} matches`);
}

export function formatUuid(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function safeVerify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): Promise<boolean> {
  try {
    return (await ed25519Verify(sig, msg, pub)) === true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- sign

export interface SignImageOptions {
  /** 32-byte Ed25519 private key (seed). Omitted: an unsigned image (hash TLV only), as imgtool without --key. */
  key?: Uint8Array;
  version: string | ImageVersion;
  /** --header-size (>= 32). */
  headerSize: number;
  /** --pad-header: prepend headerSize erased bytes; otherwise the input must begin with headerSize zero bytes. */
  padHeader?: boolean;
  /** --slot-size: the image + trailer must fit (0: unchecked). Required for pad. */
  slotSize?: number;
  /** --align: flash write size (1, 2, 4, 8, 16, 32). */
  align?: number;
  /** --max-align (8, 16, 32). */
  maxAlign?: number;
  /** --max-sectors (default 128). */
  maxSectors?: number;
  overwriteOnly?: boolean;
  /** --pad / --confirm / --test: pad to slotSize with the swap trailer. */
  pad?: boolean;
  confirm?: boolean;
  test?: boolean;
  /** --security-counter N | 'auto' (from the version). */
  securityCounter?: number | 'auto';
  /** --sha (Ed25519: 256 or 512; pure forces 512). */
  sha?: 'auto' | '256' | '512';
  /** --public-key-format. */
  publicKeyFormat?: 'hash' | 'full';
  /** --pure: sign the image itself instead of its digest. */
  pure?: boolean;
  /** --load-addr (sets RAM_LOAD), --rom-fixed (sets ROM_FIXED). */
  loadAddr?: number;
  romFixed?: number;
  nonBootable?: boolean;
  /** --erased-val 0 | 0xff (default 0xff). */
  erasedVal?: 0 | 0xff;
  /** --vid / --cid: raw UUID, 32 hex digits, or a name (uuid5: DNS namespace for vid, the vid for cid). */
  vid?: string;
  cid?: string;
  /** --custom-tlv: vendor-reserved types (0xa0..0xfffe, low byte >= 0xa0 as imgtool checks range only), in order. */
  customTlvs?: [number, Uint8Array][];
}

export interface SignedImage {
  image: Uint8Array;
  hashAlg: 'sha256' | 'sha512';
  digest: Uint8Array;
  signature?: Uint8Array;
  /** Trailer bytes appended by pad (0 when not padded). */
  paddedTo?: number;
}

function checkInt(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < min || v > max) throw new McubootError('bad-option', `${name} ${v} out of range ${min}..${max}`);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

const BOOT_MAGIC = Uint8Array.of(0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80);
const BOOT_MAGIC_TAIL = Uint8Array.of(0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a);

/** The swap trailer imgtool appends for --pad: its size, boot magic and image_ok position. */
export function trailerLayout(opts: Pick<SignImageOptions, 'align' | 'maxAlign' | 'maxSectors' | 'overwriteOnly'>): {
  size: number;
  maxAlign: number;
  magic: Uint8Array;
  /** Offset of image_ok from the end of the trailer (negative). */
  imageOkIndex: number;
} {
  const align = opts.align ?? 1;
  if (![1, 2, 4, 8, 16, 32].includes(align)) throw new McubootError('bad-option', `invalid alignment ${align}: one of 1, 2, 4, 8, 16, 32`);
  const maxAlign = opts.maxAlign ?? Math.max(8, align);
  if (opts.maxAlign !== undefined && ![8, 16, 32].includes(maxAlign)) throw new McubootError('bad-option', `invalid max-align ${maxAlign}: one of 8, 16, 32`);
  let magic: Uint8Array;
  if (maxAlign === 8) magic = BOOT_MAGIC;
  else {
    magic = new Uint8Array(16);
    magic[0] = maxAlign & 0xff;
    magic[1] = maxAlign >> 8;
    magic.set(BOOT_MAGIC_TAIL, 2);
  }
  const magicAlign = alignUp(16, maxAlign);
  let size: number;
  if (opts.overwriteOnly) size = maxAlign * 2 + magicAlign;
  else {
    const m = opts.maxSectors ?? 128;
    checkInt('max-sectors', m, 1, 0x100000);
    size = m * 3 * align + maxAlign * 4 + magicAlign;
  }
  return { size, maxAlign, magic, imageOkIndex: -(magicAlign + maxAlign) };
}

/** uuid5 (RFC 4122 name-based, SHA-1) as Python's uuid.uuid5. */
function uuid5(namespace: Uint8Array, name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  const buf = new Uint8Array(16 + n.length);
  buf.set(namespace, 0);
  buf.set(n, 16);
  const h = sha1(buf).slice(0, 16);
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  return h;
}
const NAMESPACE_DNS = Uint8Array.of(0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8);

/** imgtool's parse_uuid: '1234…-…' or 32 hex digits raw, otherwise uuid5(namespace, name). */
export function parseUuid(value: string, namespace: Uint8Array | undefined): Uint8Array {
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(value) || /^[0-9a-fA-F]{32}$/.test(value)) {
    const h = value.replace(/-/g, '');
    return Uint8Array.from({ length: 16 }, (_, i) => parseInt(h.slice(i * 2, i * 2 + 2), 16));
  }
  // eslint-disable-next-line no-control-regex
  if (value.length > 0 && !/[\x00-\x1f\x7f]/.test(value)) {
    if (!namespace) throw new McubootError('bad-option', `class id '${value}' is a name, which needs a vendor id (--vid) as its namespace`);
    return uuid5(namespace, value);
  }
  throw new McubootError('bad-option', `unknown UUID format: '${value}'`);
}

class TlvWriter {
  private parts: Uint8Array[] = [];
  private size = 0;
  constructor(private magic: number) {}
  add(type: number, value: Uint8Array): void {
    if (value.length > 0xffff) throw new McubootError('bad-option', `TLV ${tlvName(type)} value of ${value.length} bytes is too long`);
    const h = Uint8Array.of(type & 0xff, type >> 8, value.length & 0xff, value.length >> 8);
    this.parts.push(h, value);
    this.size += TLV_SIZE + value.length;
  }
  get length(): number {
    return this.size === 0 ? 0 : TLV_INFO_SIZE + this.size;
  }
  bytes(): Uint8Array {
    if (this.size === 0) return new Uint8Array(0);
    const total = TLV_INFO_SIZE + this.size;
    if (total > 0xffff) throw new McubootError('bad-option', `TLV area of ${total} bytes exceeds 65535`);
    const out = new Uint8Array(total);
    out[0] = this.magic & 0xff;
    out[1] = this.magic >> 8;
    out[2] = total & 0xff;
    out[3] = total >> 8;
    let o = TLV_INFO_SIZE;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

const le32 = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);

/**
 * Sign (or, without a key, just hash) a raw firmware binary into an MCUboot
 * image, byte-identical to `imgtool sign` with the corresponding options.
 * Throws McubootError ('bad-option', 'bad-input', 'bad-version', 'oversized').
 */
export async function signImage(input: Uint8Array, opts: SignImageOptions): Promise<SignedImage> {
  const version = typeof opts.version === 'string' ? parseVersion(opts.version) : opts.version;
  checkInt('version major', version.major, 0, 0xff);
  checkInt('version minor', version.minor, 0, 0xff);
  checkInt('version revision', version.revision, 0, 0xffff);
  checkInt('version build', version.build, 0, 0xffffffff);
  const headerSize = opts.headerSize;
  if (!Number.isInteger(headerSize) || headerSize < IMAGE_HEADER_SIZE || headerSize > 0xffff) {
    throw new McubootError('bad-option', `header size ${headerSize} must be ${IMAGE_HEADER_SIZE}..65535`);
  }
  checkInt('slot size', opts.slotSize, 0, 0xffffffff);
  checkInt('load address', opts.loadAddr, 0, 0xffffffff);
  checkInt('rom-fixed address', opts.romFixed, 0, 0xffffffff);
  if (opts.loadAddr && opts.romFixed) throw new McubootError('bad-option', 'cannot set rom-fixed and load-addr at the same time');
  const erased = opts.erasedVal ?? 0xff;
  if (erased !== 0 && erased !== 0xff) throw new McubootError('bad-option', 'erased value must be 0 or 0xff');
  if (opts.key !== undefined && opts.key.length !== 32) throw new McubootError('bad-option', `Ed25519 private key must be 32 bytes, got ${opts.key.length}`);
  const pure = !!opts.pure;
  const userSha = opts.sha ?? 'auto';
  if (pure && userSha !== 'auto') throw new McubootError('bad-option', 'pure signatures enforce SHA-512; --sha cannot be chosen with --pure');
  if (pure && !opts.key) throw new McubootError('bad-option', 'a pure signature needs a signing key');
  if (!['auto', '256', '512'].includes(userSha)) throw new McubootError('bad-option', `unsupported --sha ${userSha}: 256 or 512`);
  const useSha512 = pure || userSha === '512';
  const hashAlg = useSha512 ? 'sha512' : 'sha256';
  const hashFn = useSha512 ? sha512 : sha256;
  const pubFormat = opts.publicKeyFormat ?? 'hash';
  if (pubFormat !== 'hash' && pubFormat !== 'full') throw new McubootError('bad-option', `public key format must be hash or full`);
  let securityCounter: number | undefined;
  if (opts.securityCounter === 'auto') securityCounter = ((version.major << 24) >>> 0) + (version.minor << 16) + version.revision;
  else if (opts.securityCounter !== undefined) {
    checkInt('security counter', opts.securityCounter, 0, 0xffffffff);
    securityCounter = opts.securityCounter;
  }
  const pad = !!(opts.pad || opts.confirm || opts.test);
  const trailer = trailerLayout(opts); // validates align/max-align even when unused
  if (pad && !opts.slotSize) throw new McubootError('bad-option', 'padding needs a slot size');

  // payload = [header area] + body
  let payload: Uint8Array;
  if (opts.padHeader) {
    payload = new Uint8Array(headerSize + input.length);
    payload.fill(erased, 0, headerSize);
    payload.set(input, headerSize);
  } else {
    if (input.length < headerSize) {
      throw new McubootError('bad-input', `input is ${input.length} bytes, shorter than the ${headerSize}-byte header area (use pad-header)`);
    }
    for (let i = 0; i < headerSize; i++) {
      if (input[i] !== 0) throw new McubootError('bad-input', 'header padding was not requested and the image does not start with zeros');
    }
    payload = input.slice();
  }
  const imgSize = payload.length - headerSize;

  let vid: Uint8Array | undefined;
  let cid: Uint8Array | undefined;
  if (opts.vid !== undefined) vid = parseUuid(opts.vid, NAMESPACE_DNS);
  if (opts.cid !== undefined) cid = parseUuid(opts.cid, vid);

  const prot = new TlvWriter(TLV_PROT_INFO_MAGIC);
  if (securityCounter !== undefined) prot.add(TLV.SEC_CNT, le32(securityCounter));
  if (vid) prot.add(TLV.UUID_VID, vid);
  if (cid) prot.add(TLV.UUID_CID, cid);
  const seen = new Set<number>();
  const known = new Set<number>(Object.values(TLV));
  for (const [tag, value] of opts.customTlvs ?? []) {
    if (!Number.isInteger(tag) || tag < 0xa0 || tag > 0xfffe) throw new McubootError('bad-option', `custom TLV type ${hex(tag)} outside 0x00a0..0xfffe`);
    if (known.has(tag)) throw new McubootError('bad-option', `custom TLV ${hex(tag)} conflicts with a predefined TLV`);
    if (seen.has(tag)) throw new McubootError('bad-option', `custom TLV ${hex(tag)} given twice`);
    seen.add(tag);
    prot.add(tag, value);
  }
  const protBytes = prot.bytes();

  let flags = 0;
  if (opts.loadAddr) flags |= IMAGE_F.RAM_LOAD;
  if (opts.romFixed) flags |= IMAGE_F.ROM_FIXED;
  if (opts.nonBootable) flags |= IMAGE_F.NON_BOOTABLE;
  const h = new DataView(payload.buffer, payload.byteOffset, IMAGE_HEADER_SIZE);
  h.setUint32(0, IMAGE_MAGIC, true);
  h.setUint32(4, (opts.romFixed || opts.loadAddr || 0) >>> 0, true);
  h.setUint16(8, headerSize, true);
  h.setUint16(10, protBytes.length, true);
  h.setUint32(12, imgSize, true);
  h.setUint32(16, flags, true);
  h.setUint8(20, version.major);
  h.setUint8(21, version.minor);
  h.setUint16(22, version.revision, true);
  h.setUint32(24, version.build, true);
  h.setUint32(28, 0, true);

  // signed region = payload + protected TLVs
  const signedLen = payload.length + protBytes.length;
  const tlv = new TlvWriter(TLV_INFO_MAGIC);
  // assemble into one buffer: unprotected TLV area is at most a few hundred bytes
  const digestRegion = new Uint8Array(signedLen);
  digestRegion.set(payload, 0);
  digestRegion.set(protBytes, payload.length);
  const digest = hashFn(digestRegion);
  tlv.add(useSha512 ? TLV.SHA512 : TLV.SHA256, digest);
  if (pure) tlv.add(TLV.SIG_PURE, Uint8Array.of(1));
  let signature: Uint8Array | undefined;
  if (opts.key) {
    const pub = await ed25519PublicKey(opts.key);
    const spki = ed25519Spki(pub);
    if (pubFormat === 'hash') tlv.add(TLV.KEYHASH, hashFn(spki));
    else tlv.add(TLV.PUBKEY, spki);
    signature = await ed25519Sign(pure ? digestRegion : digest, opts.key);
    tlv.add(TLV.ED25519, signature);
  }
  const tlvBytes = tlv.bytes();
  const imageLen = signedLen + tlvBytes.length;
  if (opts.slotSize && imageLen + trailer.size > opts.slotSize) {
    throw new McubootError(
      'oversized',
      `image size (0x${imageLen.toString(16)}) + trailer (0x${trailer.size.toString(16)}) exceeds requested size 0x${opts.slotSize.toString(16)}`,
    );
  }
  const total = pad ? opts.slotSize! : imageLen;
  const out = new Uint8Array(total);
  out.set(digestRegion, 0);
  out.set(tlvBytes, signedLen);
  if (pad) {
    out.fill(erased, imageLen);
    out.set(trailer.magic, total - trailer.magic.length);
    if (opts.confirm && !opts.overwriteOnly) out[total + trailer.imageOkIndex] = 0x01;
  }
  return { image: out, hashAlg, digest, signature, ...(pad ? { paddedTo: total } : {}) };
}

// ---------------------------------------------------------------- files

/**
 * Flatten a firmware file as imgtool reads it: Intel HEX when the name ends
 * in .hex (gaps 0xff, from the lowest address), raw binary otherwise.
 * Throws IhexError for a bad hex file.
 */
export function readFirmwareFile(name: string, bytes: Uint8Array): { format: 'hex' | 'bin'; data: Uint8Array; baseAddr?: number } {
  if (/\.hex$/i.test(name)) {
    const { baseAddr, data } = readIhexBinary(new TextDecoder('latin1').decode(bytes));
    return { format: 'hex', data, baseAddr };
  }
  return { format: 'bin', data: bytes };
}

/**
 * The Intel HEX layout imgtool writes for a signed image at `baseAddr`: the
 * image itself and, for pad/confirm/test, only the trailer bytes that matter
 * (image_ok flag and boot magic at the end of the slot), not the fill.
 * `image` is the unpadded signed image.
 */
export function signedImageHexSegments(image: Uint8Array, baseAddr: number, opts: SignImageOptions): IhexSegment[] {
  const segs: IhexSegment[] = [{ address: baseAddr, data: image }];
  if (opts.pad || opts.confirm || opts.test) {
    if (!opts.slotSize) throw new McubootError('bad-option', 'padding needs a slot size');
    const t = trailerLayout(opts);
    const trailerAddr = baseAddr + opts.slotSize - t.size;
    if ((opts.test || opts.confirm) && !opts.overwriteOnly) {
      const flag = new Uint8Array(t.maxAlign).fill(opts.erasedVal ?? 0xff);
      if (opts.confirm) flag[0] = 0x01;
      segs.push({ address: trailerAddr + t.size + t.imageOkIndex, data: flag });
    }
    segs.push({ address: trailerAddr + t.size - t.magic.length, data: t.magic });
  }
  return segs;
}

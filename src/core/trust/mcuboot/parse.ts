/**
 * MCUboot image format: constants, header and TLV parsing, key hashes.
 *
 * Layout (all little endian):
 *   header (32 bytes, padded to ih_hdr_size) | body (ih_img_size) |
 *   [protected TLV area: info 0x6908 + TLVs, ih_protect_tlv_size bytes] |
 *   unprotected TLV area: info 0x6907 + TLVs | [padding / swap trailer]
 * The image hash and the signature cover header + body + protected TLVs.
 *
 * Numbers follow mcu-tools/mcuboot boot/bootutil/include/bootutil/image.h.
 * verify.ts checks an image as bootutil/image_validate.c does; sign.ts signs
 * byte-identically to imgtool.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { FieldbenchError } from '../../base/errors.ts';

export const IMAGE_MAGIC = 0x96f3b83d;
export const IMAGE_MAGIC_V1 = 0x96f3b83c;
export const IMAGE_HEADER_SIZE = 32;
export const TLV_INFO_MAGIC = 0x6907;
export const TLV_PROT_INFO_MAGIC = 0x6908;
export const TLV_INFO_SIZE = 4;
export const TLV_SIZE = 4;

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
export const ALLOWED_UNPROTECTED = new Set<number>([
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
export const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
export const hex = (n: number, w = 0) => '0x' + n.toString(16).padStart(w, '0');

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

export function spkiToRaw(der: Uint8Array): Uint8Array | undefined {
  if (der.length !== 44) return undefined;
  for (let i = 0; i < ED25519_SPKI_PREFIX.length; i++) if (der[i] !== ED25519_SPKI_PREFIX[i]) return undefined;
  return der.subarray(12);
}

/** KEYHASH TLV value for a key: SHA-256 (or SHA-512 for --sha 512 images) of its SPKI DER. */
export function keyHash(pub: Uint8Array, alg: 'sha256' | 'sha512' = 'sha256'): Uint8Array {
  const spki = ed25519Spki(pub);
  return alg === 'sha512' ? sha512(spki) : sha256(spki);
}

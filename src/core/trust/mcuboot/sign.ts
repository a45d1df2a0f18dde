/** Sign an MCUboot image byte-identically to imgtool's `sign` (Ed25519), and the Intel HEX layout imgtool writes for it. */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { sha1 } from '@noble/hashes/legacy.js';
import { ed25519PublicKey, ed25519Sign } from '../ed25519.ts';
import type { IhexSegment } from '../ihex.ts';
import { ed25519Spki, hex, IMAGE_F, IMAGE_HEADER_SIZE, IMAGE_MAGIC, type ImageVersion, McubootError, parseVersion, TLV, TLV_INFO_MAGIC, TLV_INFO_SIZE, TLV_PROT_INFO_MAGIC, TLV_SIZE, tlvName } from './parse.ts';

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

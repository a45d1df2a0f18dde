/** Verify an MCUboot image as bootutil/image_validate.c does for an Ed25519 build (hash, key, signature, counters, UUIDs). */
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { ed25519Verify } from '../ed25519.ts';
import { equalBytes, toHex } from '../../base/bytes.ts';
import { ALLOWED_UNPROTECTED, ed25519Spki, IMAGE_F, McubootError, type McubootImage, parseImage, spkiToRaw, TLV, tlvName, u32, versionString } from './parse.ts';

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

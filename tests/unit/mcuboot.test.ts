import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { sha256 } from '@noble/hashes/sha2.js';
import { McubootError, TLV, IMAGE_F, keyHash, ed25519Spki, parseImage, parseVersion } from '../../src/core/trust/mcuboot/parse.ts';
import { readFirmwareFile } from '../../src/core/trust/ihex.ts';
import { signImage, type SignImageOptions } from '../../src/core/trust/mcuboot/sign.ts';
import { verifyImage } from '../../src/core/trust/mcuboot/verify.ts';
import { IhexError, parseIhex, ihexToBinary, writeIhex } from '../../src/core/trust/ihex.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { ed25519PublicKey, ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { commands } from '../../src/cli/commands/image.ts';

const ROOT = path.resolve(__dirname, '../..');
const VECTORS = path.resolve(__dirname, '../../../shared/vectors');
const KEY_PEM = path.join(VECTORS, 'mcuboot/root-ed25519.pem');
const PUB_PEM = path.join(VECTORS, 'mcuboot/root-ed25519-pub.pem');
const GOLDEN = path.join(ROOT, 'tests/golden/mcuboot');
const params = JSON.parse(readFileSync(path.join(GOLDEN, 'params.json'), 'utf8')) as {
  cases: { name: string; input: string; output: string; args: string[]; sha256: string }[];
};

const u8 = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const golden = (name: string) => u8(readFileSync(path.join(GOLDEN, name)));

let seed: Uint8Array;
let pub: Uint8Array;
const otherSeed = sha256(new TextEncoder().encode('fieldbench other test key'));
let otherPub: Uint8Array;

beforeAll(async () => {
  const k = parsePem(readFileSync(KEY_PEM, 'utf8'));
  if (k.kind !== 'ed25519-private') throw new Error('sample key is not Ed25519');
  seed = k.seed;
  pub = await ed25519PublicKey(seed);
  otherPub = await ed25519PublicKey(otherSeed);
});

function io(cwd: string) {
  const o = { out: '', err: '' };
  return { o, io: { out: (t: string) => void (o.out += t), err: (t: string) => void (o.err += t), cwd } };
}

/** Build a small signed image for mutation tests. */
async function smallImage(extra: Partial<SignImageOptions> = {}): Promise<Uint8Array> {
  const body = sha256(new TextEncoder().encode('small body')).slice(0, 24);
  return (await signImage(body, { key: seed, version: '1.2.3+4', headerSize: 32, padHeader: true, securityCounter: 7, ...extra })).image;
}

/** Replace the unprotected TLV area of an image with the given TLVs. */
function withTlvs(image: Uint8Array, tlvs: [number, Uint8Array][]): Uint8Array {
  const img = parseImage(image);
  const body = image.subarray(0, img.signedEnd);
  const size = 4 + tlvs.reduce((n, [, v]) => n + 4 + v.length, 0);
  const out = new Uint8Array(body.length + size);
  out.set(body);
  let o = body.length;
  out.set([0x07, 0x69, size & 0xff, size >> 8], o);
  o += 4;
  for (const [t, v] of tlvs) {
    out.set([t & 0xff, t >> 8, v.length & 0xff, v.length >> 8], o);
    out.set(v, o + 4);
    o += 4 + v.length;
  }
  return out;
}

describe('golden images (imgtool byte equality)', () => {
  it('params cover the option space', () => {
    expect(params.cases.length).toBeGreaterThanOrEqual(10);
    for (const c of params.cases) expect(hex(sha256(golden(c.output)))).toBe(c.sha256);
  });

  for (const c of params.cases) {
    it(`image sign reproduces ${c.name} byte for byte`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'fb-mcuboot-'));
      const out = path.join(dir, c.output);
      const { o, io: cio } = io(GOLDEN);
      const key = c.name === 'a-unsigned' ? [] : ['--key', KEY_PEM];
      const rc = await commands['image sign'].run([...key, ...c.args, c.input, out], cio);
      expect(o.err).toBe('');
      expect(rc).toBe(0);
      expect(hex(u8(readFileSync(out)))).toBe(hex(golden(c.output)));
    });
  }

  it('signImage API reproduces a-sha256-keyhash and a-pure', async () => {
    const input = golden('app-a.bin');
    const a = await signImage(input, { key: seed, version: '1.2.3+4', headerSize: 0x200, padHeader: true, slotSize: 0x10000 });
    expect(hex(a.image)).toBe(hex(golden('a-sha256-keyhash.bin')));
    expect(a.hashAlg).toBe('sha256');
    const p = await signImage(input, { key: seed, version: '0.9.1+77', headerSize: 0x200, padHeader: true, pure: true, securityCounter: 5 });
    expect(hex(p.image)).toBe(hex(golden('a-pure.bin')));
    expect(p.hashAlg).toBe('sha512');
  });

  it('the sample key hash matches the vector README', () => {
    expect(hex(keyHash(pub))).toBe('c1907fa4eac7fae3840a78902b6f0710b037e9968e5c6274a12a28790c7d4e3c');
    expect(hex(pub)).toBe('d4b31ba49a3add3f825d10ca7f31b50b0de87f37ccc49f1a403a5c1320ffb4e0');
  });
});

describe('verifyImage', () => {
  const signedCases = params.cases.filter((c) => c.name !== 'a-unsigned');

  for (const c of signedCases) {
    it(`accepts ${c.name} with the sample key`, async () => {
      const data = readFirmwareFile(c.output, golden(c.output)).data;
      const r = await verifyImage(data, { keys: [otherPub, pub] });
      expect(r.reason).toMatch(/^accepted/);
      expect(r.ok).toBe(true);
      expect(r.verdict).toBe('accept');
      expect(r.keyIndex).toBe(1);
      expect(r.checks.find((x) => x.name === 'signature')!.result).toBe('pass');
      expect(r.checks.find((x) => x.name === 'key')!.result).toBe('pass');
    });
  }

  it('reports version, hash, pure, security counter and UUIDs', async () => {
    const r1 = await verifyImage(golden('a-sha512-full-seccnt.bin'), { keys: [pub] });
    expect(r1.version).toBe('2.0.7+0');
    expect(r1.hashAlg).toBe('sha512');
    expect(r1.securityCounter).toBe(0x02000007);
    expect(r1.image!.tlvs.map((t) => t.name)).toEqual(['SEC_CNT', 'SHA512', 'PUBKEY', 'ED25519']);
    const r2 = await verifyImage(golden('a-pure.bin'), { keys: [pub] });
    expect(r2.pure).toBe(true);
    expect(r2.ok).toBe(true);
    const b = golden('b-nopad-uuid-custom.bin');
    const img = parseImage(b);
    const vid = img.tlvs.find((t) => t.type === TLV.UUID_VID)!.value;
    const cid = img.tlvs.find((t) => t.type === TLV.UUID_CID)!.value;
    expect(img.tlvs.filter((t) => t.protected).map((t) => t.type)).toEqual([0x50, 0x74, 0x75, 0xa0, 0x1a5]);
    expect((await verifyImage(b, { keys: [pub], vendorId: vid, classId: cid, minSecurityCounter: 0x42 })).ok).toBe(true);
    const wrong = vid.slice();
    wrong[0] ^= 1;
    const r3 = await verifyImage(b, { keys: [pub], vendorId: wrong });
    expect(r3.ok).toBe(false);
    expect(r3.reason).toMatch(/vendor UUID .* does not match/);
    const r4 = await verifyImage(b, { keys: [pub], minSecurityCounter: 0x43 });
    expect(r4.ok).toBe(false);
    expect(r4.reason).toMatch(/security counter 66 is below .*67.*rollback/);
    const r5 = await verifyImage(golden('a-sha256-keyhash.bin'), { keys: [pub], requireSecurityCounter: true });
    expect(r5.ok).toBe(false);
    expect(r5.reason).toMatch(/no security counter/);
    const r6 = await verifyImage(golden('a-sha256-keyhash.bin'), { keys: [pub], classId: cid });
    expect(r6.reason).toMatch(/no image class UUID TLV but one is required/);
  });

  it('padded images: trailer bytes are outside the image and do not matter', async () => {
    const b = golden('b-padded-confirm.bin');
    const img = parseImage(b);
    expect(img.trailingBytes).toBe(b.length - img.end);
    expect(b.subarray(b.length - 16)).toEqual(Uint8Array.from([0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80]));
    expect((await verifyImage(b, { keys: [pub], maxImageSize: 0x1800 })).ok).toBe(true);
    const r = await verifyImage(b, { keys: [pub], maxImageSize: img.end - 1 });
    expect(r.ok).toBe(false);
    expect(r.checks[0]).toMatchObject({ name: 'size', result: 'fail' });
  });

  it('rejects an image signed by an untrusted key', async () => {
    const r = await verifyImage(golden('a-sha256-keyhash.bin'), { keys: [otherPub] });
    expect(r.ok).toBe(false);
    expect(r.checks.find((c) => c.name === 'key')).toMatchObject({ result: 'fail' });
    expect(r.reason).toMatch(/names no trusted key/);
    const full = await verifyImage(golden('a-sha512-full-seccnt.bin'), { keys: [otherPub] });
    expect(full.ok).toBe(false);
    expect(full.reason).toMatch(/is not trusted/);
  });

  it('refuses an unsigned image where signatures are required, accepts it only when they are not', async () => {
    const u = golden('a-unsigned.bin');
    const r = await verifyImage(u, { keys: [pub] });
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/unsigned/);
    expect(r.checks.find((c) => c.name === 'hash')!.result).toBe('pass');
    const none = await verifyImage(u, { keys: [] });
    expect(none.ok).toBe(false);
    const relaxed = await verifyImage(u, { keys: [], requireSignature: false });
    expect(relaxed.ok).toBe(true);
    expect(relaxed.checks.find((c) => c.name === 'signature')!.result).toBe('absent');
    // the default is to require a signature
    const img = await smallImage({ key: undefined });
    expect((await verifyImage(img, { keys: [pub] })).ok).toBe(false);
  });

  it('a key hash naming a trusted key whose signature fails is a rejection, with no fallback to another key', async () => {
    const base = await smallImage();
    const img = parseImage(base);
    const hashTlv = img.tlvs.find((t) => t.type === TLV.SHA256)!.value;
    const goodOther = await ed25519Sign(hashTlv, otherSeed);
    const goodSample = await ed25519Sign(hashTlv, seed);
    const bad = goodSample.slice();
    bad[10] ^= 0x40;
    // trusted sample key, bad signature; then the other trusted key with a good signature
    const forged = withTlvs(base, [
      [TLV.SHA256, hashTlv],
      [TLV.KEYHASH, keyHash(pub)],
      [TLV.ED25519, bad],
      [TLV.KEYHASH, keyHash(otherPub)],
      [TLV.ED25519, goodOther],
    ]);
    const r = await verifyImage(forged, { keys: [pub, otherPub] });
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/trusted key #0 .* does not verify/);
    // control: the same layout with both signatures good is accepted
    const okImg = withTlvs(base, [
      [TLV.SHA256, hashTlv],
      [TLV.KEYHASH, keyHash(pub)],
      [TLV.ED25519, goodSample],
      [TLV.KEYHASH, keyHash(otherPub)],
      [TLV.ED25519, goodOther],
    ]);
    expect((await verifyImage(okImg, { keys: [pub, otherPub] })).ok).toBe(true);
    // a signature under an untrusted key is skipped (as bootutil does); the trusted one decides
    const mixed = withTlvs(base, [
      [TLV.SHA256, hashTlv],
      [TLV.KEYHASH, keyHash(otherPub)],
      [TLV.ED25519, bad],
      [TLV.KEYHASH, keyHash(pub)],
      [TLV.ED25519, goodSample],
    ]);
    const m = await verifyImage(mixed, { keys: [pub] });
    expect(m.ok).toBe(true);
    expect(m.keyIndex).toBe(0);
    // a signature with no key TLV before it names nobody: not accepted
    const bare = withTlvs(base, [
      [TLV.SHA256, hashTlv],
      [TLV.ED25519, goodSample],
    ]);
    expect((await verifyImage(bare, { keys: [pub] })).ok).toBe(false);
    // a truncated key hash is not a prefix match (bootutil's memcmp over keyhash_len)
    const short = withTlvs(base, [
      [TLV.SHA256, hashTlv],
      [TLV.KEYHASH, keyHash(pub).subarray(0, 4)],
      [TLV.ED25519, goodSample],
    ]);
    const s = await verifyImage(short, { keys: [pub] });
    expect(s.ok).toBe(false);
    expect(s.reason).toMatch(/KEYHASH TLV is 4 bytes/);
  });

  it('rejects every single-bit flip anywhere in a small signed image', async () => {
    const img = await smallImage();
    expect((await verifyImage(img, { keys: [pub] })).ok).toBe(true);
    const parsed = parseImage(img);
    expect(parsed.signedEnd).toBe(32 + 24 + 12);
    let rejected = 0;
    const copy = img.slice();
    for (let i = 0; i < img.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        copy[i] ^= 1 << bit;
        const r = await verifyImage(copy, { keys: [pub] });
        if (r.ok) throw new Error(`flip of byte ${i} bit ${bit} accepted`);
        rejected++;
        copy[i] ^= 1 << bit;
      }
    }
    expect(rejected).toBe(img.length * 8);
  }, 60_000);

  it('rejects every single-bit flip in the signed region and signature of a pure image', async () => {
    const img = await smallImage({ pure: true });
    const parsed = parseImage(img);
    const sig = parsed.tlvs.find((t) => t.type === TLV.ED25519)!;
    const ranges: [number, number][] = [
      [0, parsed.signedEnd],
      [sig.offset, sig.offset + sig.length],
    ];
    // strip the SHA512 TLV so the pure signature alone guards the image
    const noHash = withTlvs(img, parsed.tlvs.filter((t) => !t.protected && t.type !== TLV.SHA512).map((t) => [t.type, t.value.slice()] as [number, Uint8Array]));
    const r0 = await verifyImage(noHash, { keys: [pub] });
    expect(r0.ok).toBe(true);
    expect(r0.checks.find((c) => c.name === 'hash')!.result).toBe('absent');
    const np = parseImage(noHash);
    const nsig = np.tlvs.find((t) => t.type === TLV.ED25519)!;
    for (const [img2, rs] of [
      [img, ranges],
      [noHash, [[0, np.signedEnd], [nsig.offset, nsig.offset + nsig.length]] as [number, number][]],
    ] as const) {
      const copy = img2.slice();
      for (const [a, b] of rs) {
        for (let i = a; i < b; i++) {
          for (let bit = 0; bit < 8; bit++) {
            copy[i] ^= 1 << bit;
            if ((await verifyImage(copy, { keys: [pub] })).ok) throw new Error(`flip ${i}.${bit} accepted`);
            copy[i] ^= 1 << bit;
          }
        }
      }
    }
  }, 60_000);

  it('truncation at every length is a clear rejection, never a crash', async () => {
    const img = await smallImage();
    for (let n = 0; n < img.length; n++) {
      const r = await verifyImage(img.subarray(0, n), { keys: [pub] });
      expect(r.ok).toBe(false);
      expect(r.checks[0].result).toBe('fail');
      let err: unknown;
      try {
        parseImage(img.subarray(0, n));
      } catch (e) {
        err = e;
      }
      // cutting inside the last TLV leaves a shorter area whose size field still says more
      expect(err).toBeInstanceOf(McubootError);
      expect(['truncated', 'bad-magic', 'bad-tlv']).toContain((err as McubootError).code);
    }
    expect(() => parseImage(img.subarray(0, 10))).toThrow(/shorter than the 32-byte image header/);
  });

  it('malformed headers and TLV areas yield typed errors', async () => {
    const img = await smallImage();
    const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const mutate = (f: (b: Uint8Array) => void) => {
      const c = img.slice();
      f(c);
      return c;
    };
    const code = (b: Uint8Array, opts?: { maxImageSize?: number }) => {
      try {
        parseImage(b, opts);
        return 'ok';
      } catch (e) {
        expect(e).toBeInstanceOf(McubootError);
        return `${(e as McubootError).code}: ${(e as Error).message}`;
      }
    };
    expect(code(mutate((b) => dv(b).setUint32(12, 0xffffffff, true)))).toMatch(/^truncated: ih_img_size 0xffffffff puts the TLV area at 0x10000001f/);
    expect(code(mutate((b) => dv(b).setUint16(8, 0xffff, true)))).toMatch(/^truncated: ih_hdr_size/);
    expect(code(mutate((b) => dv(b).setUint16(8, 16, true)))).toMatch(/^bad-header/);
    expect(code(mutate((b) => dv(b).setUint32(0, 0x96f3b83c, true)))).toMatch(/^bad-magic: legacy/);
    expect(code(mutate((b) => dv(b).setUint32(0, 0xffffffff, true)))).toMatch(/^bad-magic: no image/);
    expect(code(mutate((b) => dv(b).setUint16(10, 0, true)))).toMatch(/^bad-tlv: protected TLV area is 12 bytes but the header's ih_protect_tlv_size says 0/);
    expect(code(mutate((b) => dv(b).setUint16(10, 0xfff0, true)))).toMatch(/^bad-tlv/);
    const p = parseImage(img);
    // protected TLV length pointing past its area
    expect(code(mutate((b) => dv(b).setUint16(p.tlvOffset + 6, 0x4000, true)))).toMatch(/^bad-tlv: protected TLV SEC_CNT .* overrunning/);
    // unprotected area total pointing past the end of the file
    expect(code(mutate((b) => dv(b).setUint16(p.signedEnd + 2, 0xfff0, true)))).toMatch(/^truncated: TLV area .* runs .* past the end/);
    // unprotected area too short for its last TLV
    const sigTlv = p.tlvs.find((t) => t.type === TLV.ED25519)!;
    expect(code(mutate((b) => dv(b).setUint16(sigTlv.offset - 2, 65, true)))).toMatch(/^bad-tlv: unprotected TLV ED25519 .* overrunning its area by 1/);
    // stray bytes that cannot hold a TLV header
    expect(code(mutate((b) => dv(b).setUint16(p.signedEnd + 2, (p.end - p.signedEnd) - 2, true)))).toMatch(/^bad-tlv: unprotected TLV ED25519 .* overrunning/);
    expect(code(mutate((b) => dv(b).setUint16(p.signedEnd, 0x1234, true)))).toMatch(/^bad-tlv: no TLV info/);
    expect(code(mutate((b) => dv(b).setUint16(p.signedEnd + 2, 2, true)))).toMatch(/^bad-tlv: TLV area size 2/);
    expect(code(img, { maxImageSize: img.length - 1 })).toMatch(/^oversized/);
    expect(code(img, { maxImageSize: img.length })).toBe('ok');
  });

  it('random corruption never throws and never accepts', async () => {
    const img = await smallImage();
    let state = 0x12345678;
    const rnd = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8) & 0xffff;
    for (let i = 0; i < 400; i++) {
      const c = img.slice();
      const n = 1 + (rnd() % 6);
      for (let j = 0; j < n; j++) c[rnd() % c.length] = rnd() & 0xff;
      if (hex(c) === hex(img)) continue;
      const r = await verifyImage(c, { keys: [pub] });
      expect(r.ok).toBe(false);
    }
    // and garbage of every size up to 300
    for (let n = 0; n < 300; n += 7) {
      const g = Uint8Array.from({ length: n }, () => rnd() & 0xff);
      expect((await verifyImage(g, { keys: [pub] })).ok).toBe(false);
    }
  });

  it('policy: unprotected security counter, encrypted images, duplicate hashes, bad key material', async () => {
    const base = await smallImage({ securityCounter: undefined });
    const p = parseImage(base);
    const tl = p.tlvs.map((t) => [t.type, t.value.slice()] as [number, Uint8Array]);
    const unprotCnt = withTlvs(base, [[TLV.SEC_CNT, Uint8Array.of(9, 0, 0, 0)], ...tl]);
    const r = await verifyImage(unprotCnt, { keys: [pub] });
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/SEC_CNT must be in the protected TLV area/);
    const r2 = await verifyImage(unprotCnt, { keys: [pub], allowAnyUnprotectedTlv: true });
    expect(r2.reason).toMatch(/SEC_CNT TLV is outside the protected area/);
    const dup = withTlvs(base, [tl[0], ...tl]);
    expect((await verifyImage(dup, { keys: [pub] })).reason).toMatch(/2 image hash TLVs/);
    const enc = base.slice();
    enc[16] |= IMAGE_F.ENCRYPTED_AES128;
    expect((await verifyImage(enc, { keys: [pub] })).reason).toMatch(/encrypted/);
    expect((await verifyImage(base, { keys: [new Uint8Array(31)] })).ok).toBe(false);
    const pure = await smallImage({ pure: true });
    const pp = parseImage(pure);
    const badPure = withTlvs(
      pure,
      pp.tlvs.filter((t) => !t.protected).map((t) => [t.type, t.type === TLV.SIG_PURE ? Uint8Array.of(2) : t.value.slice()] as [number, Uint8Array]),
    );
    expect((await verifyImage(badPure, { keys: [pub] })).reason).toMatch(/SIG_PURE TLV must hold the single byte 0x01/);
  });
});

describe('signImage options', () => {
  it('validates its inputs with typed errors', async () => {
    const body = new Uint8Array(100);
    const bad = async (o: Partial<SignImageOptions>, input = body) => {
      try {
        await signImage(input, { key: seed, version: '1.0.0', headerSize: 32, ...o });
        return 'ok';
      } catch (e) {
        expect(e).toBeInstanceOf(McubootError);
        return (e as McubootError).code;
      }
    };
    expect(await bad({})).toBe('ok');
    expect(await bad({ version: '1.0.0.0' })).toBe('bad-version');
    expect(await bad({ version: '256.0.0' })).toBe('bad-version');
    expect(await bad({ version: '01.0' })).toBe('bad-version');
    expect(await bad({ headerSize: 16 })).toBe('bad-option');
    expect(await bad({}, Uint8Array.of(1, ...new Uint8Array(99)))).toBe('bad-input');
    expect(await bad({}, new Uint8Array(10))).toBe('bad-input');
    expect(await bad({ pure: true, sha: '256' })).toBe('bad-option');
    expect(await bad({ align: 3 })).toBe('bad-option');
    expect(await bad({ slotSize: 100 })).toBe('oversized');
    expect(await bad({ pad: true })).toBe('bad-option');
    expect(await bad({ loadAddr: 1, romFixed: 2 })).toBe('bad-option');
    expect(await bad({ securityCounter: -1 })).toBe('bad-option');
    expect(await bad({ customTlvs: [[0x10, new Uint8Array(1)]] })).toBe('bad-option');
    expect(await bad({ cid: 'name-without-vid' })).toBe('bad-option');
    expect(parseVersion('1')).toEqual({ major: 1, minor: 0, revision: 0, build: 0 });
    expect(parseVersion('255.255.65535+4294967295')).toEqual({ major: 255, minor: 255, revision: 65535, build: 4294967295 });
  });

  it('embeds the SubjectPublicKeyInfo for the full public key format', async () => {
    const img = await smallImage({ publicKeyFormat: 'full' });
    const t = parseImage(img).tlvs.find((x) => x.type === TLV.PUBKEY)!;
    expect(hex(t.value)).toBe(hex(ed25519Spki(pub)));
    expect(t.value.length).toBe(44);
  });
});

describe('Intel HEX', () => {
  it('round-trips segments with gaps, 64 KiB crossings and start addresses', () => {
    const a = Uint8Array.from({ length: 70 }, (_, i) => i);
    const b = Uint8Array.from({ length: 40 }, (_, i) => 255 - i);
    const img = { segments: [{ address: 0xfff0, data: a }, { address: 0x20000, data: b }], startLinear: 0x08000123 };
    const text = writeIhex(img);
    expect(text.split('\n')[0]).toBe(':0400000508000123CB');
    const back = parseIhex(text);
    expect(back.startLinear).toBe(0x08000123);
    expect(back.segments.map((s) => [s.address, hex(s.data)])).toEqual([
      [0xfff0, hex(a)],
      [0x20000, hex(b)],
    ]);
    const flat = ihexToBinary(back);
    expect(flat.baseAddr).toBe(0xfff0);
    expect(flat.data.length).toBe(0x20000 + 40 - 0xfff0);
    expect(flat.data[70]).toBe(0xff);
    expect(flat.data[0x20000 - 0xfff0]).toBe(255);
    expect(writeIhex(back)).toBe(text);
  });

  it('lays records out exactly as imgtool (intelhex) does', () => {
    for (const name of ['app-c.hex', 'c-hex.hex', 'c-hex-padded.hex']) {
      const text = readFileSync(path.join(GOLDEN, name), 'latin1');
      expect(writeIhex(parseIhex(text))).toBe(text);
    }
    const fw = readFirmwareFile('c-hex.hex', golden('c-hex.hex'));
    expect(fw.baseAddr).toBe(0x10000);
    expect(fw.format).toBe('hex');
  });

  it('handles extended segment addresses (02) and start segment (03)', () => {
    const rec = (s: string) => {
      const bytes = Buffer.from(s, 'hex');
      let sum = 0;
      for (const x of bytes) sum += x;
      return ':' + s.toUpperCase() + ((-sum & 0xff).toString(16).padStart(2, '0').toUpperCase());
    };
    const text = [rec('020000021000'), rec('03001000aabbcc'), rec('0400000312345678'), rec('00000001')].join('\r\n');
    const img = parseIhex(text);
    expect(img.segments[0].address).toBe(0x10000 + 0x0010);
    expect(hex(img.segments[0].data)).toBe('aabbcc');
    expect(img.startSegment).toEqual({ cs: 0x1234, ip: 0x5678 });
  });

  it('errors carry line numbers', () => {
    const good = writeIhex([{ address: 0, data: new Uint8Array(40) }]);
    const lines = good.trimEnd().split('\n');
    const err = (t: string) => {
      try {
        parseIhex(t);
        return 'ok';
      } catch (e) {
        expect(e).toBeInstanceOf(IhexError);
        return (e as Error).message;
      }
    };
    const badSum = [...lines];
    badSum[1] = badSum[1].slice(0, -2) + '00';
    expect(err(badSum.join('\n'))).toMatch(/^line 2: checksum mismatch/);
    expect(err(lines.slice(0, -1).join('\n'))).toMatch(/no end-of-file record/);
    expect(err(['', ...lines].join('\n'))).toBe('ok');
    expect(err([lines[0], 'garbage', ...lines.slice(1)].join('\n'))).toMatch(/^line 2: record does not start with ':'/);
    expect(err([lines[0].replace(':10', ':11'), ...lines.slice(1)].join('\n'))).toMatch(/^line 1: byte count 17 does not match/);
    expect(err([lines[0].slice(0, 5) + 'zz' + lines[0].slice(7), ...lines.slice(1)].join('\n'))).toMatch(/^line 1: invalid hex digit/);
    expect(err([lines[0], lines[0], ...lines.slice(1)].join('\n'))).toMatch(/^line 2: data at 0x0 overlaps/);
    expect(err([...lines, lines[0]].join('\n'))).toMatch(/^line 5: data after the end-of-file record/);
    expect(err(':0000000AF6\n:00000001FF\n')).toMatch(/^line 1: unknown record type 0x0A/);
    expect(() => ihexToBinary(parseIhex(':00000001FF\n'))).toThrow(/no data/);
    const far = writeIhex([{ address: 0, data: new Uint8Array(1) }, { address: 0xf0000000, data: new Uint8Array(1) }]);
    expect(() => ihexToBinary(parseIhex(far))).toThrow(/spans/);
  });
});

describe('CLI: image info / verify / sign', () => {
  it('image info prints header and TLVs, --json is machine-readable', async () => {
    const { o, io: cio } = io(GOLDEN);
    expect(await commands['image info'].run(['b-nopad-uuid-custom.bin'], cio)).toBe(0);
    expect(o.out).toMatch(/version 3\.1\.0\+0/);
    expect(o.out).toMatch(/SEC_CNT .* = 66/);
    const j = io(GOLDEN);
    expect(await commands['image info'].run(['a-sha256-keyhash.bin', '--json'], j.io)).toBe(0);
    const d = JSON.parse(j.o.out);
    expect(d.version).toBe('1.2.3+4');
    expect(d.header.hdrSize).toBe(0x200);
    expect(d.tlvs.map((t: { name: string }) => t.name)).toEqual(['SHA256', 'KEYHASH', 'ED25519']);
    expect(d.tlvs[1].value).toBe('c1907fa4eac7fae3840a78902b6f0710b037e9968e5c6274a12a28790c7d4e3c');
    const bad = io(GOLDEN);
    expect(await commands['image info'].run(['app-a.bin'], bad.io)).toBe(2);
    expect(bad.o.err).toMatch(/not an MCUboot image/);
  });

  it('image verify: exit 0 accept, 1 reject with reason, 2 bad usage or unreadable', async () => {
    const ok = io(GOLDEN);
    expect(await commands['image verify'].run(['a-pure.bin', '--key', PUB_PEM], ok.io)).toBe(0);
    expect(ok.o.out).toMatch(/ACCEPT/);
    const priv = io(GOLDEN);
    expect(await commands['image verify'].run(['c-hex.hex', '--key', KEY_PEM, '--json'], priv.io)).toBe(0);
    expect(JSON.parse(priv.o.out)).toMatchObject({ verdict: 'accept', signedBy: KEY_PEM, hashAlg: 'sha256' });
    const dir = mkdtempSync(path.join(tmpdir(), 'fb-mcuboot-'));
    const otherPem = path.join(dir, 'other.pem');
    const { publicKeyPem } = await import('../../src/core/trust/keys.ts');
    writeFileSync(otherPem, publicKeyPem(otherPub));
    const rej = io(GOLDEN);
    expect(await commands['image verify'].run(['a-sha256-keyhash.bin', '--key', otherPem], rej.io)).toBe(1);
    expect(rej.o.err).toMatch(/^rejected: key hash c1907fa4eac7fae3… names no trusted key/);
    const uns = io(GOLDEN);
    expect(await commands['image verify'].run(['a-unsigned.bin', '--key', PUB_PEM], uns.io)).toBe(1);
    expect(uns.o.err).toMatch(/unsigned/);
    expect(await commands['image verify'].run(['a-unsigned.bin', '--allow-unsigned'], io(GOLDEN).io)).toBe(0);
    const roll = io(GOLDEN);
    expect(await commands['image verify'].run(['b-nopad-uuid-custom.bin', '--key', PUB_PEM, '--min-security-counter', '0x43'], roll.io)).toBe(1);
    expect(roll.o.err).toMatch(/rollback/);
    const tampered = golden('a-sha256-keyhash.bin').slice();
    tampered[0x300] ^= 1;
    writeFileSync(path.join(dir, 't.bin'), tampered);
    const t = io(dir);
    expect(await commands['image verify'].run(['t.bin', '--key', PUB_PEM], t.io)).toBe(1);
    expect(t.o.err).toMatch(/SHA256 mismatch/);
    expect(await commands['image verify'].run(['missing.bin', '--key', PUB_PEM], io(GOLDEN).io)).toBe(2);
    expect(await commands['image verify'].run(['a-pure.bin'], io(GOLDEN).io)).toBe(2);
    expect(await commands['image verify'].run(['a-pure.bin', '--key', 'app-a.bin'], io(GOLDEN).io)).toBe(2);
    expect(await commands['image verify'].run(['a-pure.bin', '--key', PUB_PEM, '--bogus'], io(GOLDEN).io)).toBe(2);
  });

  it('image sign: usage errors exit 2, an image too large for its slot exits 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fb-mcuboot-'));
    const run = async (args: string[]) => {
      const x = io(GOLDEN);
      const rc = await commands['image sign'].run(args, x.io);
      return { rc, err: x.o.err };
    };
    const out = path.join(dir, 'o.bin');
    expect((await run(['app-a.bin', out, '--key', KEY_PEM, '--version', '1.0', '--header-size', '0x200'])).err).toMatch(/does not start with zeros/);
    expect((await run(['app-a.bin', out, '--key', KEY_PEM, '--version', '1.0', '--header-size', '0x200'])).rc).toBe(2);
    expect((await run(['app-a.bin', out, '--key', KEY_PEM, '--version', 'x', '--header-size', '0x200', '--pad-header'])).rc).toBe(2);
    expect((await run(['app-a.bin', out, '--key', PUB_PEM, '--version', '1', '--header-size', '0x200', '--pad-header'])).err).toMatch(/public key/);
    expect((await run(['app-a.bin', out, '--key', KEY_PEM, '--version', '1', '--header-size', '0x200', '--pad-header', '--sha', '384'])).rc).toBe(2);
    const big = await run(['app-a.bin', out, '--key', KEY_PEM, '--version', '1', '--header-size', '0x200', '--pad-header', '--slot-size', '0x400']);
    expect(big.rc).toBe(1);
    expect(big.err).toMatch(/exceeds requested size 0x400/);
    expect((await run(['app-a.bin', path.join(dir, 'o.hex'), '--key', KEY_PEM, '--version', '1', '--header-size', '0x200', '--pad-header'])).err).toMatch(/--hex-addr/);
    const ok = await run(['app-a.bin', path.join(dir, 'o.hex'), '--key', KEY_PEM, '--version', '1', '--header-size', '0x200', '--pad-header', '--hex-addr', '0x8000']);
    expect(ok.rc).toBe(0);
    const fw = readFirmwareFile('o.hex', u8(readFileSync(path.join(dir, 'o.hex'))));
    expect(fw.baseAddr).toBe(0x8000);
    expect((await verifyImage(fw.data, { keys: [pub] })).ok).toBe(true);
  });

  const mainPath = path.join(ROOT, 'src/cli/main.ts');
  const wired = existsSync(mainPath) && /commands\/image\.ts/.test(readFileSync(mainPath, 'utf8'));
  it.skipIf(!wired)('spawned CLI: node src/cli/bin.mjs image sign / verify / info on real files', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fb-mcuboot-cli-'));
    const bin = path.join(ROOT, 'src/cli/bin.mjs');
    const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8' });
    const out = path.join(dir, 'signed.bin');
    const s = run(['image', 'sign', path.join(GOLDEN, 'app-a.bin'), out, '--key', KEY_PEM, '--version', '1.2.3+4', '--header-size', '0x200', '--pad-header', '--slot-size', '0x10000']);
    expect(s.stderr).toBe('');
    expect(s.status).toBe(0);
    expect(hex(u8(readFileSync(out)))).toBe(hex(golden('a-sha256-keyhash.bin')));
    const v = run(['image', 'verify', out, '--key', PUB_PEM, '--json']);
    expect(v.status).toBe(0);
    expect(JSON.parse(v.stdout).verdict).toBe('accept');
    const b = readFileSync(out);
    b[0x210] ^= 0x80;
    writeFileSync(out, b);
    const r = run(['image', 'verify', out, '--key', PUB_PEM]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/mismatch/);
    expect(run(['image', 'info', path.join(dir, 'nope.bin')]).status).toBe(2);
    expect(run(['image', 'verify']).status).toBe(2);
  }, 30_000);
});

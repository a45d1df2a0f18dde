/**
 * Key formats: PEM against OpenSSL (both directions), MCUboot's sample key, COSE_Key, keyId.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import type { CoseKey } from '../../src/core/trust/cose.ts';
import { ed25519PublicKey, generateEd25519 } from '../../src/core/trust/ed25519.ts';
import {
  KeyFormatError,
  decodeCoseKey,
  decodeCoseKeyWithPrivate,
  ed25519CoseKey,
  ed25519Spki,
  encodeCoseKey,
  keyId,
  p256PublicKeyPem,
  parsePem,
  privateKeyPem,
  publicKeyPem,
} from '../../src/core/trust/keys.ts';

const VEC = path.resolve(__dirname, '../../../shared/vectors');
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const pem = (label: string, der: Uint8Array) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;

describe.skipIf(!HAVE_OPENSSL)('PEM against OpenSSL', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'fb-keys-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });

  it('parses `openssl genpkey -algorithm ed25519` and re-emits it byte for byte; public key equals `openssl pkey -pubout`', async () => {
    for (let i = 0; i < 3; i++) {
      const f = path.join(dir, `ed${i}.pem`);
      ossl('genpkey', '-algorithm', 'ed25519', '-out', f);
      const text = readFileSync(f, 'utf8');
      const k = parsePem(text);
      expect(k.kind).toBe('ed25519-private');
      if (k.kind !== 'ed25519-private') return;
      expect(privateKeyPem(k.seed)).toBe(text);
      const pubText = ossl('pkey', '-in', f, '-pubout');
      const p = parsePem(pubText);
      expect(p.kind).toBe('ed25519-public');
      if (p.kind !== 'ed25519-public') return;
      expect(toHex(p.publicKey)).toBe(toHex(await ed25519PublicKey(k.seed)));
      expect(publicKeyPem(p.publicKey)).toBe(pubText);
    }
  });

  it('OpenSSL reads what we write', async () => {
    const { privateKey, publicKey } = await generateEd25519();
    const f = path.join(dir, 'ours.pem');
    writeFileSync(f, privateKeyPem(privateKey));
    expect(ossl('pkey', '-in', f, '-pubout')).toBe(publicKeyPem(publicKey));
    const pf = path.join(dir, 'ours-pub.pem');
    writeFileSync(pf, publicKeyPem(publicKey));
    expect(ossl('pkey', '-pubin', '-in', pf, '-text', '-noout')).toMatch(/ED25519 Public-Key/);
    // raw key bytes as OpenSSL prints them
    const der = execFileSync('openssl', ['pkey', '-pubin', '-in', pf, '-outform', 'DER']);
    expect(toHex(new Uint8Array(der))).toBe(toHex(ed25519Spki(publicKey)));
  });

  it('P-256 SubjectPublicKeyInfo: parse OpenSSL output (uncompressed and compressed), re-emit identically', () => {
    const f = path.join(dir, 'ec.pem');
    ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f);
    const pubText = ossl('pkey', '-in', f, '-pubout');
    const k = parsePem(pubText);
    expect(k.kind).toBe('p256-public');
    if (k.kind !== 'p256-public') return;
    expect(p256PublicKeyPem(k.x, k.y)).toBe(pubText);
    const compressed = ossl('ec', '-in', f, '-pubout', '-conv_form', 'compressed');
    expect(parsePem(compressed)).toEqual(k);
    // a private P-256 key (PKCS#8 and SEC1) gives its public half: ES256 is verify-only here
    const priv = parsePem(readFileSync(f, 'utf8'));
    expect(priv).toEqual({ kind: 'p256-private', x: k.x, y: k.y });
    expect(parsePem(ossl('ec', '-in', f))).toEqual(priv);
    // a SEC1 key whose embedded public key is not its own is refused
    const other = path.join(dir, 'ec2.pem');
    ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', other);
    const sec1 = (file: string) => Buffer.from(ossl('ec', '-in', file).replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    const mine = sec1(f);
    const theirs = sec1(other);
    expect(mine.length).toBe(121); // 30 77 | version | d | [0] P-256 | [1] 04 x y
    const spliced = Buffer.concat([mine.subarray(0, 121 - 64), theirs.subarray(121 - 64)]);
    const armour = (der: Buffer) => `-----BEGIN EC PRIVATE KEY-----\n${der.toString('base64')}\n-----END EC PRIVATE KEY-----\n`;
    expect(parsePem(armour(mine))).toEqual(priv);
    expect(() => parsePem(armour(spliced))).toThrow(/does not belong to the private key/);
  });

  it('refuses other key types and encrypted keys with clear errors', () => {
    const rsa = path.join(dir, 'rsa.pem');
    ossl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa);
    expect(() => parsePem(readFileSync(rsa, 'utf8'))).toThrow(/not an Ed25519 key/);
    expect(() => parsePem(ossl('pkey', '-in', rsa, '-pubout'))).toThrow(/unsupported key algorithm/);
    const ed = path.join(dir, 'enc-src.pem');
    ossl('genpkey', '-algorithm', 'ed25519', '-out', ed);
    const enc = ossl('pkcs8', '-topk8', '-in', ed, '-passout', 'pass:secret', '-v2', 'aes-256-cbc');
    expect(() => parsePem(enc)).toThrow(/encrypted private keys are not supported/);
    const secp = path.join(dir, 'k1.pem');
    ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1', '-out', secp);
    expect(() => parsePem(ossl('pkey', '-in', secp, '-pubout'))).toThrow(/other than P-256/);
  });
});

describe('MCUboot sample key', () => {
  it('parses root-ed25519.pem; its public key and KEYHASH match the README', async () => {
    const k = parsePem(readFileSync(path.join(VEC, 'mcuboot/root-ed25519.pem'), 'utf8'));
    expect(k.kind).toBe('ed25519-private');
    if (k.kind !== 'ed25519-private') return;
    const pub = await ed25519PublicKey(k.seed);
    expect(toHex(pub)).toBe('d4b31ba49a3add3f825d10ca7f31b50b0de87f37ccc49f1a403a5c1320ffb4e0');
    const p = parsePem(readFileSync(path.join(VEC, 'mcuboot/root-ed25519-pub.pem'), 'utf8'));
    expect(p).toEqual({ kind: 'ed25519-public', publicKey: pub });
    expect(createHash('sha256').update(ed25519Spki(pub)).digest('hex')).toBe('c1907fa4eac7fae3840a78902b6f0710b037e9968e5c6274a12a28790c7d4e3c');
    expect(privateKeyPem(k.seed)).toBe(readFileSync(path.join(VEC, 'mcuboot/root-ed25519.pem'), 'utf8'));
  });
});

describe('PEM: exact DER layout and errors', () => {
  const seed = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
  const pub = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');

  it('emits the 48-byte PKCS#8 and 44-byte SPKI OpenSSL writes', () => {
    const der = Buffer.from(privateKeyPem(seed).split('\n')[1], 'base64');
    expect(der.toString('hex')).toBe('302e020100300506032b657004220420' + toHex(seed));
    const spki = Buffer.from(publicKeyPem(pub).split('\n')[1], 'base64');
    expect(spki.toString('hex')).toBe('302a300506032b6570032100' + toHex(pub));
  });

  it('accepts PKCS#8 v2 (RFC 5958) with a matching embedded public key, rejects a mismatched one', () => {
    const v2 = hex('3051020101300506032b657004220420' + toHex(seed) + '812100' + toHex(pub));
    expect(parsePem(pem('PRIVATE KEY', v2))).toEqual({ kind: 'ed25519-private', seed });
    const bad = v2.slice();
    bad[bad.length - 1] ^= 1;
    expect(() => parsePem(pem('PRIVATE KEY', bad))).toThrow(/does not belong/);
  });

  it('tolerates CRLF, surrounding text and whitespace', () => {
    const text = `Some comment\r\n${privateKeyPem(seed).replace(/\n/g, '\r\n')}trailer\n`;
    expect(parsePem(text)).toEqual({ kind: 'ed25519-private', seed });
  });

  const cases: [string, string, RegExp][] = [
    ['no block', 'hello', /no PEM block/],
    ['no END', '-----BEGIN PRIVATE KEY-----\nMC4=\n', /no matching END/],
    ['two blocks', privateKeyPem(seed) + publicKeyPem(pub), /expected one PEM block, found 2/],
    ['bad base64', '-----BEGIN PUBLIC KEY-----\nMCow!!!\n-----END PUBLIC KEY-----\n', /valid base64/],
    ['unknown label', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', /unsupported PEM block "CERTIFICATE"/],
    ['OpenSSH key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----\n', /OPENSSH PRIVATE KEY/],
    ['EC PRIVATE KEY truncated', '-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n', /truncated/],
    ['truncated PKCS#8', pem('PRIVATE KEY', hex('302e020100300506032b657004220420' + '00'.repeat(31))), /truncated/],
    ['trailing DER', pem('PRIVATE KEY', hex('302e020100300506032b657004220420' + toHex(seed) + '00')), /trailing bytes/],
    ['short seed', pem('PRIVATE KEY', hex('302d020100300506032b657004210420' + '00'.repeat(31) + '00').subarray(0, 47)), /.+/],
    ['version 2', pem('PRIVATE KEY', hex('302e020102300506032b657004220420' + toHex(seed))), /unsupported version/],
    ['X25519 OID', pem('PRIVATE KEY', hex('302e020100300506032b656e04220420' + toHex(seed))), /not an Ed25519 key/],
    ['SPKI short key', pem('PUBLIC KEY', hex('3029300506032b65700320' + '00' + toHex(pub).slice(2))), /32 bytes/],
    ['SPKI unused bits', pem('PUBLIC KEY', hex('302a300506032b6570032101' + toHex(pub))), /unused bits/],
    ['SPKI small-order key', pem('PUBLIC KEY', hex('302a300506032b6570032100' + '01' + '00'.repeat(31))), /small order/],
    ['SPKI non-canonical key', pem('PUBLIC KEY', hex('302a300506032b6570032100' + 'ed' + 'ff'.repeat(30) + '7f')), /canonical/],
    ['P-256 point off curve', pem('PUBLIC KEY', hex('3059301306072a8648ce3d020106082a8648ce3d030107034200' + '04' + '11'.repeat(64))), /not a valid point/],
    ['Proc-Type header', '-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES\n\nMC4=\n-----END PRIVATE KEY-----\n', /headers/],
  ];
  for (const [name, text, re] of cases) {
    it(`refuses ${name}`, () => {
      let err: unknown;
      try {
        parsePem(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KeyFormatError);
      expect((err as Error).message).toMatch(re);
    });
  }

  it('emitters refuse wrong lengths', () => {
    expect(() => privateKeyPem(new Uint8Array(31))).toThrow(KeyFormatError);
    expect(() => publicKeyPem(new Uint8Array(33))).toThrow(/32 bytes/);
    expect(() => p256PublicKeyPem(new Uint8Array(32), new Uint8Array(32))).toThrow(/not a valid point/);
  });
});

describe('COSE_Key', () => {
  const pub = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  const seed = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
  const ecPriv = hex('57c92077664146e876760c9520d054aa93c3afb04e306705db6090308507b4d3');
  const ecPub = p256.getPublicKey(ecPriv, false);
  const ec: CoseKey = { kty: 'EC2', crv: 'P-256', x: ecPub.slice(1, 33), y: ecPub.slice(33) };

  it('OKP/Ed25519 encodes deterministically (labels 1, 2, -1, -2 in order) and round-trips', () => {
    const kid = hex('3131');
    const b = encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: pub, kid });
    expect(toHex(b)).toBe('a4' + '0101' + '02423131' + '2006' + '215820' + toHex(pub));
    expect(decodeCoseKey(b)).toEqual({ kty: 'OKP', crv: 'Ed25519', x: pub, kid });
    expect(decodeCoseKey(encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: pub }))).toEqual({ kty: 'OKP', crv: 'Ed25519', x: pub });
  });

  it('EC2/P-256 round-trips; compressed y (bool) is expanded', () => {
    const b = encodeCoseKey(ec);
    expect(toHex(b).startsWith('a4' + '0102' + '2001' + '215820')).toBe(true);
    expect(decodeCoseKey(b)).toEqual(ec);
    const yOdd = (ec.kty === 'EC2' ? ec.y[31] : 0) & 1;
    const compressed = encodeCbor(new Map<number, unknown>([[1, 2], [-1, 1], [-2, ec.x], [-3, yOdd === 1]]));
    expect(decodeCoseKey(compressed)).toEqual(ec);
  });

  it('private part: d is carried only on request and must match x', () => {
    const b = encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: pub }, { d: seed });
    expect(() => decodeCoseKey(b)).toThrow(/private key/);
    expect(decodeCoseKeyWithPrivate(b)).toEqual({ key: { kty: 'OKP', crv: 'Ed25519', x: pub }, d: seed });
    const wrong = encodeCbor(new Map<number, unknown>([[1, 1], [-1, 6], [-2, pub], [-4, new Uint8Array(32).fill(1)]]));
    expect(() => decodeCoseKeyWithPrivate(wrong)).toThrow(/does not belong/);
  });

  const bad: [string, unknown, RegExp][] = [
    ['not a map', [1, 2], /must be a CBOR map/],
    ['unknown kty', new Map<number, unknown>([[1, 3]]), /key type 3/],
    ['text kty', new Map<number, unknown>([[1, 'OKP']]), /key type/],
    ['X25519 curve', new Map<number, unknown>([[1, 1], [-1, 4], [-2, pub]]), /curve 4/],
    ['Ed448 curve', new Map<number, unknown>([[1, 1], [-1, 7], [-2, pub]]), /curve 7/],
    ['short x', new Map<number, unknown>([[1, 1], [-1, 6], [-2, pub.subarray(0, 31)]]), /32 bytes/],
    ['small-order x', new Map<number, unknown>([[1, 1], [-1, 6], [-2, hex('01' + '00'.repeat(31))]]), /small order/],
    ['alg mismatch', new Map<number, unknown>([[1, 1], [-1, 6], [-2, pub], [3, -7]]), /does not fit/],
    ['text kid', new Map<number, unknown>([[1, 1], [-1, 6], [-2, pub], [2, 'k']]), /kid/],
    ['P-384', new Map<number, unknown>([[1, 2], [-1, 2], [-2, new Uint8Array(48)], [-3, new Uint8Array(48)]]), /curve 2/],
    ['EC2 without y', new Map<number, unknown>([[1, 2], [-1, 1], [-2, new Uint8Array(32)]]), /y \(-3\) missing/],
    ['EC2 off curve', new Map<number, unknown>([[1, 2], [-1, 1], [-2, new Uint8Array(32).fill(1)], [-3, new Uint8Array(32).fill(2)]]), /not a valid point/],
    ['EC2 private', new Map<number, unknown>([[1, 2], [-1, 1], [-2, new Uint8Array(32)], [-3, new Uint8Array(32)], [-4, new Uint8Array(32)]]), /private/],
  ];
  for (const [name, v, re] of bad) {
    it(`refuses ${name}`, () => {
      expect(() => decodeCoseKey(encodeCbor(v))).toThrow(KeyFormatError);
      expect(() => decodeCoseKey(encodeCbor(v))).toThrow(re);
    });
  }
  it('refuses non-CBOR and trailing bytes', () => {
    expect(() => decodeCoseKey(hex('ff'))).toThrow(/not valid CBOR/);
    expect(() => decodeCoseKey(Uint8Array.from([...encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: pub }), 0]))).toThrow(KeyFormatError);
    expect(() => encodeCoseKey({ kty: 'RSA' } as never)).toThrow(KeyFormatError);
  });
});

describe('keyId', () => {
  it('is the first 8 bytes of SHA-256(pub)', async () => {
    const { publicKey } = await generateEd25519();
    expect(toHex(keyId(publicKey))).toBe(createHash('sha256').update(publicKey).digest('hex').slice(0, 16));
    expect(keyId(publicKey)).toHaveLength(8);
    expect(() => keyId(new Uint8Array(0))).toThrow(KeyFormatError);
  });
  it('ed25519CoseKey uses keyId as kid and validates the key', async () => {
    const { publicKey } = await generateEd25519();
    expect(ed25519CoseKey(publicKey)).toEqual({ kty: 'OKP', crv: 'Ed25519', x: publicKey, kid: keyId(publicKey) });
    expect(() => ed25519CoseKey(new Uint8Array(32))).toThrow(KeyFormatError);
  });
});

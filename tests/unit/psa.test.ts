import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, Tag } from '../../src/core/base/cbor.ts';
import type { CoseKey } from '../../src/core/trust/cose.ts';
import { createMac0, decodeMac0, verifyMac0, mac0Structure } from '../../src/core/trust/cose-mac0.ts';
import { equalBytes as constantTimeEqual } from '../../src/core/base/bytes.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import {
  decodeClaimsPayload, lifecycleState, PSA_CLAIM, PSA_P1_CLAIM, validatePsaClaims, verifyPsaToken, type PsaValidation,
} from '../../src/core/trust/psa.ts';
import { diagToBytes, diagToValue, fromHex, hex, parseDiag, encodeNode, isPlain, nodeToValue } from '../helpers/cbor-diag.ts';

const VEC = path.resolve(__dirname, '../../../shared/vectors/psa');
const read = (p: string) => new Uint8Array(readFileSync(path.join(VEC, p)));
const readText = (p: string) => readFileSync(path.join(VEC, p), 'utf8');
const b64url = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));

function claimsOf(p: string): Map<unknown, unknown> {
  return diagToValue(readText(p)) as Map<unknown, unknown>;
}

function expectFail(r: PsaValidation, code: string, claim: string | RegExp): void {
  expect(r.ok, JSON.stringify(r)).toBe(false);
  if (r.ok) return;
  expect(r.code).toBe(code);
  if (typeof claim === 'string') expect(r.claim).toBe(claim);
  else expect(r.claim).toMatch(claim);
  expect(r.reason.length).toBeGreaterThan(10);
}

// --------------------------------------------------------------- diag helper

describe('cbor-diag helper', () => {
  it('reproduces psa-sign1 and psa-mac0 byte for byte (.cbor and .hex)', () => {
    for (const n of ['psa-sign1', 'psa-mac0']) {
      const bytes = diagToBytes(readText(`rfc9783-examples/${n}.diag`));
      expect(hex(bytes)).toBe(hex(read(`rfc9783-examples/${n}.cbor`)));
      expect(hex(bytes)).toBe(readText(`rfc9783-examples/${n}.hex`).replace(/\s+/g, ''));
    }
  });

  it('encodes the annotated claims-sets to exactly the token payloads', () => {
    for (const [claims, token] of [['sign1-claims', 'psa-sign1'], ['mac0-claims', 'psa-mac0']]) {
      const tok = decodeCbor(read(`rfc9783-examples/${token}.cbor`)) as Tag;
      const payload = (tok.value as unknown[])[2] as Uint8Array;
      expect(hex(diagToBytes(readText(`rfc9783-examples/${claims}.diag`)))).toBe(hex(payload));
    }
  });

  it('parses every .diag vector and round-trips it through decodeCbor', () => {
    const dirs = ['rfc9783-claims-tests', 'rfc9783-examples', 'veraison-psatoken/cbor', 'veraison-psatoken/tf-m'];
    let n = 0;
    for (const d of dirs) {
      for (const f of readdirSync(path.join(VEC, d)).filter((x) => x.endsWith('.diag'))) {
        const node = parseDiag(readText(`${d}/${f}`));
        const bytes = encodeNode(node);
        expect(decodeCbor(bytes)).toEqual(nodeToValue(node));
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(25);
  });

  it('handles EDN forms: indefinite lengths, embedded CBOR, b64, floats, comments, indicators', () => {
    const cases: [string, string][] = [
      ['[_ 1, [2, 3], [_ ]]', '9f018202039fffff'],
      ['{_ "a": 1, "b": [_ 2]}', 'bf61610161629f02ffff'],
      ["(_ h'0102', h'03')", '5f42010241 03ff'.replace(' ', '')],
      ['(_ "ab", "c")', '7f62616261 63ff'.replace(' ', '')],
      ['<< 1, "a" >>', '43016161'],
      ['<< >>', '40'],
      ["b64'AQID'", '43010203'],
      ["b64'-_8'", '42fbff'],
      ["'hi' h'21'", '43686921'],
      ['"a" "b"', '626162'],
      ['1.5', 'f93e00'],
      ['-0.0', 'f98000'],
      ['100000.0', 'fa47c35000'],
      ['1.1', 'fb3ff199999999999a'],
      ['NaN', 'f97e00'],
      ['-Infinity', 'f9fc00'],
      ['1.5_3', 'fb3ff8000000000000'],
      ['0_1', '190000'],
      ['[_1 1]', '99000101'],
      ['4294967296', '1b0000000100000000'],
      ['-4294967297', '3b0000000100000000'],
      ['18446744073709551616', 'c249010000000000000000'],
      ['0x10', '10'],
      ['-0b11', '22'],
      ['simple(255)', 'f8ff'],
      ['undefined', 'f7'],
      ['24(h\'01\')', 'd8184101'],
      ['/ comment / [1, # line comment\n 2]', '820102'],
      ["h'01 / inner comment / 02'", '420102'],
      ['"\\u00e9\\n"', '63c3a90a'],
      ['{1: 2, 1: 3}', 'a201020103'],
    ];
    for (const [src, want] of cases) expect(hex(diagToBytes(src)), src).toBe(want);
  });

  it('uses encodeCbor for plain trees and agrees with the manual encoder', () => {
    const node = parseDiag('{1: [h\'00\', "x", -2147483648, 4294967295], "k": 6(true), -75000: null}');
    expect(isPlain(node)).toBe(true);
    expect(hex(encodeNode(node))).toBe('a30184410061783a7fffffff1affffffff616bc6f53a000124f7f6');
  });

  it('rejects malformed notation with a position', () => {
    for (const bad of ['[1, 2', "h'0'", "h'zz'", '{1 2}', '[1,]', '@', '"abc', '1 2', '(_ )', "(_ h'01', \"a\")", 'simple(24)', '/ open']) {
      expect(() => diagToBytes(bad), bad).toThrow(/line \d+, column \d+/);
    }
  });
});

// --------------------------------------------------------------- RFC 9783 claims tests

describe('RFC 9783 CDDL claims tests', () => {
  const expected: Record<string, [string, string | RegExp]> = {
    'FAIL_BootSeed_too_big.diag': ['wrong-size', 'boot-seed'],
    'FAIL_BootSeed_too_small.diag': ['wrong-size', 'boot-seed'],
    'FAIL_ImplementationID_missing.diag': ['missing', 'implementation-id'],
    'FAIL_ImplementationID_wrong_format.diag': ['wrong-size', 'implementation-id'],
    'FAIL_InstanceID_missing.diag': ['missing', 'instance-id'],
    'FAIL_InstanceID_wrong_format.diag': ['wrong-size', 'instance-id'],
    'FAIL_SoftwareComponent_Measurement_missing.diag': ['missing', 'software-components[0].measurement-value'],
  };
  const files = readdirSync(path.join(VEC, 'rfc9783-claims-tests')).filter((f) => f.endsWith('.diag'));

  it('covers every file in the folder', () => {
    for (const f of files) expect(f.startsWith('GOOD_') || f in expected, f).toBe(true);
    expect(files.length).toBe(9);
  });

  for (const f of files) {
    it(f, () => {
      const r = validatePsaClaims(claimsOf(`rfc9783-claims-tests/${f}`));
      if (f.startsWith('GOOD_')) {
        expect(r.ok, JSON.stringify(r)).toBe(true);
        if (r.ok) {
          expect(r.claims.profileKind).toBe('psa-2023');
          expect(r.claims.softwareComponents).toHaveLength(4);
        }
      } else {
        const [code, claim] = expected[f];
        expectFail(r, code, claim);
      }
    });
  }

  it('GOOD_full reads every optional claim', () => {
    const r = validatePsaClaims(claimsOf('rfc9783-claims-tests/GOOD_full.diag'));
    if (!r.ok) throw new Error(r.reason);
    expect(r.claims.bootSeed).toHaveLength(32);
    expect(r.claims.certificationReference).toBe('0123456789012-12345');
    expect(r.claims.verificationServiceIndicator).toBe('psa_verifier');
    expect(r.claims.clientId).toBe(-1);
    expect(r.claims.lifecycleState).toBe('secured');
    expect(r.claims.softwareComponents.map((c) => [c.measurementType, c.version])).toEqual([
      ['BL', '3.1.4'], ['PRoT', '1.1'], ['ARoT', '1.0'], ['App', '2.2'],
    ]);
  });
});

// --------------------------------------------------------------- RFC 9783 examples

describe('RFC 9783 example tokens', () => {
  const jwk = JSON.parse(readText('rfc9783-examples/tfm-es-iak.json'));
  const esKey: CoseKey = { kty: 'EC2', crv: 'P-256', x: b64url(jwk.x), y: b64url(jwk.y) };
  const hsKey = read('rfc9783-examples/tfm-hs-iak.bin');

  it('the HMAC key file matches the folded JWK', () => {
    const k = JSON.parse(readText('rfc9783-examples/tfm-hs-iak.json').replace(/^.*NOTE.*\n\n/m, '').replace(/\\\n\s*\\/g, '')).k;
    expect(hex(b64url(k))).toBe(hex(hsKey));
  });

  it('psa-sign1 verifies (ES256) with tfm-es-iak and its claims are valid', async () => {
    const r = await verifyPsaToken(read('rfc9783-examples/psa-sign1.cbor'), { kind: 'sign', keys: esKey });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.envelope).toBe('sign1');
    expect(r.alg).toBe(-7);
    expect(r.claims.profile).toBe('tag:psacertified.org,2023:psa#tfm');
    expect(r.claims.clientId).toBe(2147483647);
    expect(hex(r.claims.instanceId)).toBe('01' + '02'.repeat(32));
    expect(r.claims.bootSeed).toEqual(new Uint8Array(8));
    expect(r.claims.softwareComponents[0].measurementType).toBe('PRoT');
  });

  it('psa-mac0 verifies (HMAC 256/256) with tfm-hs-iak and its claims are valid', async () => {
    const tok = read('rfc9783-examples/psa-mac0.cbor');
    const r = await verifyPsaToken(tok, { kind: 'mac', key: hsKey });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (r.ok) expect([r.envelope, r.alg, hex(r.claims.instanceId).slice(0, 8)]).toEqual(['mac0', 5, '01c557bd']);
  });

  it('the ES256 key also loads from the PEM given with the example', async () => {
    const pem = readText('rfc9783-examples/tfm-es-iak.pem');
    // the example ships the PRIVATE key (EC PRIVATE KEY): its public half verifies the token
    const k = parsePem(pem);
    expect(k.kind).toBe('p256-private');
    if (k.kind !== 'p256-private') return;
    const r = await verifyPsaToken(read('rfc9783-examples/psa-sign1.cbor'), { kind: 'sign', keys: { kty: 'EC2', crv: 'P-256', x: k.x, y: k.y } });
    expect(r.ok, JSON.stringify(r)).toBe(true);
  });

  it('a bit flip in every byte of psa-sign1 is rejected (P-256 is slow: one bit per byte, rotating)', async () => {
    const tok = read('rfc9783-examples/psa-sign1.cbor');
    let rejected = 0;
    for (let i = 0; i < tok.length; i++) {
      const t = tok.slice();
      t[i] ^= 1 << (i % 8);
      if (!(await verifyPsaToken(t, { kind: 'sign', keys: esKey })).ok) rejected++;
    }
    expect(rejected).toBe(tok.length);
  }, 60_000);

  it('wrong keys, wrong key kinds and tampering are rejected', async () => {
    const sign1 = read('rfc9783-examples/psa-sign1.cbor');
    const mac0 = read('rfc9783-examples/psa-mac0.cbor');
    const otherKey = hsKey.slice();
    otherKey[0] ^= 1;
    expect(await verifyPsaToken(mac0, { kind: 'mac', key: otherKey })).toMatchObject({ ok: false, stage: 'envelope', code: 'bad-signature' });
    expect(await verifyPsaToken(mac0, { kind: 'sign', keys: esKey })).toMatchObject({ ok: false, code: 'no-key' });
    expect(await verifyPsaToken(sign1, { kind: 'mac', key: hsKey })).toMatchObject({ ok: false, code: 'no-key' });
    const bad = sign1.slice();
    bad[bad.length - 1] ^= 0x80;
    expect(await verifyPsaToken(bad, { kind: 'sign', keys: esKey })).toMatchObject({ ok: false, code: 'bad-signature' });
    const untagged = sign1.slice(1);
    expect(await verifyPsaToken(untagged, { kind: 'sign', keys: esKey })).toMatchObject({ ok: false, code: 'malformed' });
    expect(await verifyPsaToken(new Uint8Array(5000).fill(0xd2), { kind: 'sign', keys: esKey })).toMatchObject({ ok: false, code: 'too-large' });
  });
});

// --------------------------------------------------------------- COSE_Mac0

describe('COSE_Mac0', () => {
  const key = read('rfc9783-examples/tfm-hs-iak.bin');
  const tok = read('rfc9783-examples/psa-mac0.cbor');

  it('MAC_structure is ["MAC0", protected, external_aad, payload]', () => {
    const m = decodeMac0(tok);
    const s = decodeCbor(mac0Structure(m.protectedBytes, new Uint8Array(0), m.payload!)) as unknown[];
    expect(s[0]).toBe('MAC0');
    expect(s.slice(1).map((x) => hex(x as Uint8Array))).toEqual([hex(m.protectedBytes), '', hex(m.payload!)]);
    expect(m.tagged).toBe(true);
    expect(m.protected.get(1)).toBe(5);
  });

  it('every single-bit flip of the RFC token is rejected', async () => {
    let rejected = 0;
    for (let i = 0; i < tok.length; i++) {
      for (let b = 0; b < 8; b++) {
        const t = tok.slice();
        t[i] ^= 1 << b;
        const v = await verifyMac0(t, key, { requireTag: true });
        if (!v.ok) rejected++;
      }
    }
    expect(rejected).toBe(tok.length * 8);
  });

  it('truncation, trailing bytes, oversize, wrong alg, crit, external AAD, short keys', async () => {
    expect(await verifyMac0(tok.slice(0, -1), key)).toMatchObject({ ok: false, code: 'malformed' });
    expect(await verifyMac0(Uint8Array.of(...tok, 0), key)).toMatchObject({ ok: false, code: 'trailing-bytes' });
    expect(await verifyMac0(tok, key, { maxBytes: 100 })).toMatchObject({ ok: false, code: 'too-large' });
    expect(await verifyMac0(tok, key, { externalAad: Uint8Array.of(1) })).toMatchObject({ ok: false, code: 'bad-signature' });
    expect(await verifyMac0(tok, key.slice(0, 8))).toMatchObject({ ok: false, code: 'no-key' });
    const payload = Uint8Array.of(0xa0);
    for (const alg of [5, 6, 7] as const) {
      const t = createMac0({ payload, key, alg, kid: Uint8Array.of(7) });
      const v = await verifyMac0(t, key);
      expect(v.ok && v.alg === alg && v.kid?.[0] === 7).toBe(true);
    }
    const aad = Uint8Array.of(9, 9);
    expect((await verifyMac0(createMac0({ payload, key, externalAad: aad }), key, { externalAad: aad })).ok).toBe(true);
    // alg 4 (HMAC 256/64, truncated) and alg in the unprotected bucket are refused
    const mk = (prot: Map<number, unknown>, unprot = new Map()) => encodeCbor(new Tag([encodeCbor(prot), unprot, payload, new Uint8Array(32)], 17));
    expect(await verifyMac0(mk(new Map([[1, 4]])), key)).toMatchObject({ ok: false, code: 'unsupported-alg' });
    expect(await verifyMac0(mk(new Map(), new Map([[1, 5]])), key)).toMatchObject({ ok: false, code: 'unsupported-alg' });
    expect(await verifyMac0(mk(new Map<number, unknown>([[1, 5], [2, [99]], [99, 1]])), key)).toMatchObject({ ok: false, code: 'crit' });
    expect(await verifyMac0(encodeCbor(new Tag([encodeCbor(new Map([[1, 5]])), new Map(), payload, new Uint8Array(32)], 18)), key)).toMatchObject({ ok: false, code: 'malformed' });
    // untagged accepted unless the tag is required
    const untagged = createMac0({ payload, key, tagged: false });
    expect((await verifyMac0(untagged, key)).ok).toBe(true);
    expect(await verifyMac0(untagged, key, { requireTag: true })).toMatchObject({ ok: false, code: 'malformed' });
  });

  it('constant-time compare', () => {
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1))).toBe(false);
  });
});

// --------------------------------------------------------------- veraison vectors

describe('veraison/psatoken CBOR claims', () => {
  const expected: Record<string, true | [string, string]> = {
    'P1ClaimsAll.diag': true,
    'P1ClaimsAllNoSwMeasurements.diag': true,
    'P1ClaimsMandatoryOnly.diag': true,
    'P1ClaimsMandatoryOnlyNoSwMeasurements.diag': true,
    'P1ClaimsMissingMandatoryNonce.diag': ['missing', 'nonce'],
    'P1ClaimsTFM.diag': true,
    'P2ClaimsAll.diag': true,
    'P2ClaimsInvalidMultiNonce.diag': ['wrong-type', 'nonce'],
    'P2ClaimsMandatoryOnly.diag': true,
    'P2ClaimsMissingMandatoryNonce.diag': ['missing', 'nonce'],
    'P2ClaimsTFM.diag': true,
  };
  const files = readdirSync(path.join(VEC, 'veraison-psatoken/cbor'));
  it('covers every file', () => expect(files.sort()).toEqual(Object.keys(expected).sort()));
  for (const f of files) {
    it(f, () => {
      const r = validatePsaClaims(claimsOf(`veraison-psatoken/cbor/${f}`));
      const e = expected[f];
      if (e === true) {
        expect(r.ok, JSON.stringify(r)).toBe(true);
        if (r.ok) expect(r.claims.profileKind).toBe(f.startsWith('P1') ? 'psa-iot-1' : 'psa-2.0.0');
      } else expectFail(r, e[0], e[1]);
    });
  }
  it('P1 mandatory-only has an implicit profile; NoSwMeasurements has no components', () => {
    const r = validatePsaClaims(claimsOf('veraison-psatoken/cbor/P1ClaimsMandatoryOnlyNoSwMeasurements.diag'));
    if (!r.ok) throw new Error(r.reason);
    expect([r.claims.profileImplicit, r.claims.noSoftwareMeasurements, r.claims.softwareComponents.length]).toEqual([true, true, 0]);
  });
});

describe('veraison/psatoken TF-M tokens', () => {
  const pem = parsePem(readText('veraison-psatoken/tf-m/public.pem'));
  if (pem.kind !== 'p256-public') throw new Error('expected a P-256 key');
  const key: CoseKey = { kty: 'EC2', crv: 'P-256', x: pem.x, y: pem.y };

  for (const [f, kind] of [['psa-2_0_0_sign1.bin', 'psa-2.0.0'], ['psa-iot-1_sign1.bin', 'psa-iot-1']]) {
    it(`${f} verifies with public.pem (${kind})`, async () => {
      const r = await verifyPsaToken(read(`veraison-psatoken/tf-m/${f}`), { kind: 'sign', keys: key });
      expect(r.ok, JSON.stringify(r)).toBe(true);
      if (r.ok) {
        expect(r.claims.profileKind).toBe(kind);
        expect(r.claims.nonce).toHaveLength(64);
        expect(r.claims.softwareComponents.map((c) => c.measurementType)).toEqual(['SPE', 'NSPE']);
        expect(r.claims.certificationReference).toBe('0604565272829-10010');
      }
    });
  }

  it('psa-2_0_0_claims.diag is the claims-set of the 2.0.0 token', () => {
    const tok = decodeCbor(read('veraison-psatoken/tf-m/psa-2_0_0_sign1.bin')) as Tag;
    expect(hex(diagToBytes(readText('veraison-psatoken/tf-m/psa-2_0_0_claims.diag')))).toBe(hex((tok.value as Uint8Array[])[2]));
  });

  for (const f of ['psa-2_0_0_mac0.bin', 'psa-iot-1_mac0.bin']) {
    it(`${f} parses (key not published) and carries valid claims; the RFC key does not verify it`, async () => {
      const bytes = read(`veraison-psatoken/tf-m/${f}`);
      const m = decodeMac0(bytes, { requireTag: true });
      expect(m.protected.get(1)).toBe(5);
      expect(m.tag).toHaveLength(32);
      expect(validatePsaClaims(decodeCbor(m.payload!)).ok).toBe(true);
      const r = await verifyPsaToken(bytes, { kind: 'mac', key: read('rfc9783-examples/tfm-hs-iak.bin') });
      expect(r).toMatchObject({ ok: false, code: 'bad-signature' });
    });
  }
});

/**
 * The veraison JSON vectors are one JSON rendering loaded into either profile's struct
 * (Go ignores the JSON names the struct does not have). We rebuild the CBOR claims-set
 * each profile would see and expect veraison's own verdict lists (claims_p1_test.go,
 * claims_p2_test.go at commit aec3ece7).
 */
describe('veraison/psatoken JSON claims', () => {
  const P1: Record<string, number> = {
    'psa-profile': -75000, 'psa-client-id': -75001, 'psa-security-lifecycle': -75002, 'psa-implementation-id': -75003,
    'psa-boot-seed': -75004, 'psa-hwver': -75005, 'psa-software-components': -75006, 'psa-no-software-measurements': -75007,
    'psa-nonce': -75008, 'psa-instance-id': -75009, 'psa-verification-service-indicator': -75010,
  };
  const P2: Record<string, number> = {
    'eat-profile': 265, 'psa-client-id': 2394, 'psa-security-lifecycle': 2395, 'psa-implementation-id': 2396,
    'psa-boot-seed': 2397, 'psa-certification-reference': 2398, 'psa-software-components': 2399, 'psa-nonce': 10,
    'psa-instance-id': 256, 'psa-verification-service-indicator': 2400,
  };
  const BYTES = new Set(['psa-implementation-id', 'psa-boot-seed', 'psa-nonce', 'psa-instance-id']);
  const SWC: Record<string, number> = { 'measurement-type': 1, 'measurement-value': 2, version: 4, 'signer-id': 5, 'measurement-description': 6 };

  function toClaims(json: Record<string, unknown>, table: Record<string, number>): Map<unknown, unknown> {
    const m = new Map<unknown, unknown>();
    for (const [name, v] of Object.entries(json)) {
      const key = table[name];
      if (key === undefined) continue;
      if (BYTES.has(name)) m.set(key, new Uint8Array(Buffer.from(v as string, 'base64')));
      else if (name === 'psa-software-components') {
        m.set(key, (v as Record<string, unknown>[]).map((c) => new Map(Object.entries(c).map(([k, x]) =>
          [SWC[k], k === 'measurement-value' || k === 'signer-id' ? new Uint8Array(Buffer.from(x as string, 'base64')) : x]))));
      } else m.set(key, v);
    }
    return m;
  }

  const p1Good = ['test-profile-invalid-missing.json', 'test-profile-valid-missing.json', 'test-token-valid-full.json',
    'test-token-valid-minimalist-no-sw-measurements.json', 'test-token-valid-minimalist-p1.json'];
  const p2Good = ['test-token-valid-full.json', 'test-token-valid-minimalist-p2.json', 'test-boot-seed-invalid-missing.json'];
  const files = readdirSync(path.join(VEC, 'veraison-psatoken/json'));

  for (const [name, table, good] of [['P1', P1, p1Good], ['P2', P2, p2Good]] as const) {
    for (const f of files) {
      const pass = good.includes(f);
      it(`${name} ${f} -> ${pass ? 'valid' : 'invalid'}`, () => {
        const json = JSON.parse(readText(`veraison-psatoken/json/${f}`));
        const r = validatePsaClaims(toClaims(json, table));
        expect(r.ok, JSON.stringify(r)).toBe(pass);
        if (!r.ok && name === 'P1') {
          // the file name says what is wrong; check the claim we blame
          const m = /^test-(boot-seed|client-id|implementation-id|instance-id|nonce|security-lifecycle|profile|vsi)-/.exec(f);
          const claim = m && { 'boot-seed': 'boot-seed', 'client-id': 'client-id', 'implementation-id': 'implementation-id', 'instance-id': 'instance-id', nonce: 'nonce', 'security-lifecycle': 'security-lifecycle', profile: 'profile', vsi: 'verification-service-indicator' }[m[1]];
          if (claim) expect(r.claim).toBe(claim);
        }
      });
    }
  }
  it('covers all 33 JSON files', () => expect(files.length).toBe(33));
});

// --------------------------------------------------------------- claim rules

describe('claim types and sizes', () => {
  const good = () => claimsOf('rfc9783-claims-tests/GOOD_full.diag');
  const K = PSA_CLAIM;
  const cases: [string, (m: Map<unknown, unknown>) => void, string, string][] = [
    ['nonce 31 bytes', (m) => m.set(K.nonce, new Uint8Array(31)), 'wrong-size', 'nonce'],
    ['nonce 33 bytes', (m) => m.set(K.nonce, new Uint8Array(33)), 'wrong-size', 'nonce'],
    ['nonce text', (m) => m.set(K.nonce, 'abc'), 'wrong-type', 'nonce'],
    ['instance id not RAND', (m) => m.set(K.instanceId, new Uint8Array(33).fill(2)), 'bad-value', 'instance-id'],
    ['instance id int', (m) => m.set(K.instanceId, 1), 'wrong-type', 'instance-id'],
    ['implementation id 33', (m) => m.set(K.implementationId, new Uint8Array(33)), 'wrong-size', 'implementation-id'],
    ['client id 0', (m) => m.set(K.clientId, 0), 'bad-value', 'client-id'],
    ['client id 2^31', (m) => m.set(K.clientId, 2 ** 31), 'bad-value', 'client-id'],
    ['client id text', (m) => m.set(K.clientId, '1'), 'wrong-type', 'client-id'],
    ['client id float', (m) => m.set(K.clientId, 1.5), 'wrong-type', 'client-id'],
    ['lifecycle 0x3100', (m) => m.set(K.lifecycle, 0x3100), 'bad-value', 'security-lifecycle'],
    ['lifecycle 0xffff', (m) => m.set(K.lifecycle, 0xffff), 'bad-value', 'security-lifecycle'],
    ['lifecycle negative', (m) => m.set(K.lifecycle, -1), 'bad-value', 'security-lifecycle'],
    ['lifecycle missing', (m) => m.delete(K.lifecycle), 'missing', 'security-lifecycle'],
    ['client id missing', (m) => m.delete(K.clientId), 'missing', 'client-id'],
    ['nonce missing', (m) => m.delete(K.nonce), 'missing', 'nonce'],
    ['components missing', (m) => m.delete(K.softwareComponents), 'missing', 'software-components'],
    ['components empty', (m) => m.set(K.softwareComponents, []), 'wrong-size', 'software-components'],
    ['component not a map', (m) => m.set(K.softwareComponents, [1]), 'wrong-type', 'software-components[0]'],
    ['signer id missing', (m) => (m.get(K.softwareComponents) as Map<number, unknown>[])[1].delete(5), 'missing', 'software-components[1].signer-id'],
    ['measurement 20 bytes', (m) => (m.get(K.softwareComponents) as Map<number, unknown>[])[2].set(2, new Uint8Array(20)), 'wrong-size', 'software-components[2].measurement-value'],
    ['version int', (m) => (m.get(K.softwareComponents) as Map<number, unknown>[])[0].set(4, 3), 'wrong-type', 'software-components[0].version'],
    ['boot seed text', (m) => m.set(K.bootSeed, 'seed'), 'wrong-type', 'boot-seed'],
    ['cert ref EAN-13 only', (m) => m.set(K.certificationReference, '0123456789012'), 'bad-value', 'certification-reference'],
    ['cert ref letters', (m) => m.set(K.certificationReference, 'a123456789012-12345'), 'bad-value', 'certification-reference'],
    ['vsi empty', (m) => m.set(K.verificationServiceIndicator, ''), 'bad-value', 'verification-service-indicator'],
    ['profile unknown', (m) => m.set(K.profile, 'http://UNKNOWN'), 'unknown-profile', 'profile'],
    ['profile bare prefix', (m) => m.set(K.profile, 'tag:psacertified.org,2023:psa#'), 'unknown-profile', 'profile'],
    ['profile missing', (m) => m.delete(K.profile), 'missing', 'profile'],
    ['profile int', (m) => m.set(K.profile, 1), 'wrong-type', 'profile'],
  ];
  for (const [name, mutate, code, claim] of cases) {
    it(name, () => {
      const m = good();
      mutate(m);
      expectFail(validatePsaClaims(m), code, claim);
    });
  }

  it('unknown claims are ignored; derived baseline profiles are accepted', () => {
    const m = good();
    m.set(99999, 'x');
    m.set(K.profile, 'tag:psacertified.org,2023:psa#fieldbench');
    expect(validatePsaClaims(m).ok).toBe(true);
  });

  it('not a map', () => {
    for (const v of [[], 'x', null, new Uint8Array(3)]) expectFail(validatePsaClaims(v), 'not-a-map', 'claims');
  });

  it('P1: boot seed must be 32 bytes; components and no-sw are exclusive; profile claim checked', () => {
    const base = () => claimsOf('veraison-psatoken/cbor/P1ClaimsAll.diag');
    let m = base();
    m.set(PSA_P1_CLAIM.bootSeed, new Uint8Array(16));
    expectFail(validatePsaClaims(m), 'wrong-size', 'boot-seed');
    m = base();
    m.set(PSA_P1_CLAIM.noSoftwareMeasurements, 1);
    expectFail(validatePsaClaims(m), 'conflict', 'software-components');
    m = base();
    m.set(PSA_P1_CLAIM.profile, 'PSA_IOT_PROFILE_2');
    expectFail(validatePsaClaims(m), 'unknown-profile', 'profile');
  });

  it('lifecycle ranges', () => {
    expect([0x0000, 0x00ff, 0x1000, 0x20ff, 0x3000, 0x30ff, 0x4001, 0x5000, 0x60ff].map(lifecycleState)).toEqual([
      'unknown', 'unknown', 'assembly-and-test', 'psa-rot-provisioning', 'secured', 'secured', 'non-psa-rot-debug', 'recoverable-psa-rot-debug', 'decommissioned',
    ]);
    for (const v of [0x0100, 0x0fff, 0x7000, 0x10000, -1, 1.5]) expect(lifecycleState(v)).toBeUndefined();
  });

  it('strict payload decoding: definite lengths, no duplicate keys, one item', () => {
    expect(decodeClaimsPayload(diagToBytes('{10: h\'00\', 256: [1, {2: 3}]}')).ok).toBe(true);
    for (const [d, re] of [
      ['{10: 1, 10: 2}', /duplicate/],
      ['{1: {2: 3, 2: 4}}', /duplicate/],
      ['{_ 10: 1}', /indefinite/],
      ['{1: [_ 1]}', /indefinite/],
      ['{1: (_ h\'01\')}', /indefinite/],
    ] as const) {
      const r = decodeClaimsPayload(diagToBytes(d));
      expect(r.ok, d).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(re);
    }
    expect(decodeClaimsPayload(Uint8Array.of(0xa1, 0x01))).toMatchObject({ ok: false, reason: expect.stringMatching(/truncated/) });
    expect(decodeClaimsPayload(Uint8Array.of(0xa0, 0x00))).toMatchObject({ ok: false, reason: expect.stringMatching(/after/) });
  });

  it('helper sanity: fromHex', () => expect(hex(fromHex('00 ff'))).toBe('00ff'));
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, encodeDeterministic, Tag } from '../../src/core/base/cbor.ts';
import { signSign1, type CoseKey } from '../../src/core/trust/cose.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import {
  appraiseToken, buildEatClaims, claimsToJson, COSE_HDR_TYP, EAT_CLAIM, EAT_MEDIA_TYPE, EatError, FB_CLAIM, FIELDBENCH_PROFILE,
  instanceIdFor, parseEatClaims, peekToken, signEatToken, signerIdFor,
  type AppraisalContext, type EatDeviceState, type Appraisal,
} from '../../src/core/trust/eat.ts';
import { PSA_CLAIM, type LifecycleState } from '../../src/core/trust/psa.ts';

const VEC = path.resolve(__dirname, '../../../shared/vectors/psa');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const seedOf = (n: number) => new Uint8Array(32).fill(n);

const DEVICE_SEED = seedOf(7);
const OTHER_SEED = seedOf(8);
const FW_SIGNER_SEED = seedOf(9);
const devicePub = await ed25519PublicKey(DEVICE_SEED);
const otherPub = await ed25519PublicKey(OTHER_SEED);
const fwSignerPub = await ed25519PublicKey(FW_SIGNER_SEED);
const nonce = new Uint8Array(32).map((_, i) => i * 7);
const appHash = new Uint8Array(32).fill(0xaa);
const blHash = new Uint8Array(32).fill(0xbb);
const NOW = Date.UTC(2026, 10, 21, 21, 0, 0);

function state(over: Partial<EatDeviceState> = {}): EatDeviceState {
  return {
    nonce,
    devicePublicKey: devicePub,
    implementationId: new Uint8Array(32).fill(0x11),
    model: 'fb-sensor-1',
    lifecycle: 'secured',
    bootSeed: new Uint8Array(16).fill(0x22),
    bootCount: 12,
    uptimeSeconds: 3600,
    debugStatus: 'disabled-permanently',
    softwareComponents: [
      { measurementType: 'BL', measurementValue: blHash, version: '2.1.0', signerId: signerIdFor(fwSignerPub) },
      { measurementType: 'App', measurementValue: appHash, version: '1.4.2', signerId: signerIdFor(fwSignerPub) },
    ],
    configDigest: new Uint8Array(32).fill(0x33),
    interfaces: { 'smp-serial': 'authenticated', shell: 'disabled', swd: 'disabled' },
    failedAuthCount: 0,
    securityCounter: 3,
    ...over,
  };
}

function ctx(over: Partial<AppraisalContext> = {}): AppraisalContext {
  return {
    devicePublicKey: devicePub,
    expectedNonce: nonce,
    referenceMeasurements: [
      { sha256: hex(blHash), version: '2.1.0', model: 'fb-sensor-1', signerId: hex(keyId(fwSignerPub)) },
      { sha256: hex(appHash), version: '1.4.2', model: 'fb-sensor-1', signerId: hex(keyId(fwSignerPub)), securityCounter: 3 },
    ],
    revokedKeyIds: new Set(),
    now: NOW,
    ...over,
  };
}

/** Sign an arbitrary claims map the way the device would (for malformed-claims tests). */
async function signClaims(claims: unknown, seed = DEVICE_SEED, typ: unknown = EAT_MEDIA_TYPE): Promise<Uint8Array> {
  const pub = await ed25519PublicKey(seed);
  let payload: Uint8Array;
  try {
    payload = encodeDeterministic(claims);
  } catch {
    payload = encodeCbor(claims); // floats: not deterministic, still valid CBOR
  }
  return signSign1({
    payload,
    privateKey: seed,
    kid: keyId(pub),
    protectedExtra: typ === null ? undefined : new Map([[COSE_HDR_TYP, typ]]),
  });
}

function check(a: Appraisal, name: string) {
  return a.reasons.find((r) => r.check === name);
}

describe('building and signing', () => {
  it('builds the documented claim map and signs a tagged COSE_Sign1 with typ and kid', async () => {
    const m = buildEatClaims(state());
    expect([...m.keys()].sort((a, b) => a - b)).toEqual(
      [-70004, -70003, -70002, -70001, 10, 256, 259, 261, 263, 265, 267, 268, 2394, 2395, 2396, 2399].sort((a, b) => a - b),
    );
    expect(m.get(PSA_CLAIM.profile)).toBe(FIELDBENCH_PROFILE);
    expect(m.get(PSA_CLAIM.lifecycle)).toBe(0x3000);
    expect(m.get(EAT_CLAIM.dbgstat)).toBe(3);
    expect(hex(m.get(PSA_CLAIM.instanceId) as Uint8Array)).toBe(hex(instanceIdFor(devicePub)));
    const tok = await signEatToken(state(), DEVICE_SEED);
    expect(tok[0]).toBe(0xd2);
    const p = peekToken(tok);
    expect(hex(p.kid!)).toBe(hex(keyId(devicePub)));
    expect(p.alg).toBe(-8);
    const t = decodeCbor(tok) as Tag;
    expect((decodeCbor((t.value as Uint8Array[])[0]) as Map<number, unknown>).get(16)).toBe(EAT_MEDIA_TYPE);
    expect(tok.length).toBeLessThan(700);
  });

  it('refuses states that cannot make a valid token', async () => {
    expect(() => buildEatClaims(state({ nonce: new Uint8Array(16) }))).toThrow(EatError);
    expect(() => buildEatClaims(state({ bootSeed: new Uint8Array(4) }))).toThrow(/boot-seed/);
    expect(() => buildEatClaims(state({ model: '' }))).toThrow(/hwmodel/);
    expect(() => buildEatClaims(state({ debugStatus: 'maybe' as never }))).toThrow(/debug/);
    expect(() => buildEatClaims(state({ interfaces: { x: 'half-open' as never } }))).toThrow(/interface/);
    expect(() => buildEatClaims(state({ softwareComponents: [] }))).toThrow(/software-components/);
    expect(() => buildEatClaims(state({ uptimeSeconds: -1 }))).toThrow(/uptime/);
    await expect(signEatToken(state({ devicePublicKey: otherPub }), DEVICE_SEED)).rejects.toThrow(/does not belong/);
  });
});

describe('verdicts', () => {
  it('trusted: every check passes', async () => {
    const a = await appraiseToken(await signEatToken(state(), DEVICE_SEED), ctx());
    expect(a.verdict, JSON.stringify(a.reasons)).toBe('trusted');
    expect(a.reasons.every((r) => r.result === 'pass')).toBe(true);
    expect(a.reasons.map((r) => r.check)).toEqual([
      'signature', 'claims', 'nonce', 'instance-id', 'lifecycle', 'debug', 'measurements', 'security-counter', 'revocation', 'interfaces', 'auth-failures',
    ]);
    const c = a.claims as { model: string; bootCount: number; interfaces: Record<string, string> };
    expect([c.model, c.bootCount, c.interfaces.shell]).toEqual(['fb-sensor-1', 12, 'disabled']);
    const j = claimsToJson(a.claims!);
    expect(j.nonce).toBe(hex(nonce));
    expect(JSON.stringify(j)).not.toContain('Uint8Array');
  });

  const warnCases: [string, Partial<EatDeviceState>, Partial<AppraisalContext>, string][] = [
    ['debug disabled but re-enableable', { debugStatus: 'disabled' }, {}, 'debug'],
    ['interface open without authentication', { interfaces: { 'smp-serial': 'open', shell: 'disabled' } }, {}, 'interfaces'],
    ['many failed authentications', { failedAuthCount: 9 }, {}, 'auth-failures'],
    ['no expected nonce (freshness unknown)', {}, { expectedNonce: undefined }, 'nonce'],
    ['security counter below the image counter', { securityCounter: 2 }, {}, 'security-counter'],
    ['old iat', { issuedAt: NOW / 1000 - 3600 }, {}, 'issued-at'],
  ];
  for (const [name, s, c, chk] of warnCases) {
    it(`warning: ${name}`, async () => {
      const a = await appraiseToken(await signEatToken(state(s), DEVICE_SEED), ctx(c));
      expect(a.verdict, JSON.stringify(a.reasons)).toBe('warning');
      expect(check(a, chk)?.result).toBe('warn');
      expect(a.claims).not.toBeNull();
    });
  }

  it('configuration: published digest passes, unpublished warns, none passes', async () => {
    const tok = await signEatToken(state(), DEVICE_SEED);
    let a = await appraiseToken(tok, ctx({ publishedConfigs: new Set(['33'.repeat(32)]) }));
    expect([a.verdict, check(a, 'configuration')?.result]).toEqual(['trusted', 'pass']);
    a = await appraiseToken(tok, ctx({ publishedConfigs: new Set(['44'.repeat(32)]) }));
    expect([a.verdict, check(a, 'configuration')?.result]).toEqual(['warning', 'warn']);
    a = await appraiseToken(await signEatToken(state({ configDigest: undefined }), DEVICE_SEED), ctx({ publishedConfigs: new Set() }));
    expect([a.verdict, check(a, 'configuration')?.result]).toEqual(['trusted', 'pass']);
    expect(check(await appraiseToken(tok, ctx()), 'configuration')).toBeUndefined();
  });

  it('recent iat passes, future iat fails', async () => {
    expect(check(await appraiseToken(await signEatToken(state({ issuedAt: NOW / 1000 - 5 }), DEVICE_SEED), ctx()), 'issued-at')?.result).toBe('pass');
    const a = await appraiseToken(await signEatToken(state({ issuedAt: NOW / 1000 + 3600 }), DEVICE_SEED), ctx());
    expect([a.verdict, check(a, 'issued-at')?.result]).toEqual(['untrusted', 'fail']);
  });

  const lifecycles: [LifecycleState | number, 'pass' | 'fail'][] = [
    ['secured', 'pass'], [0x30a5, 'pass'], ['non-psa-rot-debug', 'fail'], ['recoverable-psa-rot-debug', 'fail'], ['decommissioned', 'fail'],
    ['psa-rot-provisioning', 'fail'], ['assembly-and-test', 'fail'], ['unknown', 'fail'],
  ];
  for (const [lc, want] of lifecycles) {
    it(`lifecycle ${String(lc)} -> ${want}`, async () => {
      const a = await appraiseToken(await signEatToken(state({ lifecycle: lc }), DEVICE_SEED), ctx());
      expect(check(a, 'lifecycle')?.result).toBe(want);
      expect(a.verdict).toBe(want === 'pass' ? 'trusted' : 'untrusted');
    });
  }

  for (const [dbg, want] of [['enabled', 'fail'], ['disabled', 'warn'], ['disabled-since-boot', 'pass'], ['disabled-fully-and-permanently', 'pass']] as const) {
    it(`debug ${dbg} -> ${want}`, async () => {
      const a = await appraiseToken(await signEatToken(state({ debugStatus: dbg }), DEVICE_SEED), ctx());
      expect(check(a, 'debug')?.result).toBe(want);
    });
  }

  const untrusted: [string, Partial<EatDeviceState>, Partial<AppraisalContext>, string, RegExp][] = [
    ['replayed nonce (token for another challenge)', {}, { expectedNonce: new Uint8Array(32).fill(1) }, 'nonce', /replayed/],
    ['unknown firmware', { softwareComponents: [{ measurementType: 'App', measurementValue: new Uint8Array(32).fill(0xcc), version: '1.4.2', signerId: signerIdFor(otherPub) }] }, {}, 'measurements', /not a known firmware/],
    ['firmware of another model', { model: 'fb-gateway' }, {}, 'measurements', /released for fb-sensor-1/],
    ['version does not match the reference', { softwareComponents: [{ measurementType: 'App', measurementValue: appHash, version: '9.9.9', signerId: signerIdFor(fwSignerPub) }] }, {}, 'measurements', /token says 9.9.9/],
    ['signer does not match the reference', { softwareComponents: [{ measurementType: 'App', measurementValue: appHash, version: '1.4.2', signerId: signerIdFor(otherPub) }] }, {}, 'measurements', /signed by/],
    ['no reference measurements', {}, { referenceMeasurements: [] }, 'measurements', /no reference measurements/],
    ['revoked device key', {}, { revokedKeyIds: new Set([]) }, 'revocation', /device key/],
    ['revoked firmware signer', {}, {}, 'revocation', /firmware signer/],
  ];
  for (const [name, s, c, chk, re] of untrusted) {
    it(`untrusted: ${name}`, async () => {
      const cx = ctx(c);
      if (name === 'revoked device key') cx.revokedKeyIds = new Set([hex(keyId(devicePub))]);
      if (name === 'revoked firmware signer') cx.revokedKeyIds = new Set([hex(keyId(fwSignerPub))]);
      const a = await appraiseToken(await signEatToken(state(s), DEVICE_SEED), cx);
      expect(a.verdict).toBe('untrusted');
      expect(check(a, chk)?.result).toBe('fail');
      expect(check(a, chk)?.detail).toMatch(re);
      expect(check(a, 'signature')?.result).toBe('pass');
    });
  }

  it('untrusted: signature by another key, no key, wrong-size key; claims withheld', async () => {
    const tok = await signEatToken(state(), DEVICE_SEED);
    for (const k of [otherPub, undefined, new Uint8Array(31)]) {
      const a = await appraiseToken(tok, ctx({ devicePublicKey: k }));
      expect(a.verdict).toBe('untrusted');
      expect(a.claims).toBeNull();
      expect(a.reasons).toHaveLength(1);
      expect(a.reasons[0]).toMatchObject({ check: 'signature', result: 'fail' });
    }
  });

  it('untrusted: instance id of another device signed by this one', async () => {
    const m = buildEatClaims(state());
    m.set(PSA_CLAIM.instanceId, instanceIdFor(otherPub));
    const a = await appraiseToken(await signClaims(m), ctx());
    expect([a.verdict, check(a, 'instance-id')?.result]).toEqual(['untrusted', 'fail']);
  });

  it('untrusted: a COSE_Sign1 from the device key whose typ names another media type is not a token', async () => {
    for (const typ of ['application/cwt', 'application/cose; cose-type="cose-sign1"', 16]) {
      const a = await appraiseToken(await signClaims(buildEatClaims(state()), DEVICE_SEED, typ), ctx());
      expect([a.verdict, check(a, 'format')?.result, a.claims]).toEqual(['untrusted', 'fail', null]);
    }
  });

  it('typ is optional (RFC 9783 does not require it): our claims without typ are appraised as usual', async () => {
    const a = await appraiseToken(await signClaims(buildEatClaims(state()), DEVICE_SEED, null), ctx());
    expect(check(a, 'format')).toBeUndefined();
    expect(a.appraised).toEqual({ profile: FIELDBENCH_PROFILE, kind: 'fieldbench', envelope: 'sign1' });
    const withTyp = await appraiseToken(await signEatToken(state(), DEVICE_SEED), ctx());
    expect(a.verdict).toBe(withTyp.verdict);
  });

  it('an Ed25519 device key accepts only the fieldbench profile unless standard profiles are asked for', async () => {
    const m = buildEatClaims(state());
    m.set(PSA_CLAIM.profile, 'tag:psacertified.org,2023:psa#tfm');
    const tok = await signClaims(m);
    const strict = await appraiseToken(tok, ctx());
    expect([strict.verdict, check(strict, 'profile')?.result]).toEqual(['untrusted', 'fail']);
    const any = await appraiseToken(tok, ctx({ profiles: 'any' }));
    expect(check(any, 'profile')).toBeUndefined();
    expect(any.appraised?.kind).toBe('psa');
  });

  it('untrusted: untagged COSE_Sign1', async () => {
    const pub = devicePub;
    const tok = await signSign1({
      payload: encodeDeterministic(buildEatClaims(state())), privateKey: DEVICE_SEED, kid: keyId(pub),
      protectedExtra: new Map([[COSE_HDR_TYP, EAT_MEDIA_TYPE]]), tagged: false,
    });
    const a = await appraiseToken(tok, ctx());
    expect([a.verdict, check(a, 'format')?.detail]).toEqual(['untrusted', expect.stringMatching(/tag 18/)]);
  });

  it('untrusted: another profile', async () => {
    const m = buildEatClaims(state());
    m.set(PSA_CLAIM.profile, 'tag:psacertified.org,2023:psa#tfm');
    const a = await appraiseToken(await signClaims(m), ctx());
    expect([a.verdict, check(a, 'profile')?.result]).toEqual(['untrusted', 'fail']);
  });
});

describe('claims of wrong type or size (signed, so only the claim check can catch them)', () => {
  const mut: [string, (m: Map<number, unknown>) => void, RegExp][] = [
    ['nonce 16 bytes', (m) => m.set(10, new Uint8Array(16)), /nonce/],
    ['nonce as array', (m) => m.set(10, [nonce]), /nonce/],
    ['instance id 32 bytes', (m) => m.set(256, new Uint8Array(32)), /instance-id/],
    ['implementation id text', (m) => m.set(2396, 'impl'), /implementation-id/],
    ['lifecycle text', (m) => m.set(2395, 'secured'), /security-lifecycle/],
    ['lifecycle out of range', (m) => m.set(2395, 0x7000), /security-lifecycle/],
    ['client id 0', (m) => m.set(2394, 0), /client-id/],
    ['boot seed missing', (m) => m.delete(268), /boot-seed/],
    ['boot seed 40 bytes', (m) => m.set(268, new Uint8Array(40)), /boot-seed/],
    ['measurement 48 bytes (not SHA-256)', (m) => ((m.get(2399) as Map<number, unknown>[])[0]).set(2, new Uint8Array(48)), /measurement-value/],
    ['component without version', (m) => ((m.get(2399) as Map<number, unknown>[])[0]).delete(4), /version/],
    ['hwmodel missing', (m) => m.delete(259), /hwmodel/],
    ['hwmodel 33 bytes', (m) => m.set(259, new Uint8Array(33).fill(0x41)), /hwmodel/],
    ['hwmodel text', (m) => m.set(259, 'fb-sensor-1'), /hwmodel/],
    ['hwmodel invalid UTF-8', (m) => m.set(259, Uint8Array.of(0xff)), /hwmodel/],
    ['dbgstat 5', (m) => m.set(263, 5), /debug/],
    ['dbgstat missing', (m) => m.delete(263), /debug/],
    ['uptime negative', (m) => m.set(261, -5), /uptime/],
    ['uptime float', (m) => m.set(261, 1.5), /uptime/],
    ['bootcount text', (m) => m.set(267, '3'), /boot-count/],
    ['interfaces array', (m) => m.set(FB_CLAIM.interfaces, []), /interfaces/],
    ['interface state 7', (m) => m.set(FB_CLAIM.interfaces, new Map([['shell', 7]])), /interfaces/],
    ['interface name int', (m) => m.set(FB_CLAIM.interfaces, new Map([[1, 0]])), /interfaces/],
    ['config digest 20 bytes', (m) => m.set(FB_CLAIM.configDigest, new Uint8Array(20)), /config-digest/],
    ['failed auth text', (m) => m.set(FB_CLAIM.failedAuthCount, 'x'), /failed-auth/],
    ['security counter missing', (m) => m.delete(FB_CLAIM.securityCounter), /security-counter/],
    ['iat text', (m) => m.set(6, 'now'), /iat/],
  ];
  for (const [name, f, re] of mut) {
    it(name, async () => {
      const m = buildEatClaims(state());
      f(m);
      const direct = parseEatClaims(m);
      expect(direct.ok).toBe(false);
      const a = await appraiseToken(await signClaims(m), ctx());
      expect(a.verdict).toBe('untrusted');
      const r = a.reasons.find((x) => x.result === 'fail')!;
      expect(['claims', 'profile']).toContain(r.check);
      expect(r.detail).toMatch(re);
      expect(a.claims).toBeNull();
    });
  }

  it('duplicate claim keys and indefinite-length maps are rejected even when signed', async () => {
    const det = encodeDeterministic(buildEatClaims(state()));
    expect(det[0] >> 5).toBe(5);
    const n = det[0] & 31;
    // same map with one more pair: a second nonce (key 10) appended
    const dup = Uint8Array.of(0xa0 | (n + 1), ...det.slice(1), 0x0a, 0x58, 0x20, ...new Uint8Array(32).fill(9));
    const indef = Uint8Array.of(0xbf, ...det.slice(1), 0xff);
    for (const [payload, re] of [[dup, /duplicate/], [indef, /indefinite/]] as const) {
      const tok = await signSign1({ payload, privateKey: DEVICE_SEED, kid: keyId(devicePub), protectedExtra: new Map([[COSE_HDR_TYP, EAT_MEDIA_TYPE]]) });
      const a = await appraiseToken(tok, ctx());
      expect([a.verdict, check(a, 'claims')?.result]).toEqual(['untrusted', 'fail']);
      expect(check(a, 'claims')?.detail).toMatch(re);
    }
  });

  it('payload that is not a map / not CBOR', async () => {
    for (const payload of [encodeCbor([1, 2]), Uint8Array.of(0xff, 0x00)]) {
      const tok = await signSign1({ payload, privateKey: DEVICE_SEED, kid: keyId(devicePub), protectedExtra: new Map([[COSE_HDR_TYP, EAT_MEDIA_TYPE]]) });
      const a = await appraiseToken(tok, ctx());
      expect([a.verdict, check(a, 'claims')?.result]).toEqual(['untrusted', 'fail']);
    }
  });
});

describe('token integrity', () => {
  let tok: Uint8Array;
  beforeAll(async () => {
    tok = await signEatToken(state(), DEVICE_SEED);
  });

  it('every single-bit flip of a token is rejected (never trusted, never warning)', async () => {
    const cx = ctx();
    let rejected = 0;
    for (let i = 0; i < tok.length; i++) {
      for (let b = 0; b < 8; b++) {
        const t = tok.slice();
        t[i] ^= 1 << b;
        const a = await appraiseToken(t, cx);
        if (a.verdict === 'untrusted' && a.claims === null) rejected++;
      }
    }
    expect(rejected).toBe(tok.length * 8);
  }, 120_000);

  it('truncated tokens are rejected', async () => {
    for (const n of [0, 1, 10, tok.length - 64, tok.length - 1]) {
      const a = await appraiseToken(tok.slice(0, n), ctx());
      expect(a.verdict).toBe('untrusted');
      expect(a.reasons[0].result).toBe('fail');
    }
  });

  it('oversized tokens and trailing bytes are rejected', async () => {
    const big = new Uint8Array(9000);
    big.set(tok);
    expect((await appraiseToken(big, ctx())).reasons[0]).toMatchObject({ check: 'format', result: 'fail' });
    expect((await appraiseToken(tok, ctx({ maxBytes: 100 }))).reasons[0].detail).toMatch(/limit/);
    const trailing = Uint8Array.of(...tok, 0x00);
    expect((await appraiseToken(trailing, ctx())).reasons[0].detail).toMatch(/trailing/);
    // a huge claim inside a validly signed token
    const m = buildEatClaims(state());
    m.set(-70099, new Uint8Array(10_000));
    expect((await appraiseToken(await signClaims(m), ctx())).verdict).toBe('untrusted');
  });

  it('garbage input never throws', async () => {
    for (const g of [Uint8Array.of(0xd2), Uint8Array.of(0xd2, 0x84), encodeCbor(new Tag([1, 2, 3, 4], 18)), 'x' as never, null as never]) {
      const a = await appraiseToken(g, ctx());
      expect(a.verdict).toBe('untrusted');
    }
  });

  it('a replayed token (same bytes, new challenge) is rejected', async () => {
    const fresh = new Uint8Array(32).fill(0x5a);
    const a = await appraiseToken(tok, ctx({ expectedNonce: fresh }));
    expect([a.verdict, check(a, 'nonce')?.result]).toEqual(['untrusted', 'fail']);
  });
});

describe('foreign PSA tokens (ES256, P-256 key)', () => {
  const jwk = JSON.parse(readFileSync(path.join(VEC, 'rfc9783-examples/tfm-es-iak.json'), 'utf8'));
  const key: CoseKey = { kty: 'EC2', crv: 'P-256', x: new Uint8Array(Buffer.from(jwk.x, 'base64url')), y: new Uint8Array(Buffer.from(jwk.y, 'base64url')) };
  const tok = new Uint8Array(readFileSync(path.join(VEC, 'rfc9783-examples/psa-sign1.cbor')));
  const refs = [{ sha256: '03'.repeat(32), version: '', model: '' }];

  it('the RFC example is trusted with its reference value and nonce', async () => {
    const a = await appraiseToken(tok, { devicePublicKey: key, expectedNonce: new Uint8Array(32).fill(1), referenceMeasurements: refs, revokedKeyIds: new Set() });
    expect(a.verdict, JSON.stringify(a.reasons)).toBe('trusted');
    expect(a.claims?.profile).toBe('tag:psacertified.org,2023:psa#tfm');
  });

  it('unknown firmware and a revoked signer make it untrusted', async () => {
    let a = await appraiseToken(tok, { devicePublicKey: key, expectedNonce: new Uint8Array(32).fill(1), referenceMeasurements: [{ sha256: '00'.repeat(32), version: '', model: '' }], revokedKeyIds: new Set() });
    expect(a.verdict).toBe('untrusted');
    a = await appraiseToken(tok, { devicePublicKey: key, expectedNonce: new Uint8Array(32).fill(1), referenceMeasurements: refs, revokedKeyIds: new Set(['04'.repeat(8)]) });
    expect([a.verdict, check(a, 'revocation')?.result]).toEqual(['untrusted', 'fail']);
  });
});

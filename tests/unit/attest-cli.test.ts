import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands/attest.ts';
import { allCommands } from '../../src/cli/main.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { encodeCoseKey, keyId, parsePem, publicKeyPem, privateKeyPem } from '../../src/core/trust/keys.ts';
import { signSign1 } from '../../src/core/trust/cose.ts';
import { verifyPsaToken, type PsaTokenKey } from '../../src/core/trust/psa.ts';
import { encodeDeterministic } from '../../src/core/base/cbor.ts';
import { signEatToken, signerIdFor, type EatDeviceState } from '../../src/core/trust/eat.ts';

const ROOT = path.resolve(__dirname, '../..');
const VEC = path.resolve(__dirname, '../../../shared/vectors/psa');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const dir = mkdtempSync(path.join(tmpdir(), 'fb-attest-'));

const DEVICE_SEED = new Uint8Array(32).fill(3);
const OWNER_SEED = new Uint8Array(32).fill(4);
const FW_SEED = new Uint8Array(32).fill(5);
const nonce = new Uint8Array(32).fill(0x42);
const appHash = new Uint8Array(32).fill(0xab);

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await commands['attest verify'].run(argv, { out: (t) => void (out += t), err: (t) => void (err += t), cwd: dir });
  return { code, out, err };
}

beforeAll(async () => {
  const devicePub = await ed25519PublicKey(DEVICE_SEED);
  const ownerPub = await ed25519PublicKey(OWNER_SEED);
  const fwPub = await ed25519PublicKey(FW_SEED);
  const state = (over: Partial<EatDeviceState> = {}): EatDeviceState => ({
    nonce, devicePublicKey: devicePub, implementationId: new Uint8Array(32).fill(1), model: 'fb-sensor-1', lifecycle: 'secured',
    bootSeed: new Uint8Array(8).fill(2), bootCount: 1, uptimeSeconds: 10, debugStatus: 'disabled-since-boot',
    softwareComponents: [{ measurementType: 'App', measurementValue: appHash, version: '1.0.0', signerId: signerIdFor(fwPub) }],
    interfaces: { 'smp-serial': 'authenticated' }, failedAuthCount: 0, securityCounter: 1, ...over,
  });
  writeFileSync(path.join(dir, 'token.cbor'), await signEatToken(state(), DEVICE_SEED));
  writeFileSync(path.join(dir, 'token.hex'), hex(await signEatToken(state(), DEVICE_SEED)) + '\n');
  writeFileSync(path.join(dir, 'debug.cbor'), await signEatToken(state({ debugStatus: 'disabled' }), DEVICE_SEED));
  writeFileSync(path.join(dir, 'device.pub.pem'), publicKeyPem(devicePub));
  writeFileSync(path.join(dir, 'device.key.pem'), privateKeyPem(DEVICE_SEED));
  writeFileSync(path.join(dir, 'other.pub.pem'), publicKeyPem(ownerPub));
  writeFileSync(path.join(dir, 'owner.pub.pem'), publicKeyPem(ownerPub));
  writeFileSync(path.join(dir, 'garbage.pem'), 'not a key');
  const now = Date.now();
  const fw = [{ model: 'fb-sensor-1', version: '1.0.0', sha256: appHash, securityCounter: 1, signerKid: keyId(fwPub) }];
  writeFileSync(path.join(dir, 'bundle.cbor'), await issueBundle({ version: 1, issued: new Date(now - 1000), expires: new Date(now + 86_400_000), anchors: { owner: [ownerPub], firmware: [fwPub] }, firmware: fw }, OWNER_SEED));
  writeFileSync(path.join(dir, 'revoking.cbor'), await issueBundle({ version: 2, issued: new Date(now - 1000), expires: new Date(now + 86_400_000), anchors: { owner: [ownerPub], firmware: [fwPub] }, firmware: fw, revocations: { keyIds: [keyId(devicePub)] } }, OWNER_SEED));
  writeFileSync(path.join(dir, 'forged.cbor'), await issueBundle({ version: 1, issued: new Date(now - 1000), expires: new Date(now + 86_400_000), anchors: { owner: [devicePub] }, firmware: fw }, DEVICE_SEED));
  copyFileSync(path.join(VEC, 'veraison-psatoken/tf-m/psa-2_0_0_sign1.bin'), path.join(dir, 'tfm.bin'));
  copyFileSync(path.join(VEC, 'veraison-psatoken/tf-m/public.pem'), path.join(dir, 'tfm.pem'));
});

const N = hex(nonce);
const BUNDLE = ['--bundle', 'bundle.cbor', '--owner', 'owner.pub.pem'];

describe('attest verify', () => {
  it('exit 0: trusted with bundle and nonce (raw CBOR and hex token files, private-key PEM accepted)', async () => {
    for (const [tok, key] of [['token.cbor', 'device.pub.pem'], ['token.hex', 'device.key.pem']]) {
      const r = await run(tok, '--key', key, '--nonce', N, ...BUNDLE);
      expect(r.code, r.err + r.out).toBe(0);
      expect(r.out).toMatch(/^verdict: trusted/);
      expect(r.out).toContain('model: fb-sensor-1');
    }
  });

  it('--json prints verdict, reasons and hex claims', async () => {
    const r = await run('token.cbor', '--key', 'device.pub.pem', '--nonce', N, ...BUNDLE, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.verdict).toBe('trusted');
    expect(j.claims.nonce).toBe(N);
    expect(j.reasons.length).toBeGreaterThan(5);
  });

  it('exit 1: replayed / wrong nonce, wrong key, no reference values, revoked device key', async () => {
    let r = await run('token.cbor', '--key', 'device.pub.pem', '--nonce', '00'.repeat(32), ...BUNDLE);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/untrusted: nonce/)]);
    r = await run('token.cbor', '--key', 'other.pub.pem', '--nonce', N, ...BUNDLE);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/signature/)]);
    r = await run('token.cbor', '--key', 'device.pub.pem', '--nonce', N);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/no reference measurements/)]);
    r = await run('token.cbor', '--key', 'device.pub.pem', '--nonce', N, '--bundle', 'revoking.cbor', '--owner', 'owner.pub.pem');
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/revocation: revoked: device key/)]);
  });

  it('exit 1: a bundle not signed by the owner', async () => {
    const r = await run('token.cbor', '--key', 'device.pub.pem', '--nonce', N, '--bundle', 'forged.cbor', '--owner', 'owner.pub.pem');
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/trust bundle rejected/)]);
  });

  it('warning: exit 1 by default, 0 with --accept-warnings; no nonce is a warning', async () => {
    let r = await run('debug.cbor', '--key', 'device.pub.pem', '--nonce', N, ...BUNDLE);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/warning: debug/)]);
    r = await run('debug.cbor', '--key', 'device.pub.pem', '--nonce', N, ...BUNDLE, '--accept-warnings');
    expect(r.code).toBe(0);
    r = await run('token.cbor', '--key', 'device.pub.pem', ...BUNDLE);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/warning: nonce: freshness not checked/)]);
  });

  it('--reference by hand, and a PSA ES256 token (TF-M) with a P-256 PEM', async () => {
    let r = await run('token.cbor', '--key', 'device.pub.pem', '--nonce', N, '--reference', `${hex(appHash)},1.0.0,fb-sensor-1`);
    expect(r.code, r.err).toBe(0);
    const tfmNonce = '00'.repeat(64);
    const refs = ['96a2ec56c65120a60ce3a53ef8d2082233772aacd5b17935a92be12ac577f685,1.6.0', '087d13c68f32aaafb8c4fc0a2253445432009765e216fb85c398c9580522c1bf,0.0.0'];
    r = await run('tfm.bin', '--key', 'tfm.pem', '--nonce', tfmNonce, ...refs.flatMap((x) => ['--reference', x]));
    expect(r.code, r.err + r.out).toBe(0);
    expect(r.out).toContain('profile: http://arm.com/psa/2.0.0');
    r = await run('tfm.bin', '--key', 'tfm.pem', '--nonce', tfmNonce, '--reference', refs[0]);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/not a known firmware/)]);
  });

  describe('standard PSA tokens (RFC 9783): typ optional, any key file', () => {
    const ex = (f: string) => path.join(VEC, 'rfc9783-examples', f);
    /** The nonce and --reference arguments that make a PSA token's own claims trusted. */
    async function expected(tokenFile: string, key: PsaTokenKey) {
      const r = await verifyPsaToken(readFileSync(tokenFile), key);
      if (!r.ok) throw new Error(r.reason);
      return ['--nonce', hex(r.claims.nonce), ...r.claims.softwareComponents.flatMap((c) => ['--reference', `${hex(c.measurementValue)}${c.version ? `,${c.version}` : ''}`])];
    }
    const esKey = () => {
      const k = parsePem(readFileSync(ex('tfm-es-iak.pem'), 'utf8'));
      if (k.kind !== 'p256-private') throw new Error('expected the example P-256 key');
      return { kind: 'sign' as const, keys: { kty: 'EC2' as const, crv: 'P-256' as const, x: k.x, y: k.y } };
    };

    it('ES256 COSE_Sign1 with the RFC\'s own key files: the EC private key PEM and the JWK', async () => {
      const refs = await expected(ex('psa-sign1.cbor'), esKey());
      for (const keyFile of ['tfm-es-iak.pem', 'tfm-es-iak.json']) {
        const r = await run(ex('psa-sign1.cbor'), '--key', ex(keyFile), ...refs);
        expect(r.code, keyFile + r.err + r.out).toBe(0);
        expect(r.out).toContain('appraised as: standard PSA token (tag:psacertified.org,2023:psa#tfm) in a COSE_Sign1');
      }
      const j = await run(ex('psa-sign1.cbor'), '--key', ex('tfm-es-iak.json'), ...refs, '--json');
      expect(JSON.parse(j.out).appraised).toEqual({ profile: 'tag:psacertified.org,2023:psa#tfm', kind: 'psa', envelope: 'sign1' });
    });

    it('HMAC COSE_Mac0 with the folded JWK (RFC 8792) and with the bare key file; a flipped tag is refused', async () => {
      const raw = new Uint8Array(readFileSync(ex('tfm-hs-iak.bin')));
      const refs = await expected(ex('psa-mac0.cbor'), { kind: 'mac', key: raw });
      for (const args of [['--key', ex('tfm-hs-iak.json')], ['--hmac-key', ex('tfm-hs-iak.bin')]]) {
        const r = await run(ex('psa-mac0.cbor'), ...args, ...refs);
        expect(r.code, args.join(' ') + r.err).toBe(0);
        expect(r.out).toContain('in a COSE_Mac0');
      }
      const bad = readFileSync(ex('psa-mac0.cbor'));
      bad[bad.length - 1] ^= 1;
      writeFileSync(path.join(dir, 'mac0-bad.cbor'), bad);
      const r = await run('mac0-bad.cbor', '--hmac-key', ex('tfm-hs-iak.bin'), ...refs);
      expect([r.code, r.out]).toEqual([1, expect.stringMatching(/\[fail\] signature/)]);
      // a Mac0 token given a public key says what key it needs
      const p = await run(ex('psa-mac0.cbor'), '--key', ex('tfm-es-iak.pem'), ...refs);
      expect([p.code, p.out]).toEqual([1, expect.stringMatching(/symmetric attestation key/)]);
    });

    it('an EdDSA PSA token without typ (the profile does not require it) verifies under an Ed25519 key, also a COSE_Key file', async () => {
      const tfm = await verifyPsaToken(readFileSync(ex('psa-sign1.cbor')), esKey());
      if (!tfm.ok) throw new Error(tfm.reason);
      const tok = await signSign1({ payload: encodeDeterministic(tfm.raw), privateKey: DEVICE_SEED });
      writeFileSync(path.join(dir, 'psa-eddsa.cbor'), tok);
      writeFileSync(path.join(dir, 'device.cosekey'), encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: await ed25519PublicKey(DEVICE_SEED) }));
      const refs = await expected(ex('psa-sign1.cbor'), esKey());
      for (const keyFile of ['device.pub.pem', 'device.key.pem', 'device.cosekey']) {
        const r = await run('psa-eddsa.cbor', '--key', keyFile, ...refs);
        expect(r.code, keyFile + r.err + r.out).toBe(0);
        expect(r.out).toMatch(/EdDSA signature verified/);
        expect(r.out).toContain('appraised as: standard PSA token (tag:psacertified.org,2023:psa#tfm) in a COSE_Sign1');
      }
    });
  });

  it('exit 2: bad usage and unreadable input', async () => {
    const cases: string[][] = [
      [],
      ['token.cbor'],
      ['token.cbor', '--key', 'missing.pem'],
      ['token.cbor', '--key', 'garbage.pem'],
      ['missing.cbor', '--key', 'device.pub.pem'],
      ['token.cbor', '--key', 'device.pub.pem', '--nonce', 'abc'],
      ['token.cbor', '--key', 'device.pub.pem', '--nonce', '00'.repeat(16)],
      ['token.cbor', '--key', 'device.pub.pem', '--bundle', 'bundle.cbor'],
      ['token.cbor', '--key', 'device.pub.pem', '--reference', 'xyz'],
      ['token.cbor', '--key', 'device.pub.pem', '--frobnicate'],
      ['a', 'b', '--key', 'device.pub.pem'],
    ];
    for (const c of cases) {
      const r = await run(...c);
      expect(r.code, c.join(' ')).toBe(2);
      expect(r.err.length).toBeGreaterThan(10);
    }
  });

  const wired = allCommands().has('attest verify');
  it.runIf(wired)('runs as `node src/cli/bin.mjs attest verify` on real files', () => {
    const ok = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/bin.mjs'), 'attest', 'verify', 'token.cbor', '--key', 'device.pub.pem', '--nonce', N, ...BUNDLE], { cwd: dir, encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    const bad = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/bin.mjs'), 'attest', 'verify', 'token.cbor', '--key', 'other.pub.pem', ...BUNDLE], { cwd: dir, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(readFileSync(path.join(dir, 'token.cbor')).length).toBeGreaterThan(100);
  });
});

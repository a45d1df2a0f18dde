/**
 * The trust verbs as a user runs them: spawned processes (`node src/cli/bin.mjs`)
 * on real files in a temp dir, checking exit
 * codes, stdout and stderr; the many rejection variants run the same command
 * objects in-process to keep the suite fast on a shared machine.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { p256PublicKeyPem, parsePem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { signSign1 } from '../../src/core/trust/cose.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';

const ROOT = path.resolve(__dirname, '../..');
const VECTORS = path.resolve(__dirname, '../../../shared/vectors');
let dir: string;

interface Run { code: number; out: string; err: string }

/** Spawn the CLI exactly as a user runs it: node src/cli/bin.mjs <verb> ... */
function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'src/cli/bin.mjs'), ...args], { cwd: dir });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** The same verbs in-process (for the many rejection cases; the spawned runs above cover the process boundary). */
async function run(...args: string[]): Promise<Run> {
  const { commands } = await import('../../src/cli/commands/trust.ts');
  let cmd = commands[`${args[0]} ${args[1]}`];
  let rest = args.slice(2);
  if (!cmd) {
    cmd = commands[args[0]];
    rest = args.slice(1);
  }
  let out = '', err = '';
  const code = await cmd.run(rest, { out: (t) => (out += t), err: (t) => (err += t), cwd: dir });
  return { code, out, err };
}

const f = (name: string) => path.join(dir, name);

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fb-trust-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fieldbench trust verbs (spawned)', () => {
  it('fieldbench help lists the trust verbs', async () => {
    const r = await cli('help');
    expect(r.code).toBe(0);
    for (const v of ['keygen', 'identity issue', 'credential issue', 'config sign', 'bundle make', 'cose sign', 'cose verify', 'inspect']) expect(r.out).toContain(v);
  }, 30_000);

  it('keygen writes PREFIX.pem (0600) and PREFIX.pub.pem, refuses to overwrite', async () => {
    for (const [p, role] of [['owner', 'owner'], ['manuf', 'manufacturer'], ['fw', 'firmware'], ['tech', 'technician'], ['dev', 'device']]) {
      const r = await (p === 'owner' ? cli : run)('keygen', '--out', p, '--role', role);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(new RegExp(`${role} key [0-9a-f]{16}`));
      expect(statSync(f(`${p}.pem`)).mode & 0o777).toBe(0o600);
      expect(parsePem(readFileSync(f(`${p}.pub.pem`), 'utf8')).kind).toBe('ed25519-public');
    }
    expect(statSync(f('dev.enc.pem')).mode & 0o777).toBe(0o600);
    const again = await run('keygen', '--out', 'owner');
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/refusing to overwrite/);
    const bad = await cli('keygen', '--out', 'x', '--role', 'king');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--role/);
    const json = await run('keygen', '--out', 'spare', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ role: 'technician', kid: expect.stringMatching(/^[0-9a-f]{16}$/) });
  }, 60_000);

  it('bundle make / verify; wrong owner key and staleness are rejected with reasons', async () => {
    const meta = JSON.stringify([{ model: 'fb-sensor', version: '1.2.3', sha256: 'ab'.repeat(32), securityCounter: 4, signerKid: '0102030405060708' }]);
    let r = await cli('bundle', 'make', '--key', 'owner.pem', '--manufacturer', 'manuf.pub.pem', '--firmware', 'fw.pub.pem', '--owner', 'owner.pub.pem',
      '--firmware-meta', meta, '--revoke', 'ffffffffffffffff', '--version', '2', '--days', '30', '--out', 'bundle.cose');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/trust bundle v2/);
    r = await cli('bundle', 'verify', 'bundle.cose', '--owner', 'owner.pub.pem');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^OK trust bundle v2/);
    r = await cli('bundle', 'verify', 'bundle.cose', '--owner', 'manuf.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/wrong-issuer/);
    r = await run('bundle', 'verify', 'bundle.cose', '--owner', 'owner.pub.pem', '--held-version', '3');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/replayed/);
    const later = new Date(Date.now() + 40 * 86400_000).toISOString();
    r = await run('bundle', 'verify', 'bundle.cose', '--owner', 'owner.pub.pem', '--now', later);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/stale/);
    r = await run('bundle', 'verify', 'bundle.cose', '--owner', 'owner.pub.pem', '--now', later, '--allow-stale', '--json');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/STALE/);
    expect(JSON.parse(r.out).value.stale).toBe(true);
  }, 60_000);

  it('identity issue with an X25519 key from openssl; trust verify accepts it and rejects a mismatch', async () => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'x25519', '-out', f('enc-ossl.pem')]);
    execFileSync('openssl', ['pkey', '-in', f('enc-ossl.pem'), '-pubout', '-out', f('enc-ossl.pub.pem')]);
    let r = await cli('identity', 'issue', '--key', 'manuf.pem', '--serial', 'SN-1', '--model', 'fb-sensor', '--hw-rev', 'B',
      '--device-pub', 'dev.pub.pem', '--enc-pub', 'enc-ossl.pub.pem', '--mac', 'aa:bb:cc:dd:ee:ff', '--ueid', '01' + '22'.repeat(16), '--out', 'id.cose');
    expect(r.code, r.err).toBe(0);
    r = await cli('trust', 'verify', 'id.cose', '--bundle', 'bundle.cose', '--owner', 'owner.pub.pem', '--device-serial', 'SN-1', '--device-model', 'fb-sensor', '--device-pub', 'dev.pub.pem');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^OK device identity certificate of SN-1/);
    r = await run('trust', 'verify', 'id.cose', '--bundle', 'bundle.cose', '--owner', 'owner.pub.pem', '--device-serial', 'SN-1', '--device-model', 'fb-sensor', '--device-pub', 'tech.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/key-mismatch/);
    // the owner may not issue identities
    r = await run('identity', 'issue', '--key', 'owner.pem', '--serial', 'SN-1', '--model', 'fb-sensor', '--hw-rev', 'B',
      '--device-pub', 'dev.pub.pem', '--enc-pub', 'dev.enc.pub.pem', '--out', 'id-owner.cose');
    expect(r.code).toBe(0);
    r = await run('trust', 'verify', 'id-owner.cose', '--bundle', 'bundle.cose', '--owner', 'owner.pub.pem', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ ok: false, code: 'wrong-role' });
    r = await run('identity', 'issue', '--key', 'manuf.pem', '--serial', 'SN-1', '--model', 'm', '--hw-rev', 'B', '--device-pub', 'dev.pub.pem', '--enc-pub', 'zz', '--out', 'x.cose');
    expect(r.code).toBe(2);
  }, 60_000);

  it('credential issue with an openssl-made owner key; permission and scope checks', async () => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', f('ossl-owner.pem')]);
    execFileSync('openssl', ['pkey', '-in', f('ossl-owner.pem'), '-pubout', '-out', f('ossl-owner.pub.pem')]);
    let r = await run('bundle', 'make', '--key', 'ossl-owner.pem', '--manufacturer', 'manuf.pub.pem', '--version', '1', '--out', 'bundle2.cose');
    expect(r.code, r.err).toBe(0);
    r = await cli('credential', 'issue', '--key', 'ossl-owner.pem', '--technician', 'tech-7', '--name', 'Ada Field', '--pub', 'tech.pub.pem',
      '--permit', 'identify,attest', '--permit', 'configure', '--models', 'fb-sensor', '--days', '7', '--out', 'cred.cose');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/identify, attest, configure on model fb-sensor/);
    const v = (...extra: string[]) => cli('trust', 'verify', 'cred.cose', '--bundle', 'bundle2.cose', '--owner', 'ossl-owner.pub.pem', ...extra);
    r = await v('--permit', 'configure', '--device-serial', 'SN-1', '--device-model', 'fb-sensor', '--technician-pub', 'tech.pub.pem');
    expect(r.code, r.err).toBe(0);
    r = await cli('trust', 'verify', 'cred.cose', '--bundle', 'bundle2.cose', '--owner', 'ossl-owner.pub.pem', '--permit', 'wipe', '--device-serial', 'SN-1', '--device-model', 'fb-sensor');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/rejected \(permission\)/);
    r = await v('--permit', 'attest', '--device-serial', 'GW-1', '--device-model', 'fb-gateway');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/out-of-scope/);
    r = await v('--now', new Date(Date.now() + 8 * 86400_000).toISOString());
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/expired/);
    r = await run('credential', 'issue', '--key', 'owner.pem', '--technician', 't', '--name', 'n', '--pub', 'tech.pub.pem', '--permit', 'fly', '--models', 'x', '--out', 'c.cose');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown permission/);
  }, 60_000);

  it('config sign with sealed secrets; wrong target and replay rejected; inspect shows it', async () => {
    let r = await cli('config', 'sign', '--key', 'owner.pem', '--settings', '{"interval": 60, "name": "pump-3"}', '--target', 'serial:SN-1', '--sequence', '5',
      '--secrets', '{"wifiPassword": "hunter22"}', '--device-enc-pub', 'dev.enc.pub.pem', '--out', 'cfg.cose');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/configuration #5 for device SN-1, 2 setting\(s\), sealed secrets/);
    const v = (...extra: string[]) => cli('trust', 'verify', 'cfg.cose', '--bundle', 'bundle.cose', '--owner', 'owner.pub.pem', ...extra);
    r = await v('--device-serial', 'SN-1', '--device-model', 'fb-sensor', '--held-sequence', '4');
    expect(r.code, r.err).toBe(0);
    r = await v('--device-serial', 'SN-2', '--device-model', 'fb-sensor');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/wrong-target/);
    r = await v('--held-sequence', '5');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/replayed/);
    r = await v('--require-published');
    expect(r.code).toBe(1);
    r = await cli('inspect', 'cfg.cose', '--json');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ kind: 'config', sequence: 5, settings: { interval: 60, name: 'pump-3' }, verified: false });
    expect(j.secrets).toMatch(/sealed/);
    expect(r.out).not.toMatch(/hunter22/);
    r = await run('config', 'sign', '--key', 'owner.pem', '--settings', '{"x": 1.5}', '--target', 'model:m', '--sequence', '1', '--out', 'bad.cose');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/integer/);
  }, 60_000);

  it('cose sign / verify round trip with an openssl key, detached payload and external AAD; tampering rejected', async () => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', f('ossl.pem')]);
    execFileSync('openssl', ['pkey', '-in', f('ossl.pem'), '-pubout', '-out', f('ossl.pub.pem')]);
    writeFileSync(f('payload.bin'), 'hello fieldbench');
    let r = await cli('cose', 'sign', '--key', 'ossl.pem', '--payload', 'payload.bin', '--aad', '0a0b', '--out', 'msg.cose');
    expect(r.code, r.err).toBe(0);
    r = await cli('cose', 'verify', 'msg.cose', '--key', 'ossl.pub.pem', '--aad', '0a0b', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, alg: -8, payloadBytes: 16 });
    r = await cli('cose', 'verify', 'msg.cose', '--key', 'ossl.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad-signature/);
    r = await run('cose', 'sign', '--key', 'ossl.pem', '--payload', 'payload.bin', '--detached', '--alg', '-19', '--out', 'det.cose');
    expect(r.code, r.err).toBe(0);
    r = await run('cose', 'verify', 'det.cose', '--key', 'ossl.pub.pem', '--payload', 'payload.bin');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^OK COSE_Sign1 alg -19/);
    writeFileSync(f('payload2.bin'), 'hello fieldbencH');
    r = await run('cose', 'verify', 'det.cose', '--key', 'ossl.pub.pem', '--payload', 'payload2.bin');
    expect(r.code).toBe(1);
    const msg = readFileSync(f('msg.cose'));
    msg[msg.length - 1] ^= 1;
    writeFileSync(f('msg-bad.cose'), msg);
    r = await run('cose', 'verify', 'msg-bad.cose', '--key', 'ossl.pub.pem', '--aad', '0a0b');
    expect(r.code).toBe(1);
    r = await run('cose', 'verify', 'nope.cose', '--key', 'ossl.pub.pem');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot read nope.cose/);
  }, 60_000);

  it('cose verify is a generic verifier: a 2 MiB message verifies (the 64 KiB artifact limit is not its), over 16 MiB is refused with the limit named', async () => {
    const seed = new Uint8Array(32).fill(9);
    writeFileSync(f('big.pub.pem'), publicKeyPem(await ed25519PublicKey(seed)));
    const big = new Uint8Array(2 * 1024 * 1024).fill(0x5a);
    writeFileSync(f('big.cose'), await signSign1({ payload: big, privateKey: seed }));
    let r = await run('cose', 'verify', 'big.cose', '--key', 'big.pub.pem');
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out).toMatch(/payload 2097152 bytes/);
    writeFileSync(f('huge.cose'), new Uint8Array(16 * 1024 * 1024 + 1));
    r = await run('cose', 'verify', 'huge.cose', '--key', 'big.pub.pem');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/16 MiB/);
  }, 60_000);

  it('cose verify accepts COSE_Sign1 from other implementations: cose-wg ES256 and EdDSA vectors, WebCrypto ES256', async () => {
    const b64u = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
    const es = JSON.parse(readFileSync(path.join(VECTORS, 'cose/sign1-tests/sign-pass-02.json'), 'utf8'));
    writeFileSync(f('es256.pub.pem'), p256PublicKeyPem(b64u(es.input.sign0.key.x), b64u(es.input.sign0.key.y)));
    writeFileSync(f('es256.cose'), Buffer.from(es.output.cbor, 'hex'));
    let r = await cli('cose', 'verify', 'es256.cose', '--key', 'es256.pub.pem', '--aad', es.input.sign0.external);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/alg -7/);
    const fail = JSON.parse(readFileSync(path.join(VECTORS, 'cose/sign1-tests/sign-fail-02.json'), 'utf8'));
    writeFileSync(f('es256-bad.cose'), Buffer.from(fail.output.cbor, 'hex'));
    r = await run('cose', 'verify', 'es256-bad.cose', '--key', 'es256.pub.pem');
    expect(r.code).toBe(1);
    const ed = JSON.parse(readFileSync(path.join(VECTORS, 'cose/eddsa-examples/eddsa-sig-01.json'), 'utf8'));
    writeFileSync(f('ed.cose'), Buffer.from(ed.output.cbor, 'hex'));
    const { publicKeyPem } = await import('../../src/core/trust/keys.ts');
    writeFileSync(f('ed.pub.pem'), publicKeyPem(new Uint8Array(Buffer.from(ed.input.sign0.key.x_hex, 'hex'))));
    r = await run('cose', 'verify', 'ed.cose', '--key', 'ed.pub.pem');
    expect(r.code, r.err).toBe(0);
    // WebCrypto ES256 signer, SPKI exported by WebCrypto
    const subtle = globalThis.crypto.subtle;
    const kp = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const prot = encodeCbor(new Map([[1, -7]]));
    const payload = new TextEncoder().encode('from webcrypto');
    const sig = new Uint8Array(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, kp.privateKey, encodeCbor(['Signature1', prot, new Uint8Array(0), payload]) as BufferSource));
    writeFileSync(f('wc.cose'), encodeCbor([prot, new Map(), payload, sig]));
    const spki = Buffer.from(await subtle.exportKey('spki', kp.publicKey)).toString('base64');
    writeFileSync(f('wc.pub.pem'), `-----BEGIN PUBLIC KEY-----\n${spki.match(/.{1,64}/g)!.join('\n')}\n-----END PUBLIC KEY-----\n`);
    r = await run('cose', 'verify', 'wc.cose', '--key', 'ossl.pub.pem', '--key', 'wc.pub.pem', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, alg: -7, key: 'wc.pub.pem' });
  }, 60_000);

  it('inspect recognises every kind of file', async () => {
    const expectKind = async (file: string, kind: string, text: RegExp) => {
      const j = await run('inspect', file, '--json');
      expect(j.code, j.err).toBe(0);
      expect(JSON.parse(j.out).kind).toBe(kind);
      const t = await (file === 'img.bin' ? cli : run)('inspect', file);
      expect(t.code).toBe(0);
      expect(t.out).toMatch(text);
    };
    await expectKind('id.cose', 'identity', /device identity certificate of SN-1[\s\S]*mac: aabbccddeeff/);
    await expectKind('cred.cose', 'credential', /technician credential of tech-7[\s\S]*permissions: identify, attest, configure/);
    await expectKind('bundle.cose', 'bundle', /trust bundle v2[\s\S]*firmware/);
    await expectKind('msg.cose', 'cose-sign1', /COSE_Sign1, alg -8[\s\S]*hello fieldbench/);
    await expectKind('owner.pub.pem', 'pem', /Ed25519 public key, kid [0-9a-f]{16}/);
    await expectKind('dev.enc.pub.pem', 'pem', /X25519 public key/);
    const priv = await run('inspect', 'owner.pem');
    expect(priv.out).toMatch(/private key/);
    expect(priv.out).not.toMatch(/BEGIN/);
    const golden = path.join(ROOT, 'tests/golden/mcuboot/a-sha256-keyhash.bin');
    writeFileSync(f('img.bin'), readFileSync(golden));
    await expectKind('img.bin', 'mcuboot', /MCUboot image, version/);
    const { seal, generateX25519 } = await import('../../src/core/trust/seal.ts');
    writeFileSync(f('sealed.cbor'), seal({ k: 'v' }, generateX25519().publicKey));
    await expectKind('sealed.cbor', 'cose-encrypt', /COSE_Encrypt: A256GCM, ECDH-ES \+ HKDF-256/);
    const { encodeCoseKey } = await import('../../src/core/trust/keys.ts');
    writeFileSync(f('key.cbor'), encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: (parsePem(readFileSync(f('owner.pub.pem'), 'utf8')) as { publicKey: Uint8Array }).publicKey }));
    await expectKind('key.cbor', 'cose-key', /COSE_Key OKP Ed25519, kid [0-9a-f]{16}/);
    writeFileSync(f('junk.bin'), Uint8Array.of(0xff, 0xfe, 0x00));
    const junk = await run('inspect', 'junk.bin');
    expect(junk.code).toBe(2);
    expect(junk.err).toMatch(/not a recognised file/);
  }, 60_000);

  it('bad usage exits 2 with the usage text', async () => {
    let r = await cli('credential', 'issue', '--key', 'owner.pem');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/usage: fieldbench credential issue/);
    r = await run('cose', 'sign', '--key', 'owner.pem', '--payload', 'payload.bin', '--alg', '-7', '--out', 'x');
    expect(r.code).toBe(2);
    r = await run('bundle', 'make', '--key', 'owner.pub.pem', '--version', '1', '--out', 'x');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/private key/);
  }, 60_000);
});

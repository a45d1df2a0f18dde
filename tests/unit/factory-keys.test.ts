/**
 * The station's signing keys (issue 13 item 6): the manufacturer key inside an
 * HSM through PKCS#11 (SoftHSM2, on a token this test initialises in its own
 * SOFTHSM2_CONF), a passphrase-wrapped key file, the CLI options that pick one
 * (signerFromArgs), and that no file the station writes holds a key in clear.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { commands } from '../../src/cli/commands/factory.ts';
import { signerFromArgs } from '../../src/cli/signer-options.ts';
import { parseArgs, type CliIo } from '../../src/cli/command.ts';
import { signChecked } from '../../src/core/trust/signer.ts';
import { parseWrappedKey, unwrapKey, wrapKey, wrappedSigner } from '../../src/core/trust/wrapped-key.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { toHex } from '../../src/core/base/bytes.ts';

const MODULE = process.env.FIELDBENCH_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
const UTIL = 'softhsm2-util';
const hsmAbsent = !existsSync(MODULE) ? `no PKCS#11 module at ${MODULE} (apt-get install softhsm2; .ci/run installs it)` : undefined;
if (hsmAbsent) console.warn(`skipping the PKCS#11 tests: ${hsmAbsent}`);

const PIN = '4711-2342';
const SO_PIN = '99887766';
const PASS = 'correct horse battery staple';

function io(cwd: string, env: Record<string, string | undefined> = {}) {
  let out = '';
  let err = '';
  const x: CliIo & { env: Record<string, string | undefined> } = { out: (t) => void (out += t), err: (t) => void (err += t), cwd, env };
  return { io: x, get out() {
    return out;
  }, get err() {
    return err;
  } };
}

async function run(verb: string, argv: string[], cwd: string, env: Record<string, string | undefined> = {}) {
  const h = io(cwd, env);
  const code = await commands[verb].run(argv, h.io).catch((e) => {
    h.io.err(String((e as Error).message));
    return e?.name === 'InputError' || e?.name === 'UsageError' ? 2 : 1;
  });
  return { code, out: h.out, err: h.err };
}

/** Every form a 32-byte seed could take in a file: raw, hex, base64 (alone and as PKCS#8 DER), PEM. */
function seedForms(seed: Uint8Array): Buffer[] {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seed)]);
  return [
    Buffer.from(seed), Buffer.from(toHex(seed)), Buffer.from(toHex(seed).toUpperCase()), Buffer.from(Buffer.from(seed).toString('base64').slice(0, 40)),
    pkcs8, Buffer.from(pkcs8.toString('base64').slice(0, 60)), Buffer.from(privateKeyPem(seed)),
  ];
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

describe('wrapped key file', () => {
  it('wraps and unwraps; a wrong passphrase, an altered public key or label, and weak parameters are refused', async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const text = await wrapKey(seed, PASS, { label: 'manufacturer' });
    expect(text).toMatch(/^-----BEGIN FIELDBENCH WRAPPED KEY-----\n/);
    for (const f of seedForms(seed)) expect(Buffer.from(text).includes(f)).toBe(false);
    const w = parseWrappedKey(text);
    expect(w.publicKey).toEqual(ed25519.getPublicKey(seed));
    expect(w.kdf.N).toBe(1 << 17);
    expect(await unwrapKey(text, PASS)).toEqual(seed);
    await expect(unwrapKey(text, PASS + '!')).rejects.toMatchObject({ code: 'bad-passphrase' });
    await expect(wrapKey(seed, 'short')).rejects.toMatchObject({ code: 'bad-passphrase' });
    // re-armour an edited body: the AAD covers every header field
    const { decodeStrict, encodeDeterministic } = await import('../../src/core/base/cbor.ts');
    const body = (t: string) => decodeStrict(Buffer.from(t.split('\n').slice(1, -2).join(''), 'base64')) as Map<number, unknown>;
    const armour = (m: Map<number, unknown>) => `-----BEGIN FIELDBENCH WRAPPED KEY-----\n${Buffer.from(encodeDeterministic(m)).toString('base64')}\n-----END FIELDBENCH WRAPPED KEY-----\n`;
    const other = body(text);
    other.set(3, ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32))));
    await expect(unwrapKey(armour(other), PASS)).rejects.toMatchObject({ code: 'bad-passphrase' });
    const relabelled = body(text);
    relabelled.set(2, 'owner');
    await expect(unwrapKey(armour(relabelled), PASS)).rejects.toMatchObject({ code: 'bad-passphrase' });
    const huge = body(text);
    huge.set(4, [1 << 22, 8, 1, new Uint8Array(16)]);
    expect(() => parseWrappedKey(armour(huge))).toThrow(/outside policy/);
    const s = await wrappedSigner(text, PASS);
    const sig = await signChecked(s, new Uint8Array([1, 2, 3]));
    expect(ed25519.verify(sig, new Uint8Array([1, 2, 3]), s.publicKey)).toBe(true);
    s.forget();
    await expect(s.sign(new Uint8Array(1))).rejects.toMatchObject({ code: 'bad-key' });
  }, 120_000);
});

const ROOT = join(import.meta.dirname, '../..');
let hsmConf: string | undefined;

/** The CLI as a user runs it, with the temporary token's configuration in its environment. */
function cli(args: string[], cwd: string, env: Record<string, string>) {
  const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/bin.mjs'), ...args], { cwd, encoding: 'utf8', env: { ...process.env, ...env, SOFTHSM2_CONF: hsmConf! } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// SoftHSM2 reads SOFTHSM2_CONF with getenv() when it initialises; vitest's worker threads cannot set the
// real environment, so everything that loads the module runs in a child process with the token's configuration.
describe.skipIf(hsmAbsent !== undefined)('PKCS#11 (SoftHSM2 on a token this test initialises)', () => {
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fb-hsm-'));
    await mkdir(join(dir, 'tokens'));
    hsmConf = join(dir, 'softhsm2.conf');
    await writeFile(hsmConf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    for (const label of ['line-1', 'spare']) {
      execFileSync(UTIL, ['--init-token', '--free', '--label', label, '--so-pin', SO_PIN, '--pin', PIN], { env: { ...process.env, SOFTHSM2_CONF: hsmConf }, stdio: 'pipe' });
    }
  }, 120_000);

  it('generates and imports Ed25519 keys, signs with CKM_EDDSA (queued, verified), keeps them non-extractable, refuses clearly', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'tests/helpers/pkcs11-check.ts'), MODULE, PIN], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SOFTHSM2_CONF: hsmConf! } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, generated: expect.stringMatching(/^[0-9a-f]{64}$/) });
  }, 120_000);

  it('the CLI: hsm keygen, hsm import from a wrapped file, profile sign with the HSM key; the PIN only from the environment', async () => {
    const work = await mkdtemp(join(tmpdir(), 'fb-hsm-cli-'));
    const env = { FIELDBENCH_PKCS11_PIN: PIN, FIELDBENCH_KEY_PASSPHRASE: PASS, MY_PIN: PIN };
    const gen = cli(['hsm', 'keygen', '--pkcs11', MODULE, '--token-label', 'line-1', '--key-label', 'owner', '--pub', 'owner.pub.pem', '--json'], work, env);
    expect(gen.err).toBe('');
    expect(gen.code).toBe(0);
    expect(JSON.parse(gen.out)).toMatchObject({ keyLabel: 'owner' });
    const seed = crypto.getRandomValues(new Uint8Array(32));
    await writeFile(join(work, 'mfr.wrapped'), await wrapKey(seed, PASS));
    const imp = cli(['hsm', 'import', '--pkcs11', MODULE, '--token-label', 'line-1', '--key-label', 'mfr-imported', '--in', 'mfr.wrapped', '--pub', 'mfr.pub.pem', '--pin-env', 'MY_PIN'], work, env);
    expect(imp.err).toBe('');
    expect(await readFile(join(work, 'mfr.pub.pem'), 'utf8')).toBe(publicKeyPem(ed25519.getPublicKey(seed)));
    await writeFile(join(work, 'profile.json'), JSON.stringify({
      name: 'line 1', model: 'pump', manufacturer: 'mfr.pub.pem',
      firmware: [{ version: '1.0.0', sha256: 'ab'.repeat(32), signingKeys: ['owner.pub.pem'] }],
      identity: { serial: { pattern: 'P-{n:05}', first: 1, last: 100 } },
    }));
    const signed = cli(['profile', 'sign', 'profile.json', '--pkcs11', MODULE, '--token-label', 'line-1', '--key-label', 'owner', '--out', 'line.profile'], work, env);
    expect(signed.err).toBe('');
    expect(signed.out).toMatch(/PKCS#11 token "line-1" key "owner"/);
    const ok = await run('profile verify', ['line.profile', '--owner', 'owner.pub.pem'], work);
    expect([ok.code, ok.err]).toEqual([0, '']);
    const noPin = cli(['hsm', 'keygen', '--pkcs11', MODULE, '--token-label', 'spare', '--key-label', 'x'], work, { FIELDBENCH_PKCS11_PIN: '' });
    expect(noPin.code).toBe(2);
    expect(noPin.err).toMatch(/FIELDBENCH_PKCS11_PIN, which is not set/);
    const wrongPin = cli(['profile', 'sign', 'profile.json', '--pkcs11', MODULE, '--token-label', 'line-1', '--key-label', 'owner', '--out', 'x.profile'], work, { FIELDBENCH_PKCS11_PIN: '1111-1111' });
    expect(wrongPin.code).toBe(2);
    expect(wrongPin.err).toMatch(/wrong PIN/);
    // nothing the station wrote, nor the token's own files, holds the imported seed in clear
    const files = [...(await filesUnder(work)), ...(await filesUnder(join(hsmConf!, '..', 'tokens')))];
    for (const f of files) {
      if (f.endsWith('mfr.wrapped')) continue;
      const b = await readFile(f);
      for (const form of seedForms(seed)) expect(b.includes(form), `${f} holds the key in clear`).toBe(false);
    }
  }, 120_000);
});

describe('signerFromArgs', () => {
  const known = { known: ['manufacturer-key', 'pass-env', 'pkcs11', 'slot', 'token-label', 'key-label', 'pin-env'] };

  it('reads a wrapped key file (passphrase from the environment) or a clear PEM with a warning; refuses contradictions', async () => {
    const work = await mkdtemp(join(tmpdir(), 'fb-signer-'));
    const seed = crypto.getRandomValues(new Uint8Array(32));
    await writeFile(join(work, 'mfr.wrapped'), await wrapKey(seed, PASS));
    await writeFile(join(work, 'mfr.pem'), privateKeyPem(seed));
    await writeFile(join(work, 'mfr.pub.pem'), publicKeyPem(ed25519.getPublicKey(seed)));
    const h = io(work, { FIELDBENCH_KEY_PASSPHRASE: PASS, OTHER: 'wrong passphrase!!' });
    const s = (await signerFromArgs(parseArgs(['--manufacturer-key', 'mfr.wrapped'], known), h.io))!;
    expect([s.kind, s.publicKey]).toEqual(['wrapped-file', ed25519.getPublicKey(seed)]);
    s.close();
    expect(h.err).toBe('');
    await expect(signerFromArgs(parseArgs(['--manufacturer-key', 'mfr.wrapped', '--pass-env', 'OTHER'], known), h.io)).rejects.toThrow(/wrong passphrase/);
    await expect(signerFromArgs(parseArgs(['--manufacturer-key', 'mfr.wrapped', '--pass-env', 'UNSET'], known), h.io)).rejects.toThrow(/UNSET, which is not set/);
    const clear = (await signerFromArgs(parseArgs(['--manufacturer-key', 'mfr.pem'], known), h.io))!;
    expect(clear.publicKey).toEqual(ed25519.getPublicKey(seed));
    expect(h.err).toMatch(/in clear; for production wrap it/);
    await expect(signerFromArgs(parseArgs(['--manufacturer-key', 'mfr.pub.pem'], known), h.io)).rejects.toThrow(/holds a public key/);
    await expect(signerFromArgs(parseArgs(['--manufacturer-key', 'mfr.pem', '--pkcs11', MODULE], known), h.io)).rejects.toThrow(/not both/);
    await expect(signerFromArgs(parseArgs(['--key-label', 'x'], known), h.io)).rejects.toThrow(/needs --pkcs11/);
    await expect(signerFromArgs(parseArgs(['--pkcs11', MODULE, '--token-label', 't'], known), h.io)).rejects.toThrow(/--key-label/);
    expect(await signerFromArgs(parseArgs([], known), h.io)).toBeUndefined();
  }, 120_000);
});

describe('the station never writes a key in clear', () => {
  it('key wrap --generate, profile sign and label leave no seed in any file they write', async () => {
    const work = await mkdtemp(join(tmpdir(), 'fb-noclear-'));
    const env = { FIELDBENCH_KEY_PASSPHRASE: PASS, FIELDBENCH_PKCS11_PIN: PIN };
    for (const k of ['owner', 'mfr']) {
      const r = await run('key wrap', ['--generate', '--out', `${k}.wrapped`, '--pub', `${k}.pub.pem`], work, env);
      expect(r.code, r.err).toBe(0);
      expect((await stat(join(work, `${k}.wrapped`))).mode & 0o777).toBe(0o600);
    }
    // a key file is never overwritten
    expect((await run('key wrap', ['--generate', '--out', 'owner.wrapped'], work, env)).code).toBe(2);
    const seeds = await Promise.all(['owner', 'mfr'].map(async (k) => unwrapKey(await readFile(join(work, `${k}.wrapped`), 'utf8'), PASS)));
    await writeFile(join(work, 'profile.json'), JSON.stringify({
      name: 'line 1', model: 'pump', manufacturer: 'mfr.pub.pem',
      firmware: [{ version: '1.0.0', sha256: 'ab'.repeat(32), signingKeys: ['owner.pub.pem'] }],
      identity: { serial: { pattern: 'P-{n:05}', first: 1, last: 100 } },
    }));
    expect((await run('profile sign', ['profile.json', '--key', 'owner.wrapped', '--out', 'line.profile'], work, env)).code).toBe(0);
    const pub = ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32)));
    await writeFile(join(work, 'dev.pub.pem'), publicKeyPem(pub));
    for (const f of ['svg', 'pdf', 'zpl']) expect((await run('label', ['--serial', 'P-00001', '--model', 'pump', '--device-pub', 'dev.pub.pem', '--out', `u.${f}`], work, env)).code).toBe(0);
    const files = await filesUnder(work);
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) {
      const b = await readFile(f);
      for (const seed of seeds) for (const form of seedForms(seed)) expect(b.includes(form), `${f} holds a key in clear`).toBe(false);
    }
  }, 120_000);
});

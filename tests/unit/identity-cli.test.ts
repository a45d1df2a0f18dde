import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands/identity.ts';
import { SocketLink } from '../../src/core/link/node-socket.ts';
import { keyId, privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { createSecureDevice, makeAuthorities, type Authorities } from '../../src/device/provisioning.ts';
import type { SecurityOptions } from '../../src/device/security.ts';
import { LOCKED_DOWN, makeBundle } from '../helpers/identity-world.ts';

const ROOT = path.resolve(__dirname, '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'fb-identity-cli-'));
const servers: Server[] = [];
let auth: Authorities;

/** A device served on a TCP port of this process, as `fieldbench device --listen` would. */
async function serve(device: ReferenceDevice): Promise<string> {
  const server = createServer((sock) => void device.serve(new SocketLink(sock, 'tcp test client')));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  servers.push(server);
  const addr = server.address();
  return `tcp://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

async function secure(security: SecurityOptions = {}) {
  const { device, security: sec } = await createSecureDevice(auth, { security: { interfaces: { ...LOCKED_DOWN }, ...security } });
  const port = await serve(device);
  await new Promise((r) => setTimeout(r, 20)); // image model boot
  // Each reference device signs its built-in image with its own firmware key: one bundle per device.
  const file = `bundle-${++devices}.cbor`;
  writeFileSync(path.join(dir, file), (await makeBundle(auth, device)).bytes);
  return { device, sec, port, B: ['--bundle', file, '--owner-key', 'owner.pub.pem'] };
}
let devices = 0;

/** Spawn the real CLI. */
function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const args = [path.join(ROOT, 'src/cli/bin.mjs'), ...argv];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

async function runDirect(verb: string, ...argv: string[]) {
  let out = '';
  let err = '';
  const code = await commands[verb].run(argv, { out: (t) => void (out += t), err: (t) => void (err += t), cwd: dir });
  return { code, out, err };
}

beforeAll(async () => {
  auth = await makeAuthorities();
  const probe = await createSecureDevice(auth);
  await new Promise((r) => setTimeout(r, 20));
  const { bytes } = await makeBundle(auth, probe.device); // all reference devices run the same built-in image
  writeFileSync(path.join(dir, 'bundle.cbor'), bytes);
  writeFileSync(path.join(dir, 'owner.pub.pem'), publicKeyPem(auth.owner.publicKey));
  writeFileSync(path.join(dir, 'other.pub.pem'), publicKeyPem((await makeAuthorities()).owner.publicKey));
  writeFileSync(path.join(dir, 'tech.pem'), privateKeyPem(auth.technician.privateKey));
  writeFileSync(path.join(dir, 'tech.pub.pem'), publicKeyPem(auth.technician.publicKey));
  writeFileSync(path.join(dir, 'cred.cose'), auth.credential);
});
afterAll(() => {
  for (const s of servers) s.close();
});

const B = ['--bundle', 'bundle.cbor', '--owner-key', 'owner.pub.pem']; // identification only needs the manufacturer root
/** The technician login: the device shows its event log only inside a session. */
const LOGIN = ['--key', 'tech.pem', '--credential', 'cred.cose', ...B];

describe('fieldbench identify', () => {
  it('exit 0 for a verified device whose label matches; JSON output', async () => {
    const { port, sec } = await secure();
    const r = await cli('identify', '--port', port, ...B, '--label-serial', 'FB-0001');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('badges: verified');
    expect(r.out).toContain('[pass] possession');
    const j = await cli('identify', '--port', port, ...B, '--json');
    expect(j.code, j.err).toBe(0);
    const o = JSON.parse(j.out);
    expect(o).toMatchObject({ verified: true, badges: ['verified'], device: { serial: 'FB-0001', devicePublicKey: Buffer.from(sec.devicePublicKey).toString('hex') } });
    expect(o.certificate.issuer).toBe(Buffer.from(keyId(auth.manufacturer.publicKey)).toString('hex'));
  });

  it('exit 1 with reasons: label mismatch, wrong key, revoked key', async () => {
    const { port } = await secure();
    const r = await cli('identify', '--port', port, ...B, '--label-code', 'SN: FB-0002');
    expect(r.code).toBe(1);
    expect(r.err).toContain('label-mismatch');
    const bad = await secure({ misbehave: { wrongKey: true } });
    const r2 = await cli('identify', '--port', bad.port, ...B);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/unverified: possession: .*does not hold that key/);
    const rv = await secure();
    writeFileSync(path.join(dir, 'revoking.cbor'), (await makeBundle(auth, rv.device, { version: 2, revocations: { keyIds: [keyId(rv.sec.devicePublicKey)] } })).bytes);
    const r3 = await cli('identify', '--port', rv.port, '--bundle', 'revoking.cbor', '--owner-key', 'owner.pub.pem');
    expect(r3.code).toBe(1);
    expect(r3.err).toMatch(/certificate: device key [0-9a-f]{16} of device FB-0001 is revoked/);
    expect((await runDirect('identify', '--port', rv.port, ...B)).code).toBe(0); // the older bundle does not revoke it
  });

  it('exit 1 for a bundle signed by another owner; 2 without --owner-key or with an unreadable file', async () => {
    const { port } = await secure();
    const r = await runDirect('identify', '--port', port, '--bundle', 'bundle.cbor', '--owner-key', 'other.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toContain('trust bundle rejected');
    await expect(runDirect('identify', '--port', port, '--bundle', 'bundle.cbor')).rejects.toThrow(/--owner-key/);
    const s = await cli('identify', '--port', port, '--bundle', 'bundle.cbor');
    expect(s.code).toBe(2);
    const u = await runDirect('identify', '--port', port, '--bundle', 'missing.cbor', '--owner-key', 'owner.pub.pem');
    expect(u.code).toBe(2);
    expect(u.err).toContain('cannot read missing.cbor');
  });

  it('a stock device: exit 1, not supported', async () => {
    const port = await serve(new ReferenceDevice());
    const r = await cli('identify', '--port', port, ...B);
    expect(r.code).toBe(1);
    expect(r.err).toContain('identity and attestation not supported by this device');
  });
});

describe('fieldbench attest', () => {
  it('exit 0 trusted; warning exits 0 with warnings on stderr, 1 with --strict', async () => {
    const ok = await secure();
    const r = await cli('attest', '--port', ok.port, ...ok.B);
    expect(r.code, r.err + r.out).toBe(0);
    expect(r.out).toContain('FB-0001: trusted');
    const wrongRefs = await runDirect('attest', '--port', ok.port, ...B); // another device's firmware signer
    expect(wrongRefs.code).toBe(1);
    expect(wrongRefs.err).toContain('measurements');
    const open = await secure({ interfaces: { smp_serial: 'open', shell: 'open', debug: 'disabled' } });
    const w = await cli('attest', '--port', open.port, ...open.B, '--json');
    expect(w.code).toBe(0);
    expect(JSON.parse(w.out).verdict).toBe('warning');
    expect(w.err).toContain('warning: interfaces');
    const s = await runDirect('attest', '--port', open.port, ...open.B, '--strict');
    expect(s.code).toBe(1);
  });

  it('exit 1 untrusted (debug unlocked, unknown firmware), and refuses an unverified identity', async () => {
    const dbg = await secure({ misbehave: { debugUnlocked: true } });
    const r = await cli('attest', '--port', dbg.port, ...dbg.B);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/untrusted: .*debug/);
    const fw = await secure({ misbehave: { unknownFirmware: true } });
    const f = await runDirect('attest', '--port', fw.port, ...fw.B);
    expect(f.code).toBe(1);
    expect(f.err).toContain('not a known firmware');
    const wk = await secure({ misbehave: { wrongKey: true } });
    const r3 = await runDirect('attest', '--port', wk.port, ...wk.B);
    expect(r3.code).toBe(1);
    expect(r3.err).toContain('identity is not verified');
  });
});

describe('fieldbench events', () => {
  it('prints the log, from a counter, as JSON, after the technician login; without a login the device refuses it, said in words (exit 1); exit 1 on a stock device', async () => {
    const { port, sec } = await secure();
    for (let i = 0; i < 30; i++) sec.log('tamper', `case opened ${i}`);
    const no = await cli('events', '--port', port, '--json');
    expect(no.code).toBe(1);
    expect(no.err).toMatch(/only to a logged-in technician .*attest or configure/);
    const r = await cli('events', '--port', port, '--json', ...LOGIN);
    expect(r.code, r.err).toBe(0);
    const o = JSON.parse(r.out);
    expect(o.events.map((e: { n: number }) => e.n)).toEqual(sec.eventLog().slice(0, o.events.length).map((e) => e.n));
    expect(o.events.some((e: { type: string }) => e.type === 'auth')).toBe(true);
    const t = await runDirect('events', '--port', port, '--from', '20', ...LOGIN);
    expect(t.code).toBe(0);
    expect(t.out.split('\n')[0]).toMatch(/^#20 /);
    await expect(runDirect('events', '--port', port, '--from', '-1')).rejects.toThrow(/non-negative/);
    const stock = await serve(new ReferenceDevice());
    const s = await cli('events', '--port', stock);
    expect(s.code).toBe(1);
    expect(s.err).toContain('not supported');
  });
});

describe('records: every device verb leaves its entry, and audit verify checks the log', () => {
  it('identify, attest and events append signed, chained entries to --records DIR; tampering is named; the folder key authenticates', async () => {
    const { port, B: own } = await secure();
    const rec = mkdtempSync(path.join(tmpdir(), 'fb-cli-records-'));
    expect((await cli('identify', '--port', port, ...B, '--records', rec)).code).toBe(0);
    expect((await cli('attest', '--port', port, ...own, '--records', rec)).code).toBeLessThan(2);
    expect((await cli('events', '--port', port, ...LOGIN, '--records', rec)).code).toBe(0);
    // a stock device: the run fails, and that is recorded too
    const stock = await serve(new ReferenceDevice());
    expect((await cli('identify', '--port', stock, ...B, '--records', rec)).code).toBe(1);
    const log = path.join(rec, 'records.jsonl');
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1 + 4);
    const entries = lines.slice(1).map((l) => JSON.parse(l));
    expect(entries.map((e: { op: string; outcome: string }) => `${e.op}:${e.outcome}`)).toEqual(['identify:ok', expect.stringMatching(/^attest:/), 'events:ok', 'identify:not-supported']);
    expect(entries[0].device.serial).toBe('FB-0001');
    // the events entry is signed by the technician who logged in to read the log; the others by the folder's records key
    const ok = await cli('audit', 'verify', '--records', rec, '--key', 'tech.pub.pem');
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/intact: .*4 entries/);
    expect(ok.out).toMatch(/^authenticated/m);
    // the same log given as a FILE is recognised by its header
    expect((await cli('audit', 'verify', log)).code).toBe(0);
    // --records off: the verb runs and nothing is appended anywhere it would have gone
    expect((await cli('events', '--port', port, ...LOGIN, '--records', 'off')).code).toBe(0);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1 + 4);
    // one changed byte in an entry: named, exit 1
    writeFileSync(log, readFileSync(log, 'utf8').replace('"events"', '"evenTs"'));
    const bad = await cli('audit', 'verify', '--records', rec, '--key', 'tech.pub.pem');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/TAMPERED: .*line 4 \(seq 3\): modified/);
  });
});

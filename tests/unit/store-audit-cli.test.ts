import 'fake-indexeddb/auto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands/audit.ts';
import { openStore } from '../../src/core/store/db.ts';
import { exportAudit, recordOperation, type AuditExport } from '../../src/core/store/audit.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';

const root = path.resolve(__dirname, '../..');
let dir: string;
let exp: AuditExport;
const seedA = new Uint8Array(32).fill(3);
const seedB = new Uint8Array(32).fill(4);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fb-audit-'));
  const a = await seedSigner('alice', seedA);
  const db = await openStore({ name: `audit-cli-${process.pid}` });
  for (let i = 0; i < 5; i++) await recordOperation(db, { technician: a, op: 'attest', outcome: 'ok', time: i }, { serial: `SN-${i}` });
  exp = await exportAudit(db, 0);
  db.close();
  await db.delete();
  writeFileSync(path.join(dir, 'trail.json'), JSON.stringify(exp));
  const t = structuredClone(exp);
  t.entries.splice(2, 1);
  writeFileSync(path.join(dir, 'deleted.json'), JSON.stringify(t));
  writeFileSync(path.join(dir, 'alice.pub.pem'), publicKeyPem(a.publicKey));
  writeFileSync(path.join(dir, 'alice.key.pem'), privateKeyPem(seedA));
  const b = await seedSigner('bob', seedB);
  writeFileSync(path.join(dir, 'bob.pub.pem'), publicKeyPem(b.publicKey));
  writeFileSync(path.join(dir, 'garbage.json'), '{"format": "something else"}');
  writeFileSync(path.join(dir, 'notpem.pem'), 'hello');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await commands['audit verify'].run(argv, { out: (t) => void (out += t), err: (t) => void (err += t), cwd: dir });
  return { code, out, err };
}

describe('audit verify (run)', () => {
  it('exit 0 on an intact trail, authenticated with --key', async () => {
    let r = await run('trail.json', '--key', 'alice.pub.pem');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/intact: trail.json: 5 entries/);
    expect(r.out).toMatch(/authenticated: every entry/);
    r = await run('trail.json', '--key', 'alice.key.pem', '--key', 'bob.pub.pem');
    expect(r.code).toBe(0);
    r = await run('trail.json');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/NOT authenticated/);
    r = await run('trail.json', `--expect-head=${exp.head!.seq}:${exp.head!.hash}`);
    expect(r.code).toBe(0);
  });

  it('exit 1 naming the entry when tampered or signed by an untrusted key', async () => {
    let r = await run('deleted.json', '--key', 'alice.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/TAMPERED: deleted.json: entry 2 \(seq 4\): deleted: entry seq 3 is missing/);
    r = await run('trail.json', '--key', 'bob.pub.pem');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/entry 0 \(seq 1\): bad-signature/);
    r = await run('trail.json', '--expect-head', `6:${'ab'.repeat(32)}`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/entry 5 \(seq 6\): deleted: entry seq 6 is missing at the end/);
  });

  it('exit 2 on bad usage or unreadable input', async () => {
    for (const argv of [[], ['a.json', 'b.json'], ['trail.json', '--bogus', 'x'], ['missing.json'], ['garbage.json'], ['trail.json', '--key', 'notpem.pem'], ['trail.json', '--key', 'nope.pem'], ['trail.json', '--expect-head', '5']]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err.length).toBeGreaterThan(0);
    }
  });
});

describe('audit verify (spawned through bin.mjs)', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'src/cli/bin.mjs'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  it('exit codes 0 / 1 / 2 on real files', () => {
    expect(cli('audit', 'verify', 'trail.json', '--key', 'alice.pub.pem').status).toBe(0);
    const t = cli('audit', 'verify', 'deleted.json', '--key', 'alice.pub.pem');
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/entry 2 \(seq 4\): deleted/);
    expect(cli('audit', 'verify', 'missing.json').status).toBe(2);
  });
});

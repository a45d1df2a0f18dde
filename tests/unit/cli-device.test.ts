/** The device-facing CLI verbs as a user runs them: spawned processes against `fieldbench device`. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = join(__dirname, '../../src/cli/bin.mjs');
const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill()));

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/** Start `fieldbench device ...` and resolve with the address it prints. */
function startDevice(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'device', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/reference device on (\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`device exited ${code}: ${out}`)));
  });
}

const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30000 });

describe('fieldbench info / echo / device', () => {
  it('info --json over TCP reports params, OS, bootloader, groups and slots', async () => {
    const addr = await startDevice(['--listen', `tcp://127.0.0.1:${await freePort()}`, '--buf-size', '1024', '--settings']);
    const r = run(['info', '--port', addr, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.params).toEqual({ bufSize: 1024, bufCount: 4, reported: true });
    expect(info.os.kernel).toBe('Zephyr');
    expect(info.groups.map((g: { name: string }) => g.name)).toEqual(['os', 'img_mgmt', 'settings mgmt', 'enum']);
    expect(info.slots[0]).toMatchObject({ slot: 0, active: true });
    const text = run(['info', '--port', addr]);
    expect(text.stdout).toMatch(/MCUmgr parameters[\s\S]*buffer size\s+1024 bytes/);
  });

  it('echo over a pseudo-terminal made by `device --pty`', async () => {
    const path = await startDevice(['--pty']);
    const r = run(['echo', 'over a pty', '--port', path]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('over a pty\n');
  });

  it('raw framing on both ends', async () => {
    const addr = await startDevice(['--listen', `tcp://127.0.0.1:${await freePort()}`, '--framing', 'raw']);
    expect(run(['echo', 'raw', '--port', addr, '--framing', 'raw']).stdout).toBe('raw\n');
  });

  it('flash --bundle: a listed image goes in; an unlisted older one is refused before a byte is sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fb-flash-'));
    const ok = (r: ReturnType<typeof run>) => expect(r.status, r.stderr + r.stdout).toBe(0);
    const at = (f: string) => join(dir, f);
    for (const k of ['m', 'o', 'fw']) ok(run(['keygen', '--out', at(k)]));
    const addr = await startDevice(['--listen', `tcp://127.0.0.1:${await freePort()}`, '--trust-key', at('fw.pub.pem'), '--manufacturer-key', at('m.pem'), '--owner-key', at('o.pub.pem')]);
    writeFileSync(at('app.bin'), Buffer.alloc(8000, 7));
    ok(run(['image', 'sign', at('app.bin'), at('new.bin'), '--key', at('fw.pem'), '--version', '1.2.0', '--header-size', '0x200', '--pad-header', '--security-counter', '3']));
    ok(run(['image', 'sign', at('app.bin'), at('old.bin'), '--key', at('fw.pem'), '--version', '0.9.0', '--header-size', '0x200', '--pad-header', '--security-counter', '1']));
    const info = JSON.parse(run(['image', 'info', at('new.bin'), '--json']).stdout);
    const sha = info.tlvs.find((t: { name: string }) => t.name.startsWith('SHA256')).value;
    const kid = JSON.parse(run(['inspect', at('fw.pub.pem'), '--json']).stdout).kid;
    const meta = JSON.stringify([{ model: 'fieldbench-ref', version: '1.2.0', sha256: sha, securityCounter: 3, signerKid: kid }]);
    ok(run(['bundle', 'make', '--key', at('o.pem'), '--firmware', at('fw.pub.pem'), '--owner', at('o.pub.pem'), '--version', '2', '--firmware-meta', meta, '--out', at('b.cbor')]));
    const refused = run(['flash', at('old.bin'), '--port', addr, '--bundle', at('b.cbor'), '--owner-key', at('o.pub.pem')]);
    expect(refused.status).toBe(1);
    expect(refused.stdout).toMatch(/REFUSED[\s\S]*not listed in trust bundle v2/);
    const flashed = run(['flash', at('new.bin'), '--port', addr, '--bundle', at('b.cbor'), '--owner-key', at('o.pub.pem'), '--model', 'fieldbench-ref']);
    expect(flashed.status, flashed.stderr).toBe(0);
    expect(flashed.stdout).toMatch(/done: running 1\.2\.0/);
    expect(run(['flash', at('new.bin'), '--port', addr, '--bundle', at('b.cbor')]).status).toBe(2); // no owner key
  }, 60000);

  it('bad usage exits 2; an unreachable port exits 1 with the reason', async () => {
    expect(run(['info']).status).toBe(2);
    expect(run(['info', '--port', 'tcp://127.0.0.1:1', '--framing', 'sideways']).status).toBe(2);
    const r = run(['info', '--port', `tcp://127.0.0.1:${await freePort()}`]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refused|not reachable|no device/i);
    expect(run(['frobnicate']).status).toBe(2);
  });
});

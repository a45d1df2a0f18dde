/** The device-facing CLI verbs as a user runs them: spawned processes against `fieldbench device`. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
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

  it('bad usage exits 2; an unreachable port exits 1 with the reason', async () => {
    expect(run(['info']).status).toBe(2);
    expect(run(['info', '--port', 'tcp://127.0.0.1:1', '--framing', 'sideways']).status).toBe(2);
    const r = run(['info', '--port', `tcp://127.0.0.1:${await freePort()}`]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refused|not reachable|no device/i);
    expect(run(['frobnicate']).status).toBe(2);
  });
});

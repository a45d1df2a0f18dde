/**
 * `fieldbench bench run` as a line operator runs it: 8 factory-fresh reference devices
 * (`fieldbench device --unprovisioned --count 8` in its own process, over TCP), every port at
 * once, the JSON log a MES reads, the control log verified by `fieldbench audit verify`, and
 * no identifier issued twice.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { type FactoryWorld, factoryWorld } from '../helpers/factory-world.ts';
import { dashboard } from '../../src/cli/commands/bench.ts';

const BIN = join(__dirname, '../../src/cli/bin.mjs');
const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill()));

function run(args: string[], timeoutMs = 180_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (d) => (stdout += d));
    c.stderr!.on('data', (d) => (stderr += d));
    const t = setTimeout(() => c.kill(), timeoutMs);
    c.on('exit', (status) => {
      clearTimeout(t);
      res({ status, stdout, stderr });
    });
  });
}

function startDevices(args: string[], count: number): Promise<string[]> {
  const child = spawn(process.execPath, [BIN, 'device', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const found = [...out.matchAll(/reference device on (tcp:\S+)/g)].map((m) => m[1]);
      if (found.length === count) resolve(found);
    });
    child.stderr!.on('data', (d) => (out += d));
    child.on('exit', (code) => reject(new Error(`device exited ${code}: ${out}`)));
  });
}

let w: FactoryWorld;
let dir: string;
const f = (name: string) => join(dir, name);
beforeAll(async () => {
  w = await factoryWorld();
  dir = mkdtempSync(join(tmpdir(), 'fb-bench-'));
  writeFileSync(f('profile.cose'), w.profileBytes);
  writeFileSync(f('bundle.cose'), w.auth.bundle);
  writeFileSync(f('image.bin'), w.image);
  writeFileSync(f('manufacturer.pem'), privateKeyPem(w.auth.manufacturer.privateKey));
  writeFileSync(f('manufacturer.pub.pem'), publicKeyPem(w.auth.manufacturer.publicKey));
  writeFileSync(f('owner.pub.pem'), publicKeyPem(w.auth.owner.publicKey));
  writeFileSync(f('firmware.pub.pem'), publicKeyPem(w.auth.firmware.publicKey));
  writeFileSync(f('station.pem'), privateKeyPem(w.station.privateKey));
  writeFileSync(f('station.pub.pem'), publicKeyPem(w.station.publicKey));
});

const common = () => ['--owner-key', f('owner.pub.pem'), '--bundle', f('bundle.cose'), '--image', f('image.bin'), '--manufacturer-key', f('manufacturer.pem'), '--station-key', f('station.pem')];

describe('fieldbench bench run', () => {
  it('8 factory-fresh devices on TCP, all at once: provisioned, recorded, verifiable, no identifier twice', async () => {
    const ports = await startDevices(['--listen', 'tcp://127.0.0.1:0', '--count', '8', '--unprovisioned', '--manufacturer-pub', f('manufacturer.pub.pem'), '--owner-key', f('owner.pub.pem'), '--trust-key', f('firmware.pub.pem')], 8);
    // half the ports on the command line, half in a list file
    writeFileSync(f('ports.txt'), `# line 1, jigs 5-8\n${ports.slice(4).join('\n')}\n`);
    const records = f('records');
    const r = await run(['bench', 'run', f('profile.cose'), ...ports.slice(0, 4).flatMap((p) => ['--port', p]), '--ports', f('ports.txt'), '--records', records, ...common(), '--once', '--json']);
    expect(r.status, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const ends = lines.filter((l) => l.event === 'unit-end');
    expect(ends).toHaveLength(8);
    expect(ends.every((e) => e.verdict === 'provisioned')).toBe(true);
    expect(new Set(ends.map((e) => e.port))).toEqual(new Set(ports));
    const serials = ends.map((e) => e.serial);
    expect(new Set(serials).size).toBe(8);
    expect(new Set(ends.map((e) => e.devEui)).size).toBe(8);
    expect(new Set(ends.map((e) => e.mac)).size).toBe(8);
    // the ports ran concurrently: some unit started flashing before another one finished
    const firstEnd = lines.findIndex((l) => l.event === 'unit-end');
    expect(lines.slice(0, firstEnd).filter((l) => l.event === 'step' && l.step === 'flash' && l.progress === undefined).length).toBeGreaterThan(1);
    expect(lines.at(-1)).toMatchObject({ event: 'summary', done: 8, failed: 0 });
    // the MES log is what it says: timestamps, ports, steps
    for (const l of lines) expect(Number.isNaN(Date.parse(l.time))).toBe(false);

    // the control log verifies under the station key, one entry per unit
    const v = await run(['audit', 'verify', '--records', records, '--key', f('station.pub.pem')]);
    expect(v.status, v.stderr).toBe(0);
    const log = readFileSync(join(records, 'records.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const units = log.filter((e) => e.op === 'factory/unit');
    expect(units).toHaveLength(8);
    expect(units.map((u) => u.details.serial).sort()).toEqual([...serials].sort());
    expect(units.every((u) => u.details.attestation === 'trusted' && u.details.verdict === 'provisioned')).toBe(true);
    // the identifier journal: 8 allocations, each provisioned once
    const journal = readFileSync(join(records, 'identifiers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l.split('\t')[0]));
    const allocs = journal.filter((j) => j.t === 'a');
    expect(allocs.map((a) => a.s).sort()).toEqual([...serials].sort());
    expect(journal.filter((j) => j.t === 'c' && j.r === 'provisioned')).toHaveLength(8);
    // a label per unit, SVG and ZPL
    expect(readdirSync(join(records, 'labels')).sort()).toEqual(serials.flatMap((s) => [`${s}.svg`, `${s}.zpl`]).sort());

    // the same units again (a second pass over the line): they keep their identities, nothing new is allocated
    const again = await run(['bench', 'run', f('profile.cose'), ...ports.slice(0, 2).flatMap((p) => ['--port', p]), '--records', records, ...common(), '--once', '--json']);
    expect(again.status, again.stderr + again.stdout.slice(-3000)).toBe(0);
    const ends2 = again.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.event === 'unit-end');
    expect(ends2.map((e) => e.serial).every((s: string) => serials.includes(s))).toBe(true);
    const journal2 = readFileSync(join(records, 'identifiers.jsonl'), 'utf8').trim().split('\n');
    expect(journal2.filter((l) => l.startsWith('{"t":"a"'))).toHaveLength(8);
  }, 240_000);

  it('refuses a profile signed by someone else, and a manufacturer key the profile does not name', async () => {
    const other = await factoryWorld();
    writeFileSync(f('other-owner.pub.pem'), publicKeyPem(other.auth.owner.publicKey));
    const r = await run(['bench', 'run', f('profile.cose'), '--port', 'tcp://127.0.0.1:9', '--records', f('r2'), ...common().map((a) => (a === f('owner.pub.pem') ? f('other-owner.pub.pem') : a)), '--once']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/station profile refused/);
    writeFileSync(f('rogue.pem'), privateKeyPem(other.auth.manufacturer.privateKey));
    const r2 = await run(['bench', 'run', f('profile.cose'), '--port', 'tcp://127.0.0.1:9', '--records', f('r3'), ...common().map((a) => (a === f('manufacturer.pem') ? f('rogue.pem') : a)), '--once']);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/is not the one the profile names/);
    const r3 = await run(['bench', 'run', f('profile.cose'), '--records', f('r4'), ...common()]);
    expect(r3.status).toBe(2);
    expect(r3.stderr).toMatch(/at least one --port/);
  }, 60_000);

  it('the dashboard: a line per port (unit, serial, step, progress, verdict), a footer with done, failed, units per hour', () => {
    const views = [
      { port: '/dev/ttyACM0', unit: 3, serial: 'FB-000012', step: 'flash', progress: 0.42, verdict: 'running' },
      { port: '/dev/ttyACM1', unit: 2, serial: 'FB-000011', step: 'record', progress: 1, verdict: 'remove', lastVerdict: 'PASS' },
      { port: '/dev/ttyACM2', unit: 2, step: 'attest', verdict: 'remove', lastVerdict: 'FAIL', reason: 'attest failed: the attestation is untrusted' },
      { port: '/dev/ttyACM3', unit: 0, verdict: 'waiting' },
    ];
    const text = dashboard(views as never, { done: 10, failed: 1, elapsedMs: 125_000, unitsPerHour: 316, passedPerHour: 288 }, false);
    console.log(text);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^\/dev\/ttyACM0 +#3 +FB-000012 +3\/10 flash +\[█{8}·{12}\] +42% +RUNNING/);
    expect(lines[1]).toMatch(/FB-000011 +10\/10 record .*PASS: REMOVE/);
    expect(lines[2]).toMatch(/8\/10 attest .*FAIL: REMOVE +attest failed: the attestation is untrusted$/);
    expect(lines[3]).toMatch(/waiting for a unit/);
    expect(lines.at(-1)).toBe('DONE 10    FAILED 1    288 units/hour   2:05 elapsed   4 ports');
  });
});

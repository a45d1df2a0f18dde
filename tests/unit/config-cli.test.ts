import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/command.ts';
import { configCommands } from '../../src/cli/commands/config.ts';
import { FIELDBENCH_REF_SCHEMA, formatIssues, validateSettings } from '../../src/core/ops/configuration/schema.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import { installSettingsGroup } from '../../src/device/groups/settings.ts';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';

const fast = { baudRate: 921600 * 40 };
const at = (ms: number) => new Date(Date.now() + ms);

function io(dir: string) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), cwd: dir }, out, err, text: () => out.join(''), errors: () => err.join('') };
}

async function fixture() {
  const auth = await makeAuthorities();
  const { device } = await createSecureDevice(auth, {
    bufSize: 256,
    security: { validateSettings: (s) => formatIssues(validateSettings(FIELDBENCH_REF_SCHEMA, s, { sealed: ['wifi_psk'] })) || null },
  });
  const dir = await mkdtemp(join(tmpdir(), 'fb-config-cli-'));
  await writeFile(join(dir, 'tech.pem'), privateKeyPem(auth.technician.privateKey));
  await writeFile(join(dir, 'owner.pub.pem'), publicKeyPem(auth.owner.publicKey));
  await writeFile(join(dir, 'cred.cose'), auth.credential);
  await writeFile(join(dir, 'bundle.cose'), auth.bundle);
  const sign = async (file: string, sequence: number, settings: Record<string, unknown>) =>
    writeFile(join(dir, file), await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence, settings: settings as never, notAfter: at(86400_000) }, auth.owner.privateKey));
  await sign('c1.cose', 1, { interval: 60, name: 'pump-7' });
  await sign('c2.cose', 2, { interval: 90, name: 'pump-7', mode: 'eco' });
  await sign('bad.cose', 3, { interval: 0 });
  return { auth, device, dir };
}

const connectTo = (device: ReferenceDevice) => async () => openSession(createVirtualDevice({ device, model: fast }).link);
const common = ['--port', 'virtual', '--key', 'tech.pem', '--credential', 'cred.cose', '--bundle', 'bundle.cose', '--owner-key', 'owner.pub.pem'];

describe('config CLI', () => {
  it('apply shows the diff and applies (0), refuses a replay and a schema violation (1), bad input (2)', async () => {
    const f = await fixture();
    const cmds = configCommands({ connect: connectTo(f.device), confirm: async () => false });
    let r = io(f.dir);
    expect(await cmds['config apply'].run(['c1.cose', ...common, '--yes'], r.io)).toBe(0);
    expect(r.text()).toMatch(/applied configuration #1/);
    expect(r.errors()).toMatch(/\+ interval = 60/);
    r = io(f.dir);
    expect(await cmds['config apply'].run(['c2.cose', ...common], r.io)).toBe(1); // not confirmed
    expect(r.errors()).toMatch(/~ interval: 60 -> 90[\s\S]*not applied: the technician did not confirm/);
    r = io(f.dir);
    expect(await cmds['config apply'].run(['c1.cose', ...common, '--yes'], r.io)).toBe(1);
    expect(r.errors()).toMatch(/rejected \(replayed, by the tool\): .*sequence 1 is not above .* 1/);
    r = io(f.dir);
    expect(await cmds['config apply'].run(['bad.cose', ...common, '--yes'], r.io)).toBe(1);
    expect(r.errors()).toMatch(/rejected \(schema.*interval: must be at least 1/);
    r = io(f.dir);
    expect(await cmds['config apply'].run(['missing.cose', ...common, '--yes'], r.io)).toBe(2);
    await expect(cmds['config apply'].run([...common], r.io)).rejects.toBeInstanceOf(UsageError);
    r = io(f.dir);
    // The device shows what it holds only to a logged-in technician (configure or wipe).
    expect(await cmds['config get'].run(['--port', 'virtual', '--json'], r.io)).toBe(1);
    expect(r.errors()).toMatch(/only to a logged-in technician .*configure or wipe/);
    r = io(f.dir);
    expect(await cmds['config get'].run([...common, '--json'], r.io)).toBe(0);
    expect(JSON.parse(r.text())).toMatchObject({ source: 'signed', sequence: 1, settings: { interval: 60, name: 'pump-7' } });
  });

  it('diff of two signed configurations and against a device', async () => {
    const f = await fixture();
    const cmds = configCommands({ connect: connectTo(f.device) });
    let r = io(f.dir);
    expect(await cmds['config diff'].run(['c1.cose', 'c2.cose'], r.io)).toBe(0);
    expect(r.text()).toContain('#1 -> #2');
    expect(r.text()).toContain('+ mode = "eco"');
    r = io(f.dir);
    expect(await cmds['config diff'].run(['c2.cose', ...common], r.io)).toBe(0);
    expect(r.text()).toContain('#0 -> #2');
    r = io(f.dir);
    expect(await cmds['config diff'].run(['tech.pem', 'c2.cose'], r.io)).toBe(2);
    await expect(cmds['config diff'].run(['c1.cose'], r.io)).rejects.toBeInstanceOf(UsageError);
  });

  it('unsigned writes to a stock device need --confirm-unsigned', async () => {
    const v = createVirtualDevice({ model: fast });
    installSettingsGroup(v.device);
    const dir = await mkdtemp(join(tmpdir(), 'fb-config-cli-'));
    const cmds = configCommands({ connect: connectTo(v.device), confirm: async () => true });
    let r = io(dir);
    expect(await cmds['config apply'].run(['--unsigned', 'interval=30', 'name=pump-1', '--port', 'virtual'], r.io)).toBe(1);
    expect(r.errors()).toMatch(/configuration is not signed on this device.*--confirm-unsigned/);
    r = io(dir);
    expect(await cmds['config apply'].run(['--unsigned', 'interval=30', 'name=pump-1', '--port', 'virtual', '--confirm-unsigned'], r.io)).toBe(0);
    expect(r.text()).toMatch(/written and saved: configuration is not signed on this device/);
    r = io(dir);
    expect(await cmds['config apply'].run(['--unsigned', 'wifi_psk=supersecret1', '--port', 'virtual', '--confirm-unsigned'], r.io)).toBe(1);
    expect(r.errors()).not.toContain('supersecret1');
    await expect(cmds['config apply'].run(['--unsigned', 'interval=abc', '--port', 'virtual', '--confirm-unsigned'], r.io)).rejects.toBeInstanceOf(UsageError);
    r = io(dir);
    expect(await cmds['config get'].run(['--port', 'virtual'], r.io)).toBe(0);
    expect(r.text()).toMatch(/not signed on this device[\s\S]*interval\s+30[\s\S]*wifi_psk\s+secret \(not read\)/);
  });
});

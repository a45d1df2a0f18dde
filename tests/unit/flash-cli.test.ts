import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands/flash.ts';
import { UsageError } from '../../src/cli/command.ts';
import { SocketLink } from '../../src/core/link/node-socket.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { parsePem } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { configureImageModel, imageModelOf } from '../../src/device/groups/standard.ts';

const vectors = path.resolve(__dirname, '../../../shared/vectors');
const PUB_PEM = path.join(vectors, 'mcuboot/root-ed25519-pub.pem');
const PRIV_PEM = path.join(vectors, 'mcuboot/root-ed25519.pem');
const k = parsePem(readFileSync(PRIV_PEM, 'utf8'));
const SEED = k.kind === 'ed25519-private' ? k.seed : new Uint8Array(32);

let server: Server;
let port = 0;
let device: ReferenceDevice;
let dir: string;

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), cwd: dir }, out, err };
}

async function image(name: string, version: string, sc: number, signed = true) {
  const body = new Uint8Array(6000).map((_, i) => (i * 31 + sc) & 0xff);
  const img = (await signImage(body, { key: signed ? SEED : undefined, version, headerSize: 32, padHeader: true, securityCounter: sc })).image;
  await writeFile(path.join(dir, name), img);
  return img;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fieldbench-flash-'));
  device = new ReferenceDevice();
  await configureImageModel(device, { trustedKeys: [await ed25519PublicKey(SEED)] });
  server = createServer((sock) => void device.serve(new SocketLink(sock, 'tcp client')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  port = typeof a === 'object' && a ? a.port : 0;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('fieldbench flash', () => {
  it('updates the device: prints the preflight report and progress, exits 0', async () => {
    const img = await image('fw-1.1.0.bin', '1.1.0', 2);
    const c = io();
    const code = await commands.flash.run(['fw-1.1.0.bin', '--port', `tcp://127.0.0.1:${port}`, '--key', PUB_PEM, '--line-gap', '0'], c.io);
    expect(c.err.join('')).not.toMatch(/fieldbench flash:/);
    expect(code).toBe(0);
    const out = c.out.join('');
    expect(out).toMatch(/Preflight: image accepted/);
    expect(out).toMatch(/\[ok  \] signature/);
    expect(out).toMatch(/done: running 1\.1\.0\+0, confirmed/);
    expect(c.err.join('')).toMatch(/uploading .*100\.0%/);
    expect(imageModelOf(device).slots[0]!.data).toEqual(img);
  }, 30000);

  it('refuses an unsigned image with the reason, exit 1; --json gives the report', async () => {
    await image('unsigned.bin', '1.2.0', 3, false);
    const c = io();
    const code = await commands.flash.run(['unsigned.bin', '--port', `tcp://127.0.0.1:${port}`, '--key', PUB_PEM, '--json', '--line-gap', '0'], c.io);
    expect(code).toBe(1);
    expect(c.err.join('')).toMatch(/refused: signature: .*unsigned/);
    const j = JSON.parse(c.out.join(''));
    expect(j.ok).toBe(false);
    expect(j.preflight.checks.find((x: { name: string }) => x.name === 'signature').result).toBe('fail');
  }, 30000);

  it('refuses a rollback, exit 1', async () => {
    await image('old.bin', '1.0.5', 5);
    const c = io();
    const code = await commands.flash.run(['old.bin', '--port', `tcp://127.0.0.1:${port}`, '--key', PUB_PEM, '--line-gap', '0'], c.io);
    expect(code).toBe(1);
    expect(c.err.join('')).toMatch(/rollback refused/);
  }, 30000);

  it('bad usage and unreadable input', async () => {
    await expect(commands.flash.run(['x.bin', '--port', 'tcp://127.0.0.1:1'], io().io)).rejects.toBeInstanceOf(UsageError);
    await expect(commands.flash.run(['--port', 'tcp://127.0.0.1:1', '--key', PUB_PEM], io().io)).rejects.toBeInstanceOf(UsageError);
    const c = io();
    expect(await commands.flash.run(['missing.bin', '--port', 'tcp://127.0.0.1:1', '--key', PUB_PEM], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/cannot read missing.bin/);
    const c2 = io();
    await image('ok.bin', '1.3.0', 6);
    expect(await commands.flash.run(['ok.bin', '--port', 'tcp://127.0.0.1:1', '--key', PRIV_PEM], c2.io)).toBe(2);
    expect(c2.err.join('')).toMatch(/private key/);
  });
});

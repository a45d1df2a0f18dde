/** The owner signs a technician's request (the app's "Prepare request") without ever seeing the secrets. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/base/bytes.ts';
import { generateX25519, open, seal } from '../../src/core/trust/seal.ts';
import { decodeConfigUnverified } from '../../src/core/trust/signed-config.ts';

const BIN = join(__dirname, '../../src/cli/bin.mjs');
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30000 });

describe('config sign --request', () => {
  it('signs the settings and the pre-sealed secrets of a request, for that device and sequence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fb-req-'));
    expect(run(['keygen', '--out', join(dir, 'owner')]).status).toBe(0);
    const dev = generateX25519();
    const sealed = seal({ wifi_psk: 'hunter2-but-longer' }, dev.publicKey);
    const req = { device: 'FB-0042', model: 'fieldbench-ref', minSequence: 4, settings: { interval: 30 }, sealedSecrets: toHex(sealed), sealedNames: ['wifi_psk'] };
    writeFileSync(join(dir, 'req.json'), JSON.stringify(req));
    const out = join(dir, 'cfg.cose');
    const r = run(['config', 'sign', '--key', join(dir, 'owner.pem'), '--request', join(dir, 'req.json'), '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/configuration #4 for device FB-0042.*sealed secrets/);
    expect(r.stdout + r.stderr).not.toContain('hunter2');
    const c = decodeConfigUnverified(new Uint8Array(readFileSync(out)));
    expect(c.target).toEqual({ kind: 'serial', serial: 'FB-0042' });
    expect(c.settings).toEqual({ interval: 30 });
    expect(open(c.secrets!, dev.privateKey).get('wifi_psk')).toBe('hunter2-but-longer');

    // A sequence below the request's is refused (the device would call it a replay); so is garbage in the secrets slot.
    expect(run(['config', 'sign', '--key', join(dir, 'owner.pem'), '--request', join(dir, 'req.json'), '--sequence', '3', '--out', out]).status).toBe(2);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...req, sealedSecrets: 'a1010203' }));
    const bad = run(['config', 'sign', '--key', join(dir, 'owner.pem'), '--request', join(dir, 'bad.json'), '--out', out]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/sealed secrets are not valid/);
  });
});

/**
 * Station profile (issue 13 item 3) and unit labels (item 7) from the CLI:
 * `profile sign` from a JSON description (firmware named by the digest of a
 * real signed image), `inspect` showing it, and the station's gate
 * (loadStationProfile / `profile verify`) refusing an unsigned, foreign-signed,
 * expired, not-yet-valid, altered or wrong-type file. `label` writes SVG, PDF
 * and ZPL; the 2D code drawn in the SVG, rasterised and decoded with jsQR, reads
 * back through identify's parseLabelCode and passes identify's label check on
 * the device it was printed for, and fails on a device with another key.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import jsQR from 'jsqr';
import { ed25519 } from '@noble/curves/ed25519.js';
import { commands as factory } from '../../src/cli/commands/factory.ts';
import { commands as trust } from '../../src/cli/commands/trust.ts';
import { loadStationProfile } from '../../src/cli/station-profile.ts';
import type { CliIo } from '../../src/cli/command.ts';
import { appendRecords } from '../../src/cli/records.ts';
import { controlEntry } from '../../src/core/factory/control-log.ts';
import { decodeProfileUnverified, issueProfile, verifyProfile } from '../../src/core/factory/profile.ts';
import { keyFingerprint, labelMatrix, labelPayload, labelSvg } from '../../src/core/factory/label.ts';
import { labelCheck, parseLabelCode } from '../../src/core/ops/identification/identify.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { signSign1 } from '../../src/core/trust/cose.ts';
import { encodeDeterministic } from '../../src/core/base/cbor.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { toHex } from '../../src/core/base/bytes.ts';

const OWNER = crypto.getRandomValues(new Uint8Array(32));
const OTHER = crypto.getRandomValues(new Uint8Array(32));
const FW = crypto.getRandomValues(new Uint8Array(32));
const MFR = crypto.getRandomValues(new Uint8Array(32));
const DAY = 86400_000;

async function run(table: Record<string, { run: (a: string[], io: CliIo) => Promise<number> }>, verb: string, argv: string[], cwd: string) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), cwd };
  const code = await table[verb].run(argv, io).catch((e: Error) => {
    err += e.message;
    return e.name === 'InputError' || e.name === 'UsageError' ? 2 : 1;
  });
  return { code, out, err };
}

let dir: string;
let imageDigest: string;

const description = (over: Record<string, unknown> = {}) => ({
  name: 'pump line 1',
  model: 'pump',
  manufacturer: 'mfr.pub.pem',
  firmware: [{ image: 'app.signed.bin', signingKeys: ['fw.pub.pem'] }],
  configuration: 'factory.cfg',
  identity: { serial: { pattern: 'PUMP-{n:06}', first: 1, last: 5000 }, devEui: { first: '70B3D57ED0000000', count: 5000 }, certValidityDays: 3650, hwRev: 'B' },
  tests: { echo: true, attestation: 'trusted', interfaces: { shell: 'disabled' } },
  label: { widthMm: 60, heightMm: 30, code: 'qr', dpi: 300 },
  validity: { days: 30 },
  ...over,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fb-profile-'));
  await writeFile(join(dir, 'owner.pem'), privateKeyPem(OWNER));
  await writeFile(join(dir, 'owner.pub.pem'), publicKeyPem(ed25519.getPublicKey(OWNER)));
  await writeFile(join(dir, 'other.pub.pem'), publicKeyPem(ed25519.getPublicKey(OTHER)));
  await writeFile(join(dir, 'fw.pub.pem'), publicKeyPem(ed25519.getPublicKey(FW)));
  await writeFile(join(dir, 'mfr.pub.pem'), publicKeyPem(ed25519.getPublicKey(MFR)));
  const body = crypto.getRandomValues(new Uint8Array(4096));
  const img = await signImage(body, { key: FW, version: '1.4.2', headerSize: 32, padHeader: true, securityCounter: 7 });
  imageDigest = toHex(img.digest);
  await writeFile(join(dir, 'app.signed.bin'), img.image);
  const unsigned = await signImage(body, { version: '1.4.2', headerSize: 32, padHeader: true });
  await writeFile(join(dir, 'app.unsigned.bin'), unsigned.image);
  await writeFile(join(dir, 'factory.cfg'), await issueConfig({ target: { kind: 'model', model: 'pump' }, sequence: 3, settings: { 'lora/region': 'EU868' }, notAfter: Date.now() + 30 * DAY }, OWNER));
  await writeFile(join(dir, 'desc.json'), JSON.stringify(description()));
});

describe('fieldbench profile sign / verify / inspect', () => {
  it('signs a profile naming the image by its hash TLV; inspect shows it; the station accepts it', async () => {
    const r = await run(factory, 'profile sign', ['desc.json', '--key', 'owner.pem', '--out', 'line.profile'], dir);
    expect(r.err).toMatch(/in clear/); // an owner key in a clear PEM works, with a warning
    expect(r.code).toBe(0);
    const bytes = new Uint8Array(await readFile(join(dir, 'line.profile')));
    const p = decodeProfileUnverified(bytes);
    expect(p.firmware).toEqual([{ version: '1.4.2', sha256: expect.any(Uint8Array), securityCounter: 7, signingKeys: [ed25519.getPublicKey(FW)] }]);
    expect(toHex(p.firmware[0].sha256)).toBe(imageDigest);
    expect(p.identity.policy).toEqual({ serial: { pattern: 'PUMP-{n:06}', first: 1, last: 5000 }, devEui: { first: '70b3d57ed0000000', count: 5000 } });
    expect(p.tests).toEqual({ echo: true, attestation: 'trusted', interfaces: { shell: 'disabled' } });
    expect(p.label).toEqual({ code: 'qr', dpi: 300, heightMm: 30, widthMm: 60 });
    expect(p.notAfter - p.notBefore).toBe(30 * 86400);
    const shown = await run(trust, 'inspect', ['line.profile'], dir);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(/station profile "pump line 1" for pump: firmware 1\.4\.2 sha256:[0-9a-f]{64}, factory configuration, serials PUMP-\{n:06\} 1\.\.5000/);
    const json = JSON.parse((await run(trust, 'inspect', ['line.profile', '--json'], dir)).out);
    expect(json).toMatchObject({ kind: 'profile', model: 'pump', verified: false });
    const ok = await run(factory, 'profile verify', ['line.profile', '--owner', 'owner.pub.pem'], dir);
    expect([ok.code, ok.err]).toEqual([0, '']);
    expect(ok.out).toMatch(/^OK station profile "pump line 1" for pump, sha256 [0-9a-f]{64}/);
  });

  it('the station refuses an unsigned, foreign-signed, expired, not yet valid, altered or wrong-type profile', async () => {
    const io: CliIo = { out: () => {}, err: () => {}, cwd: dir };
    const good = new Uint8Array(await readFile(join(dir, 'line.profile')));
    const refuse = async (name: string, bytes: Uint8Array, code: string, owner = 'owner.pub.pem', now?: number) => {
      await writeFile(join(dir, name), bytes);
      const r = await loadStationProfile(io, name, [owner], now);
      expect(r, name).toMatchObject({ ok: false, code });
      const cli = await run(factory, 'profile verify', [name, '--owner', owner, ...(now ? ['--now', new Date(now).toISOString()] : [])], dir);
      expect(cli.code, name).toBe(1);
      expect(cli.err).toMatch(new RegExp(`rejected \\(${code}\\)`));
    };
    // the payload alone, no COSE_Sign1 around it
    const payload = decodeProfileUnverified(good);
    await refuse('bare.profile', encodeDeterministic(new Map([[2, payload.name], [3, payload.model]])), 'malformed');
    // a Sign1 with the right content type but an all-zero signature
    const { decodeSign1 } = await import('../../src/core/trust/cose.ts');
    const m = decodeSign1(good);
    const zeroSig = new Uint8Array(good);
    zeroSig.set(new Uint8Array(64), zeroSig.length - 64);
    expect(toHex(zeroSig.slice(-64))).not.toBe(toHex(m.signature));
    await refuse('unsigned.profile', zeroSig, 'bad-signature');
    // signed by a key the station does not trust for profiles
    await refuse('foreign.profile', good, 'wrong-issuer', 'other.pub.pem');
    // altered: one byte of the payload (the model name) changed
    const altered = new Uint8Array(good);
    const at = Buffer.from(altered).indexOf('pump line 1');
    altered[at] ^= 0x20;
    await refuse('altered.profile', altered, 'bad-signature');
    // expired and not yet valid
    await refuse('expired.profile', good, 'expired', 'owner.pub.pem', Date.now() + 31 * DAY);
    const future = await issueProfile({ ...payload, notBefore: Math.floor(Date.now() / 1000) + 86400 * 10, notAfter: Math.floor(Date.now() / 1000) + 86400 * 20 }, OWNER);
    await refuse('future.profile', future, 'not-yet-valid');
    // another artifact type (the factory configuration) offered as a profile
    await refuse('config.profile', new Uint8Array(await readFile(join(dir, 'factory.cfg'))), 'wrong-type');
    // a raw Sign1 under the owner key but without the profile content type
    const raw = await signSign1({ payload: encodeDeterministic(new Map([[1, 1]])), privateKey: OWNER, alg: -8 });
    await refuse('raw.profile', raw, 'wrong-type');
    expect((await verifyProfile(good, { ownerKeys: [ed25519.getPublicKey(OWNER)] })).ok).toBe(true);
  });

  it('refuses a description it cannot make a safe profile from, with the reason', async () => {
    const bad = async (over: Record<string, unknown>, re: RegExp) => {
      await writeFile(join(dir, 'bad.json'), JSON.stringify(description(over)));
      const r = await run(factory, 'profile sign', ['bad.json', '--key', 'owner.pem', '--out', 'bad.profile', '--force'], dir);
      expect(r.code, JSON.stringify(over)).toBe(2);
      expect(r.err).toMatch(re);
    };
    await bad({ firmware: [{ image: 'app.unsigned.bin', signingKeys: ['fw.pub.pem'] }] }, /not one the station could install/);
    await bad({ firmware: [{ image: 'app.signed.bin', signingKeys: ['other.pub.pem'] }] }, /not one the station could install/);
    await bad({ firmware: [{ image: 'app.signed.bin', signingKeys: ['fw.pub.pem'], securityCounter: 2 }] }, /securityCounter 2 differs from the image's 7/);
    await bad({ firmware: [{ image: 'app.signed.bin', signingKeys: ['owner.pem'] }] }, /private key/);
    await bad({ firmware: [] }, /at least one image/);
    await bad({ identity: { serial: { pattern: 'PUMP', first: 1, last: 9 } } }, /identity/);
    await bad({ tests: { attestation: 'warn' } }, /"trusted"/);
    await bad({ tests: { interfaces: { shell: 'closed' } } }, /open, authenticated or disabled/);
    await bad({ label: { widthMm: 10, heightMm: 30 } }, /widthMm/);
    await bad({ configuration: 'app.signed.bin' }, /not a signed configuration/);
    await bad({ validity: { days: 10, notAfter: '2030-01-01T00:00:00Z' } }, /not both/);
    await bad({ colour: 'red' }, /unknown field "colour"/);
    // and nothing was written for any of them
    await expect(readFile(join(dir, 'bad.profile'))).rejects.toThrow(/ENOENT/);
  });
});

/** Rasterise the code in our SVG (the `M x y h w v m h -w z` runs in module units) back to a bitmap. */
function rasterSvg(svg: string, scale = 8): { data: Uint8ClampedArray; width: number; height: number } {
  const vb = /viewBox="0 0 ([\d.]+) ([\d.]+)"/.exec(svg)!;
  const d = /<path d="([^"]+)"/.exec(svg)![1];
  const rects = [...d.matchAll(/M([\d.]+) ([\d.]+)h([\d.]+)v([\d.]+)h-[\d.]+z/g)].map((r) => r.slice(1, 5).map(Number));
  const module = rects[0][3];
  const px = scale / module; // pixels per millimetre
  const width = Math.ceil(Number(vb[1]) * px);
  const height = Math.ceil(Number(vb[2]) * px);
  const data = new Uint8ClampedArray(width * height * 4).fill(255);
  for (const [x, y, w, h] of rects) {
    for (let yy = Math.round(y * px); yy < Math.round((y + h) * px); yy++) {
      for (let xx = Math.round(x * px); xx < Math.round((x + w) * px); xx++) {
        const i = (yy * width + xx) * 4;
        data[i] = data[i + 1] = data[i + 2] = 0;
      }
    }
  }
  return { data, width, height };
}

describe('fieldbench label', () => {
  const devicePublicKey = ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32)));
  const presented = { serial: 'PUMP-000042', model: 'pump', hwRev: 'B', devicePublicKey, deviceEncKey: new Uint8Array(32), certLength: 300, devEui: Uint8Array.from(Buffer.from('70b3d57ed000002a', 'hex')) };

  it('writes SVG, PDF and ZPL; the SVG\'s code decodes (jsQR) back to the payload, which identify reads and checks against the device', async () => {
    await writeFile(join(dir, 'dev.pub.pem'), publicKeyPem(devicePublicKey));
    const base = ['--serial', 'PUMP-000042', '--model', 'pump', '--device-pub', 'dev.pub.pem', '--deveui', '70:B3:D5:7E:D0:00:00:2A', '--profile', 'line.profile'];
    for (const f of ['svg', 'pdf', 'zpl']) {
      const r = await run(factory, 'label', [...base, '--out', `u42.${f}`], dir);
      expect([r.code, r.err]).toEqual([0, '']);
    }
    const svg = await readFile(join(dir, 'u42.svg'), 'utf8');
    expect(svg).toMatch(/width="60mm" height="30mm"/); // the profile's label stock
    expect(svg).toContain('S/N PUMP-000042');
    const pdf = await readFile(join(dir, 'u42.pdf'));
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const zpl = await readFile(join(dir, 'u42.zpl'), 'utf8');
    const payload = labelPayload({ serial: 'PUMP-000042', model: 'pump', devEui: '70b3d57ed000002a', keyFingerprint: keyFingerprint(devicePublicKey) });
    expect(zpl).toContain(`^FDMA,${payload}^FS`);
    expect(zpl).toMatch(/^\^XA\n[\s\S]*\^PW709\n\^LL354\n/); // 60 x 30 mm at 300 dpi

    const { data, width, height } = rasterSvg(svg);
    const qr = jsQR(data, width, height);
    expect(qr?.data).toBe(payload);
    const label = parseLabelCode(qr!.data);
    expect(label).toEqual({ serial: 'PUMP-000042', model: 'pump', devEui: '70b3d57ed000002a', keyFingerprint: keyFingerprint(devicePublicKey) });
    expect(labelCheck(presented, label)).toMatchObject({ result: 'pass', detail: expect.stringContaining('key fingerprint') });
    // the same label on a device holding another key (a swapped board, a cloned serial) fails
    const other = { ...presented, devicePublicKey: ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32))) };
    expect(labelCheck(other, label)).toMatchObject({ result: 'fail', detail: expect.stringMatching(/printed for identity key/) });
    // a damaged code is an error, not a guess
    expect(() => parseLabelCode(payload.replace('K=', 'K=Z'))).toThrow(/damaged/);
  });

  it('a Data Matrix template and the matrix itself round-trip too; bad input is refused', async () => {
    const d = { serial: 'SN 7;=^~', model: 'pump', mac: '02aabb00002a', keyFingerprint: keyFingerprint(devicePublicKey) };
    const m = labelMatrix(d, 'qr');
    const s = 6;
    const q = 4;
    const w = (m.length + 2 * q) * s;
    const data = new Uint8ClampedArray(w * w * 4).fill(255);
    m.forEach((row, y) => row.forEach((on, x) => {
      if (!on) return;
      for (let yy = 0; yy < s; yy++) for (let xx = 0; xx < s; xx++) {
        const i = (((y + q) * s + yy) * w + (x + q) * s + xx) * 4;
        data[i] = data[i + 1] = data[i + 2] = 0;
      }
    }));
    const back = parseLabelCode(jsQR(data, w, w)!.data);
    expect(back).toMatchObject({ serial: 'SN 7;=^~', mac: '02aabb00002a' });
    expect(labelSvg(d, { code: 'datamatrix' })).toMatch(/<path d="M/);
    const r = await run(factory, 'label', ['--serial', 'X', '--model', 'pump', '--key-fingerprint', 'abc', '--out', 'x.svg'], dir);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/keyFingerprint must be 32 hex digits/);
    expect((await run(factory, 'label', ['--serial', 'X', '--model', 'pump', '--key-fingerprint', 'ab'.repeat(16), '--out', 'x.txt'], dir)).code).toBe(2);
  });

  it('reprints a unit\'s label from the station\'s control log (--records)', async () => {
    const records = await mkdtemp(join(tmpdir(), 'fb-label-records-'));
    const seed = crypto.getRandomValues(new Uint8Array(32));
    await appendRecords(records, [controlEntry({
      port: 'tcp://127.0.0.1:47400', verdict: 'provisioned', profileDigest: 'ab'.repeat(32), model: 'pump', serial: 'PUMP-000042', devEui: '70b3d57ed000002a',
      devicePublicKey: toHex(devicePublicKey), certificateDigest: 'cd'.repeat(32), firmwareDigest: imageDigest, attestation: 'trusted', steps: [],
    })], { seed, technician: 'station:line-1' });
    const r = await run(factory, 'label', ['--records', records, '--serial', 'PUMP-000042', '--profile', 'line.profile', '--out', 'reprint.svg'], dir);
    expect([r.code, r.err]).toEqual([0, '']);
    expect(await readFile(join(dir, 'reprint.svg'), 'utf8')).toBe(await readFile(join(dir, 'u42.svg'), 'utf8'));
    const none = await run(factory, 'label', ['--records', records, '--serial', 'PUMP-000043', '--out', 'none.svg'], dir);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/no provisioned unit with serial "PUMP-000043"/);
  });
});

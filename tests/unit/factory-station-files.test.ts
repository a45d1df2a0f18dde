/**
 * The app's station from files (src/core/factory/station-files.ts): a good set loads; each bad file
 * is refused and named (owner key, an unsigned / foreign-signed / expired / altered profile, the
 * bundle, an image the profile does not name, a wrong passphrase, a manufacturer or station key the
 * profile does not name).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type StationFiles, loadStationFiles } from '../../src/core/factory/station-files.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { publicKeyPem } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { wrapKey } from '../../src/core/trust/wrapped-key.ts';
import { issueProfile } from '../../src/core/factory/profile.ts';
import { decodeProfileUnverified } from '../../src/core/factory/profile.ts';
import { type FactoryWorld, factoryWorld } from '../helpers/factory-world.ts';

const PASS = 'correct horse battery staple';
let w: FactoryWorld;
let good: StationFiles;
beforeAll(async () => {
  w = await factoryWorld();
  good = {
    ownerKey: publicKeyPem(w.auth.owner.publicKey),
    profile: w.profileBytes,
    bundle: w.auth.bundle,
    images: [w.image],
    manufacturerKey: await wrapKey(w.auth.manufacturer.privateKey, PASS),
    manufacturerPassphrase: PASS,
    stationKey: await wrapKey(w.station.privateKey, PASS),
  };
}, 60_000);

const refused = async (f: Partial<StationFiles>) => {
  const r = await loadStationFiles({ ...good, ...f });
  if (r.ok) throw new Error('loaded');
  return r;
};

describe('a station from files', () => {
  it('loads a good set: the profile, the image it names, both keys', async () => {
    const other = await signImage(new Uint8Array(4096), { key: w.auth.firmware.privateKey, version: '1.0.0', headerSize: 32, padHeader: true });
    const r = await loadStationFiles({ ...good, images: [other.image, w.image] });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.station.image).toBe(w.image);
    expect(r.station.profile.model).toBe('fieldbench-ref');
    const sig = await r.station.manufacturer.sign(new Uint8Array([1]));
    expect(sig).toHaveLength(64);
    r.station.manufacturer.forget();
    r.station.station.signer.forget();
  }, 60_000);

  it('refuses each bad file and names it', async () => {
    const foreign = await generateEd25519();
    expect((await refused({ ownerKey: 'not a key' })).file).toBe('owner-key');
    // unsigned (not a COSE message), foreign-signed, altered, expired
    expect(await refused({ profile: new TextEncoder().encode('{"name":"line"}') })).toMatchObject({ file: 'profile' });
    const p = decodeProfileUnverified(w.profileBytes);
    const foreignSigned = await issueProfile({ ...p, notAfter: new Date(p.notAfter * 1000) } as never, foreign.privateKey);
    expect(await refused({ profile: foreignSigned })).toMatchObject({ file: 'profile' });
    const altered = w.profileBytes.slice();
    altered[altered.length - 80] ^= 1;
    expect(await refused({ profile: altered })).toMatchObject({ file: 'profile' });
    const expired = await refused({ now: Date.now() + 365 * 86400_000 });
    expect(expired).toMatchObject({ file: 'profile', code: 'expired' });
    expect(expired.reason).toMatch(/expired/);
    // the bundle, the image
    expect(await refused({ bundle: w.profileBytes })).toMatchObject({ file: 'bundle' });
    const other = await signImage(new Uint8Array(4096), { key: w.auth.firmware.privateKey, version: '1.0.0', headerSize: 32, padHeader: true });
    expect(await refused({ images: [other.image] })).toMatchObject({ file: 'image', code: 'not-in-profile' });
    // the keys
    expect(await refused({ manufacturerPassphrase: 'not the passphrase' })).toMatchObject({ file: 'manufacturer-key', code: 'bad-passphrase' });
    expect(await refused({ manufacturerKey: await wrapKey(foreign.privateKey, PASS) })).toMatchObject({ file: 'manufacturer-key', code: 'wrong-key' });
    expect(await refused({ stationKey: good.manufacturerKey })).toMatchObject({ file: 'station-key', code: 'wrong-key' });
    expect(await refused({ stationPassphrase: 'another wrong one' })).toMatchObject({ file: 'station-key', code: 'bad-passphrase' });
  }, 120_000);
});

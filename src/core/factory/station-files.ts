/**
 * A station from its files, as the app's Bench page loads them (the CLI's `bench run` reads the
 * same things from disk): the owner's public key the station pins, the owner-signed station profile,
 * the owner's trust bundle, the firmware image(s), the manufacturer key and the station key (both
 * passphrase-wrapped key files, wrapped-key.ts). Every check the CLI makes, in the same order, each
 * failure naming the file it is about so the operator knows which one to fix:
 *
 *   owner-key         not an Ed25519 public key
 *   profile           unsigned, signed by another key, expired or not yet valid, altered, not a profile
 *   bundle            not signed by the owner, expired
 *   image             none of the images is the one the profile names (by its hash), or it does not
 *                     verify under the profile's firmware keys
 *   manufacturer-key  wrong passphrase, not a wrapped key, not the key the profile names
 *   station-key       wrong passphrase, not a wrapped key, not the key of the profile's station credential
 *
 * The unwrapped keys live in memory only (Signers with forget()); the caller forgets them when the
 * station stops.
 */
import { toHex } from '../base/bytes.ts';
import { type TrustBundle, verifyBundle } from '../trust/bundle.ts';
import { decodeCredentialUnverified } from '../trust/credential.ts';
import { keyId, parsePem } from '../trust/keys.ts';
import { verifyImage } from '../trust/mcuboot/verify.ts';
import { type Signer, SignerError } from '../trust/signer.ts';
import { wrappedSigner } from '../trust/wrapped-key.ts';
import { type VerifiedProfile, verifyProfile } from './profile.ts';

export type StationFile = 'owner-key' | 'profile' | 'bundle' | 'image' | 'manufacturer-key' | 'station-key';

export interface StationFiles {
  ownerKey: string;
  profile: Uint8Array;
  bundle: Uint8Array;
  images: Uint8Array[];
  manufacturerKey: string;
  manufacturerPassphrase: string;
  stationKey: string;
  /** Default: the manufacturer key's passphrase. */
  stationPassphrase?: string;
  now?: number;
}

/** What the Station needs (src/core/factory/station.ts), from verified files. */
export interface LoadedStation {
  profile: VerifiedProfile;
  image: Uint8Array;
  bundle: TrustBundle;
  manufacturer: Signer & { forget(): void };
  station: { signer: Signer & { forget(): void }; credential: Uint8Array };
}

export type StationLoad = { ok: true; station: LoadedStation } | { ok: false; file: StationFile; code: string; reason: string };

const fail = (file: StationFile, code: string, reason: string): StationLoad => ({ ok: false, file, code, reason });

async function unwrap(file: StationFile, text: string, passphrase: string, what: string): Promise<(Signer & { forget(): void }) | StationLoad> {
  try {
    return await wrappedSigner(text, passphrase);
  } catch (e) {
    const code = e instanceof SignerError ? e.code : 'bad-key';
    const why = code === 'bad-passphrase' ? `wrong passphrase for the ${what} (or the file was altered)` : `the ${what} is not a passphrase-wrapped key file: ${(e as Error).message}`;
    return fail(file, code, why);
  }
}

export async function loadStationFiles(f: StationFiles): Promise<StationLoad> {
  let ownerKey: Uint8Array;
  try {
    const p = parsePem(f.ownerKey);
    if (p.kind !== 'ed25519-public') return fail('owner-key', 'not-public-key', `the owner key must be an Ed25519 PUBLIC key (this file holds a ${p.kind} key)`);
    ownerKey = p.publicKey;
  } catch (e) {
    return fail('owner-key', 'key-format', `the owner key is unreadable: ${(e as Error).message}`);
  }
  const pv = await verifyProfile(f.profile, { ownerKeys: [ownerKey], ...(f.now !== undefined ? { now: f.now } : {}) });
  if (!pv.ok) return fail('profile', pv.code, `station profile refused (${pv.code}): ${pv.reason}`);
  const profile = pv.value;
  const bv = await verifyBundle(f.bundle, { ownerKeys: [ownerKey], ...(f.now !== undefined ? { now: f.now } : {}) });
  if (!bv.ok) return fail('bundle', bv.code, `trust bundle refused (${bv.code}): ${bv.reason}`);
  const fw = profile.firmware[0];
  if (!fw || profile.firmware.length !== 1) return fail('profile', 'firmware', 'the station runs profiles with exactly one firmware image');
  let image: Uint8Array | undefined;
  const seen: string[] = [];
  for (const candidate of f.images) {
    const v = await verifyImage(candidate, { keys: fw.signingKeys, requireSignature: true });
    if (v.digest && toHex(v.digest) === toHex(fw.sha256)) {
      if (!v.ok) return fail('image', 'image-rejected', `the profile's image ${fw.version} does not verify: ${v.reason}`);
      image = candidate;
      break;
    }
    seen.push(v.version ?? (v.ok ? '?' : `unreadable (${v.reason})`));
  }
  if (!image) {
    return fail('image', 'not-in-profile', `none of the ${f.images.length} image(s) given${seen.length ? ` (${seen.join(', ')})` : ''} is the profile's ${fw.version} (${toHex(fw.sha256).slice(0, 16)}…)`);
  }
  const manufacturer = await unwrap('manufacturer-key', f.manufacturerKey, f.manufacturerPassphrase, 'manufacturer key');
  if (!('sign' in manufacturer)) return manufacturer;
  if (toHex(keyId(manufacturer.publicKey)) !== toHex(profile.manufacturerKid)) {
    manufacturer.forget();
    return fail('manufacturer-key', 'wrong-key', `the manufacturer key ${toHex(keyId(manufacturer.publicKey))} is not the one the profile names (${toHex(profile.manufacturerKid)})`);
  }
  const stationSigner = await unwrap('station-key', f.stationKey, f.stationPassphrase || f.manufacturerPassphrase, 'station key');
  if (!('sign' in stationSigner)) {
    manufacturer.forget();
    return stationSigner;
  }
  const credential = profile.stationCredential;
  const credKey = credential ? decodeCredentialUnverified(credential).publicKey : undefined;
  if (!credential || !credKey || toHex(credKey) !== toHex(stationSigner.publicKey)) {
    manufacturer.forget();
    stationSigner.forget();
    return fail('station-key', 'wrong-key', credential ? 'the station key is not the key the profile\'s station credential names' : 'the profile names no station credential: the station cannot log in to the units');
  }
  return { ok: true, station: { profile, image, bundle: bv.value, manufacturer, station: { signer: stationSigner, credential } } };
}

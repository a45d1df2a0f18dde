/**
 * The station's gate on its profile: a station runs a unit only under a
 * profile that is signed by an owner key it trusts, inside its validity
 * window, and unaltered (verifyProfile). `bench run` and `profile verify`
 * read it through here.
 */
import type { CliIo } from './command.ts';
import { InputError, readEd25519Public, readInput } from './files.ts';
import { verifyProfile, type VerifiedProfile } from '../core/factory/profile.ts';
import { decodeConfigUnverified } from '../core/trust/signed-config.ts';
import type { TrustFailure } from '../core/trust/result.ts';

export type LoadedProfile = { ok: true; profile: VerifiedProfile; bytes: Uint8Array } | { ok: false; code: TrustFailure; reason: string };

/**
 * Read and verify a station profile file against the owner public key files.
 * Unreadable files throw InputError; a profile the station must refuse
 * (unsigned, signed by another key, expired, not yet valid, altered, not a
 * profile) is `{ ok: false, code, reason }`.
 */
export async function loadStationProfile(io: CliIo, path: string, ownerKeyFiles: string[], now?: number): Promise<LoadedProfile> {
  if (ownerKeyFiles.length === 0) throw new InputError('the station needs the owner public key(s) that may sign its profiles');
  const ownerKeys = await Promise.all(ownerKeyFiles.map((f) => readEd25519Public(io, f, { what: 'owner key', publicOnly: true })));
  const bytes = await readInput(io, path, 'station profile');
  const r = await verifyProfile(bytes, { ownerKeys, now });
  if (!r.ok) return { ok: false, code: r.code, reason: `${path}: ${r.reason}` };
  return { ok: true, profile: r.value, bytes };
}

/** The sequence of an owner-signed configuration (the profile's factory configuration); InputError when it is not one. */
export function signedConfigSequence(bytes: Uint8Array, name: string): number {
  try {
    return decodeConfigUnverified(bytes).sequence;
  } catch (e) {
    throw new InputError(`${name}: not a signed configuration (${(e as Error).message})`);
  }
}

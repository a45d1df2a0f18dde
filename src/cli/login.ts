/**
 * The technician login options of the CLI verbs that change a device
 * (interfaces, wipe): --credential, --key, --bundle, --owner-key. The bundle
 * is used only when it verifies under the owner key; the login hands the
 * device the bundle when the device's is older (core/ops/access/login.ts).
 */
import type { ParsedArgs, CliIo } from './command.ts';
import { readEd25519Private, readEd25519Public, readInput } from './files.ts';
import { authenticateTechnician, type TechnicianSession } from '../core/ops/access/login.ts';
import type { SecurityGroup } from '../core/groups/security.ts';
import { type TrustBundle, verifyBundle } from '../core/trust/bundle.ts';
import type { Permission } from '../core/trust/credential.ts';
import { decodeCredentialUnverified } from '../core/trust/credential.ts';
import { ed25519Sign } from '../core/trust/ed25519.ts';

export const LOGIN_OPTIONS = ['credential', 'key', 'bundle', 'owner-key'];
export const LOGIN_USAGE = `  --credential FILE   your owner-issued technician credential
  --key FILE          your technician private key (Ed25519 PEM)
  --bundle FILE       the owner-signed trust bundle (handed to the device when its own is older)
  --owner-key FILE    owner public key (Ed25519 PEM) the bundle must be signed by`;

export interface CliLogin {
  bundle: TrustBundle;
  /** The technician the credential names (for the records' signer), unverified: the device checks it. */
  technician?: string;
  seed: Uint8Array;
  /** Log in through `group` (the op's own) with `permission`; the device's key is read from the group. */
  authenticate(group: SecurityGroup, permission: Permission): Promise<TechnicianSession>;
}

/** Read and check the login files; a bundle that does not verify is a rejection (returned as text). */
export async function loadLogin(args: ParsedArgs, io: CliIo): Promise<CliLogin | string> {
  const credential = await readInput(io, args.require('credential'), 'credential');
  const bundleBytes = await readInput(io, args.require('bundle'), 'trust bundle');
  const ownerKey = await readEd25519Public(io, args.require('owner-key'), { what: 'owner key', publicOnly: true });
  const seed = await readEd25519Private(io, args.require('key'), 'technician key');
  const b = await verifyBundle(bundleBytes, { ownerKeys: [ownerKey] });
  if (!b.ok) {
    seed.fill(0);
    return `trust bundle rejected (${b.code}): ${b.reason}`;
  }
  let technician: string | undefined;
  try {
    technician = decodeCredentialUnverified(credential).technicianId;
  } catch {
    technician = undefined;
  }
  return {
    bundle: b.value,
    technician,
    seed,
    authenticate: async (group, permission) => {
      const device = await group.identity();
      return authenticateTechnician(group, device.devicePublicKey, credential, (m) => ed25519Sign(m, seed), { bundle: b.value, bundleBytes, permission, device });
    },
  };
}

/**
 * For the verbs that read what a device keeps private (config get and diff, events): the same
 * login, only when --credential is given; null without it (a stock device needs none).
 */
export async function loadOptionalLogin(args: ParsedArgs, io: CliIo): Promise<CliLogin | string | null> {
  if (!args.has('credential') && !args.has('key')) return null;
  return loadLogin(args, io);
}

export const READ_LOGIN_USAGE = `A device with the security group shows its configuration and event log only to a
logged-in technician (configure or wipe for the configuration, attest or configure
for the events): give the login options.
${LOGIN_USAGE}`;

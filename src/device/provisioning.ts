/**
 * A complete, self-consistent set of authorities for demos, the in-page
 * virtual device and tests: manufacturer root, firmware signing key, owner
 * authority, one technician with a credential, a trust bundle, and a
 * reference device provisioned at the "factory" with a certified identity.
 *
 * Real deployments never use these: their keys are made offline with
 * `fieldbench keygen` and held by the authorized entities (docs/SECURITY.md).
 */
import { generateEd25519 } from '../core/trust/ed25519.ts';
import { issueBundle } from '../core/trust/bundle.ts';
import { type Permission, PERMISSIONS, issueCredential } from '../core/trust/credential.ts';
import { formatIssues, schemaForModel, validateSettings } from '../core/ops/configuration/schema.ts';
import { type DeviceOptions, ReferenceDevice } from './device.ts';
import { type DeviceSecurity, type SecurityOptions, installSecurity } from './security.ts';

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface Authorities {
  manufacturer: KeyPair;
  firmware: KeyPair;
  owner: KeyPair;
  technician: KeyPair;
  technicianId: string;
  /** Owner-signed trust bundle naming the three authorities. */
  bundle: Uint8Array;
  /** Owner-signed credential of the technician. */
  credential: Uint8Array;
}

const DAY = 86400_000;

export async function makeAuthorities(opts: { permissions?: Permission[]; models?: string[]; bundleVersion?: number; days?: number } = {}): Promise<Authorities> {
  const [manufacturer, firmware, owner, technician] = await Promise.all([generateEd25519(), generateEd25519(), generateEd25519(), generateEd25519()]);
  const days = opts.days ?? 365;
  const bundle = await issueBundle(
    {
      version: opts.bundleVersion ?? 1,
      expires: new Date(Date.now() + days * DAY),
      anchors: { manufacturer: [manufacturer.publicKey], firmware: [firmware.publicKey], owner: [owner.publicKey] },
    },
    owner.privateKey,
  );
  const technicianId = 'tech-001';
  const credential = await issueCredential(
    {
      technicianId,
      name: 'Demo Technician',
      publicKey: technician.publicKey,
      permissions: opts.permissions ?? [...PERMISSIONS],
      models: opts.models ?? ['fieldbench-ref'],
      notAfter: new Date(Date.now() + days * DAY),
    },
    owner.privateKey,
  );
  return { manufacturer, firmware, owner, technician, technicianId, bundle, credential };
}

/** A reference device with the security group, provisioned by these authorities. */
export async function createSecureDevice(
  auth: Authorities,
  opts: DeviceOptions & { security?: SecurityOptions; certDays?: number } = {},
): Promise<{ device: ReferenceDevice; security: DeviceSecurity }> {
  const device = new ReferenceDevice(opts);
  const model = opts.security?.model ?? 'fieldbench-ref';
  const schema = schemaForModel(model);
  const security = await installSecurity(device, {
    ownerKeys: [auth.owner.publicKey],
    // The device checks settings against its model's schema too, not only the tool.
    validateSettings: schema
      ? (settings, sealed) => {
          const issues = validateSettings(schema, settings, { sealed });
          return issues.length ? formatIssues(issues) : null;
        }
      : undefined,
    ...opts.security,
  });
  await security.provision(auth.manufacturer.privateKey, new Date(Date.now() + (opts.certDays ?? 3650) * DAY));
  return { device, security };
}

/**
 * A complete, self-consistent set of authorities for demos, the in-page
 * virtual device and tests: manufacturer root, firmware signing key, owner
 * authority, one technician with a credential, a trust bundle, and a
 * reference device provisioned over the wire, as a factory station does it.
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
import { createLinkPair } from '../core/link/memory.ts';
import { openSession } from '../core/groups/session.ts';
import { SecurityGroup } from '../core/groups/security.ts';
import { type ProvisionResult, type UnitIdentifiers, provisionIdentity } from '../core/factory/provision.ts';
import { type Signer, memorySigner } from '../core/trust/signer.ts';

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

export async function makeAuthorities(opts: { permissions?: Permission[]; models?: string[]; bundleVersion?: number; days?: number; owner?: KeyPair } = {}): Promise<Authorities> {
  const [manufacturer, firmware, generatedOwner, technician] = await Promise.all([generateEd25519(), generateEd25519(), generateEd25519(), generateEd25519()]);
  // an owner that already exists (a fleet hub pins it): its bundle names this line's other keys
  const owner = opts.owner ?? generatedOwner;
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

/** Bytes of an identifier as hex (the station's form of DevEUI and MAC). */
function hexOf(b: Uint8Array | undefined): string | undefined {
  return b ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('') : undefined;
}

export interface BlankDeviceOptions extends DeviceOptions {
  security?: SecurityOptions;
}

/**
 * A factory-fresh reference device: the security group with no identity, trusting
 * `manufacturerKeys` for its certificate and `ownerKeys` for credentials and configurations.
 */
export async function createBlankDevice(
  keys: { manufacturerKeys: Uint8Array[]; ownerKeys: Uint8Array[] },
  opts: BlankDeviceOptions = {},
): Promise<{ device: ReferenceDevice; security: DeviceSecurity }> {
  const device = new ReferenceDevice(opts);
  const model = opts.security?.model ?? 'fieldbench-ref';
  const schema = schemaForModel(model);
  const security = await installSecurity(device, {
    ownerKeys: keys.ownerKeys,
    manufacturerKeys: keys.manufacturerKeys,
    // The device checks settings against its model's schema too, not only the tool.
    validateSettings: schema
      ? (settings, sealed) => {
          const issues = validateSettings(schema, settings, { sealed });
          return issues.length ? formatIssues(issues) : null;
        }
      : undefined,
    ...opts.security,
  });
  return { device, security };
}

/**
 * Provision a device over an SMP session the way a station does (src/core/factory/provision.ts),
 * through a private in-memory cable to the device. Used by the demo kit, tests and
 * `fieldbench device --manufacturer-key`: the manufacturer key stays on the station side.
 */
export async function provisionOverWire(
  device: ReferenceDevice,
  security: DeviceSecurity,
  req: { signer: Signer; ids: UnitIdentifiers; notAfter: Date | number; authorization?: Uint8Array },
): Promise<ProvisionResult> {
  const pair = createLinkPair({}, ['factory station', 'factory jig']);
  void device.serve(pair.b);
  const session = await openSession(pair.a);
  try {
    return await provisionIdentity(new SecurityGroup(session.client, security.groupId), {
      signer: req.signer,
      identifiers: () => req.ids,
      notAfter: req.notAfter,
      authorization: req.authorization,
    });
  } finally {
    await session.close();
    pair.unplug('provisioning done');
  }
}

/** A reference device with the security group, provisioned over the wire by these authorities' manufacturer key. */
export async function createSecureDevice(
  auth: Authorities,
  opts: DeviceOptions & { security?: SecurityOptions; certDays?: number } = {},
): Promise<{ device: ReferenceDevice; security: DeviceSecurity }> {
  const { device, security } = await createBlankDevice({ manufacturerKeys: [auth.manufacturer.publicKey], ownerKeys: [auth.owner.publicKey] }, opts);
  await provisionOverWire(device, security, {
    signer: memorySigner(auth.manufacturer.privateKey),
    ids: { serial: opts.security?.serial ?? 'FB-0001', devEui: hexOf(opts.security?.devEui), mac: hexOf(opts.security?.mac) },
    notAfter: new Date(Date.now() + (opts.certDays ?? 3650) * DAY),
  });
  return { device, security };
}

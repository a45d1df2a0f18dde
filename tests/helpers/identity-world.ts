/**
 * Test world for identify/attest: authorities, a trust bundle that carries the
 * reference device's firmware as reference measurements, and a provisioned
 * reference device on a fast in-memory link.
 */
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { type BundleInput, type TrustBundle, issueBundle, verifyBundle } from '../../src/core/trust/bundle.ts';
import { type Authorities, createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import type { DeviceSecurity, SecurityOptions } from '../../src/device/security.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import type { SecurityGroup } from '../../src/core/groups/security.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';

export const FAST = { baudRate: 921600 * 20 };
export const LOCKED_DOWN = { smp_serial: 'authenticated', shell: 'disabled', debug: 'disabled' } as const;

let shared: Authorities | undefined;
export async function authorities(): Promise<Authorities> {
  return (shared ??= await makeAuthorities());
}

export interface World {
  auth: Authorities;
  device: ReferenceDevice;
  sec: DeviceSecurity;
  session: SmpSession;
  bundle: TrustBundle;
  bundleBytes: Uint8Array;
  /** The technician's login through `g` (the device shows its configuration and event log only inside a session). */
  login(g: SecurityGroup): Promise<unknown>;
  close(): Promise<void>;
}

/** A bundle signed by the owner: manufacturer/firmware/owner anchors, the device's running firmware as reference, extras. */
export async function makeBundle(auth: Authorities, device: ReferenceDevice | null, extra: Partial<BundleInput> = {}): Promise<{ bytes: Uint8Array; bundle: TrustBundle }> {
  const firmware = (device?.firmware() ?? []).map((f) => ({
    model: 'fieldbench-ref',
    version: f.version,
    sha256: f.sha256,
    securityCounter: 0,
    signerKid: f.signerId.subarray(0, 8),
  }));
  const bytes = await issueBundle(
    {
      version: 1,
      expires: new Date(Date.now() + 86400_000), // a number would be read as seconds
      anchors: { manufacturer: [auth.manufacturer.publicKey], firmware: [auth.firmware.publicKey], owner: [auth.owner.publicKey] },
      firmware,
      ...extra,
    },
    auth.owner.privateKey,
  );
  const v = await verifyBundle(bytes, { ownerKeys: [auth.owner.publicKey] });
  if (!v.ok) throw new Error(v.reason);
  return { bytes, bundle: v.value };
}

export async function world(
  opts: { security?: SecurityOptions; auth?: Authorities; bundleExtra?: (sec: DeviceSecurity) => Partial<BundleInput>; enumDetails?: boolean; bufSize?: number } = {},
): Promise<World> {
  const auth = opts.auth ?? (await authorities());
  const { device, security: sec } = await createSecureDevice(auth, { bufSize: opts.bufSize ?? 256, enumDetails: opts.enumDetails, security: opts.security });
  const v = createVirtualDevice({ device, model: FAST });
  const session = await openSession(v.link);
  const { bytes, bundle } = await makeBundle(auth, device, opts.bundleExtra?.(sec));
  const login = (g: SecurityGroup) => authenticateTechnician(g, sec.devicePublicKey, auth.credential, (m) => ed25519Sign(m, auth.technician.privateKey));
  return { auth, device, sec, session, bundle, bundleBytes: bytes, login, close: () => session.close() };
}

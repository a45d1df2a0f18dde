/**
 * A DEMO factory line for the app's Bench page: demo authorities, a station key
 * and its owner-signed credential, a signed image, a signed factory
 * configuration and an owner-signed, verified station profile, all generated in
 * this page's memory (never for real devices), and factory-fresh virtual units
 * (reference devices with the security group and no identity, trusting the demo
 * manufacturer key) on memory links: the same units `fieldbench device
 * --unprovisioned` serves over TCP.
 *
 * Everything the Station (src/core/factory/station.ts) needs comes out of
 * `demoLine()`; the page adds ports and renders the events.
 */
import { openSession, type SmpSession } from '../core/groups/session.ts';
import { createLinkPair, type LinkPair } from '../core/link/memory.ts';
import { verifyBundle, type TrustBundle } from '../core/trust/bundle.ts';
import { issueCredential } from '../core/trust/credential.ts';
import { generateEd25519 } from '../core/trust/ed25519.ts';
import { keyId } from '../core/trust/keys.ts';
import { signImage } from '../core/trust/mcuboot/sign.ts';
import { issueConfig } from '../core/trust/signed-config.ts';
import { memorySigner, type Signer } from '../core/trust/signer.ts';
import { issueProfile, verifyProfile, type VerifiedProfile } from '../core/factory/profile.ts';
import type { IdentifierPolicy } from '../core/factory/identifiers.ts';
import type { StationPort } from '../core/factory/station.ts';
import { type Authorities, createBlankDevice, makeAuthorities } from './provisioning.ts';
import { imageModelOf } from './groups/standard.ts';
import { DEMO_MODEL } from './demo.ts';

const DAY = 86400_000;

export const DEMO_LINE_POLICY: IdentifierPolicy = { serial: { pattern: 'DEMO-{n:05}', first: 1, last: 99999 }, devEui: { first: '70b3d57ed0f00000', count: 100000 } };

export interface DemoLine {
  auth: Authorities;
  profile: VerifiedProfile;
  image: Uint8Array;
  bundle: TrustBundle;
  manufacturer: Signer;
  station: { signer: Signer; credential: Uint8Array };
}

/** Build the demo line (a few hundred ms: keys, an image signature, the profile). */
export async function demoLine(): Promise<DemoLine> {
  const auth = await makeAuthorities();
  const station = await generateEd25519();
  const credential = await issueCredential(
    { technicianId: 'bench-demo', name: 'Demo bench station', publicKey: station.publicKey, permissions: ['configure', 'interfaces', 'attest', 'identify'], models: [DEMO_MODEL], notAfter: new Date(Date.now() + 7 * DAY) },
    auth.owner.privateKey,
  );
  const body = new Uint8Array(24 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 197 + 11) & 0xff;
  const signed = await signImage(body, { key: auth.firmware.privateKey, version: '2.0.0', headerSize: 32, padHeader: true, securityCounter: 2 });
  const configuration = await issueConfig(
    { target: { kind: 'model', model: DEMO_MODEL }, sequence: 1, settings: { interval: 300, name: 'demo-line' }, notAfter: new Date(Date.now() + 7 * DAY) },
    auth.owner.privateKey,
  );
  const profileBytes = await issueProfile(
    {
      name: 'Demo line',
      model: DEMO_MODEL,
      firmware: [{ version: '2.0.0', sha256: signed.digest, securityCounter: 2, signingKeys: [auth.firmware.publicKey] }],
      configuration,
      identity: { policy: DEMO_LINE_POLICY, certValidityDays: 3650 },
      tests: { echo: true, attestation: 'trusted', interfaces: { smp_serial: 'authenticated', shell: 'disabled' } },
      label: { code: 'qr' },
      stationCredential: credential,
      manufacturerKid: keyId(auth.manufacturer.publicKey),
      notAfter: new Date(Date.now() + 7 * DAY),
    },
    auth.owner.privateKey,
  );
  // the page takes the profile through the same gate as any station
  const pv = await verifyProfile(profileBytes, { ownerKeys: [auth.owner.publicKey] });
  if (!pv.ok) throw new Error(`demo profile: ${pv.reason}`);
  const bv = await verifyBundle(auth.bundle, { ownerKeys: [auth.owner.publicKey] });
  if (!bv.ok) throw new Error(`demo bundle: ${bv.reason}`);
  return {
    auth,
    profile: pv.value,
    image: signed.image,
    bundle: bv.value,
    manufacturer: memorySigner(auth.manufacturer.privateKey),
    station: { signer: memorySigner(station.privateKey), credential },
  };
}

/** A jig with a virtual unit on it; `replace()` puts a new factory-fresh unit there (the operator swaps units). */
export interface VirtualJig extends StationPort {
  /** Take the unit off (the port waits for the next). */
  remove(): void;
  /** Put a new factory-fresh unit on the jig. */
  insert(): Promise<void>;
}

export async function virtualJig(line: DemoLine, name: string): Promise<VirtualJig> {
  let unit: Awaited<ReturnType<typeof createBlankDevice>> | null = null;
  let pair: LinkPair | null = null;
  const fresh = async () => {
    const u = await createBlankDevice(
      { manufacturerKeys: [line.auth.manufacturer.publicKey], ownerKeys: [line.auth.owner.publicKey] },
      { bufSize: 512, image: { trustedKeys: [line.auth.firmware.publicKey], eraseMsPerSector: 0, writeUsPerByte: 0, slotSize: 128 * 1024 } },
    );
    await imageModelOf(u.device).ready;
    return u;
  };
  unit = await fresh();
  return {
    name,
    async present() {
      return unit !== null;
    },
    async connect(): Promise<SmpSession> {
      if (!unit) throw new Error('no unit on this jig');
      pair?.unplug('replugged');
      pair = createLinkPair({ baudRate: 921600 * 8 }, ['bench', name]);
      void unit.device.serve(pair.b);
      return openSession(pair.a, { timeoutMs: 2000 });
    },
    remove() {
      pair?.unplug('unit removed');
      pair = null;
      unit = null;
    },
    async insert() {
      pair?.unplug('unit removed');
      pair = null;
      unit = await fresh();
    },
  };
}

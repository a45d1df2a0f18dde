/**
 * DEMO authorities for the in-page virtual device and "Load demo trust".
 * Generated once per page session (one module-level promise), so the virtual
 * device and the imported demo trust always belong together. Never used for
 * real devices: the keys live in this page's memory only.
 *
 * The kit: authorities from makeAuthorities(); a provisioned secure reference
 * device (security group, Settings group, bootloader trusting the demo
 * firmware key, its factory image signed by that key); a demo trust bundle
 * (v2) listing the factory and the demo update images and the demo
 * configuration; an older bundle (v1, for showing a refused rollback); a
 * signed demo image 1.1.0 and a signed demo configuration for the library.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { type Authorities, createSecureDevice, makeAuthorities } from './provisioning.ts';
import type { ReferenceDevice } from './device.ts';
import { imageModelOf } from './groups/standard.ts';
import { issueBundle, type FirmwareMeta } from '../core/trust/bundle.ts';
import { issueConfig } from '../core/trust/signed-config.ts';
import { keyId, privateKeyPem } from '../core/trust/keys.ts';
import { TLV, parseImage } from '../core/trust/mcuboot/parse.ts';
import { signImage } from '../core/trust/mcuboot/sign.ts';
import type { DemoTrust } from '../core/ops/trust-state.ts';
import { toHex } from '../core/base/bytes.ts';

export const DEMO_MODEL = 'fieldbench-ref';
const DAY = 86400_000;

export interface DemoKit {
  auth: Authorities;
  /** Key id (hex) of the demo owner key: "is the held trust the demo trust of this session?" */
  ownerKid: string;
  device: ReferenceDevice;
  trust: DemoTrust;
  /** The demo owner's older bundle (v1): importing it after the demo trust is refused as a rollback. */
  olderBundle: Uint8Array;
}

let kit: Promise<DemoKit> | undefined;

async function build(): Promise<DemoKit> {
  const auth = await makeAuthorities({ bundleVersion: 1 });
  const { device } = await createSecureDevice(auth, {
    settings: true,
    image: { trustedKeys: [auth.firmware.publicKey], factoryKey: auth.firmware.privateKey },
  });
  const images = imageModelOf(device);
  await images.ready;
  const factory = images.slots[0]!.data;
  // Both images are signed by the demo firmware key; the bundle names it by its key id (attestation reports
  // SHA-256 of the raw key, whose first 8 bytes are that id).
  const fwKid = keyId(auth.firmware.publicKey);
  // A demo update: 1.1.0, signed by the demo firmware key, security counter 2.
  const body = new Uint8Array(6144);
  const text = new TextEncoder().encode('fieldbench DEMO firmware 1.1.0 ');
  for (let i = 0; i < body.length; i++) body[i] = text[i % text.length] ^ (i >> 9);
  const update = (await signImage(body, { key: auth.firmware.privateKey, version: '1.1.0', headerSize: 32, padHeader: true, securityCounter: 2 })).image;
  // Measurements as MCUboot states them (the image hash TLV), which attestation reports and the update preflight accepts.
  const measure = (img: Uint8Array) => parseImage(img).tlvs.find((t) => t.type === TLV.SHA256)!.value.slice();
  const firmware: FirmwareMeta[] = [
    { model: DEMO_MODEL, version: device.opts.appVersion, sha256: measure(factory), securityCounter: 1, signerKid: fwKid },
    { model: DEMO_MODEL, version: '1.1.0', sha256: measure(update), securityCounter: 2, signerKid: fwKid },
  ];
  const config = await issueConfig(
    { target: { kind: 'model', model: DEMO_MODEL }, sequence: 1, settings: { interval: 30, name: 'demo-sensor', mode: 'eco', wifi_ssid: 'DEMO-site' }, notAfter: new Date(Date.now() + 365 * DAY) },
    auth.owner.privateKey,
  );
  const bundle = await issueBundle(
    {
      version: 2,
      expires: new Date(Date.now() + 365 * DAY),
      anchors: { manufacturer: [auth.manufacturer.publicKey], firmware: [auth.firmware.publicKey], owner: [auth.owner.publicKey] },
      firmware,
      configurations: [sha256(config)],
    },
    auth.owner.privateKey,
  );
  const library = [
    { name: 'DEMO firmware 1.1.0.bin', bytes: update },
    { name: 'DEMO configuration #1.cbor', bytes: config },
  ];
  return {
    auth,
    ownerKid: toHex(keyId(auth.owner.publicKey)),
    device,
    olderBundle: auth.bundle,
    trust: {
      ownerPublicKey: auth.owner.publicKey,
      bundle,
      credential: auth.credential,
      technicianKeyPem: privateKeyPem(auth.technician.privateKey),
      library,
    },
  };
}

/** The page session's demo kit (built on first use). */
export function demoKit(): Promise<DemoKit> {
  kit ??= build();
  kit.catch(() => (kit = undefined));
  return kit;
}

/** Has the demo kit been built in this page session (without building it)? */
export function demoKitStarted(): Promise<DemoKit> | undefined {
  return kit;
}

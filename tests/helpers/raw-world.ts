/**
 * The red-team tests' common setup: one reference device, as many raw
 * connections to it as a test wants (each its own in-memory link, packets built
 * by hand, tests/helpers/raw-session.ts), and the hand-made technician login on
 * one of them. What the red-team files used to repeat each in their own words.
 */
import { expect } from 'vitest';
import { createLinkPair } from '../../src/core/link/memory.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import type { DeviceSecurity } from '../../src/device/security.ts';
import { type Authorities, type BlankDeviceOptions, createSecureDevice } from '../../src/device/provisioning.ts';
import { type RawSession, type RawSmp, groupRc, rawLogin, rawSmpOverLink } from './raw-session.ts';

/** A raw connection that can also be unplugged (both ends end: the device forgets the connection). */
export type RawConn = RawSmp & { unplug(): void };

/** A new raw connection (its own link) to `device`. */
export function rawConnect(device: ReferenceDevice, names: [string, string] = ['attacker', 'device']): RawConn {
  const pair = createLinkPair({}, names);
  void device.serve(pair.b);
  return Object.assign(rawSmpOverLink(pair.a), { unplug: () => pair.unplug() });
}

export interface RawWorld {
  device: ReferenceDevice;
  sec: DeviceSecurity;
  conn(names?: [string, string]): RawConn;
  /** Messages 1-4 by hand on `c`, expected to succeed (default: the authorities' technician and credential). */
  login(c: RawSmp, credential?: Uint8Array, technicianSeed?: Uint8Array): Promise<RawSession>;
}

/** A device provisioned by `auth` (buf_size 512 unless told), served over raw connections. */
export async function rawWorld(auth: Authorities, opts: BlankDeviceOptions & { certDays?: number } = {}): Promise<RawWorld> {
  const { device, security } = await createSecureDevice(auth, { bufSize: 512, ...opts });
  return {
    device,
    sec: security,
    conn: (names) => rawConnect(device, names),
    async login(c, credential = auth.credential, technicianSeed = auth.technician.privateKey) {
      const s = await rawLogin(c, security.devicePublicKey, credential, technicianSeed);
      expect(groupRc(s.reply), `login: ${JSON.stringify(s.reply)}`).toBeUndefined();
      return s;
    },
  };
}

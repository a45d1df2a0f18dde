/**
 * The secure session's cost (docs/SECURITY.md "Secure session"): protected
 * against unprotected requests to the same reference device in the same run,
 * as a ratio. Three figures:
 *  - request rate with no link (client packets straight into the device's handler: what the
 *    AEAD, the extra CBOR and the device's unwrapping cost on this CPU, the worst case);
 *  - firmware upload throughput at 921600 baud with 2048-byte buffers (what a
 *    technician sees: the wire dominates; the session's 41 bytes per packet and its crypto);
 *  - one key exchange (login), in ms.
 */
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { SmpClient } from '../../src/core/smp/client.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { uploadImage } from '../../src/core/ops/update/engine.ts';
import { ed25519PublicKey, ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { configureImageModel } from '../../src/device/groups/standard.ts';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import type { BenchRow } from './types.ts';

const IMG_SEED = new Uint8Array(32).fill(3);

async function world(baudRate: number, bufSize: number) {
  const auth = await makeAuthorities();
  const { device, security } = await createSecureDevice(auth, { bufSize, bufCount: 4 });
  await configureImageModel(device, { trustedKeys: [await ed25519PublicKey(IMG_SEED)] });
  const open = async (login: boolean) => {
    const s = await openSession(createVirtualDevice({ device, model: { baudRate, latencyMs: baudRate > 1e8 ? 0 : 1 } }).link, { timeoutMs: 20000 });
    const g = new SecurityGroup(s.client, security.groupId);
    let loginMs = 0;
    if (login) {
      const id = await g.identity();
      const t0 = performance.now();
      await authenticateTechnician(g, id.devicePublicKey, auth.credential, (m) => ed25519Sign(m, auth.technician.privateKey));
      loginMs = performance.now() - t0;
    }
    return { s, g, loginMs };
  };
  return { open };
}

async function rate(g: SecurityGroup, ms = 1500): Promise<number> {
  for (let i = 0; i < 20; i++) await g.interfaces();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await g.interfaces();
    n++;
  }
  return (n * 1000) / (performance.now() - t0);
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // 1. request rate with no link at all: the client's packets go straight to the device's handler
  {
    const auth = await makeAuthorities();
    const { device, security } = await createSecureDevice(auth, { bufSize: 2048 });
    const direct = () => {
      const c: SmpClient = new SmpClient(async (p) => {
        const r = await device.handle(p);
        if (r) queueMicrotask(() => c.receive(r));
      }, { maxPacket: 2048, timeoutMs: 5000 });
      return new SecurityGroup(c, security.groupId);
    };
    const plain = direct();
    const prot = direct();
    const id = await prot.identity();
    const t0 = performance.now();
    await authenticateTechnician(prot, id.devicePublicKey, auth.credential, (m) => ed25519Sign(m, auth.technician.privateKey));
    const loginMs = performance.now() - t0;
    const a = await rate(plain);
    const b = await rate(prot);
    rows.push({ name: 'interfaces read, unprotected (no link: CPU only)', value: a, unit: 'req/s', note: 'baseline, same device and run' });
    rows.push({ name: 'interfaces read, protected (no link: CPU only)', value: b, unit: 'req/s', note: `protected / unprotected = ${(b / a).toFixed(2)} (AEAD and wrapping at both ends; worst case)` });
    rows.push({ name: 'key exchange (login), no link', value: loginMs, unit: 'ms', note: 'X25519 x2, Ed25519 sign x2 and verify x3, credential check' });
  }
  // 2. upload throughput at 921600, 2048-byte buffers
  {
    const { image } = await signImage(new Uint8Array(96 * 1024).map((_, i) => (i * 31) & 0xff), { key: IMG_SEED, version: '1.1.0', headerSize: 32, padHeader: true, securityCounter: 2 });
    const w = await world(921600, 2048);
    const speed = async (login: boolean) => {
      const x = await w.open(login);
      const t0 = performance.now();
      await uploadImage(x.s.client, image, { window: 3, firstChunkTimeoutMs: 20000 });
      const s = (image.length / 1024) / ((performance.now() - t0) / 1000);
      await x.s.close();
      return s;
    };
    const a = await speed(false);
    const b = await speed(true);
    rows.push({ name: 'upload 96 KiB @ 921600, 2048x4, unprotected', value: a, unit: 'KiB/s', note: 'baseline, same device and run' });
    rows.push({ name: 'upload 96 KiB @ 921600, 2048x4, protected', value: b, unit: 'KiB/s', note: `protected / unprotected = ${(b / a).toFixed(2)} (41 B per packet + AEAD)` });
  }
  return rows;
}

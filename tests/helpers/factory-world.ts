/**
 * A factory line for tests and benchmarks: authorities, the station key and its owner-signed
 * credential, a signed firmware image, a signed factory configuration, an owner-signed station
 * profile, and factory-fresh units on jigs (memory links with a line model) that can be unplugged
 * and reset at any moment.
 */
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { type LinkModel, type LinkPair, createLinkPair } from '../../src/core/link/memory.ts';
import { type PortLike, bridgeToPort } from '../../src/core/link/message-port.ts';
import { type TrustBundle, verifyBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { memorySigner, type Signer } from '../../src/core/trust/signer.ts';
import { issueProfile, type VerifiedProfile, verifyProfile } from '../../src/core/factory/profile.ts';
import type { IdAllocator, IdentifierPolicy } from '../../src/core/factory/identifiers.ts';
import type { RunUnitOptions } from '../../src/core/factory/run.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { type Authorities, createBlankDevice, type KeyPair, makeAuthorities } from '../../src/device/provisioning.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import type { DeviceSecurity } from '../../src/device/security.ts';
import { imageModelOf } from '../../src/device/groups/standard.ts';

const DAY = 86400_000;
/** What a unit leaves the line with: SMP over serial only after login, no shell. */
export const LOCKED = { smp_serial: 'authenticated', shell: 'disabled' } as const;

export interface FactoryWorld {
  auth: Authorities;
  station: KeyPair;
  stationSigner: Signer;
  credential: Uint8Array;
  manufacturer: Signer;
  image: Uint8Array;
  imageHash: Uint8Array;
  configuration: Uint8Array;
  profileBytes: Uint8Array;
  profile: VerifiedProfile;
  bundle: TrustBundle;
  policy: IdentifierPolicy;
}

export const TEST_POLICY: IdentifierPolicy = { serial: { pattern: 'FB-{n:06}', first: 1, last: 999999 }, devEui: { first: '70b3d57ed0000000', count: 100000 }, mac: { first: '02fb00000000', count: 100000 } };

export async function factoryWorld(opts: { imageSize?: number; interfaces?: Record<string, 'open' | 'authenticated' | 'disabled'>; auth?: Authorities; policy?: IdentifierPolicy } = {}): Promise<FactoryWorld> {
  const auth = opts.auth ?? (await makeAuthorities());
  const station = await generateEd25519();
  const credential = await issueCredential(
    { technicianId: 'station-01', name: 'Line 1 station', publicKey: station.publicKey, permissions: ['configure', 'interfaces', 'attest', 'identify'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + 30 * DAY) },
    auth.owner.privateKey,
  );
  const size = opts.imageSize ?? 16 * 1024;
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = (i * 131 + 17) & 0xff;
  const signed = await signImage(body, { key: auth.firmware.privateKey, version: '2.0.0', headerSize: 32, padHeader: true, securityCounter: 2 });
  const configuration = await issueConfig(
    { target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 1, settings: { interval: 300, name: 'line-1', mode: 'eco' }, notAfter: new Date(Date.now() + 30 * DAY) },
    auth.owner.privateKey,
  );
  const profileBytes = await issueProfile(
    {
      name: 'fieldbench-ref line 1',
      model: 'fieldbench-ref',
      firmware: [{ version: '2.0.0', sha256: signed.digest, securityCounter: 2, signingKeys: [auth.firmware.publicKey] }],
      configuration,
      identity: { policy: opts.policy ?? TEST_POLICY, certValidityDays: 3650 },
      tests: { echo: true, attestation: 'trusted', interfaces: opts.interfaces ?? LOCKED },
      label: { code: 'qr' },
      stationCredential: credential,
      manufacturerKid: keyId(auth.manufacturer.publicKey),
      notAfter: new Date(Date.now() + 30 * DAY),
    },
    auth.owner.privateKey,
  );
  const pv = await verifyProfile(profileBytes, { ownerKeys: [auth.owner.publicKey] });
  if (!pv.ok) throw new Error(pv.reason);
  const bv = await verifyBundle(auth.bundle, { ownerKeys: [auth.owner.publicKey] });
  if (!bv.ok) throw new Error(bv.reason);
  return {
    auth,
    station,
    stationSigner: memorySigner(station.privateKey),
    credential,
    manufacturer: memorySigner(auth.manufacturer.privateKey),
    image: signed.image,
    imageHash: signed.digest,
    configuration,
    profileBytes,
    profile: pv.value,
    bundle: bv.value,
    policy: opts.policy ?? TEST_POLICY,
  };
}

/**
 * runUnit's options for one unit of this line on `jig`: the world's profile, image, bundle,
 * manufacturer and station keys; control log entries pushed to `records` (or `record`).
 */
export function unitOptions(
  w: FactoryWorld,
  jig: Pick<Jig, 'connect'>,
  o: { allocator: IdAllocator; records?: AuditInput[]; port?: string; update?: RunUnitOptions['update'] } & Partial<RunUnitOptions>,
): RunUnitOptions {
  const { records, allocator, port, update, ...extra } = o;
  return {
    port: port ?? 'jig-1',
    connect: () => jig.connect(),
    profile: w.profile,
    image: w.image,
    bundle: w.bundle,
    manufacturer: w.manufacturer,
    station: { signer: w.stationSigner },
    allocator,
    record: async (e) => void records?.push(e),
    update: update ?? { resetSettleMs: 20, bootTimeoutMs: 5000 },
    ...extra,
  };
}

/** A jig: one factory-fresh unit, reachable through fresh cables (memory link pairs with a line model). */
export interface Jig {
  device: ReferenceDevice;
  security: DeviceSecurity;
  /** The current cable, if plugged. */
  pair: LinkPair | null;
  connect(): Promise<SmpSession>;
  /** Pull the cable (both ends see the link lost); the next connect plugs a new one. */
  unplug(): void;
  /** Power-cycle the unit (a reset: RAM state lost) and pull the cable, as USB re-enumerates. */
  reset(): Promise<void>;
  /** Refuse connects until replug(). */
  unplugged: boolean;
  replug(): void;
}

export interface JigOptions {
  model?: LinkModel;
  /** A blank board: no valid image; it stays in MCUboot serial recovery. */
  blank?: boolean;
  /** Flash timing of the unit. */
  eraseMsPerSector?: number;
  writeUsPerByte?: number;
  slotSize?: number;
  bufSize?: number;
  bufCount?: number;
  timeoutMs?: number;
  /** The unit's chip UID (a constructor option of the reference device, never settable over the wire): clone tests. */
  ueid?: Uint8Array;
}

export async function makeJig(w: FactoryWorld, opts: JigOptions = {}): Promise<Jig> {
  const { device, security } = await createBlankDevice(
    { manufacturerKeys: [w.auth.manufacturer.publicKey], ownerKeys: [w.auth.owner.publicKey] },
    {
      bufSize: opts.bufSize ?? 512,
      ...(opts.bufCount ? { bufCount: opts.bufCount } : {}),
      image: { trustedKeys: [w.auth.firmware.publicKey], eraseMsPerSector: opts.eraseMsPerSector ?? 0, writeUsPerByte: opts.writeUsPerByte ?? 0, slotSize: opts.slotSize ?? 256 * 1024 },
      serialRecovery: opts.blank ? { params: true } : undefined,
      ...(opts.ueid ? { security: { ueid: opts.ueid } } : {}),
    },
  );
  const m = imageModelOf(device);
  await m.ready;
  if (opts.blank) {
    m.slots = [null, null];
    await device.reboot();
  }
  const model = opts.model ?? { baudRate: 921600 * 20 };
  const jig: Jig = {
    device,
    security,
    pair: null,
    unplugged: false,
    async connect() {
      if (jig.unplugged) throw new Error('no unit on this jig');
      jig.pair?.unplug('replugged');
      const pair = createLinkPair(model, ['station', 'jig']);
      jig.pair = pair;
      void device.serve(pair.b);
      return openSession(pair.a, { timeoutMs: opts.timeoutMs ?? 1500 });
    },
    unplug() {
      jig.pair?.unplug('unit unplugged');
      jig.pair = null;
    },
    async reset() {
      jig.unplug();
      await device.reboot();
    },
    replug() {
      jig.unplugged = false;
    },
  };
  return jig;
}

/**
 * A worker thread that runs units (tests/helpers/device-worker.ts): the station (this thread) talks
 * to each through a memory pair with the line model, its far end bridged to the worker over a
 * MessagePort (src/core/link/message-port.ts). So a benchmark measures the station, not the
 * simulation: a real unit's key generation, signatures and flash work run on the unit. One worker
 * serves every batch (its JIT warms up once); `jigs()` makes factory-fresh units in it; `close()`
 * ends it.
 */
export interface DeviceWorker {
  jigs(w: FactoryWorld, units: number, opts?: JigOptions): Promise<RemoteJig[]>;
  /** CPU time of the worker's thread so far, µs (undefined off Linux). */
  cpuMicros(): Promise<number | undefined>;
  close(): Promise<void>;
}

/** A jig whose unit is in another thread: everything but direct access to the device. */
export type RemoteJig = Omit<Jig, 'device' | 'security'>;

export async function startDeviceWorker(): Promise<DeviceWorker> {
  const { Worker, MessageChannel } = await import('node:worker_threads');
  const worker = new Worker(new URL('./device-worker.mjs', import.meta.url));
  let next = 1;
  let jigNo = 0;
  const live: RemoteJig[] = [];
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  worker.on('message', (m: { re: number; ok: boolean; value?: unknown; error?: string }) => {
    const p = pending.get(m.re);
    pending.delete(m.re);
    if (m.ok) p?.resolve(m.value);
    else p?.reject(new Error(`device worker: ${m.error}`));
  });
  const failAll = (e: Error) => {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`the device worker exited (${code})`)));
  const call = (msg: Record<string, unknown>, transfer: unknown[] = []): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...msg }, transfer as never);
    });
  return {
    async jigs(w, units, opts = {}) {
      const keys = { manufacturer: w.auth.manufacturer.publicKey, owner: w.auth.owner.publicKey, firmware: w.auth.firmware.publicKey };
      const model = opts.model ?? { baudRate: 921600 * 20 };
      // the previous batch's units are done with: drop them in the worker
      for (const j of live.splice(0)) j.unplug();
      await call({ op: 'drop' });
      return Promise.all(
        Array.from({ length: units }, async () => {
          const n = jigNo++;
          await call({ op: 'create', jig: n, keys, opts: { ...opts, model: undefined } });
          const jig: RemoteJig = {
            pair: null,
            unplugged: false,
            async connect() {
              if (jig.unplugged) throw new Error('no unit on this jig');
              jig.pair?.unplug('replugged');
              const pair = createLinkPair(model, ['station', `worker jig ${n}`]);
              jig.pair = pair;
              const ch = new MessageChannel();
              await call({ op: 'connect', jig: n, port: ch.port2 }, [ch.port2]);
              void bridgeToPort(pair.b, ch.port1 as unknown as PortLike, { onFarEnd: (m) => pair.unplug(m) });
              return openSession(pair.a, { timeoutMs: opts.timeoutMs ?? 1500 });
            },
            unplug() {
              jig.pair?.unplug('unit unplugged');
              jig.pair = null;
            },
            async reset() {
              jig.unplug();
              await call({ op: 'reboot', jig: n });
            },
            replug() {
              jig.unplugged = false;
            },
          };
          live.push(jig);
          return jig;
        }),
      );
    },
    cpuMicros: async () => (await call({ op: 'cpu' })) as number | undefined,
    async close() {
      for (const j of live.splice(0)) j.unplug();
      await worker.terminate();
    },
  };
}

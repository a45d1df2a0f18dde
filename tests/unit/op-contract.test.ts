/**
 * The op contract (src/core/ops/outcome.ts), checked for EVERY op against the
 * reference device (a provisioned, locked-down device on an in-memory cable):
 *
 *  - a normal run reaches exactly ONE final state (done | failed | cancelled |
 *    unsupported), and it is the last state;
 *  - the op never throws;
 *  - every state is plain data: structuredClone keeps it, a JSON round trip
 *    keeps it (bytes aside, which JSON writes as index maps), and no state
 *    holds a function or a class instance other than Uint8Array;
 *  - cancelled at each of its states, and at a few moments while a request is
 *    on the wire, it ends `cancelled` within a bounded time and the device
 *    receives no further request (those already on the wire, at most the
 *    client's window, may arrive);
 *  - with the cable unplugged mid-way it ends `failed` with code `link`,
 *    retryable, without throwing;
 *  - no reason repeats itself (repeatedClause).
 *
 * ADDING AN OP: add one row to OPS below: a name and `start(w, signal)`
 * returning the op's generator, run against the world `w` (w.session,
 * w.bundle, w.sec for the device's keys, w.auth for the authorities). Pass
 * `signal` into the op's context. Nothing else changes. Ops that need a
 * prepared device state (a credential, a signed configuration) build it in
 * their row's start from `w`.
 */
import { describe, expect, it } from 'vitest';
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { type Op, isOutcome, repeatedClause } from '../../src/core/ops/outcome.ts';
import { readDeviceInfo } from '../../src/core/ops/identification/info.ts';
import { identifyDevice } from '../../src/core/ops/identification/identify.ts';
import { attestDevice, readSecurityEvents } from '../../src/core/ops/state-awareness/attest.ts';
import type { TrustBundle } from '../../src/core/trust/bundle.ts';
import { type DeviceIdentity, SecurityGroup } from '../../src/core/groups/security.ts';
import { applySignedConfig } from '../../src/core/ops/configuration/apply.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { issueConfig } from '../../src/core/trust/signed-config.ts';
import { readInterfaces, setInterfaces } from '../../src/core/ops/access/interfaces.ts';
import { wipeDevice } from '../../src/core/ops/data-protection/wipe.ts';
import { rotateDevice } from '../../src/core/ops/identification/rotate.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { createSecureDevice, type Authorities } from '../../src/device/provisioning.ts';
import type { DeviceSecurity } from '../../src/device/security.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { runUnit } from '../../src/core/factory/run.ts';
import { issueProfile, verifyProfile } from '../../src/core/factory/profile.ts';
import { memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { memorySigner } from '../../src/core/trust/signer.ts';
import { imageModelOf } from '../../src/device/groups/standard.ts';
import { FAST, LOCKED_DOWN, authorities, makeBundle } from '../helpers/identity-world.ts';

interface OpWorld {
  auth: Authorities;
  device: ReferenceDevice;
  sec: DeviceSecurity;
  session: SmpSession;
  bundle: TrustBundle;
  /** The device's identity as the security group reports it, and an owner-signed configuration for it. */
  identity: DeviceIdentity;
  group: SecurityGroup;
  config: Uint8Array;
  unplug(): void;
}

type AnyOp = Op<{ kind: string }, unknown, string, unknown>;

interface OpRow {
  name: string;
  start(w: OpWorld, signal?: AbortSignal): AnyOp;
}

const OPS: OpRow[] = [
  { name: 'info', start: (w, signal) => readDeviceInfo(w.session, { signal }) as AnyOp },
  { name: 'identify', start: (w, signal) => identifyDevice(w.session, { bundle: w.bundle, signal }) as AnyOp },
  { name: 'attest', start: (w, signal) => attestDevice(w.session, { bundle: w.bundle, devicePublicKey: w.sec.devicePublicKey, signal }) as AnyOp },
  { name: 'events', start: (w, signal) => readSecurityEvents(w.session, { authenticate: login(w), signal }) as AnyOp },
  {
    name: 'configure',
    start: (w, signal) =>
      applySignedConfig(w.session, w.config, {
        bundle: w.bundle,
        deviceIdentity: w.identity,
        group: w.group,
        backup: async () => {},
        authenticate: (g) => authenticateTechnician(g, w.identity.devicePublicKey, w.auth.credential, (m) => ed25519Sign(m, w.auth.technician.privateKey), { bundle: w.bundle, permission: 'configure', device: w.identity }),
        signal,
      }) as AnyOp,
  },
  { name: 'interfaces', start: (w, signal) => readInterfaces(w.session, { group: w.group, signal }) as AnyOp },
  {
    name: 'interfaces set',
    start: (w, signal) => setInterfaces(w.session, [{ name: 'shell', state: 'authenticated' }, { name: 'debug', state: 'disabled' }], { group: w.group, authenticate: login(w), signal }) as AnyOp,
  },
  { name: 'wipe', start: (w, signal) => wipeDevice(w.session, { group: w.group, confirm: async (serial) => serial, authenticate: login(w), signal }) as AnyOp },
  { name: 'factory unit', start: (w, signal) => factoryUnit(w, signal) },
  {
    name: 'rotate',
    start: (w, signal) =>
      rotateDevice(w.session, { what: 'dev-eui', value: crypto.getRandomValues(new Uint8Array(8)), group: w.group, confirm: async () => true, authenticate: login(w), signal }) as AnyOp,
  },
];

/**
 * A factory run on the world's device: a profile naming the firmware it runs (flash, test boot and
 * confirm are skipped; tests/unit/factory-run.test.ts and factory-faults.test.ts cover them) and
 * the manufacturer that provisioned it (the identity is kept); configure, attest, label, record run.
 */
async function* factoryUnit(w: OpWorld, signal?: AbortSignal): AnyOp {
  const images = imageModelOf(w.device);
  const run = images.running()!;
  const profileBytes = await issueProfile(
    {
      name: 'contract line',
      model: 'fieldbench-ref',
      firmware: [{ version: run.version, sha256: run.hash, securityCounter: 1, signingKeys: [images.factoryPublicKey] }],
      configuration: w.config,
      identity: { policy: { serial: { pattern: 'C-{n}', first: 1, last: 9 } }, certValidityDays: 30 },
      tests: { echo: true, attestation: 'trusted', interfaces: { ...LOCKED_DOWN } },
      stationCredential: w.auth.credential,
      manufacturerKid: keyId(w.auth.manufacturer.publicKey),
      notAfter: new Date(Date.now() + 86400_000),
    },
    w.auth.owner.privateKey,
  );
  const pv = await verifyProfile(profileBytes, { ownerKeys: [w.auth.owner.publicKey] });
  if (!pv.ok) throw new Error(pv.reason);
  yield* runUnit({
    port: 'contract',
    connect: async () => w.session,
    profile: pv.value,
    image: images.slots[0]!.data,
    bundle: w.bundle,
    manufacturer: memorySigner(w.auth.manufacturer.privateKey),
    station: { signer: memorySigner(w.auth.technician.privateKey) },
    allocator: memoryAllocator(pv.value.identity.policy),
    record: async () => {},
    signal,
  }) as AnyOp;
}

function login(w: OpWorld) {
  return (g: SecurityGroup) => authenticateTechnician(g, w.identity.devicePublicKey, w.auth.credential, (m) => ed25519Sign(m, w.auth.technician.privateKey), { bundle: w.bundle, device: w.identity });
}

async function opWorld(): Promise<OpWorld> {
  const auth = await authorities();
  const { device, security: sec } = await createSecureDevice(auth, { bufSize: 256, security: { interfaces: LOCKED_DOWN } });
  const v = createVirtualDevice({ device, model: FAST });
  const session = await openSession(v.link);
  const { bundle } = await makeBundle(auth, device);
  const group = new SecurityGroup(session.client, sec.groupId);
  const identity = await group.identity();
  const config = await issueConfig({ target: { kind: 'model', model: identity.model }, sequence: 3, settings: { interval: 90 }, notAfter: new Date(Date.now() + 86400_000) }, auth.owner.privateKey);
  return { auth, device, sec, session, bundle, identity, group, config, unplug: () => v.pair.unplug() };
}

/** Plain data: objects, arrays, Uint8Array, strings, numbers, booleans, null. */
function plainProblem(v: unknown, path = 'state'): string | null {
  if (v === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof v)) return null;
  if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') return `${path} is a ${typeof v}`;
  if (v instanceof Uint8Array) return Object.getPrototypeOf(v) === Uint8Array.prototype ? null : `${path} is a ${v.constructor.name}`;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = plainProblem(v[i], `${path}[${i}]`);
      if (p) return p;
    }
    return null;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return `${path} is a ${(v as object).constructor?.name ?? 'class instance'}`;
  for (const [k, x] of Object.entries(v as object)) {
    const p = plainProblem(x, `${path}.${k}`);
    if (p) return p;
  }
  return null;
}

const jsonBytes = (_k: string, x: unknown) => (x instanceof Uint8Array ? { bytes: Array.from(x) } : x);

function checkSerialisable(s: { kind: string }): void {
  expect(plainProblem(s), `${s.kind}`).toBeNull();
  const json = JSON.stringify(s, jsonBytes);
  expect(JSON.stringify(structuredClone(s), jsonBytes)).toBe(json);
  expect(JSON.stringify(JSON.parse(json))).toBe(json);
}

async function drive(op: AnyOp, onState?: (s: { kind: string }, i: number) => void | Promise<void>): Promise<{ states: { kind: string }[]; threw?: unknown }> {
  const states: { kind: string }[] = [];
  try {
    for await (const s of op) {
      states.push(s);
      await onState?.(s, states.length - 1);
    }
  } catch (e) {
    return { states, threw: e };
  }
  return { states };
}

function checkOneOutcome(states: { kind: string }[]): void {
  const finals = states.filter((s) => isOutcome(s));
  expect(finals, states.map((s) => s.kind).join(' ')).toHaveLength(1);
  expect(isOutcome(states.at(-1)!)).toBe(true);
  const last = states.at(-1) as { reason?: string };
  if (last.reason !== undefined) expect(repeatedClause(last.reason), last.reason).toBeNull();
}

const CANCEL_BOUND_MS = 2000;

describe.each(OPS)('op contract: $name', (row) => {
  it('a normal run: exactly one final state, last; never throws; every state serialisable', async () => {
    const w = await opWorld();
    const r = await drive(row.start(w));
    expect(r.threw).toBeUndefined();
    checkOneOutcome(r.states);
    expect(r.states.at(-1)?.kind, JSON.stringify(r.states.at(-1))).toBe('done');
    for (const s of r.states) checkSerialisable(s);
    await w.session.close();
  });

  it('cancelled at each of its states: ends cancelled, promptly, and sends nothing more', async () => {
    const w0 = await opWorld();
    const n = (await drive(row.start(w0))).states.length - 1; // progress states of a full run
    await w0.session.close();
    for (let k = 0; k < n; k++) {
      const w = await opWorld();
      const ac = new AbortController();
      let requestsAtAbort = -1;
      let abortedAt = 0;
      const r = await drive(row.start(w, ac.signal), (_s, i) => {
        if (i === k) {
          requestsAtAbort = w.device.stats.requests;
          abortedAt = performance.now();
          ac.abort();
        }
      });
      const took = performance.now() - abortedAt;
      expect(r.threw, `cancel at state ${k}`).toBeUndefined();
      checkOneOutcome(r.states);
      expect(r.states.at(-1), `cancel at state ${k}`).toMatchObject({ kind: 'cancelled' });
      expect(took).toBeLessThan(CANCEL_BOUND_MS);
      await new Promise((res) => setTimeout(res, 50));
      expect(w.device.stats.requests, `requests after a cancel at state ${k}`).toBe(requestsAtAbort);
      await w.session.close();
    }
  });

  it('cancelled while a request is on the wire: ends cancelled within the bound, at most the requests in flight arrive', async () => {
    for (const delayMs of [1, 4, 15]) {
      const w = await opWorld();
      const ac = new AbortController();
      let requestsAtAbort = -1;
      let abortedAt = 0;
      setTimeout(() => {
        requestsAtAbort = w.device.stats.requests;
        abortedAt = performance.now();
        ac.abort();
      }, delayMs);
      const r = await drive(row.start(w, ac.signal));
      expect(r.threw).toBeUndefined();
      checkOneOutcome(r.states);
      if (requestsAtAbort < 0) {
        // It finished before the timer: nothing to cancel.
        expect(r.states.at(-1)?.kind).toBe('done');
      } else if (r.states.at(-1)?.kind !== 'done') {
        expect(r.states.at(-1)).toMatchObject({ kind: 'cancelled' });
        expect(performance.now() - abortedAt).toBeLessThan(CANCEL_BOUND_MS);
        await new Promise((res) => setTimeout(res, 50));
        expect(w.device.stats.requests - requestsAtAbort).toBeLessThanOrEqual(w.session.client.window);
      }
      await w.session.close();
    }
  });

  it('the cable unplugged mid-way: failed with code link, retryable, no throw', async () => {
    const w = await opWorld();
    const r = await drive(row.start(w), (_s, i) => {
      if (i === 0) w.unplug();
    });
    expect(r.threw).toBeUndefined();
    checkOneOutcome(r.states);
    expect(r.states.at(-1)).toMatchObject({ kind: 'failed', code: 'link', retryable: true });
    for (const s of r.states) checkSerialisable(s);
  });
});

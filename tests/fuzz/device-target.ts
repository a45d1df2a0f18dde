/**
 * Fuzzing the reference device as an attacker on the cable would: random and mutated SMP
 * requests (every group the device serves, random ids, random CBOR bodies, oversize frames)
 * from an unauthenticated connection to a provisioned device with the security group and the
 * settings group. Invariants after each case: the device is alive (answers echo), it never
 * threw out of its handlers, and nothing privileged changed: the configuration sequence and
 * digest and the interface states are as they were.
 */
import fc from 'fast-check';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { echo } from '../../src/core/groups/os.ts';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { encodeFrames } from '../../src/core/smp/framing.ts';
import { buildPacket } from '../../src/core/smp/header.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import type { Link } from '../../src/core/link/link.ts';
import type { FuzzTarget } from './targets.ts';

const anyCbor: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.integer(), fc.double(), fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 80 }), fc.boolean(), fc.constant(null),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.dictionary(fc.constantFrom('off', 'len', 'data', 'sha', 'name', 'state', 'nonce', 'sig', 'cred', 'val', 'image', 'rc', 'd', 'keep', 'confirm', 'hash', 'upgrade', 'format', 'force', 'boot_mode', 'datetime', 'seq', 'blob', 'x'), tie('v'), { maxKeys: 6 }),
  ),
})).v;

interface Req { op: number; group: number; id: number; body: Uint8Array }

function requests(groups: number[]): fc.Arbitrary<Req[]> {
  const req = fc.record({
    op: fc.constantFrom(0, 2, 0, 2, 1, 3, 4),
    group: fc.oneof(fc.constantFrom(...groups), fc.integer({ min: 0, max: 0xffff })),
    id: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 255 })),
    body: fc.oneof(
      { weight: 5, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), anyCbor, { maxKeys: 6 }).map((o) => encodeCbor(new Map(Object.entries(o)))) },
      { weight: 2, arbitrary: anyCbor.map((v) => encodeCbor(v)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.integer({ min: 200, max: 2000 }).map((n) => encodeCbor(new Map<string, unknown>([['data', new Uint8Array(n)], ['off', 0]]))) },
    ),
  });
  return fc.array(req, { minLength: 1, maxLength: 6 });
}

export const deviceHandlers: FuzzTarget = {
  name: 'device-handlers',
  what: 'reference device under random unauthenticated SMP requests to every group: stays up, never changes configuration or interfaces',
  async setup() {
    const auth = await makeAuthorities();
    const { device, security } = await createSecureDevice(auth, { bufSize: 512, settings: true });
    // unpaced: the line model (baud, latency) is not under test here, the handlers are
    const v = createVirtualDevice({ device, model: {} });
    // one writer to the device, shared by the honest session and the attacker's raw frames
    const hostWriter = v.link.writable.getWriter();
    const link: Link = {
      label: v.link.label, readable: v.link.readable, closed: v.link.closed, close: () => v.link.close(),
      writable: new WritableStream<Uint8Array>({ write: (c) => hostWriter.write(c) }),
    };
    // The attacker's raw requests use SMP sequence numbers half the range away from the honest
    // client's, so a late reply to one of them is never taken for the client's own.
    let clientSeq = 0;
    const s = await openSession(link, { log: (e) => void (e.type === 'tx' && (clientSeq = e.seq)) });
    const g = new SecurityGroup(s.client, security.groupId);
    const groups = [...device.groups.keys()];
    // the configuration as the device holds it (its read needs a technician's session), the interfaces as it reports them
    const snapshot = async () => JSON.stringify({ c: security.storageSnapshot(), i: await g.interfaces().catch((e) => `err ${e?.code ?? e}`) }, (_k, x) => (x instanceof Uint8Array ? Array.from(x) : x));
    const before = await snapshot();
    return fc.asyncProperty(requests(groups), async (reqs) => {
      let seq = clientSeq + 128;
      for (const r of reqs) {
        const pkt = buildPacket({ version: 1, op: r.op, flags: 0, group: r.group, id: r.id, seq: seq++ & 0xff }, r.body);
        for (const f of encodeFrames(device.opts.framing, pkt)) await hostWriter.write(f);
      }
      // the device must still answer, and nothing privileged may have changed
      await echo(s.client, 'alive', { timeoutMs: 5000 });
      const after = await snapshot();
      if (after !== before) throw new Error(`unauthenticated requests changed the device: ${before} -> ${after}`);
    });
  },
};

export const DEVICE_TARGETS: FuzzTarget[] = [deviceHandlers];

/**
 * Fuzzing the secure session (src/core/trust/session.ts, docs/SECURITY.md "Secure session"):
 *  - protected-request: the decoder of a protected request or reply ({s, c}) and its opening,
 *    fed mutations of a valid one and random bytes. Only typed errors; a mutated input opens only
 *    when it carries exactly the original sequence and plaintext (the mutation touched nothing
 *    that counts), never another.
 *  - session-device: the reference device with an authenticated session on the connection,
 *    fed mutated protected requests (of ones it has already accepted, so even an unmutated one is
 *    a replay) and random {s, c} bodies. Invariants: the device answers, the session still works
 *    at the next sequence number, and configuration and interfaces are unchanged.
 */
import fc from 'fast-check';
import { decodeCbor, encodeCbor } from '../../src/core/base/cbor.ts';
import { OS } from '../../src/core/protocol/os.ts';
import { SEC } from '../../src/core/protocol/security.ts';
import { Group, Op } from '../../src/core/smp/header.ts';
import { type SessionKeys, parseProtected, protect, unprotect } from '../../src/core/trust/session.ts';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { GROUP, type RawSession, groupRc, innerPacket, protectedPacket, protectedRequest, rawLogin, rawSmpOverLink, replyBody } from '../helpers/raw-session.ts';
import { type FuzzTarget, applyMutations, assertTyped, meaning } from './targets.ts';

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

const KEY = new Uint8Array(32).fill(9);

export const protectedRequestTarget: FuzzTarget = {
  name: 'protected-request',
  what: 'protected request/reply decoder and AEAD opening: typed errors only; a mutation never opens to another sequence or plaintext',
  async setup() {
    const inner = innerPacket(Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'disabled' });
    const valid = [1, 255, 70000, 2 ** 40].map((s) => ({ s, bytes: encodeCbor({ s, c: protect(KEY, 't2d', s, inner) }) }));
    return fc.asyncProperty(
      fc.oneof(
        { weight: 4, arbitrary: fc.tuple(fc.nat({ max: valid.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([i, ms]) => ({ i, bytes: applyMutations(valid[i].bytes, ms) })) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ i: -1, bytes })) },
      ),
      async ({ i, bytes }) => {
        let body: unknown;
        try {
          body = decodeCbor(bytes);
        } catch (e) {
          assertTyped(e, 'protected-request decode');
          return;
        }
        const p = parseProtected(body);
        if (!p) return;
        for (const dir of ['t2d', 'd2t'] as const) {
          const pt = unprotect(KEY, dir, p.seq, p.ciphertext);
          if (!pt) continue;
          if (i < 0 || dir !== 't2d' || p.seq !== valid[i].s || meaning(pt) !== meaning(inner)) {
            throw new Error(`a mutated protected request opened: seq ${p.seq}, dir ${dir}`);
          }
        }
      },
    );
  },
};

export const sessionDevice: FuzzTarget = {
  name: 'session-device',
  what: 'reference device with a session: mutated and random protected requests change nothing; the session survives at the next sequence',
  async setup() {
    const auth = await makeAuthorities();
    const { device, security } = await createSecureDevice(auth, { bufSize: 512 });
    const c = rawSmpOverLink(createVirtualDevice({ device, model: {} }).link);
    const pub = (await c.request(Op.Read as 0, security.groupId, SEC.Identity)).pub as Uint8Array;
    const sess: RawSession = await rawLogin(c, pub, auth.credential, auth.technician.privateKey);
    if (groupRc(sess.reply) !== undefined) throw new Error(`session-device: login refused ${JSON.stringify(sess.reply)}`);
    const keys: SessionKeys = sess.keys;
    // Requests the device accepts (then kept: each is a replay from now on).
    const harmful = [
      innerPacket(Op.Write as 2, GROUP, SEC.Interfaces, { name: 'smp_serial', state: 'disabled' }),
      innerPacket(Op.Write as 2, GROUP, SEC.Wipe, { confirm: true }),
      innerPacket(Op.Write as 2, Group.OS, OS.Reset),
    ];
    const captured: Uint8Array[] = [];
    for (const inner of [innerPacket(Op.Read as 0, GROUP, SEC.Interfaces), innerPacket(Op.Read as 0, GROUP, SEC.ConfigRead)]) {
      const s = ++sess.seq;
      const p = protectedPacket(c, keys, s, inner);
      if (groupRc(replyBody(await c.exchange(p))) !== undefined) throw new Error('session-device: setup request refused');
      captured.push(p);
    }
    const snapshot = async () => {
      const i = await protectedRequest(c, sess, Op.Read as 0, GROUP, SEC.Interfaces);
      const k = await protectedRequest(c, sess, Op.Read as 0, GROUP, SEC.ConfigRead);
      return meaning({ i: i.interfaces, k: [k.seq, k.digest] });
    };
    const before = await snapshot();
    const boot = device.bootCount;
    const packets = fc.oneof(
      // Mutations of a captured (already accepted) protected request, header included.
      { weight: 4, arbitrary: fc.tuple(fc.nat({ max: captured.length - 1 }), fc.array(mutation, { minLength: 0, maxLength: 3 })).map(([i, ms]) => applyMutations(captured[i], ms)) },
      // Harmful inner requests under a made-up key or a sequence already used.
      { weight: 2, arbitrary: fc.tuple(fc.nat({ max: harmful.length - 1 }), fc.boolean(), fc.integer({ min: 1, max: 3 })).map(([i, wrongKey, s]) =>
        protectedPacket(c, wrongKey ? { ...keys, t2d: new Uint8Array(32).fill(s) } : keys, wrongKey ? 1_000_000 + s : s, harmful[i])) },
      // Random outer bodies.
      { weight: 1, arbitrary: fc.record({ s: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 4 })), c: fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.integer()) })
        .map((b) => c.packet(Op.Write as 2, GROUP, SEC.Protected, b)) },
    );
    return fc.asyncProperty(fc.array(packets, { minLength: 1, maxLength: 4 }), async (ps) => {
      // sent back to back (most forged ones get no reply); the echo after them drains what came back
      for (const p of ps) c.send(p);
      if (!(await c.sync())) throw new Error('session-device: the device stopped answering');
      if (device.bootCount !== boot) throw new Error('session-device: a forged request reset the device');
      const after = await snapshot();
      if (after !== before) throw new Error(`session-device: forged requests changed the device: ${before} -> ${after}`);
    });
  },
};

export const SESSION_TARGETS: FuzzTarget[] = [protectedRequestTarget, sessionDevice];

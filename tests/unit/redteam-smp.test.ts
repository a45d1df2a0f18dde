/**
 * Red team: the SMP layer as a hostile client speaks it. Hand-made headers
 * (op, flags, version, length, group and command ids, sequence numbers), console
 * framing abuse (CRC, base64, declared lengths, orphan and over-long lines),
 * requests over buf_size, floods, and image upload / state abuse. The device must
 * refuse cleanly, keep serving, and never apply what nobody authorised.
 * docs/SECURITY.md's threat table names these tests.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { crc16xmodem } from '../../src/core/base/crc.ts';
import { IMG, IMG_ERR } from '../../src/core/protocol/image.ts';
import { OS } from '../../src/core/protocol/os.ts';
import { MGMT_RC } from '../../src/core/protocol/mgmt.ts';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { Group, Op, SMP_HEADER_SIZE, SMP_V2, buildPacket, decodeHeader } from '../../src/core/smp/header.ts';
import { createDecoder, encodeFrames } from '../../src/core/smp/framing.ts';
import { packetQueue } from '../helpers/listen-device.ts';
import { createLinkPair } from '../../src/core/link/memory.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { type DeviceOptions, ReferenceDevice } from '../../src/device/device.ts';
import { type ImageModel, slotInfoOf } from '../../src/device/groups/image.ts';
import { imageModelOf, serialRecoveryOf } from '../../src/device/groups/standard.ts';
import { type Authorities, createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { GROUP, type Body, type RawSmp, groupRc, protectedRequest, replyBody } from '../helpers/raw-session.ts';
import { type RawConn, rawConnect, rawWorld } from '../helpers/raw-world.ts';

let fw: { privateKey: Uint8Array; publicKey: Uint8Array };
let auth: Authorities;
beforeAll(async () => {
  fw = await generateEd25519();
  auth = await makeAuthorities();
});

async function image(version: string, opts: { size?: number; key?: Uint8Array; securityCounter?: number } = {}): Promise<Uint8Array> {
  const size = opts.size ?? 3000;
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 29 + version.length) & 0xff;
  return (await signImage(b, { key: opts.key ?? fw.privateKey, version, headerSize: 32, padHeader: true, securityCounter: opts.securityCounter ?? 1 })).image;
}

interface Rig {
  device: ReferenceDevice;
  model: ImageModel;
  conn(): RawConn;
}

async function rig(opts: DeviceOptions = {}): Promise<Rig> {
  const device = new ReferenceDevice({ bufSize: 512, ...opts, image: { trustedKeys: [fw.publicKey], slotSize: 64 * 1024, ...(opts.image || {}) } });
  const model = imageModelOf(device);
  await model.settled();
  return {
    device,
    model,
    conn: () => rawConnect(device),
  };
}

/** A request packet with every header field chosen by hand. */
function handMade(h: { op?: number; version?: number; flags?: number; group?: number; seq?: number; id?: number; length?: number }, body: Uint8Array = encodeCbor({})): Uint8Array {
  const p = buildPacket({ op: h.op ?? Op.Write, version: h.version ?? SMP_V2, flags: h.flags ?? 0, group: h.group ?? Group.OS, seq: h.seq ?? 0x42, id: h.id ?? OS.Echo }, body);
  if (h.length !== undefined) {
    p[2] = h.length >> 8;
    p[3] = h.length & 0xff;
  }
  return p;
}

const echo = (d: string) => encodeCbor({ d });

/** Upload a whole image with raw requests; the last reply. */
async function upload(c: RawSmp, img: Uint8Array, first: Body = {}, chunk = 256): Promise<Body> {
  let off = 0;
  for (;;) {
    const end = Math.min(img.length, off + chunk);
    const r = await c.request(Op.Write as 2, Group.Image, IMG.Upload, { ...(off === 0 ? { len: img.length, ...first } : {}), off, data: img.subarray(off, end) });
    if (r.rc !== undefined && r.rc !== 0) return r;
    if (groupRc(r) !== undefined) return r;
    if (typeof r.off !== 'number' || r.off >= img.length) return r;
    off = r.off;
  }
}

describe('red team: SMP headers and dispatch', () => {
  it('a header whose length disagrees with its payload, or a request op the device never answers (responses, 4..7): no reply, and the device keeps serving', async () => {
    const r = await rig();
    const c = r.conn();
    for (const p of [
      handMade({ length: 40 }, echo('x')),
      handMade({ length: 2 }, echo('hello')),
      handMade({ op: Op.ReadRsp }, echo('x')),
      handMade({ op: Op.WriteRsp }, echo('x')),
      handMade({ op: 5 }, echo('x')),
      handMade({ op: 7 }, echo('x')),
    ]) {
      expect(await c.exchange(p, 150)).toBeNull();
    }
    expect(await c.sync()).toBe(true);
    c.close();
  });

  it('group and command ids out of range, reads of write-only commands: rc 8 (ENOTSUP), nothing dispatched', async () => {
    const r = await rig();
    const c = r.conn();
    for (const h of [
      { group: 0xffff, id: 0 },
      { group: 0x1234, id: 1 },
      { group: Group.OS, id: 0xff },
      { group: Group.Image, id: 0x80 },
      { group: GROUP, id: SEC.Wipe },
      { op: Op.Read, group: Group.OS, id: OS.Reset },
      { op: Op.Read, group: Group.Image, id: IMG.Upload },
    ]) {
      const body = replyBody(await c.exchange(handMade(h)));
      expect(body.rc, JSON.stringify(h)).toBe(MGMT_RC.ENOTSUP);
    }
    expect(r.device.bootCount).toBe(1);
    c.close();
  });

  it('flags, reserved header bits, seq reuse and seq wrap-around: each request answered once, in its own sequence number', async () => {
    const r = await rig();
    const c = r.conn();
    const a = await c.exchange(handMade({ flags: 0xff, seq: 7 }, echo('a')));
    expect(decodeHeader(a!).seq).toBe(7);
    expect(replyBody(a).r).toBe('a');
    const b = await c.exchange(handMade({ seq: 7 }, echo('b')));
    expect(replyBody(b).r).toBe('b');
    const reserved = handMade({ seq: 0xff }, echo('c'));
    reserved[0] |= 0xe0; // Res:3 bits set
    expect(replyBody(await c.exchange(reserved)).r).toBe('c');
    expect(await c.sync()).toBe(true);
    c.close();
  });

  it('the reserved protocol versions 2 and 3: answered as Zephyr 4.4 does, rc 13 (UNSUPPORTED_TOO_NEW) in a v2 header before any handler runs; console and raw framing', async () => {
    for (const framing of ['console', 'raw'] as const) {
      const r = await rig({ framing });
      const pair = createLinkPair({}, ['attacker', 'device']);
      void r.device.serve(pair.b);
      const replies = packetQueue();
      const dec = createDecoder(framing, replies.push, { acceptOps: [Op.ReadRsp, Op.WriteRsp] });
      const reader = pair.a.readable.getReader();
      void (async () => {
        for (;;) {
          const x = await reader.read().catch(() => ({ done: true, value: undefined }));
          if (x.done) return;
          if (x.value) dec.push(x.value);
        }
      })();
      const writer = pair.a.writable.getWriter();
      const ask = async (p: Uint8Array) => {
        for (const f of encodeFrames(framing, p, 127)) await writer.write(f);
        return replies.next(3000);
      };
      const before = r.model.slots[1];
      for (const version of [2, 3]) {
        for (const [what, p] of [
          ['echo', handMade({ version, seq: 0x10 + version }, echo('v'))],
          ['an unknown group', handMade({ version, group: 0x1234, seq: 0x20 + version })],
          ['a body that is not CBOR', handMade({ version, seq: 0x30 + version }, Uint8Array.of(0xff, 0x00))],
          ['a reset', handMade({ version, id: OS.Reset, seq: 0x40 + version })],
          ['an image erase', handMade({ version, group: Group.Image, id: IMG.Erase, seq: 0x50 + version })],
        ] as const) {
          const reply = await ask(p);
          expect(reply, `${framing} v${version} ${what}`).not.toBeNull();
          const h = decodeHeader(reply!);
          expect(h.version, `${framing} v${version} ${what}`).toBe(SMP_V2);
          expect(h.seq).toBe(p[6]);
          expect(h.op).toBe(Op.WriteRsp);
          expect(replyBody(reply), `${framing} v${version} ${what}`).toEqual({ rc: MGMT_RC.UNSUPPORTED_TOO_NEW });
        }
      }
      // Nothing ran: no reboot, the slot untouched; v1 and v2 are still answered.
      await new Promise((res) => setTimeout(res, 60));
      expect(r.device.bootCount).toBe(1);
      expect(r.model.slots[1]).toBe(before);
      for (const version of [0, 1]) expect(replyBody(await ask(handMade({ version, seq: 0x60 + version }, echo(`v${version}`)))).r).toBe(`v${version}`);
      void pair.a.close();
    }
  });

  it('payloads that are not one CBOR map (array, bytes, int, two items, truncated, a huge declared map): rc 3, the device keeps serving', async () => {
    const r = await rig();
    const c = r.conn();
    for (const body of [
      encodeCbor([1, 2, 3]),
      encodeCbor(new Uint8Array(4)),
      encodeCbor(7),
      new Uint8Array([...encodeCbor({ d: 'a' }), ...encodeCbor({ d: 'b' })]),
      encodeCbor({ d: 'truncated' }).subarray(0, 5),
      Uint8Array.of(0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // a map declaring 2^64-1 pairs
      Uint8Array.of(0xba, 0xff, 0xff, 0xff, 0xff),
    ]) {
      expect(replyBody(await c.exchange(handMade({}, body))).rc).toBe(MGMT_RC.EINVAL);
    }
    expect(await c.sync()).toBe(true);
    c.close();
  });

  it('a map of 150 keys within buf_size is answered (ignored keys); over buf_size it is dropped without a reply', async () => {
    const r = await rig();
    const c = r.conn();
    const many: Record<string, number> = { };
    for (let i = 0; i < 150; i++) many[`k${i}`] = i;
    const small = encodeCbor({ d: 'ok', ...Object.fromEntries(Object.entries(many).slice(0, 60)) });
    expect(small.length + SMP_HEADER_SIZE).toBeLessThan(508);
    expect(replyBody(await c.exchange(handMade({}, small))).r).toBe('ok');
    const big = encodeCbor({ d: 'big', ...many });
    expect(big.length + SMP_HEADER_SIZE).toBeGreaterThan(512);
    const before = r.device.stats.droppedOversize;
    expect(await c.exchange(handMade({}, big), 200)).toBeNull();
    expect(r.device.stats.droppedOversize).toBe(before + 1);
    expect(await c.sync()).toBe(true);
    c.close();
  });

  it('a flood of 40 requests at once: the ones over the device\'s buffers are dropped and counted, every answered one is correct, and it keeps serving', async () => {
    const r = await rig();
    const c = r.conn();
    for (let i = 0; i < 40; i++) c.send(handMade({ seq: i }, echo(`f${i}`)));
    expect(await c.sync(5000)).toBe(true);
    expect(r.device.stats.requests).toBeGreaterThan(0);
    c.close();
  });
});

describe('red team: console framing', () => {
  function frameLines(packet: Uint8Array): Uint8Array[] {
    return encodeFrames('console', packet, 127);
  }

  it('a bad CRC, bad base64, an orphan continuation, a frame declaring 65,535 bytes, a truncated frame and an over-long line: dropped, the next good frame answered', async () => {
    const r = await rig();
    const c = r.conn();
    const enc = new TextEncoder();
    const good = handMade({}, echo('good'));
    // Bad CRC: flip a bit of the packet inside an otherwise good frame.
    const bad = good.slice();
    bad[bad.length - 1] ^= 1;
    const lines = frameLines(good);
    // Frame `bad` with the CRC of `good`.
    const body = new Uint8Array(bad.length + 4);
    body[0] = (bad.length + 2) >> 8;
    body[1] = (bad.length + 2) & 0xff;
    body.set(bad, 2);
    const crc = crc16xmodem(good);
    body[body.length - 2] = crc >> 8;
    body[body.length - 1] = crc & 0xff;
    const wrongCrc = new Uint8Array([0x06, 0x09, ...enc.encode(Buffer.from(body).toString('base64')), 0x0a]);
    const stats = r.device.stats.framing.dropped;
    const before = { ...stats };
    c.sendBytes!(wrongCrc);
    c.sendBytes!(new Uint8Array([0x06, 0x09, ...enc.encode('!!!!****'), 0x0a]));
    c.sendBytes!(new Uint8Array([0x04, 0x14, ...enc.encode('AAAA'), 0x0a]));
    c.sendBytes!(new Uint8Array([0x06, 0x09, ...enc.encode(Buffer.from([0xff, 0xff, 0, 0, 0, 0]).toString('base64')), 0x0a]));
    c.sendBytes!(frameLines(handMade({}, echo('x'.repeat(200))))[0]); // the first line of a longer frame only
    c.sendBytes!(new Uint8Array([0x06, 0x09, ...enc.encode('A'.repeat(4000)), 0x0a]));
    const reply = replyBody(await c.exchange(good));
    expect(reply.r).toBe('good');
    expect(await c.sync()).toBe(true);
    expect(stats.crc).toBeGreaterThan(before.crc);
    expect(stats.base64).toBeGreaterThan(before.base64);
    expect(stats.orphan).toBeGreaterThan(before.orphan);
    expect(stats.length).toBeGreaterThan(before.length);
    expect(stats.truncated).toBeGreaterThan(before.truncated);
    c.close();
  });

  it('a frame split byte by byte, with boot-log noise between lines: decoded and answered', async () => {
    const r = await rig();
    const c = r.conn();
    const lines = frameLines(handMade({ seq: 9 }, echo('y'.repeat(150))));
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) for (const b of l) c.sendBytes!(Uint8Array.of(b));
    expect(await c.sync()).toBe(true);
    c.close();
  });
});

describe('red team: image upload and state', () => {
  it('upload offsets and lengths: negative, past the expected offset, a chunk past the declared length, a length over the slot, no header, bad magic, an over-long sha: refused or answered with the expected offset, nothing written past', async () => {
    const r = await rig();
    const c = r.conn();
    const img = await image('1.1.0');
    const up = (b: Body) => c.request(Op.Write as 2, Group.Image, IMG.Upload, b);
    const v2 = (b: Body) => (b.err as { rc?: number } | undefined)?.rc;
    expect(v2(await up({ off: -1, data: img.subarray(0, 64), len: img.length }))).toBe(IMG_ERR.INVALID_OFFSET);
    expect(v2(await up({ off: 0, data: img.subarray(0, 16), len: img.length }))).toBe(IMG_ERR.INVALID_IMAGE_HEADER);
    expect(v2(await up({ off: 0, data: img.subarray(0, 64), len: 0 }))).toBe(IMG_ERR.INVALID_LENGTH);
    expect(v2(await up({ off: 0, data: img.subarray(0, 64), len: -4 }))).toBe(IMG_ERR.INVALID_LENGTH);
    expect(v2(await up({ off: 0, data: img.subarray(0, 64), len: 64 * 1024 + 1 }))).toBe(IMG_ERR.INVALID_IMAGE_TOO_LARGE);
    expect(v2(await up({ off: 0, data: new Uint8Array(64), len: img.length }))).toBe(IMG_ERR.INVALID_IMAGE_HEADER_MAGIC);
    expect(v2(await up({ off: 0, data: img.subarray(0, 64), len: img.length, sha: new Uint8Array(33) }))).toBe(IMG_ERR.INVALID_HASH);
    // A started upload: a chunk ahead of the expected offset is not written, the expected offset is answered.
    expect(await up({ off: 0, data: img.subarray(0, 64), len: img.length })).toMatchObject({ off: 64 });
    expect(await up({ off: 1000, data: img.subarray(1000, 1064) })).toMatchObject({ off: 64 });
    expect(r.model.slots[1]!.data.subarray(1000, 1064).every((x) => x === 0xff)).toBe(true);
    // Past the declared length.
    expect(await up({ off: 0, data: img.subarray(0, 64), len: 100 })).toMatchObject({ off: 64 });
    expect(v2(await up({ off: 64, data: new Uint8Array(40) }))).toBe(IMG_ERR.INVALID_IMAGE_DATA_OVERRUN);
    expect(r.model.slots[1]!.data.length).toBe(100);
    c.close();
  });

  it('an image changed mid-upload (a new offset 0 with another image): the slot holds the second image only, no byte of the first', async () => {
    const r = await rig();
    const c = r.conn();
    const a = await image('1.1.0');
    const b = await image('1.2.0', { size: 2500 });
    await c.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: a.length, data: a.subarray(0, 256) });
    // Another client writes the rest of "a" with the first bytes of "b" at off 0.
    const last = await upload(c, b);
    expect(last.off).toBe(b.length);
    expect(r.model.slots[1]!.data).toEqual(b);
    c.close();
  });

  it('test and confirm of images that do not verify (bad signature, unknown key, corrupted, lower security counter): the bootloader refuses them, the running image stays', async () => {
    const stranger = await generateEd25519();
    const cases: [string, Uint8Array][] = [
      ['unknown key', await image('2.0.0', { key: stranger.privateKey })],
      ['corrupted', await (async () => {
        const x = await image('2.0.0');
        x[100] ^= 0x55;
        return x;
      })()],
    ];
    for (const [what, img] of cases) {
      for (const confirm of [false, true]) {
        const r = await rig();
        const running = slotInfoOf(r.model.slots[0]!.data)!.hash;
        const c = r.conn();
        expect((await upload(c, img)).off, what).toBe(img.length);
        const hash = slotInfoOf(r.model.slots[1]!.data)!.hash;
        await c.request(Op.Write as 2, Group.Image, IMG.State, { hash, confirm });
        await r.device.reboot();
        expect(slotInfoOf(r.model.slots[0]!.data)!.hash, `${what} confirm=${confirm}`).toEqual(running);
        expect(r.model.slots[1], what).toBeNull();
        expect(r.model.active).toBe(0);
        c.close();
      }
    }
    // A lower security counter than the device has stored.
    const r = await rig({ image: { initialSecurityCounter: 5 } } as DeviceOptions);
    const c = r.conn();
    const old = await image('3.0.0', { securityCounter: 4 });
    expect((await upload(c, old)).off).toBe(old.length);
    await c.request(Op.Write as 2, Group.Image, IMG.State, { hash: slotInfoOf(r.model.slots[1]!.data)!.hash, confirm: true });
    await r.device.reboot();
    expect(slotInfoOf(r.model.slots[0]!.data)!.version).toBe('1.0.0');
    c.close();
  });

  it('an upload into a slot in use (a pending image, the image a test boot reverts to), erasing it, testing the running image or a half-written one: refused', async () => {
    const r = await rig();
    const c = r.conn();
    const v2 = (b: Body) => (b.err as { rc?: number } | undefined)?.rc;
    const img = await image('1.1.0');
    expect((await upload(c, img)).off).toBe(img.length);
    const hash = slotInfoOf(r.model.slots[1]!.data)!.hash;
    await c.request(Op.Write as 2, Group.Image, IMG.State, { hash });
    // Pending: no upload over it, no erase of it.
    expect(v2(await c.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img.length, data: img.subarray(0, 64) }))).toBe(IMG_ERR.NO_FREE_SLOT);
    expect(v2(await c.request(Op.Write as 2, Group.Image, IMG.Erase, { slot: 1 }))).toBe(IMG_ERR.NO_FREE_SLOT);
    await r.device.reboot();
    // Test boot: slot 1 holds the image to revert to.
    expect(r.model.testBoot).toBe(true);
    expect(v2(await c.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img.length, data: img.subarray(0, 64) }))).toBe(IMG_ERR.NO_FREE_SLOT);
    expect(v2(await c.request(Op.Write as 2, Group.Image, IMG.Erase, { slot: 1 }))).toBe(IMG_ERR.NO_FREE_SLOT);
    expect(v2(await c.request(Op.Write as 2, Group.Image, IMG.Erase, { slot: 0 }))).toBe(IMG_ERR.NO_FREE_SLOT);
    // The running image cannot be made "test".
    expect(v2(await c.request(Op.Write as 2, Group.Image, IMG.State, { hash, confirm: false }))).toBe(IMG_ERR.IMAGE_SETTING_TEST_TO_ACTIVE_DENIED);
    c.close();
    // A half-written image: its hash is not found.
    const r2 = await rig();
    const c2 = r2.conn();
    const img2 = await image('1.3.0');
    await c2.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img2.length, data: img2.subarray(0, 256) });
    const full = await rig();
    const cf = full.conn();
    await upload(cf, img2);
    const h2 = slotInfoOf(full.model.slots[1]!.data)!.hash;
    expect(v2(await c2.request(Op.Write as 2, Group.Image, IMG.State, { hash: h2 }))).toBe(IMG_ERR.HASH_NOT_FOUND);
    expect(v2(await c2.request(Op.Write as 2, Group.Image, IMG.State, { hash: new Uint8Array(0) }))).toBe(IMG_ERR.HASH_NOT_FOUND);
    c2.close();
    cf.close();
  });

  it('a resumed upload must name the same image: a short or partial sha does not attach to another client\'s upload', async () => {
    const r = await rig();
    const c = r.conn();
    const img = await image('1.1.0');
    const { sha256 } = await import('@noble/hashes/sha2.js');
    const sha = sha256(img);
    expect(await c.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img.length, data: img.subarray(0, 256), sha })).toMatchObject({ off: 256 });
    c.unplug();
    await settle();
    const other = r.conn();
    // A prefix of the sha is another upload (it restarts), not a resume at 256.
    const prefix = await other.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img.length, data: img.subarray(0, 64), sha: sha.subarray(0, 4) });
    expect(prefix.off).toBe(64);
    other.close();
  });
});

/** Let the device notice an unplugged link (its serve loop ends, the connection closes). */
const settle = () => new Promise((res) => setTimeout(res, 20));

describe('red team: an upload belongs to its connection', () => {
  it('a second connection cannot restart, resume, continue or erase another connection\'s upload in flight (EBUSY, nothing written); the upload completes; once its connection is gone the honest client resumes it by sha', async () => {
    const r = await rig();
    const owner = r.conn();
    const img = await image('1.1.0');
    const evil = await image('6.6.6', { size: 2000 });
    const { sha256 } = await import('@noble/hashes/sha2.js');
    const sha = sha256(img);
    const up = (c: RawSmp, b: Body) => c.request(Op.Write as 2, Group.Image, IMG.Upload, b);
    expect(await up(owner, { off: 0, len: img.length, data: img.subarray(0, 256), sha })).toMatchObject({ off: 256 });
    const attacker = r.conn();
    const written = () => r.model.slots[1]!.data.slice();
    const before = written();
    for (const [what, body] of [
      ['another image at off 0', { off: 0, len: evil.length, data: evil.subarray(0, 256), sha: sha256(evil) }],
      ['the same image by its sha (a resume)', { off: 0, len: img.length, data: img.subarray(0, 256), sha }],
      ['the next chunk at the expected offset, junk', { off: 256, data: new Uint8Array(256) }],
      ['a chunk elsewhere', { off: 1024, data: new Uint8Array(64) }],
    ] as const) {
      expect(await up(attacker, body as Body), what).toEqual({ rc: MGMT_RC.EBUSY });
    }
    expect(await attacker.request(Op.Write as 2, Group.Image, IMG.Erase, { slot: 1 })).toEqual({ rc: MGMT_RC.EBUSY });
    expect(written()).toEqual(before);
    // The owner goes on where it was and its image arrives whole.
    let last: Body = {};
    for (let off = 256; off < img.length; off = last.off as number) last = await up(owner, { off, data: img.subarray(off, Math.min(img.length, off + 256)) });
    expect(last).toMatchObject({ off: img.length, match: true });
    expect(r.model.slots[1]!.data).toEqual(img);
    attacker.close();

    // The honest single-client case: the link drops mid-upload, the new connection resumes by sha.
    const r2 = await rig();
    const first = r2.conn();
    expect(await up(first, { off: 0, len: img.length, data: img.subarray(0, 256), sha })).toMatchObject({ off: 256 });
    expect(await up(first, { off: 256, data: img.subarray(256, 512) })).toMatchObject({ off: 512 });
    first.unplug();
    await settle();
    const again = r2.conn();
    expect(await up(again, { off: 0, len: img.length, data: img.subarray(0, 256), sha })).toEqual({ off: 512 });
    for (let off = 512; off < img.length; off = last.off as number) last = await up(again, { off, data: img.subarray(off, Math.min(img.length, off + 256)) });
    expect(last).toMatchObject({ off: img.length, match: true });
    again.close();
  });

  it('an owner that sends nothing for uploadIdleMs no longer holds the slot: another connection may start over', async () => {
    const r = await rig({ image: { uploadIdleMs: 10_000 } } as DeviceOptions);
    const owner = r.conn();
    const img = await image('1.1.0');
    const other = await image('1.2.0', { size: 2500 });
    expect(await owner.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img.length, data: img.subarray(0, 256) })).toMatchObject({ off: 256 });
    const next = r.conn();
    const start = { off: 0, len: other.length, data: other.subarray(0, 256) };
    expect(await next.request(Op.Write as 2, Group.Image, IMG.Upload, start)).toEqual({ rc: MGMT_RC.EBUSY });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 10_001);
      expect(await next.request(Op.Write as 2, Group.Image, IMG.Upload, start)).toMatchObject({ off: 256 });
      // Now the first connection is the other one.
      expect(await owner.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 256, data: img.subarray(256, 512) })).toEqual({ rc: MGMT_RC.EBUSY });
    } finally {
      vi.useRealTimers();
    }
    owner.close();
    next.close();
  });

  it('on a secured device a technician with update in a session may take an upload over (logged); without update, or unauthenticated, EBUSY', async () => {
    const w = await rawWorld(auth, { image: { trustedKeys: [fw.publicKey], slotSize: 64 * 1024 } });
    await imageModelOf(w.device).settled();
    const img = await image('1.1.0');
    const stray = w.conn();
    expect(await stray.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 0, len: img.length, data: img.subarray(0, 256) })).toMatchObject({ off: 256 });
    const narrowCred = await issueCredential(
      { technicianId: 'tech-cfg', name: 'Configures only', publicKey: auth.technician.publicKey, permissions: ['configure'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + 86400_000) },
      auth.owner.privateKey,
    );
    const narrow = w.conn();
    const sn = await w.login(narrow, narrowCred);
    const start = { off: 0, len: img.length, data: img.subarray(0, 256) };
    expect(await protectedRequest(narrow, sn, Op.Write as 2, Group.Image, IMG.Upload, start)).toEqual({ rc: MGMT_RC.EBUSY });
    const tech = w.conn();
    const s = await w.login(tech);
    expect(await protectedRequest(tech, s, Op.Write as 2, Group.Image, IMG.Upload, start)).toMatchObject({ off: 256 });
    expect(w.sec.eventLog().some((e) => e.type === 'upload-takeover' && /tech-001/.test(e.detail))).toBe(true);
    // The stray connection lost it.
    expect(await stray.request(Op.Write as 2, Group.Image, IMG.Upload, { off: 256, data: img.subarray(256, 512) })).toEqual({ rc: MGMT_RC.EBUSY });
    stray.close();
    narrow.close();
    tech.close();
  });
});

describe('red team: reset into the bootloader on a secured device', () => {
  it('an unauthenticated os reset with boot_mode 1 does not hand the primary slot to serial recovery; with update in a session it does', async () => {
    const w = await rawWorld(auth, { image: { trustedKeys: [fw.publicKey], slotSize: 64 * 1024 }, serialRecovery: {} });
    const device = w.device;
    const model = imageModelOf(device);
    await model.settled();
    const c = w.conn();
    const r = await c.request(Op.Write as 2, Group.OS, OS.Reset, { boot_mode: 1 });
    expect(groupRc(r)).toBe(SEC_RC.NotAuthenticated);
    await new Promise((res) => setTimeout(res, 60));
    expect(serialRecoveryOf(device).active).toBe(false);
    // A plain reset (boot_mode 0 or none) stays open: it is not destructive.
    expect(groupRc(await c.request(Op.Write as 2, Group.OS, OS.Reset, { boot_mode: 0 }))).toBeUndefined();
    await new Promise((res) => setTimeout(res, 60));
    expect(serialRecoveryOf(device).active).toBe(false);
    // With a session and update, the technician may.
    const s = await w.login(c);
    const ok = await protectedRequest(c, s, Op.Write as 2, Group.OS, OS.Reset, { boot_mode: 1 });
    expect(ok.rc ?? groupRc(ok)).toBeUndefined();
    await new Promise((res) => setTimeout(res, 60));
    expect(serialRecoveryOf(device).active).toBe(true);
    c.close();
  });
});

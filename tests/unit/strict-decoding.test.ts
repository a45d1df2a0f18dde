/**
 * Signed payloads have one reading: the strict decoder (src/core/smp/cbor.ts
 * decodeStrict) refuses duplicate keys, floats, indefinite lengths and any
 * non-deterministic encoding, on the tool (verifiers) and on the device.
 */
import { describe, expect, it } from 'vitest';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { CborError, Tag, checkCbor, decodeCbor, decodeCborObject, decodeStrict, encodeCbor, encodeDeterministic } from '../../src/core/base/cbor.ts';
import { concatBytes } from '../../src/core/base/bytes.ts';
import { decodeSign1 } from '../../src/core/trust/cose.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { verifyBundle } from '../../src/core/trust/bundle.ts';
import { issueConfig, verifyConfig } from '../../src/core/trust/signed-config.ts';
import { createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import { SEC_RC } from '../../src/device/security.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((x) => parseInt(x, 16)));

function failsWith(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CborError);
    return (e as Error).message;
  }
  throw new Error('accepted');
}

/** Re-sign `signed` with a payload given as raw bytes (any encoding), keeping its protected header. */
async function resignRaw(signed: Uint8Array, payload: Uint8Array, seed: Uint8Array): Promise<Uint8Array> {
  const m = decodeSign1(signed);
  const pb = encodeDeterministic(m.protected);
  const sig = await ed25519Sign(encodeCbor(['Signature1', pb, new Uint8Array(0), payload]), seed);
  return encodeCbor(new Tag([pb, new Map(), payload, sig], 18));
}

/** The payload of `signed` with field `key` given twice: first `first`, then the original value. */
function withDuplicate(signed: Uint8Array, key: number, first: unknown): Uint8Array {
  const payload = decodeCbor(decodeSign1(signed).payload!) as Map<number, unknown>;
  const parts: Uint8Array[] = [];
  for (const [k, v] of [...payload.entries()].sort((a, b) => a[0] - b[0])) {
    if (k === key) parts.push(encodeCbor(k), encodeCbor(first));
    parts.push(encodeCbor(k), encodeDeterministic(v));
  }
  const n = payload.size + 1;
  return concatBytes(Uint8Array.of(0xa0 + n), ...parts);
}

describe('strict CBOR decoding', () => {
  it('accepts deterministic encodings and refuses each other reading', () => {
    expect(decodeStrict(encodeDeterministic(new Map<number, unknown>([[1, 'a'], [2, [1, 2]], [-1, new Uint8Array(3)]])))).toBeInstanceOf(Map);
    expect(failsWith(() => decodeStrict(hex('a201010102')))).toMatch(/duplicate/);
    expect(failsWith(() => decodeStrict(hex('a202010101')))).toMatch(/order/);
    expect(failsWith(() => decodeStrict(hex('f93c00')))).toMatch(/floating/); // 1.0 as float16
    expect(failsWith(() => decodeStrict(hex('fb3ff0000000000000')))).toMatch(/floating/);
    expect(failsWith(() => decodeStrict(hex('bf0101ff')))).toMatch(/indefinite/);
    expect(failsWith(() => decodeStrict(hex('9f01ff')))).toMatch(/indefinite/);
    expect(failsWith(() => decodeStrict(hex('1817')))).toMatch(/shortest/); // 23 in two bytes
    expect(failsWith(() => decodeStrict(hex('5801ff')))).toMatch(/shortest/);
    expect(failsWith(() => decodeStrict(hex('f7')))).toMatch(/simple value/); // undefined
    expect(failsWith(() => decodeStrict(hex('62c328')))).toMatch(/UTF-8/);
    expect(failsWith(() => decodeStrict(hex('0101')))).toMatch(/trailing/);
    // The lenient decoder (SMP replies from real devices) keeps indefinite maps and floats.
    expect(decodeCborObject(hex('bf617201ff'))).toEqual({ r: 1 });
  });

  it('nesting is bounded with a typed error, never a RangeError', () => {
    for (const n of [65, 2000, 100000]) {
      const deep = new Uint8Array(n + 1).fill(0x81);
      deep[n] = 0x00;
      expect(failsWith(() => decodeCbor(deep))).toMatch(/nested deeper/);
      expect(failsWith(() => decodeCborObject(deep))).toMatch(/nested deeper/);
      expect(failsWith(() => decodeStrict(deep))).toMatch(/nested deeper/);
      const maps = new Uint8Array(2 * n + 1);
      for (let i = 0; i < n; i++) maps.set([0xa1, 0x01], 2 * i);
      expect(() => checkCbor(maps)).toThrow(CborError);
    }
  });
});

describe('signed payloads have one reading, on the tool and on the device', () => {
  it('a configuration carrying sequence 7 AND 1000000 does not verify as 1000000 (tool)', async () => {
    const a = await makeAuthorities();
    const cfg = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 7, settings: { interval: 60, name: 'pump-7' }, notAfter: Date.now() + 86400_000 }, a.owner.privateKey);
    const forged = await resignRaw(cfg, withDuplicate(cfg, 2, 1000000), a.owner.privateKey);
    const b = await verifyBundle(a.bundle, { ownerKeys: [a.owner.publicKey] });
    if (!b.ok) throw new Error(b.reason);
    expect((await verifyConfig(cfg, { bundle: b.value })).ok).toBe(true);
    const v = await verifyConfig(forged, { bundle: b.value });
    expect(v.ok ? 'verified' : v.code).toBe('schema');
    // A float where an integer belongs, and an indefinite-length payload map.
    const payload = decodeCbor(decodeSign1(cfg).payload!) as Map<number, unknown>;
    const parts = [...payload.entries()].sort((x, y) => x[0] - y[0]).map(([k, x]) => concatBytes(encodeCbor(k), encodeDeterministic(x)));
    const indefinite = concatBytes(Uint8Array.of(0xbf), ...parts, Uint8Array.of(0xff));
    const v2 = await verifyConfig(await resignRaw(cfg, indefinite, a.owner.privateKey), { bundle: b.value });
    expect(v2.ok ? 'verified' : v2.code).toBe('schema');
    const floatSeq = concatBytes(Uint8Array.of(0xa0 + payload.size), ...[...payload.entries()].sort((x, y) => x[0] - y[0]).map(([k, x]) => concatBytes(encodeCbor(k), k === 2 ? hex('fb401c000000000000') : encodeDeterministic(x))));
    const v3 = await verifyConfig(await resignRaw(cfg, floatSeq, a.owner.privateKey), { bundle: b.value });
    expect(v3.ok ? 'verified' : v3.code).toBe('schema');
  });

  it('the device refuses the duplicate-key configuration as malformed and keeps its sequence', async () => {
    const a = await makeAuthorities();
    const { device, security } = await createSecureDevice(a, { bufSize: 512 });
    const s = await openSession(createVirtualDevice({ device, model: { baudRate: 921600 * 20 } }).link);
    const g = new SecurityGroup(s.client, security.groupId);
    const id = await g.identity();
    await authenticateTechnician(g, id.devicePublicKey, a.credential, (m) => ed25519Sign(m, a.technician.privateKey));
    const cfg = await issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 7, settings: { interval: 60, name: 'pump-7' }, notAfter: Date.now() + 86400_000 }, a.owner.privateKey);
    const forged = await resignRaw(cfg, withDuplicate(cfg, 2, 1000000), a.owner.privateKey);
    const err = await g.applyConfig(forged).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(SmpError);
    expect((err as SmpError).rc).toBe(SEC_RC.Malformed);
    expect((await g.readConfig()).sequence).toBe(0);
    expect((await g.applyConfig(cfg)).sequence).toBe(7);
    await s.close();
  });
});

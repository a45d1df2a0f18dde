import { describe, expect, it } from 'vitest';
import {
  CborError, CborTrailingBytesError, Tag, decodeCbor, decodeCborObject, decodeUnique, encodeCbor, encodeDeterministic, scanCbor,
} from '../../src/core/base/cbor.ts';
import { toHex, fromHex } from '../../src/core/base/bytes.ts';

describe('plain CBOR', () => {
  it('encodes integers in their shortest form, at every width (RFC 8949 appendix A)', () => {
    const cases: [number | bigint, string][] = [
      [0, '00'], [23, '17'], [24, '1818'], [1000, '1903e8'], [1000000, '1a000f4240'],
      [1000000000000, '1b000000e8d4a51000'], [4294967296, '1b0000000100000000'], [-1, '20'], [-1000, '3903e7'],
      [-4294967297, '3b0000000100000000'], [10n, '0a'], [18446744073709551615n, '1bffffffffffffffff'],
    ];
    for (const [v, hex] of cases) expect(toHex(encodeCbor(v)), String(v)).toBe(hex);
    expect(decodeCbor(fromHex('1b0000000100000000'))).toBe(4294967296);
  });

  it('encodes bytes as plain bstr (no typed-array tags) and objects as maps', () => {
    expect(toHex(encodeCbor(new Uint8Array([1, 2, 3])))).toBe('43010203');
    expect(toHex(encodeCbor({ a: 1 }))).toBe('a1616101');
  });

  it('decodes indefinite-length maps and arrays as Zephyr sends them', () => {
    expect(decodeCborObject(fromHex('bf61610161629f0203ffff'))).toEqual({ a: 1, b: [2, 3] });
    expect(decodeCbor(fromHex('bf01f5ff'))).toEqual(new Map([[1, true]]));
  });

  it('rejects trailing bytes, empty and invalid input with CborError', () => {
    expect(() => decodeCbor(fromHex('0101'))).toThrow(CborError);
    expect(() => decodeCbor(new Uint8Array())).toThrow(CborError);
    expect(() => decodeCbor(fromHex('bf61'))).toThrow(CborError);
    expect(() => decodeCbor(fromHex('5b00000000ffffffff00'))).toThrow(CborError);
  });

  it('deterministic encoding sorts keys by their encoded bytes and rejects floats', () => {
    const m = new Map<unknown, unknown>([['aa', 1], [10, 2], [1, 3], [-1, 4], ['b', new Map([[2, 0], [1, 0]])]]);
    // 1 (01) < 10 (0a) < -1 (20) < 'b' (6162) < 'aa' (626161); nested maps sorted too
    expect(toHex(encodeDeterministic(m))).toBe('a5' + '0103' + '0a02' + '2004' + '6162a201000200' + '62616101');
    expect(() => encodeDeterministic({ x: 1.5 })).toThrow(CborError);
    expect(toHex(encodeDeterministic(new Tag(new Map([[2, 1], [1, 2]]), 18)))).toBe('d2a201020201');
  });
});

describe('the one CBOR head reader (scanCbor, decodeUnique)', () => {
  it('counts map entries, nested and indefinite ones included, and returns where the item ends', () => {
    // {1: {2: 3}, 4: [_ {5: 6}]} followed by one more byte
    expect(scanCbor(fromHex('a201a102030481bf0506ff00'))).toEqual({ end: 11, entries: 4 });
  });

  it('applies each rule only when asked: definite lengths, no floats, depth', () => {
    const indefinite = fromHex('bf0102ff');
    expect(scanCbor(indefinite).entries).toBe(1);
    expect(() => scanCbor(indefinite, 0, { definiteOnly: true })).toThrow(/indefinite/);
    const float = fromHex('a101f93c00'); // {1: 1.0}
    expect(scanCbor(float).end).toBe(5);
    expect(() => scanCbor(float, 0, { noFloats: true })).toThrow(/floating/);
    const deep = fromHex('818181818100'); // [[[[[0]]]]]
    expect(scanCbor(deep, 0, { maxDepth: 5 }).end).toBe(6);
    expect(() => scanCbor(deep, 0, { maxDepth: 4 })).toThrow(CborError);
  });

  it('decodeUnique refuses keys equal once decoded, even when encoded differently, and names trailing bytes', () => {
    expect(decodeUnique(fromHex('a20102030a'))).toEqual(new Map([[1, 2], [3, 10]]));
    expect(() => decodeUnique(fromHex('a20102180103'))).toThrow(/duplicate/); // {1: 2, 1 (non-shortest): 3}
    expect(() => decodeUnique(fromHex('a101a202030204'))).toThrow(/duplicate/); // {1: {2: 3, 2: 4}}
    const t = (() => {
      try {
        decodeUnique(fromHex('a00000'));
      } catch (e) {
        return e;
      }
    })();
    expect(t).toBeInstanceOf(CborTrailingBytesError);
    expect((t as CborTrailingBytesError).count).toBe(2);
  });
});

describe('deterministic encoding: the direct writer equals the general path', () => {
  // a small deterministic PRNG: the same cases every run
  let seed = 0x2545f491;
  const rnd = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
  const INTS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, -1, -24, -25, -256, -257, -65536, -65537, -(2 ** 32), -(2 ** 32) - 1, -(2 ** 53 - 1)];
  const STRS = ['', 'a', 'aa', 'b', 'é', 'ü-Ω', '😀', 'x'.repeat(23), 'x'.repeat(24), 'y'.repeat(300), 'key:0a', 'a\u0000b', '1', '10'];
  const gen = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.3) return pick<unknown>([pick(INTS), Math.floor(rnd() * 2 ** 40) - 2 ** 39, pick(STRS), true, false, null, new Uint8Array(Math.floor(rnd() * 40)).map(() => rnd() * 256)]);
    if (r < 0.55) return Array.from({ length: Math.floor(rnd() * 5) }, () => gen(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 6); i > 0; i--) o[pick([...STRS, 'seq', 'time', 'prev', 'details', 'device', String(i)])] = rnd() < 0.1 ? undefined : gen(depth + 1);
    return o;
  };

  it('gives the same bytes on 3,000 generated plain values (maps, arrays, text, integers at every width, bytes)', async () => {
    const { encodeDeterministicReference } = await import('../../src/core/base/cbor.ts');
    for (let i = 0; i < 3000; i++) {
      const v = gen(0);
      const a = toHex(encodeDeterministic(v));
      const b = toHex(encodeDeterministicReference(v));
      if (a !== b) expect(a, JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? toHex(x) : x))?.slice(0, 300)).toBe(b);
    }
  });

  it('leaves what it does not write to the general path: the same bytes or the same refusal', async () => {
    const { encodeDeterministicReference } = await import('../../src/core/base/cbor.ts');
    const same = ['z'.repeat(70000), { z: 'z'.repeat(70000), n: [2 ** 32, -(2 ** 32) - 1] }, [undefined], [1, undefined], -0, { a: -0 }, 2 ** 60, 10n, new Map([[1, 2]]), new Tag(1, 2), Buffer.from([1, 2]), 'lone \ud800 surrogate', { k: '\udc00' }, { d: new Date(0) }];
    for (const v of same) {
      let ref: string | Error;
      try {
        ref = toHex(encodeDeterministicReference(v));
      } catch (e) {
        ref = e as Error;
      }
      if (ref instanceof Error) expect(() => encodeDeterministic(v)).toThrow(ref.message);
      else expect(toHex(encodeDeterministic(v))).toBe(ref);
    }
    expect(() => encodeDeterministic({ x: 1.5 })).toThrow(CborError);
    expect(() => encodeDeterministic([NaN])).toThrow(CborError);
    // two objects whose key lists would join to one string keep their own order
    expect(toHex(encodeDeterministic({ 'a\u0000b': 1 }))).toBe(toHex(encodeDeterministicReference({ 'a\u0000b': 1 })));
    expect(toHex(encodeDeterministic({ a: 1, b: 2 }))).toBe('a2616101616202');
  });
});

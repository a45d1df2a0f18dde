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

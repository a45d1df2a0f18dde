import { describe, expect, it } from 'vitest';
import { CborError, Tag, decodeCbor, decodeCborObject, encodeCbor, encodeDeterministic } from '../../src/core/base/cbor.ts';
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

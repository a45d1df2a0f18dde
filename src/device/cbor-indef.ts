/**
 * Zephyr's zcbor encodes maps and arrays with indefinite length
 * (0xbf ... 0xff, 0x9f ... 0xff). The reference device answers the same way,
 * so every client is exercised against what real devices send.
 */
import { concatBytes } from '../core/base/bytes.ts';
import { encodeCbor } from '../core/base/cbor.ts';

export function encodeIndefinite(v: unknown): Uint8Array {
  const parts: Uint8Array[] = [];
  write(v, parts);
  return concatBytes(...parts);
}

const BF = new Uint8Array([0xbf]);
const AF = new Uint8Array([0x9f]);
const FF = new Uint8Array([0xff]);

function write(v: unknown, parts: Uint8Array[]): void {
  if (Array.isArray(v)) {
    parts.push(AF);
    for (const x of v) write(x, parts);
    parts.push(FF);
  } else if (v instanceof Map) {
    parts.push(BF);
    for (const [k, x] of v) {
      parts.push(encodeCbor(k));
      write(x, parts);
    }
    parts.push(FF);
  } else if (v && typeof v === 'object' && !(v instanceof Uint8Array) && Object.getPrototypeOf(v) === Object.prototype) {
    parts.push(BF);
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      parts.push(encodeCbor(k));
      write(x, parts);
    }
    parts.push(FF);
  } else {
    parts.push(encodeCbor(v));
  }
}

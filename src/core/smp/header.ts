/**
 * The 8-byte SMP header (big-endian), as defined by MCUmgr:
 *   byte 0: Res:3 | Ver:2 | OP:3     byte 1: flags
 *   bytes 2-3: payload length        bytes 4-5: group id
 *   byte 6: sequence number          byte 7: command id
 */
export const SMP_HEADER_SIZE = 8;

export const enum Op {
  Read = 0,
  ReadRsp = 1,
  Write = 2,
  WriteRsp = 3,
}

/** SMP version field: 0 = v1 (rc in body), 1 = v2 (err {group, rc} in body). */
export const SMP_V1 = 0;
export const SMP_V2 = 1;

export interface SmpHeader {
  op: number;
  version: number;
  flags: number;
  length: number;
  group: number;
  seq: number;
  id: number;
}

export function encodeHeader(h: SmpHeader, out = new Uint8Array(SMP_HEADER_SIZE)): Uint8Array {
  out[0] = ((h.version & 0x3) << 3) | (h.op & 0x7);
  out[1] = h.flags & 0xff;
  out[2] = (h.length >> 8) & 0xff;
  out[3] = h.length & 0xff;
  out[4] = (h.group >> 8) & 0xff;
  out[5] = h.group & 0xff;
  out[6] = h.seq & 0xff;
  out[7] = h.id & 0xff;
  return out;
}

export function decodeHeader(b: Uint8Array, offset = 0): SmpHeader {
  if (b.length - offset < SMP_HEADER_SIZE) throw new RangeError('SMP header needs 8 bytes');
  return {
    op: b[offset] & 0x7,
    version: (b[offset] >> 3) & 0x3,
    flags: b[offset + 1],
    length: (b[offset + 2] << 8) | b[offset + 3],
    group: (b[offset + 4] << 8) | b[offset + 5],
    seq: b[offset + 6],
    id: b[offset + 7],
  };
}

/** Build a whole packet: header + CBOR payload. */
export function buildPacket(h: Omit<SmpHeader, 'length'>, payload: Uint8Array): Uint8Array {
  if (payload.length > 0xffff) throw new RangeError('SMP payload larger than 65535 bytes');
  const p = new Uint8Array(SMP_HEADER_SIZE + payload.length);
  encodeHeader({ ...h, length: payload.length }, p);
  p.set(payload, SMP_HEADER_SIZE);
  return p;
}

export function isResponseOp(op: number): boolean {
  return op === Op.ReadRsp || op === Op.WriteRsp;
}

/** Well-known group ids (Zephyr include/zephyr/mgmt/mcumgr/mgmt/mgmt_defines.h). */
export const Group = {
  OS: 0,
  Image: 1,
  Stat: 2,
  Settings: 3,
  Log: 4,
  Crash: 5,
  Split: 6,
  Run: 7,
  FS: 8,
  Shell: 9,
  Enum: 10,
  Zephyr: 63,
} as const;

export const GROUP_NAMES: Record<number, string> = {
  0: 'os',
  1: 'img',
  2: 'stat',
  3: 'settings',
  4: 'log',
  5: 'crash',
  6: 'split',
  7: 'run',
  8: 'fs',
  9: 'shell',
  10: 'enum',
  63: 'zephyr',
};

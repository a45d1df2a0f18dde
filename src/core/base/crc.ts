/** CRC-16/XMODEM, the checksum of SMP console frames and of our transcripts. */
const CRC_TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  CRC_TABLE[i] = c;
}

/** CRC-16/XMODEM (poly 0x1021, init 0, no reflection): Zephyr's crc16_itu_t(0, ...). */
export function crc16xmodem(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ data[i]) & 0xff];
  return crc;
}


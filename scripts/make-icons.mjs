#!/usr/bin/env node
/**
 * Draws the app icons (static/icons/*.png) with nothing but node:zlib: a blue
 * tile with the white diamond of the header logo. Run once after changing the
 * design; the PNGs are committed, so building needs neither this nor the network.
 *
 *   node scripts/make-icons.mjs
 */
import { deflateSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../static/icons');
const BG = [0x0b, 0x57, 0xd0]; // --accent
const FG = [0xff, 0xff, 0xff];

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(size, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * size: pixels; maskable: background fills the square (content kept inside the
 * 80% safe zone); otherwise a rounded tile on transparency.
 */
function draw(size, maskable) {
  const S = 4; // supersampling per axis
  const buf = Buffer.alloc(size * size * 4);
  const radius = maskable ? 0 : 0.22; // of the tile side
  const diamond = maskable ? 0.3 : 0.36; // half-diagonal, of the side
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let bg = 0;
      let fg = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const x = (px + (sx + 0.5) / S) / size; // 0..1
          const y = (py + (sy + 0.5) / S) / size;
          let inside = true;
          if (radius > 0) {
            const cx = Math.min(Math.max(x, radius), 1 - radius);
            const cy = Math.min(Math.max(y, radius), 1 - radius);
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= radius * radius;
          }
          if (!inside) continue;
          bg++;
          if (Math.abs(x - 0.5) + Math.abs(y - 0.5) <= diamond) fg++;
        }
      }
      const n = S * S;
      const i = (py * size + px) * 4;
      const a = bg / n;
      const f = bg ? fg / bg : 0;
      for (let c = 0; c < 3; c++) buf[i + c] = Math.round(BG[c] * (1 - f) + FG[c] * f);
      buf[i + 3] = Math.round(a * 255);
    }
  }
  return png(size, buf);
}

mkdirSync(out, { recursive: true });
const files = {
  'icon-192.png': draw(192, false),
  'icon-512.png': draw(512, false),
  'icon-maskable-512.png': draw(512, true),
  'apple-touch-icon-180.png': draw(180, true),
  'favicon-32.png': draw(32, false),
};
for (const [name, data] of Object.entries(files)) {
  writeFileSync(path.join(out, name), data);
  console.log(`${name} ${data.length} bytes`);
}

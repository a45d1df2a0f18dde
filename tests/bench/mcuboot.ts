/**
 * MCUboot image verification speed: a 4 MiB signed image against the raw
 * SHA-256 of 4 MiB through WebCrypto (what verification uses where it can). The goal is that verification costs the hash plus a few
 * milliseconds (no copies of the image, one Ed25519 verification).
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { verifyImage } from '../../src/core/trust/mcuboot/verify.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';

import type { BenchRow } from './types.ts';

const SIZE = 4 * 1024 * 1024;

export async function bench(): Promise<BenchRow[]> {
  const seed = sha256(new TextEncoder().encode('fieldbench bench key'));
  const pub = await ed25519PublicKey(seed);
  const body = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i += 4096) body[i] = i >>> 12; // not all zero
  const raw = new Uint8Array(SIZE);
  raw.set(body);

  const signed = (await signImage(body, { key: seed, version: '1.0.0', headerSize: 0x200, padHeader: true, securityCounter: 1 })).image;
  const signed512 = (await signImage(body, { key: seed, version: '1.0.0', headerSize: 0x200, padHeader: true, sha: '512' })).image;

  // interleave the raw hash and the verification so machine load affects both alike
  const runs = 9;
  const check = (r: { ok: boolean; reason: string }) => {
    if (!r.ok) throw new Error(`bench image rejected: ${r.reason}`);
  };
  const t = { h256: [] as number[], v256: [] as number[], h512: [] as number[], v512: [] as number[], n256: [] as number[] };
  const time = async (list: number[], f: () => unknown) => {
    const s = performance.now();
    await f();
    list.push(performance.now() - s);
  };
  check(await verifyImage(signed, { keys: [pub] })); // warm up
  check(await verifyImage(signed512, { keys: [pub] }));
  for (let i = 0; i < runs; i++) {
    await time(t.h256, () => crypto.subtle.digest('SHA-256', raw));
    await time(t.n256, () => sha256(raw));
    await time(t.v256, async () => check(await verifyImage(signed, { keys: [pub] })));
    await time(t.h512, () => crypto.subtle.digest('SHA-512', raw));
    await time(t.v512, async () => check(await verifyImage(signed512, { keys: [pub] })));
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const hashMs = med(t.h256);
  const verifyMs = med(t.v256);
  const hash512Ms = med(t.h512);
  const verify512Ms = med(t.v512);
  return [
    { name: 'mcuboot: SHA-256 of 4 MiB (WebCrypto: the floor)', value: round(hashMs), unit: 'ms', note: `@noble/hashes: ${round(med(t.n256))} ms` },
    { name: 'mcuboot: verify 4 MiB image (SHA256 + Ed25519)', value: round(verifyMs), unit: 'ms', note: `${round(verifyMs - hashMs)} ms beyond the hash` },
    { name: 'mcuboot: verify / raw SHA-256 (4 MiB)', value: round(verifyMs / hashMs, 3), unit: 'ratio', note: 'goal: close to 1' },
    { name: 'mcuboot: verify 4 MiB image (SHA512 + Ed25519)', value: round(verify512Ms), unit: 'ms', note: `raw WebCrypto SHA-512 ${round(hash512Ms)} ms; ratio ${round(verify512Ms / hash512Ms, 3)}` },
  ];
}

function round(x: number, d = 2): number {
  const m = 10 ** d;
  return Math.round(x * m) / m;
}

// allow `npx tsx tests/bench/mcuboot.ts` on its own
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await bench()) console.log(`${r.name}: ${r.value} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
}

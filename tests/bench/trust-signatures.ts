/**
 * Signature layer throughput: Ed25519 (strict RFC 8032, @noble/ed25519) and COSE_Sign1.
 * WebCrypto Ed25519 is measured for comparison only; it is not used (see docs/SECURITY.md).
 */
import { signSign1, verifySign1, type CoseKey } from '../../src/core/trust/cose.ts';
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from '../../src/core/trust/ed25519.ts';

import { type BenchRow, opsPerSec } from './types.ts';


export async function bench(): Promise<BenchRow[]> {
  const seed = new Uint8Array(32).fill(42);
  const pub = await ed25519PublicKey(seed);
  const msg = new Uint8Array(64).fill(7);
  const sig = await ed25519Sign(msg, seed);
  const key: CoseKey = { kty: 'OKP', crv: 'Ed25519', x: pub };
  const small = await signSign1({ payload: new Uint8Array(200).fill(1), privateKey: seed });
  const large = await signSign1({ payload: new Uint8Array(60_000).fill(1), privateKey: seed });

  const rows: BenchRow[] = [
    { name: 'ed25519 verify (strict, 64 B msg)', value: await opsPerSec(() => ed25519Verify(sig, msg, pub)), unit: 'ops/s' },
    { name: 'ed25519 sign (64 B msg)', value: await opsPerSec(() => ed25519Sign(msg, seed)), unit: 'ops/s' },
    { name: 'COSE_Sign1 verify (200 B payload)', value: await opsPerSec(() => verifySign1(small, key)), unit: 'ops/s' },
    { name: 'COSE_Sign1 verify (60 kB payload)', value: await opsPerSec(() => verifySign1(large, key)), unit: 'ops/s' },
    { name: 'COSE_Sign1 sign (200 B payload)', value: await opsPerSec(() => signSign1({ payload: new Uint8Array(200), privateKey: seed })), unit: 'ops/s' },
  ];
  try {
    const subtle = globalThis.crypto.subtle;
    const k = await subtle.importKey('raw', pub as BufferSource, { name: 'Ed25519' }, false, ['verify']);
    rows.push({
      name: 'WebCrypto Ed25519 verify (comparison only, not used)',
      value: await opsPerSec(() => subtle.verify({ name: 'Ed25519' }, k, sig as BufferSource, msg as BufferSource)),
      unit: 'ops/s',
      note: 'edge-case verdicts differ from strict RFC 8032',
    });
  } catch {
    // platform without WebCrypto Ed25519
  }
  return rows;
}

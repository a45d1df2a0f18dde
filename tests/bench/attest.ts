/**
 * Attestation: token signing on the device side, full appraisal on the verifier side
 * (dominated by one Ed25519 verify), PSA claim validation and COSE_Mac0 (HMAC-SHA-256).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeCbor } from '../../src/core/base/cbor.ts';
import { verifyMac0 } from '../../src/core/trust/cose-mac0.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { appraiseToken, signEatToken, signerIdFor, type EatDeviceState } from '../../src/core/trust/eat.ts';
import { validatePsaClaims } from '../../src/core/trust/psa.ts';
import { type BenchRow, opsPerSec } from './types.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const VEC = path.resolve(here, '../../../shared/vectors/psa');


export async function bench(): Promise<BenchRow[]> {
  const seed = new Uint8Array(32).fill(1);
  const pub = await ed25519PublicKey(seed);
  const fw = await ed25519PublicKey(new Uint8Array(32).fill(2));
  const hash = new Uint8Array(32).fill(3);
  const nonce = new Uint8Array(32).fill(4);
  const state: EatDeviceState = {
    nonce, devicePublicKey: pub, implementationId: new Uint8Array(32), model: 'fb-sensor-1', lifecycle: 'secured',
    bootSeed: new Uint8Array(16), bootCount: 1, uptimeSeconds: 1, debugStatus: 'disabled-permanently',
    softwareComponents: [{ measurementType: 'App', measurementValue: hash, version: '1.0.0', signerId: signerIdFor(fw) }],
    interfaces: { 'smp-serial': 'authenticated' }, failedAuthCount: 0, securityCounter: 1,
  };
  const token = await signEatToken(state, seed);
  const ctx = {
    devicePublicKey: pub, expectedNonce: nonce, revokedKeyIds: new Set<string>(),
    referenceMeasurements: [{ sha256: Buffer.from(hash).toString('hex'), version: '1.0.0', model: 'fb-sensor-1' }],
  };
  const check = await appraiseToken(token, ctx);
  if (check.verdict !== 'trusted') throw new Error(`bench token not trusted: ${JSON.stringify(check.reasons)}`);
  const mac0 = new Uint8Array(readFileSync(path.join(VEC, 'rfc9783-examples/psa-mac0.cbor')));
  const hk = new Uint8Array(readFileSync(path.join(VEC, 'rfc9783-examples/tfm-hs-iak.bin')));
  const claims = decodeCbor(((decodeCbor(mac0) as { value: Uint8Array[] }).value)[2]);
  return [
    { name: 'EAT sign (device, Ed25519)', value: await opsPerSec(() => signEatToken(state, seed)), unit: 'ops/s', note: `${token.length} B token` },
    { name: 'EAT appraise (verifier, all checks)', value: await opsPerSec(() => appraiseToken(token, ctx)), unit: 'ops/s' },
    { name: 'PSA claims validate (RFC 9783 example)', value: await opsPerSec(() => validatePsaClaims(claims)), unit: 'ops/s' },
    { name: 'COSE_Mac0 verify HMAC 256/256 (RFC 9783 example)', value: await opsPerSec(() => verifyMac0(mac0, hk)), unit: 'ops/s' },
  ];
}

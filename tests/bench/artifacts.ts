/** Trust artifacts: verification cost of each artifact type, sealing and opening secrets. */
import type { BenchRow } from './types.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { issueBundle, verifyBundle } from '../../src/core/trust/bundle.ts';
import { issueIdentity, verifyIdentity } from '../../src/core/trust/identity.ts';
import { issueCredential, verifyCredential } from '../../src/core/trust/credential.ts';
import { issueConfig, verifyConfig } from '../../src/core/trust/signed-config.ts';
import { generateX25519, open, seal } from '../../src/core/trust/seal.ts';

async function perOp(n: number, f: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < Math.min(5, n); i++) await f();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  return (performance.now() - t0) / n;
}

export async function bench(): Promise<BenchRow[]> {
  const [m, o, d, t] = await Promise.all([1, 2, 3, 4].map(() => generateEd25519()));
  const enc = generateX25519();
  const now = Date.now();
  const exp = now / 1000 + 86400;
  const b = await issueBundle({ version: 1, expires: exp, anchors: { manufacturer: [m.publicKey], owner: [o.publicKey] } }, o.privateKey);
  const vb = await verifyBundle(b, { ownerKeys: [o.publicKey] });
  if (!vb.ok) throw new Error(vb.reason);
  const bundle = vb.value;
  const id = await issueIdentity({ serial: 'SN', model: 'm', hwRev: 'A', devicePublicKey: d.publicKey, deviceEncKey: enc.publicKey, notAfter: exp }, m.privateKey);
  const cr = await issueCredential({ technicianId: 't', name: 'n', publicKey: t.publicKey, permissions: ['configure'], models: ['m'], notAfter: exp }, o.privateKey);
  const secrets = { wifi: 'x'.repeat(32), token: 'y'.repeat(64) };
  const cf = await issueConfig({ target: { kind: 'serial', serial: 'SN' }, sequence: 1, settings: { a: 1, b: 'two' }, secrets: seal(secrets, enc.publicKey), notAfter: exp }, o.privateKey);
  const sealed = seal(secrets, enc.publicKey);
  const flipped = id.slice();
  flipped[id.length - 1] ^= 1;
  const n = 200;
  return [
    { name: 'verify trust bundle', value: await perOp(n, () => verifyBundle(b, { ownerKeys: [o.publicKey] })), unit: 'ms/op', note: `${b.length} B` },
    { name: 'verify identity certificate', value: await perOp(n, () => verifyIdentity(id, { bundle })), unit: 'ms/op', note: `${id.length} B` },
    { name: 'verify technician credential', value: await perOp(n, () => verifyCredential(cr, { bundle, permission: 'configure', device: { serial: 'SN', model: 'm' } })), unit: 'ms/op', note: `${cr.length} B` },
    { name: 'verify signed config (with sealed secrets)', value: await perOp(n, () => verifyConfig(cf, { bundle, device: { serial: 'SN', model: 'm' } })), unit: 'ms/op', note: `${cf.length} B` },
    { name: 'reject identity with a flipped signature bit', value: await perOp(n, () => verifyIdentity(flipped, { bundle })), unit: 'ms/op', note: 'tries other roles for wrong-role' },
    { name: 'seal secrets to device (X25519+HKDF+A256GCM)', value: await perOp(n, () => seal(secrets, enc.publicKey)), unit: 'ms/op' },
    { name: 'open sealed secrets', value: await perOp(n, () => open(sealed, enc.privateKey)), unit: 'ms/op' },
  ];
}

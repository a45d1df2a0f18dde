import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, encodeDeterministic, Tag } from '../../src/core/base/cbor.ts';
import { decodeSign1, type CoseKey } from '../../src/core/trust/cose.ts';
import { ed25519Sign, ed25519Verify, generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { keyId } from '../../src/core/trust/keys.ts';
import { artifactTypeOf, CONTENT_TYPES, MAX_BYTES, type ArtifactType } from '../../src/core/trust/artifact.ts';
import { artifactDigest, issueBundle, verifyBundle, type BundleInput, type TrustBundle } from '../../src/core/trust/bundle.ts';
import { issueIdentity, verifyIdentity, verifyIdentityCert, type IdentityInput } from '../../src/core/trust/identity.ts';
import { credentialPermits, checkCredentialPermits, issueCredential, verifyCredential, type CredentialInput } from '../../src/core/trust/credential.ts';
import { issueConfig, secretsAddressedTo, verifyConfig, type ConfigInput } from '../../src/core/trust/signed-config.ts';
import { generateX25519, open, seal } from '../../src/core/trust/seal.ts';
import type { TrustResult } from '../../src/core/trust/result.ts';
import { issueReprovision, verifyReprovision } from '../../src/core/trust/reprovision.ts';
import { issueProfile, verifyProfile } from '../../src/core/factory/profile.ts';
import { issueCampaign, verifyCampaign } from '../../src/core/sync/campaign.ts';

const T = 1_800_000_000; // seconds
const NOW = T * 1000; // ms, as contexts take it
const DAY = 86400;

type Pair = { privateKey: Uint8Array; publicKey: Uint8Array };
let manuf: Pair, owner: Pair, fw: Pair, tech: Pair, dev: Pair, stranger: Pair;
const devEnc = generateX25519();
let bundleBytes: Uint8Array;
let bundle: TrustBundle;
let identityBytes: Uint8Array;
let credentialBytes: Uint8Array;
let configBytes: Uint8Array;
let reprovisionBytes: Uint8Array;
let profileBytes: Uint8Array;
let campaignBytes: Uint8Array;
const CHIP = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

const device = () => ({ serial: 'SN-0001', model: 'fb-sensor', keyId: keyId(dev.publicKey), groups: ['north'] });

function identityInput(over: Partial<IdentityInput> = {}): IdentityInput {
  return {
    serial: 'SN-0001', model: 'fb-sensor', hwRev: 'rev-B', ueid: Uint8Array.of(1, ...new Uint8Array(16).fill(7)),
    mac: Uint8Array.of(2, 0, 0, 0, 0, 1), devicePublicKey: dev.publicKey, deviceEncKey: devEnc.publicKey,
    notBefore: T - DAY, notAfter: T + 365 * DAY, ...over,
  };
}
function credentialInput(over: Partial<CredentialInput> = {}): CredentialInput {
  return {
    technicianId: 'tech-42', name: 'Ada Field', publicKey: tech.publicKey, permissions: ['identify', 'attest', 'configure'],
    models: ['fb-sensor'], notBefore: T - DAY, notAfter: T + 30 * DAY, ...over,
  };
}
function configInput(over: Partial<ConfigInput> = {}): ConfigInput {
  return {
    target: { kind: 'serial', serial: 'SN-0001' }, sequence: 7, settings: { interval: 60, name: 'pump-3', flags: [true, null], nested: { a: Uint8Array.of(1) } },
    secrets: seal({ wifiPassword: 'hunter22' }, devEnc.publicKey), notBefore: T - DAY, notAfter: T + 30 * DAY, ...over,
  };
}
function bundleInput(over: Partial<BundleInput> = {}): BundleInput {
  return {
    version: 3, issued: T - 100, expires: T + 7 * DAY,
    anchors: { manufacturer: [manuf.publicKey], firmware: [fw.publicKey], owner: [owner.publicKey] },
    firmware: [{ model: 'fb-sensor', version: '1.2.3', sha256: new Uint8Array(32).fill(0xab), securityCounter: 5, signerKid: keyId(fw.publicKey) }],
    ...over,
  };
}
function withBundle(over: Partial<TrustBundle>): TrustBundle {
  return { ...bundle, ...over };
}

function expectFail(r: { ok: true } | { ok: false; code: string; reason: string }, code: string): void {
  if (r.ok) throw new Error(`expected ${code}, but it verified`);
  expect(r.code).toBe(code);
  expect(r.reason.length).toBeGreaterThan(10);
}

/** Re-sign an artifact after changing its payload and/or protected header (independent of cose.ts signing). */
async function resign(
  bytes: Uint8Array,
  seed: Uint8Array,
  edit: (payload: Map<unknown, unknown>, prot: Map<unknown, unknown>) => void = () => {},
  opts: { tag?: number | null } = {},
): Promise<Uint8Array> {
  const m = decodeSign1(bytes);
  const payload = decodeCbor(m.payload!) as Map<unknown, unknown>;
  const prot = new Map(m.protected as Map<unknown, unknown>);
  edit(payload, prot);
  const pb = encodeDeterministic(prot);
  const pl = encodeDeterministic(payload);
  const sig = await ed25519Sign(encodeCbor(['Signature1', pb, new Uint8Array(0), pl]), seed);
  const body = [pb, new Map(), pl, sig];
  return encodeCbor(opts.tag === null ? body : new Tag(body, opts.tag ?? 18));
}

type Verify = (b: Uint8Array) => Promise<TrustResult<unknown>>;
const verifiers: Record<ArtifactType, Verify> = {
  identity: (b) => verifyIdentity(b, { bundle, now: NOW }),
  credential: (b) => verifyCredential(b, { bundle, now: NOW }),
  config: (b) => verifyConfig(b, { bundle, now: NOW }),
  bundle: (b) => verifyBundle(b, { ownerKeys: [owner.publicKey], now: NOW }),
  reprovision: (b) => verifyReprovision(b, { ownerKeys: [owner.publicKey], now: NOW, devicePublicKey: dev.publicKey, chipUid: CHIP }),
  profile: (b) => verifyProfile(b, { ownerKeys: [owner.publicKey], now: NOW }),
  campaign: (b) => verifyCampaign(b, { bundle, now: NOW }),
};
const artifacts = (): Record<ArtifactType, Uint8Array> => ({ identity: identityBytes, credential: credentialBytes, config: configBytes, bundle: bundleBytes, reprovision: reprovisionBytes, profile: profileBytes, campaign: campaignBytes });
const seeds = (): Record<ArtifactType, Uint8Array> => ({ identity: manuf.privateKey, credential: owner.privateKey, config: owner.privateKey, bundle: owner.privateKey, reprovision: owner.privateKey, profile: owner.privateKey, campaign: owner.privateKey });

beforeAll(async () => {
  [manuf, owner, fw, tech, dev, stranger] = await Promise.all([1, 2, 3, 4, 5, 6].map(() => generateEd25519()));
  bundleBytes = await issueBundle(bundleInput(), owner.privateKey);
  const vb = await verifyBundle(bundleBytes, { ownerKeys: [owner.publicKey], now: NOW });
  if (!vb.ok) throw new Error(vb.reason);
  bundle = vb.value;
  identityBytes = await issueIdentity(identityInput(), manuf.privateKey);
  credentialBytes = await issueCredential(credentialInput(), owner.privateKey);
  configBytes = await issueConfig(configInput(), owner.privateKey);
  profileBytes = await issueProfile(
    {
      name: 'line 1', model: 'fb-sensor', firmware: [{ version: '1.2.3', sha256: new Uint8Array(32).fill(7), securityCounter: 5, signingKeys: [fw.publicKey] }],
      identity: { policy: { serial: { pattern: 'SN-{n:06}', first: 1, last: 1000 }, devEui: { first: '70b3d57ed0000000', count: 1000 } }, certValidityDays: 3650 },
      tests: { echo: true, attestation: 'trusted', interfaces: { shell: 'disabled' } }, manufacturerKid: keyId(manuf.publicKey), notBefore: T - DAY, notAfter: T + DAY,
    },
    owner.privateKey,
  );
  campaignBytes = await issueCampaign({ name: 'fleet 1.3', target: { model: 'fb-sensor', versions: { below: '1.3.0' } }, image: { sha256: new Uint8Array(32).fill(9), version: '1.3.0' }, notBefore: T - DAY, notAfter: T + DAY }, owner.privateKey);
  reprovisionBytes = await issueReprovision({ devicePublicKey: dev.publicKey, chipUid: CHIP, reason: 'rework', notBefore: T - DAY, notAfter: T + DAY }, owner.privateKey);
});

describe('round trips', () => {
  it('bundle', async () => {
    expect(bundle.version).toBe(3);
    expect(bundle.stale).toBe(false);
    expect(bundle.anchors.owner[0].kty).toBe('OKP');
    expect(bundle.firmware[0]).toMatchObject({ model: 'fb-sensor', version: '1.2.3', securityCounter: 5 });
    expect(bundle.issuer).toEqual(keyId(owner.publicKey));
    expect(artifactTypeOf(bundleBytes)).toBe('bundle');
  });
  it('identity certificate', async () => {
    const r = await verifyIdentityCert(identityBytes, bundle, NOW, { devicePublicKey: dev.publicKey, serial: 'SN-0001' });
    if (!r.ok) throw new Error(r.reason);
    expect(r.value).toMatchObject({ serial: 'SN-0001', model: 'fb-sensor', hwRev: 'rev-B', notAfter: T + 365 * DAY });
    expect(r.value.deviceEncKey).toEqual(devEnc.publicKey);
    expect(r.value.certSerial.length).toBe(16);
    expect(r.signer).toEqual(manuf.publicKey);
  });
  it('technician credential, with scope and permission helper', async () => {
    const r = await verifyCredential(credentialBytes, { bundle, now: NOW, permission: 'configure', device: device(), technicianKey: tech.publicKey });
    if (!r.ok) throw new Error(r.reason);
    expect(r.value.permissions).toEqual(['identify', 'attest', 'configure']);
    expect(credentialPermits(r.value, 'attest', device())).toBe(true);
    expect(credentialPermits(r.value, 'wipe', device())).toBe(false);
    expect(credentialPermits(r.value, 'attest', { serial: 'X', model: 'other' })).toBe(false);
    expect(checkCredentialPermits(r.value, 'wipe', device())).toMatchObject({ ok: false, code: 'permission' });
    expect(checkCredentialPermits(r.value, 'attest', { serial: 'X', model: 'other' })).toMatchObject({ ok: false, code: 'out-of-scope' });
  });
  it('credential scope by device serial or device key id', async () => {
    const c = await issueCredential(credentialInput({ models: [], devices: ['SN-9', keyId(dev.publicKey)] }), owner.privateKey);
    const r = await verifyCredential(c, { bundle, now: NOW, permission: 'identify', device: { serial: 'SN-0001', model: 'x', keyId: keyId(dev.publicKey) } });
    expect(r.ok).toBe(true);
    expectFail(await verifyCredential(c, { bundle, now: NOW, device: { serial: 'SN-0001', model: 'fb-sensor' } }), 'out-of-scope');
    expect((await verifyCredential(c, { bundle, now: NOW, device: { serial: 'SN-9', model: 'y' } })).ok).toBe(true);
  });
  it('signed config, settings and sealed secrets', async () => {
    const r = await verifyConfig(configBytes, { bundle, now: NOW, device: device(), heldSequence: 6 });
    if (!r.ok) throw new Error(r.reason);
    expect(r.value.settings).toMatchObject({ interval: 60, name: 'pump-3', flags: [true, null] });
    expect((r.value.settings.nested as Record<string, unknown>).a).toEqual(Uint8Array.of(1));
    expect(r.value.digest).toEqual(artifactDigest(configBytes));
    expect(secretsAddressedTo(r.value, devEnc.publicKey)).toBe(true);
    expect(open(r.value.secrets!, devEnc.privateKey).get('wifiPassword')).toBe('hunter22');
  });
  it('config targets: model and group and key id', async () => {
    for (const target of [{ kind: 'model', model: 'fb-sensor' }, { kind: 'group', group: 'north' }, { kind: 'key', keyId: keyId(dev.publicKey) }] as const) {
      const c = await issueConfig(configInput({ target, secrets: undefined }), owner.privateKey);
      expect((await verifyConfig(c, { bundle, now: NOW, device: device() })).ok).toBe(true);
      expectFail(await verifyConfig(c, { bundle, now: NOW, device: { serial: 'other', model: 'other', keyId: keyId(tech.publicKey) } }), 'wrong-target');
    }
  });
  it('issuing invalid fields throws a schema ArtifactError', async () => {
    await expect(issueIdentity(identityInput({ devicePublicKey: new Uint8Array(31) }), manuf.privateKey)).rejects.toMatchObject({ code: 'schema' });
    await expect(issueCredential(credentialInput({ permissions: ['fly' as never] }), owner.privateKey)).rejects.toMatchObject({ code: 'schema' });
    await expect(issueCredential(credentialInput({ models: [], devices: [] }), owner.privateKey)).rejects.toThrow(/scope is empty/);
    await expect(issueConfig(configInput({ settings: { x: 1.5 } }), owner.privateKey)).rejects.toMatchObject({ code: 'schema' });
    await expect(issueBundle(bundleInput({ anchors: { manufacturer: [manuf.publicKey] } }), owner.privateKey)).rejects.toThrow(/owner/);
    await expect(issueIdentity(identityInput({ notBefore: T, notAfter: T }), manuf.privateKey)).rejects.toThrow(/notAfter/);
  });
});

describe('every single-bit flip is rejected with a reason', () => {
  for (const type of ['identity', 'credential', 'config', 'bundle'] as ArtifactType[]) {
    it(type, async () => {
      const bytes = artifacts()[type];
      const codes = new Map<string, number>();
      // only the anchors this type needs, so each rejected flip costs few signature checks
      const slim = withBundle({ anchors: { manufacturer: type === 'identity' ? bundle.anchors.manufacturer : [], firmware: [], owner: bundle.anchors.owner } });
      const verify: Verify =
        type === 'identity' ? (b) => verifyIdentity(b, { bundle: slim, now: NOW })
          : type === 'credential' ? (b) => verifyCredential(b, { bundle: slim, now: NOW })
            : type === 'config' ? (b) => verifyConfig(b, { bundle: slim, now: NOW })
              : verifiers.bundle;
      expect((await verify(bytes)).ok).toBe(true);
      for (let i = 0; i < bytes.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const b = bytes.slice();
          b[i] ^= 1 << bit;
          const r = await verify(b);
          if (r.ok) throw new Error(`${type}: flip of byte ${i} bit ${bit} was accepted`);
          expect(r.reason).toBeTruthy();
          codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
        }
      }
      expect(codes.get('bad-signature')).toBeGreaterThan(bytes.length); // payload and signature flips
      expect(codes.size).toBeGreaterThan(2); // structural flips give structural codes
    }, 120_000);
  }
});

describe('rejections, each with its own code', () => {
  it('expired and not yet valid', async () => {
    for (const type of ['identity', 'credential', 'config'] as const) {
      const v = verifiers[type];
      const bytes = artifacts()[type];
      const r = await (type === 'identity' ? verifyIdentity(bytes, { bundle, now: (T + 366 * DAY) * 1000 })
        : type === 'credential' ? verifyCredential(bytes, { bundle, now: (T + 31 * DAY) * 1000 })
          : verifyConfig(bytes, { bundle, now: (T + 31 * DAY) * 1000 }));
      expectFail(r, 'expired');
      const early = await (type === 'identity' ? verifyIdentity(bytes, { bundle, now: (T - 2 * DAY) * 1000 })
        : type === 'credential' ? verifyCredential(bytes, { bundle, now: (T - 2 * DAY) * 1000 })
          : verifyConfig(bytes, { bundle, now: (T - 2 * DAY) * 1000 }));
      expectFail(early, 'not-yet-valid');
      expect((await v(bytes)).ok).toBe(true);
    }
    expectFail(await verifyBundle(bundleBytes, { ownerKeys: [owner.publicKey], now: (T - DAY) * 1000 }), 'not-yet-valid');
  });

  it('stale bundle: rejected, or accepted visibly with allowStale', async () => {
    const later = (T + 8 * DAY) * 1000;
    expectFail(await verifyBundle(bundleBytes, { ownerKeys: [owner.publicKey], now: later }), 'stale');
    const r = await verifyBundle(bundleBytes, { ownerKeys: [owner.publicKey], now: later, allowStale: true });
    expect(r.ok && r.value.stale).toBe(true);
  });

  it('replayed: older bundle version, config sequence not above held', async () => {
    expectFail(await verifyBundle(bundleBytes, { ownerKeys: [owner.publicKey], heldVersion: 4, now: NOW }), 'replayed');
    expectFail(await verifyBundle(bundleBytes, { held: { ...bundle, version: 9 }, now: NOW }), 'replayed');
    expect((await verifyBundle(bundleBytes, { held: bundle, now: NOW })).ok).toBe(true); // same version re-loaded
    expectFail(await verifyConfig(configBytes, { bundle, now: NOW, heldSequence: 7 }), 'replayed');
  });

  it('revoked: signer key, certificate serial, device key, credential id, technician key', async () => {
    const id = await verifyIdentity(identityBytes, { bundle, now: NOW });
    const cr = await verifyCredential(credentialBytes, { bundle, now: NOW });
    if (!id.ok || !cr.ok) throw new Error('fixture');
    const rev = (r: Partial<TrustBundle['revocations']>) => withBundle({ revocations: { keyIds: [], certSerials: [], credentialIds: [], ...r } });
    expectFail(await verifyIdentity(identityBytes, { bundle: rev({ keyIds: [keyId(manuf.publicKey)] }), now: NOW }), 'revoked');
    expectFail(await verifyIdentity(identityBytes, { bundle: rev({ certSerials: [id.value.certSerial] }), now: NOW }), 'revoked');
    expectFail(await verifyIdentity(identityBytes, { bundle: rev({ keyIds: [keyId(dev.publicKey)] }), now: NOW }), 'revoked');
    expectFail(await verifyCredential(credentialBytes, { bundle: rev({ credentialIds: [cr.value.credentialId] }), now: NOW }), 'revoked');
    expectFail(await verifyCredential(credentialBytes, { bundle: rev({ keyIds: [keyId(tech.publicKey)] }), now: NOW }), 'revoked');
    expectFail(await verifyConfig(configBytes, { bundle: rev({ keyIds: [keyId(owner.publicKey)] }), now: NOW }), 'revoked');
    // a bundle whose own revocation list names its signer
    const self = await issueBundle(bundleInput({ version: 4, revocations: { keyIds: [keyId(owner.publicKey)] } }), owner.privateKey);
    expectFail(await verifyBundle(self, { ownerKeys: [owner.publicKey], now: NOW }), 'revoked');
    // the owner key removed from the anchors and listed as revoked
    const gone = withBundle({ anchors: { ...bundle.anchors, owner: [{ kty: 'OKP', crv: 'Ed25519', x: stranger.publicKey }] }, revocations: { keyIds: [keyId(owner.publicKey)], certSerials: [], credentialIds: [] } });
    expectFail(await verifyConfig(configBytes, { bundle: gone, now: NOW }), 'revoked');
  });

  it('wrong issuer: a key no anchor knows', async () => {
    expectFail(await verifyIdentity(await issueIdentity(identityInput(), stranger.privateKey), { bundle, now: NOW }), 'wrong-issuer');
    expectFail(await verifyCredential(await issueCredential(credentialInput(), stranger.privateKey), { bundle, now: NOW }), 'wrong-issuer');
    expectFail(await verifyConfig(await issueConfig(configInput(), stranger.privateKey), { bundle, now: NOW }), 'wrong-issuer');
    expectFail(await verifyBundle(await issueBundle(bundleInput(), stranger.privateKey), { ownerKeys: [owner.publicKey], now: NOW }), 'wrong-issuer');
    expectFail(await verifyIdentity(identityBytes, { bundle: withBundle({ anchors: { ...bundle.anchors, manufacturer: [] } }), now: NOW }), 'wrong-issuer');
  });

  it('wrong role: signed by a trusted key of another role', async () => {
    expectFail(await verifyIdentity(await issueIdentity(identityInput(), owner.privateKey), { bundle, now: NOW }), 'wrong-role');
    expectFail(await verifyIdentity(await issueIdentity(identityInput(), fw.privateKey), { bundle, now: NOW }), 'wrong-role');
    expectFail(await verifyCredential(await issueCredential(credentialInput(), manuf.privateKey), { bundle, now: NOW }), 'wrong-role');
    expectFail(await verifyConfig(await issueConfig(configInput(), fw.privateKey), { bundle, now: NOW }), 'wrong-role');
    expectFail(await verifyBundle(await issueBundle(bundleInput({ version: 5 }), manuf.privateKey), { held: bundle, now: NOW }), 'wrong-role');
  });

  it('wrong device scope, missing permission, wrong target, other key', async () => {
    expectFail(await verifyCredential(credentialBytes, { bundle, now: NOW, permission: 'attest', device: { serial: 'SN-2', model: 'fb-gateway' } }), 'out-of-scope');
    expectFail(await verifyCredential(credentialBytes, { bundle, now: NOW, device: { serial: 'SN-2', model: 'fb-gateway' } }), 'out-of-scope');
    expectFail(await verifyCredential(credentialBytes, { bundle, now: NOW, permission: 'wipe', device: device() }), 'permission');
    expectFail(await verifyCredential(credentialBytes, { bundle, now: NOW, permission: 'update' }), 'permission');
    expectFail(await verifyCredential(credentialBytes, { bundle, now: NOW, technicianKey: stranger.publicKey }), 'key-mismatch');
    expectFail(await verifyConfig(configBytes, { bundle, now: NOW, device: { ...device(), serial: 'SN-0002' } }), 'wrong-target');
    expectFail(await verifyIdentity(identityBytes, { bundle, now: NOW, expect: { devicePublicKey: stranger.publicKey } }), 'key-mismatch');
    expectFail(await verifyIdentity(identityBytes, { bundle, now: NOW, expect: { serial: 'SN-0002' } }), 'wrong-target');
    const wildcard = await issueCredential(credentialInput({ models: ['*'] }), owner.privateKey);
    expect((await verifyCredential(wildcard, { bundle, now: NOW, permission: 'attest', device: { serial: 'z', model: 'anything' } })).ok).toBe(true);
  });

  it('unpublished config when the bundle pins published configs', async () => {
    expectFail(await verifyConfig(configBytes, { bundle, now: NOW, requirePublished: true }), 'revoked');
    const pinned = withBundle({ configurations: [artifactDigest(configBytes)] });
    expect((await verifyConfig(configBytes, { bundle: pinned, now: NOW, requirePublished: true })).ok).toBe(true);
  });

  it('unknown algorithm', async () => {
    for (const [type, bytes] of Object.entries(artifacts()) as [ArtifactType, Uint8Array][]) {
      const forged = await resign(bytes, seeds()[type], (_p, prot) => prot.set(1, -999));
      expectFail(await verifiers[type](forged), 'unsupported-alg');
      const es256 = await resign(bytes, seeds()[type], (_p, prot) => prot.set(1, -7));
      const r = await verifiers[type](es256);
      expect(r.ok).toBe(false);
    }
  });

  it('trailing bytes', async () => {
    for (const [type, bytes] of Object.entries(artifacts()) as [ArtifactType, Uint8Array][]) {
      expectFail(await verifiers[type](Uint8Array.of(...bytes, 0)), 'trailing-bytes');
      expectFail(await verifiers[type](Uint8Array.of(...bytes, ...bytes)), 'trailing-bytes');
    }
  });

  it('oversized', async () => {
    for (const [type, bytes] of Object.entries(artifacts()) as [ArtifactType, Uint8Array][]) {
      const big = await resign(bytes, seeds()[type], (p) => p.set(99, new Uint8Array(MAX_BYTES[type])));
      expectFail(await verifiers[type](big), 'too-large');
    }
    await expect(issueConfig(configInput({ settings: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'x'.repeat(400)])) }), owner.privateKey))
      .rejects.toMatchObject({ code: 'too-large' });
  });

  it('type confusion: every artifact verified as every other type', async () => {
    let n = 0;
    for (const [type, bytes] of Object.entries(artifacts()) as [ArtifactType, Uint8Array][]) {
      for (const as of Object.keys(verifiers) as ArtifactType[]) {
        if (as === type) continue;
        const r = await verifiers[as](bytes);
        expectFail(r, 'wrong-type');
        n++;
      }
      // relabelled and re-signed with the right role's key: the payload schema still rejects it
      for (const as of ['credential', 'config'] as ArtifactType[]) {
        if (as === type) continue;
        const relabelled = await resign(bytes, owner.privateKey, (_p, prot) => prot.set(3, CONTENT_TYPES[as]));
        expectFail(await verifiers[as](relabelled), 'schema');
      }
    }
    expect(n).toBe(42); // 7 kinds x 6 others
    // a COSE_Sign1 without our content type
    const plain = await resign(credentialBytes, owner.privateKey, (_p, prot) => prot.delete(3));
    expectFail(await verifiers.credential(plain), 'wrong-type');
  });

  it('schema: unknown critical field rejected, unknown non-critical field ignored, issuer field bound to signer', async () => {
    for (const [type, bytes] of Object.entries(artifacts()) as [ArtifactType, Uint8Array][]) {
      const crit = await resign(bytes, seeds()[type], (p) => p.set(-70, 1));
      expectFail(await verifiers[type](crit), 'schema');
      const ext = await resign(bytes, seeds()[type], (p) => p.set(70, 'later extension'));
      expect((await verifiers[type](ext)).ok).toBe(true);
      const textKey = await resign(bytes, seeds()[type], (p) => p.set('x', 1));
      expectFail(await verifiers[type](textKey), 'schema');
    }
    const liar = await resign(identityBytes, manuf.privateKey, (p) => p.set(12, keyId(stranger.publicKey)));
    expectFail(await verifiers.identity(liar), 'schema');
    const noSerial = await resign(identityBytes, manuf.privateKey, (p) => p.delete(2));
    expectFail(await verifiers.identity(noSerial), 'schema');
    const longKey = await resign(identityBytes, manuf.privateKey, (p) => p.set(8, new Uint8Array(33)));
    expectFail(await verifiers.identity(longKey), 'schema');
    const badPerm = await resign(credentialBytes, owner.privateKey, (p) => p.set(5, ['identify', 'fly']));
    expectFail(await verifiers.credential(badPerm), 'schema');
    const badSecrets = await resign(configBytes, owner.privateKey, (p) => p.set(6, Uint8Array.of(1, 2, 3)));
    expectFail(await verifiers.config(badSecrets), 'schema');
    const negSeq = await resign(configBytes, owner.privateKey, (p) => p.set(2, -1));
    expectFail(await verifiers.config(negSeq), 'schema');
    const noOwner = await resign(bundleBytes, owner.privateKey, (p) => (p.get(4) as Map<number, unknown>).set(3, []));
    expectFail(await verifiers.bundle(noOwner), 'schema');
  });

  it('untagged or wrongly tagged envelopes, empty and garbage input', async () => {
    const untagged = await resign(identityBytes, manuf.privateKey, () => {}, { tag: null });
    expect((await verifiers.identity(untagged)).ok).toBe(false);
    const tag98 = await resign(identityBytes, manuf.privateKey, () => {}, { tag: 98 });
    expect((await verifiers.identity(tag98)).ok).toBe(false);
    for (const v of Object.values(verifiers)) {
      expect((await v(new Uint8Array(0))).ok).toBe(false);
      expect((await v(Uint8Array.of(0xff, 0x00))).ok).toBe(false);
      expect((await v('nope' as never)).ok).toBe(false);
    }
  });

  it('a bundle can rotate the owner key: new bundle signed by the held owner key', async () => {
    const newOwner = await generateEd25519();
    const rotated = await issueBundle(bundleInput({ version: 4, anchors: { manufacturer: [manuf.publicKey], owner: [newOwner.publicKey] }, revocations: { keyIds: [keyId(owner.publicKey)] } }), owner.privateKey);
    // signed by the old owner key, which it itself revokes: rejected (rotation must be signed by a key that stays trusted)
    expectFail(await verifyBundle(rotated, { held: bundle, now: NOW }), 'revoked');
    const handover = await issueBundle(bundleInput({ version: 4, anchors: { manufacturer: [manuf.publicKey], owner: [owner.publicKey, newOwner.publicKey] } }), owner.privateKey);
    const h = await verifyBundle(handover, { held: bundle, now: NOW });
    if (!h.ok) throw new Error(h.reason);
    const next = await issueBundle(bundleInput({ version: 5, anchors: { manufacturer: [manuf.publicKey], owner: [newOwner.publicKey] }, revocations: { keyIds: [keyId(owner.publicKey)] } }), newOwner.privateKey);
    const n = await verifyBundle(next, { held: h.value, now: NOW });
    if (!n.ok) throw new Error(n.reason);
    expectFail(await verifyConfig(configBytes, { bundle: n.value, now: NOW }), 'revoked');
  });
});

describe('sealed secrets (COSE_Encrypt, ECDH-ES + HKDF-256, A256GCM)', () => {
  const secrets = { wifiPassword: 'correct horse', apiToken: Uint8Array.of(1, 2, 3), n: 5 };

  it('round trip and structure', () => {
    const s = seal(secrets, devEnc.publicKey);
    const m = open(s, devEnc.privateKey);
    expect(m.get('wifiPassword')).toBe('correct horse');
    expect(m.get('apiToken')).toEqual(Uint8Array.of(1, 2, 3));
    const t = decodeCbor(s) as Tag;
    expect(t.tag).toBe(96);
    const [prot, unprot, , recipients] = t.value as [Uint8Array, Map<number, unknown>, Uint8Array, unknown[][]];
    expect(decodeCbor(prot)).toEqual(new Map([[1, 3]]));
    expect((unprot.get(5) as Uint8Array).length).toBe(12);
    expect(decodeCbor(recipients[0][0] as Uint8Array)).toEqual(new Map([[1, -25]]));
    // fresh ephemeral key and IV each time
    expect(seal(secrets, devEnc.publicKey)).not.toEqual(s);
  });

  it('decrypts with an independent WebCrypto implementation (X25519 + HKDF-SHA-256 + AES-GCM, RFC 9053 KDF context)', async () => {
    const s = seal(secrets, devEnc.publicKey);
    const [prot, unprot, ct, recipients] = (decodeCbor(s) as Tag).value as [Uint8Array, Map<number, unknown>, Uint8Array, unknown[][]];
    const rprot = recipients[0][0] as Uint8Array;
    const epk = (recipients[0][1] as Map<number, Map<number, unknown>>).get(-1)!.get(-2) as Uint8Array;
    const subtle = globalThis.crypto.subtle;
    const pkcs8 = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20, ...devEnc.privateKey);
    const priv = await subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, false, ['deriveBits']);
    const pub = await subtle.importKey('raw', epk as BufferSource, { name: 'X25519' }, false, []);
    const z = await subtle.deriveBits({ name: 'X25519', public: pub } as never, priv, 256);
    const ikm = await subtle.importKey('raw', z, 'HKDF', false, ['deriveBits']);
    const ctx = encodeCbor([3, [null, null, null], [null, null, null], [256, rprot]]);
    const cek = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: ctx as BufferSource }, ikm, 256);
    const aesKey = await subtle.importKey('raw', cek, 'AES-GCM', false, ['decrypt']);
    const pt = await subtle.decrypt({ name: 'AES-GCM', iv: unprot.get(5) as BufferSource, additionalData: encodeCbor(['Encrypt', prot, new Uint8Array(0)]) as BufferSource }, aesKey, ct as BufferSource);
    expect((decodeCbor(new Uint8Array(pt)) as Map<string, unknown>).get('wifiPassword')).toBe('correct horse');
  });

  it('wrong key fails', () => {
    const other = generateX25519();
    const s = seal(secrets, devEnc.publicKey);
    expect(() => open(s, other.privateKey)).toThrow(expect.objectContaining({ code: 'wrong-key' }));
    // without the informative kid the AEAD itself refuses
    const t = decodeCbor(s) as Tag;
    (((t.value as unknown[])[3] as unknown[][])[0][1] as Map<number, unknown>).delete(4);
    expect(() => open(encodeCbor(t), other.privateKey)).toThrow(expect.objectContaining({ code: 'decrypt-failed' }));
    expect(() => open(s, devEnc.privateKey, { externalAad: Uint8Array.of(1) })).toThrow(expect.objectContaining({ code: 'decrypt-failed' }));
  });

  it('every single-bit flip fails', () => {
    const s = seal(secrets, devEnc.publicKey);
    const codes = new Set<string>();
    for (let i = 0; i < s.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = s.slice();
        b[i] ^= 1 << bit;
        let code: string | undefined;
        try {
          open(b, devEnc.privateKey);
        } catch (e) {
          code = (e as { code?: string }).code;
        }
        if (!code) throw new Error(`flip of byte ${i} bit ${bit} was accepted`);
        codes.add(code);
      }
    }
    expect(codes.has('decrypt-failed')).toBe(true);
    expect(codes.has('malformed')).toBe(true);
  });

  it('non-canonical and low-order ephemeral keys are refused', () => {
    const s = seal(secrets, devEnc.publicKey);
    const t = decodeCbor(s) as Tag;
    const epkMap = (((t.value as unknown[])[3] as unknown[][])[0][1] as Map<number, Map<number, unknown>>).get(-1)!;
    const x = (epkMap.get(-2) as Uint8Array).slice();
    x[31] |= 0x80; // X25519 would ignore this bit; we must not
    epkMap.set(-2, x);
    expect(() => open(encodeCbor(t), devEnc.privateKey)).toThrow(expect.objectContaining({ code: 'malformed' }));
    epkMap.set(-2, new Uint8Array(32)); // u = 0, low order
    expect(() => open(encodeCbor(t), devEnc.privateKey)).toThrow(expect.objectContaining({ code: 'wrong-key' }));
    expect(() => seal(secrets, new Uint8Array(32).fill(0xff))).toThrow(expect.objectContaining({ code: 'wrong-key' }));
  });
});

describe('artifact signatures verify with an independent Ed25519 check', () => {
  it('Sig_structure over the protected bytes as received', async () => {
    for (const [type, bytes] of Object.entries(artifacts()) as [ArtifactType, Uint8Array][]) {
      const m = decodeSign1(bytes);
      expect(m.tagged).toBe(true);
      expect(m.protected.get(1)).toBe(-8);
      expect(m.protected.get(3)).toBe(CONTENT_TYPES[type]);
      const tbs = encodeCbor(['Signature1', m.protectedBytes, new Uint8Array(0), m.payload]);
      const pub = type === 'identity' ? manuf.publicKey : owner.publicKey;
      expect(await ed25519Verify(m.signature, tbs, pub)).toBe(true);
      expect(m.protected.get(4)).toEqual(keyId(pub));
    }
  });
});

// keep the CoseKey import used for type-checking the fixtures
export type _K = CoseKey;

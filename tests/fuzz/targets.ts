/**
 * Fuzz targets: one property per parser and one for the reference device's handlers, shared by
 * the bounded run in `npm test` (tests/unit/fuzz.test.ts) and the long run (`npm run fuzz`,
 * tests/fuzz/run.ts, 1,000,000 cases per target by default).
 *
 * Inputs are random bytes and, more usefully, mutations of a valid input (bit flips, byte
 * replacements, insertions, deletions, truncations, extensions, and deeply nested or oversized
 * CBOR) so the cases reach past the first length check. The invariants every target checks:
 *  - only typed errors: a parser returns a verdict or throws one of the project's own error
 *    classes (never a TypeError, RangeError or a stack overflow);
 *  - tampered input is never accepted: if a verifier accepts a mutated input, what it accepted
 *    means exactly what the original meant (the mutation only touched unsigned framing);
 *  - bounded work: no case takes longer than CASE_LIMIT_MS (a hang detector, not a speed test).
 *
 * Adding a target: write `async setup()` returning a property over fast-check arbitraries, and
 * add it to TARGETS.
 */
import fc from 'fast-check';
import { CborError, decodeCbor, encodeCbor, encodeDeterministic } from '../../src/core/base/cbor.ts';
import { ConsoleDecoder, RawDecoder, encodeFrames } from '../../src/core/smp/framing.ts';
import { SMP_HEADER_SIZE, buildPacket, decodeHeader } from '../../src/core/smp/header.ts';
import { CoseError, decodeSign1, signSign1, verifySign1 } from '../../src/core/trust/cose.ts';
import { Mac0Error, createMac0, verifyMac0 } from '../../src/core/trust/cose-mac0.ts';
import { KeyFormatError, decodeCoseKey, encodeCoseKey, parsePem, privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { parseVerificationKey } from '../../src/core/trust/verification-key.ts';
import { IhexError, parseIhex, writeIhex } from '../../src/core/trust/ihex.ts';
import { McubootError, parseImage } from '../../src/core/trust/mcuboot/parse.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { verifyImage } from '../../src/core/trust/mcuboot/verify.ts';
import { SealError, generateX25519, open as openSealed, parseSealed, seal } from '../../src/core/trust/seal.ts';
import { EatError, appraiseToken, signEatToken, signerIdFor, type EatDeviceState } from '../../src/core/trust/eat.ts';
import { verifyPsaToken } from '../../src/core/trust/psa.ts';
import { SchemaError } from '../../src/core/trust/artifact.ts';
import { TrustArtifactError as TrustResultError } from '../../src/core/trust/result.ts';
import { issueBundle, verifyBundle, type TrustBundle } from '../../src/core/trust/bundle.ts';
import { issueIdentity, verifyIdentity } from '../../src/core/trust/identity.ts';
import { issueCredential, verifyCredential } from '../../src/core/trust/credential.ts';
import { issueConfig, verifyConfig } from '../../src/core/trust/signed-config.ts';
import { ed25519PublicKey, ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { verifyAuditExport } from '../../src/core/store/audit.ts';

/** A case slower than this is a failure (a hang or a blow-up, not a slow machine). */
export const CASE_LIMIT_MS = 5_000;

export interface FuzzTarget {
  name: string;
  /** What the target feeds and what it checks, for the report. */
  what: string;
  /** Build the property (keys, valid inputs are made once). */
  setup(): Promise<fc.IAsyncPropertyWithHooks<unknown[]> | fc.IAsyncProperty<unknown[]>>;
}

const TYPED: (abstract new (...a: never[]) => Error)[] = [
  CborError, CoseError, Mac0Error, KeyFormatError, IhexError, McubootError, SealError, EatError, SchemaError, TrustResultError, SmpError,
];

/** Only the project's own errors may escape a parser. */
export function assertTyped(e: unknown, where: string): void {
  if (TYPED.some((C) => e instanceof C)) return;
  // a base class with a code (src/core/base) counts as typed once every error extends it
  if (e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && e.constructor.name !== 'Error' && !(e instanceof TypeError) && !(e instanceof RangeError)) return;
  throw new Error(`${where}: untyped ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
}

async function timed<T>(where: string, f: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  const r = await f();
  const ms = performance.now() - t0;
  if (ms > CASE_LIMIT_MS) throw new Error(`${where}: one case took ${ms.toFixed(0)} ms (limit ${CASE_LIMIT_MS})`);
  return r;
}

// ---------------------------------------------------------------- mutations

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; n: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0x1f, 0x5f, 0x9f, 0xbf, 0xfb, 0xf9), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
);

export function applyMutations(base: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = base.slice();
  for (const m of ms) {
    const at = b.length ? ('at' in m ? m.at % (b.length + (m.kind === 'insert' ? 1 : 0)) : 0) : 0;
    switch (m.kind) {
      case 'flip':
        if (b.length) b[at] ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length) b[at] = m.value;
        break;
      case 'insert':
        b = Uint8Array.of(...b.subarray(0, at), ...m.bytes, ...b.subarray(at));
        break;
      case 'delete':
        b = Uint8Array.of(...b.subarray(0, at), ...b.subarray(at + m.n));
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'append':
        b = Uint8Array.of(...b, ...m.bytes);
        break;
    }
  }
  return b;
}

const eqBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Mutations of one of the valid inputs, or random bytes. */
function inputs(valid: Uint8Array[], maxRandom = 512): fc.Arbitrary<{ bytes: Uint8Array; mutated: boolean; base: number }> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.nat({ max: valid.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([i, ms]) => {
      const bytes = applyMutations(valid[i], ms);
      return { bytes, mutated: !eqBytes(bytes, valid[i]), base: i };
    }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandom }).map((bytes) => ({ bytes, mutated: true, base: -1 })) },
  );
}

/** Canonical text of a parsed value (bytes as hex, maps sorted) to compare meanings. */
export function meaning(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (x instanceof Uint8Array) return `h'${Buffer.from(x).toString('hex')}'`;
    if (x instanceof Map) return Object.fromEntries([...x.entries()].map(([k, y]) => [String(k), y]).sort(([a], [b]) => (a < b ? -1 : 1)));
    if (typeof x === 'bigint') return `${x}n`;
    return x;
  });
}

// ---------------------------------------------------------------- keys and valid inputs, made once

const seed = (n: number) => new Uint8Array(32).fill(n);
const OWNER = seed(11);
const MFR = seed(12);
const FW = seed(13);
const TECH = seed(14);
const DEVICE = seed(15);
const DAY = 86_400_000;
const NOW = Math.floor(Date.now() / 1000) * 1000;

async function world() {
  const [owner, mfr, fw, tech, device] = await Promise.all([OWNER, MFR, FW, TECH, DEVICE].map((s) => ed25519PublicKey(s)));
  const bundleBytes = await issueBundle(
    { version: 3, issued: new Date(NOW - DAY), expires: new Date(NOW + 30 * DAY), anchors: { owner: [owner], manufacturer: [mfr], firmware: [fw] } },
    OWNER,
  );
  const b = await verifyBundle(bundleBytes, { ownerKeys: [owner], now: NOW });
  if (!b.ok) throw new Error(`fuzz world: bundle ${b.reason}`);
  return { owner, mfr, fw, tech, device, bundleBytes, bundle: b.value as TrustBundle };
}
let worldP: ReturnType<typeof world> | undefined;
const getWorld = () => (worldP ??= world());

// ---------------------------------------------------------------- targets

const framing = (name: 'console' | 'raw'): FuzzTarget => ({
  name: `${name}-framing`,
  what: `${name} framing decoder fed random chunks and mutated frames: never throws, packets bounded, every byte accounted`,
  async setup() {
    const packets = [
      buildPacket({ version: 1, op: 1, flags: 0, group: 0, id: 0, seq: 1 }, encodeCbor(new Map([['r', 'hello']]))),
      buildPacket({ version: 1, op: 3, flags: 0, group: 1, id: 1, seq: 200 }, new Uint8Array(300).fill(7)),
    ];
    const streams = packets.map((p) => Uint8Array.from(encodeFrames(name, p).flatMap((f) => [...f])));
    return fc.asyncProperty(fc.array(inputs(streams, 2048), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 97 }), async (chunks, cut) => {
      const out: Uint8Array[] = [];
      const maxPacket = 1024;
      const dec = name === 'console' ? new ConsoleDecoder((p) => out.push(p), { maxPacket, maxLine: 512 }) : new RawDecoder((p) => out.push(p), { maxPacket });
      await timed(name, () => {
        for (const c of chunks) for (let i = 0; i < c.bytes.length; i += cut) dec.push(c.bytes.subarray(i, i + cut));
      });
      for (const p of out) {
        if (p.length > maxPacket + SMP_HEADER_SIZE) throw new Error(`${name}: emitted ${p.length} bytes over the ${maxPacket} limit`);
        if (p.length >= SMP_HEADER_SIZE) decodeHeader(p);
      }
    });
  },
});

const cbor: FuzzTarget = {
  name: 'cbor',
  what: 'decodeCbor on random bytes, mutated valid CBOR and deeply nested arrays/maps/tags: a value or a CborError',
  async setup() {
    const valid = [
      encodeDeterministic(new Map<unknown, unknown>([[1, 'a'], [-7, new Uint8Array(3)], ['k', [1, 2, new Map([[0, true]])]]])),
      encodeCbor({ r: 'x'.repeat(40), n: -1, f: 1.5, a: [null, false] }),
    ];
    const deep = fc.tuple(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom(0x81, 0xa1, 0xd8, 0x9f, 0xbf)).map(([n, b]) => {
      const unit = b === 0xa1 ? [0xa1, 0x00] : b === 0xd8 ? [0xd8, 0x20] : [b];
      const out = new Uint8Array(n * unit.length + 1);
      for (let i = 0; i < n; i++) out.set(unit, i * unit.length);
      out[out.length - 1] = 0x00;
      return { bytes: out, mutated: true, base: -1 };
    });
    return fc.asyncProperty(fc.oneof({ weight: 6, arbitrary: inputs(valid) }, { weight: 1, arbitrary: deep }), async ({ bytes }) => {
      await timed('cbor', () => {
        try {
          decodeCbor(bytes);
        } catch (e) {
          assertTyped(e, 'decodeCbor');
        }
      });
    });
  },
};

const cose: FuzzTarget = {
  name: 'cose-sign1',
  what: 'verifySign1 on mutated COSE_Sign1 (EdDSA, attached and with AAD): never throws; accepted only with the signed content unchanged',
  async setup() {
    const w = await getWorld();
    const valid = [
      await signSign1({ payload: new TextEncoder().encode('fieldbench fuzz payload'), privateKey: OWNER }),
      await signSign1({ payload: new Uint8Array(200).fill(3), privateKey: OWNER, protectedExtra: new Map([[3, 'application/x']]) }),
    ];
    const key = { kty: 'OKP' as const, crv: 'Ed25519' as const, x: w.owner };
    const orig = valid.map((v) => decodeSign1(v));
    return fc.asyncProperty(inputs(valid), async ({ bytes, base }) => {
      const v = await timed('cose', () => verifySign1(bytes, key));
      if (!v.ok) return;
      const o = orig[base];
      if (!o || !eqBytes(o.protectedBytes, v.message.protectedBytes) || !eqBytes(v.payload, o.payload as Uint8Array)) {
        throw new Error('verifySign1 accepted a message whose signed content differs from any original');
      }
    });
  },
};

const mac0: FuzzTarget = {
  name: 'cose-mac0',
  what: 'verifyMac0 on mutated COSE_Mac0 (HMAC 256/256): never throws; accepted only with the MACed content unchanged',
  async setup() {
    const key = new Uint8Array(32).fill(9);
    const valid = [await createMac0({ payload: new Uint8Array(64).fill(1), key, alg: 5 })];
    return fc.asyncProperty(inputs(valid), async ({ bytes, base }) => {
      const v = await timed('mac0', () => verifyMac0(bytes, key));
      if (v.ok && (base !== 0 || !eqBytes(v.payload, new Uint8Array(64).fill(1)))) throw new Error('verifyMac0 accepted tampered content');
    });
  },
};

const keys: FuzzTarget = {
  name: 'keys',
  what: 'parsePem, decodeCoseKey and parseVerificationKey on mutated PEM, COSE_Key and JWK files: a key or a KeyFormatError',
  async setup() {
    const w = await getWorld();
    const enc = new TextEncoder();
    const valid = [
      enc.encode(privateKeyPem(TECH)),
      enc.encode(publicKeyPem(w.tech)),
      encodeCoseKey({ kty: 'OKP', crv: 'Ed25519', x: w.tech }),
      enc.encode(JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'Tl4iCZ47zrRbRG0TVf0dw7VFlHtv18HInYhnmMNybo8', y: 'gNcLhAslaqw0pi7eEEM2TwRAlfADR0uR4Bggkq-xPy4' })),
    ];
    return fc.asyncProperty(inputs(valid), async ({ bytes }) => {
      await timed('keys', async () => {
        for (const f of [() => parsePem(new TextDecoder().decode(bytes)), () => decodeCoseKey(bytes), () => parseVerificationKey(bytes)]) {
          try {
            await f();
          } catch (e) {
            assertTyped(e, 'keys');
          }
        }
      });
    });
  },
};

const ihex: FuzzTarget = {
  name: 'intel-hex',
  what: 'parseIhex on mutated Intel HEX text: an image or an IhexError',
  async setup() {
    const text = writeIhex([{ address: 0x8000, data: new Uint8Array(300).map((_, i) => i) }, { address: 0x1_0000_0, data: new Uint8Array(40).fill(1) }]);
    const valid = [new TextEncoder().encode(text)];
    return fc.asyncProperty(inputs(valid, 256), async ({ bytes }) => {
      await timed('ihex', () => {
        try {
          parseIhex(new TextDecoder().decode(bytes));
        } catch (e) {
          assertTyped(e, 'parseIhex');
        }
      });
    });
  },
};

const mcuboot: FuzzTarget = {
  name: 'mcuboot',
  what: 'parseImage and verifyImage on mutated signed MCUboot images: never untyped; a tampered image never verifies',
  async setup() {
    const w = await getWorld();
    const body = new Uint8Array(1500).map((_, i) => (i * 7) & 0xff);
    const valid = [(await signImage(body, { key: FW, version: '1.2.3', headerSize: 32, padHeader: true, securityCounter: 3 })).image];
    return fc.asyncProperty(inputs(valid, 256), async ({ bytes, mutated }) => {
      await timed('mcuboot', async () => {
        try {
          parseImage(bytes);
        } catch (e) {
          assertTyped(e, 'parseImage');
        }
        let r;
        try {
          r = await verifyImage(bytes, { keys: [w.fw] });
        } catch (e) {
          assertTyped(e, 'verifyImage');
          return;
        }
        if (mutated && r.ok) {
          // accepted: the mutation must have left the hashed header + body and the signature as they were
          const a = parseImage(bytes);
          const o = parseImage(valid[0]);
          if (!eqBytes(bytes.subarray(0, a.header.hdrSize + a.header.imgSize), valid[0].subarray(0, o.header.hdrSize + o.header.imgSize))) {
            throw new Error('verifyImage accepted an image whose signed part was changed');
          }
        }
      });
    });
  },
};

const sealed: FuzzTarget = {
  name: 'sealed-secrets',
  what: 'parseSealed and open on mutated COSE_Encrypt (X25519 + A256GCM): a map or a SealError; tampered ciphertext never opens',
  async setup() {
    const dev = generateX25519();
    const secret = new Map<string, unknown>([['wifi_psk', 'hunter2-but-longer'], ['token', new Uint8Array(16).fill(5)]]);
    const valid = [seal(secret, dev.publicKey)];
    const want = meaning(secret);
    return fc.asyncProperty(inputs(valid, 256), async ({ bytes }) => {
      await timed('seal', () => {
        try {
          parseSealed(bytes);
        } catch (e) {
          assertTyped(e, 'parseSealed');
        }
        try {
          const m = openSealed(bytes, dev.privateKey);
          if (meaning(m) !== want) throw new Error('open returned secrets other than the sealed ones');
        } catch (e) {
          assertTyped(e, 'open');
        }
      });
    });
  },
};

function artifactTarget(name: string, make: (w: Awaited<ReturnType<typeof world>>) => Promise<Uint8Array>, verify: (b: Uint8Array, w: Awaited<ReturnType<typeof world>>) => Promise<{ ok: boolean; value?: unknown }>): FuzzTarget {
  return {
    name: `artifact-${name}`,
    what: `verify${name[0].toUpperCase()}${name.slice(1)} on mutated artifacts: a verdict, never a throw; accepted only with the same meaning`,
    async setup() {
      const w = await getWorld();
      const valid = [await make(w)];
      const ref = await verify(valid[0], w);
      if (!ref.ok) throw new Error(`fuzz ${name}: the valid artifact does not verify`);
      const want = meaning(ref.value);
      return fc.asyncProperty(inputs(valid, 256), async ({ bytes }) => {
        const r = await timed(name, () => verify(bytes, w));
        if (r.ok && meaning(r.value) !== want) throw new Error(`verify ${name} accepted a tampered artifact with another meaning`);
      });
    },
  };
}

const artifacts: FuzzTarget[] = [
  artifactTarget('bundle', async (w) => w.bundleBytes, (b, w) => verifyBundle(b, { ownerKeys: [w.owner], now: NOW })),
  artifactTarget(
    'identity',
    (w) => issueIdentity({ serial: 'FB-9', model: 'fieldbench-ref', hwRev: 'b', devicePublicKey: w.device, deviceEncKey: new Uint8Array(32).fill(0x77), notAfter: new Date(NOW + DAY) } as Parameters<typeof issueIdentity>[0], MFR),
    (b, w) => verifyIdentity(b, { bundle: w.bundle, now: Date.now() }),
  ),
  artifactTarget(
    'credential',
    (w) => issueCredential({ technicianId: 't-1', name: 'T', publicKey: w.tech, permissions: ['identify', 'configure'], models: ['fieldbench-ref'], notAfter: new Date(NOW + DAY) } as Parameters<typeof issueCredential>[0], OWNER),
    (b, w) => verifyCredential(b, { bundle: w.bundle, now: Date.now() }),
  ),
  artifactTarget(
    'config',
    () => issueConfig({ target: { kind: 'model', model: 'fieldbench-ref' }, sequence: 7, settings: { interval: 60, name: 'pump-7' }, notAfter: NOW + DAY } as Parameters<typeof issueConfig>[0], OWNER),
    (b, w) => verifyConfig(b, { bundle: w.bundle, now: Date.now() }),
  ),
];

const eat: FuzzTarget = {
  name: 'eat-psa',
  what: 'appraiseToken (our EAT) and verifyPsaToken on mutated tokens: never throws; a tampered token is never trusted with other claims',
  async setup() {
    const w = await getWorld();
    const nonce = new Uint8Array(32).fill(0x42);
    const state: EatDeviceState = {
      nonce, devicePublicKey: w.device, implementationId: new Uint8Array(32).fill(1), model: 'fieldbench-ref', lifecycle: 'secured',
      bootSeed: new Uint8Array(8).fill(2), bootCount: 1, uptimeSeconds: 10, debugStatus: 'disabled-since-boot',
      softwareComponents: [{ measurementType: 'App', measurementValue: new Uint8Array(32).fill(0xab), version: '1.0.0', signerId: signerIdFor(w.fw) }],
      interfaces: { 'smp-serial': 'authenticated' }, failedAuthCount: 0, securityCounter: 1, issuedAt: Math.floor(NOW / 1000),
    } as EatDeviceState;
    const valid = [await signEatToken(state, DEVICE)];
    const ctx = { devicePublicKey: w.device, expectedNonce: nonce, referenceMeasurements: [{ sha256: 'ab'.repeat(32), version: '1.0.0', model: 'fieldbench-ref' }], revokedKeyIds: new Set<string>(), now: NOW };
    const ref = await appraiseToken(valid[0], ctx);
    const want = meaning(ref.claims);
    return fc.asyncProperty(inputs(valid, 256), async ({ bytes }) => {
      const a = await timed('eat', () => appraiseToken(bytes, ctx));
      if (a.verdict === 'trusted' && meaning(a.claims) !== want) throw new Error('a tampered token was trusted with other claims');
      const p = await timed('psa', () => verifyPsaToken(bytes, { kind: 'sign', keys: { kty: 'OKP', crv: 'Ed25519', x: w.device } }));
      if (p.ok && meaning(p.claims) !== meaning((await verifyPsaToken(valid[0], { kind: 'sign', keys: { kty: 'OKP', crv: 'Ed25519', x: w.device } }) as { claims?: unknown }).claims)) {
        throw new Error('verifyPsaToken accepted a tampered token');
      }
    });
  },
};

const smpReply: FuzzTarget = {
  name: 'smp-reply',
  what: 'SMP header + CBOR body decoding of mutated replies (as the client reads them): a value or a typed error',
  async setup() {
    const valid = [
      buildPacket({ version: 1, op: 1, flags: 0, group: 0, id: 0, seq: 3 }, Uint8Array.of(0xbf, 0x61, 0x72, 0x62, 0x68, 0x69, 0xff)),
      buildPacket({ version: 1, op: 3, flags: 0, group: 1, id: 1, seq: 9 }, encodeCbor(new Map([['rc', 0], ['off', 4096]]))),
    ];
    return fc.asyncProperty(inputs(valid), async ({ bytes }) => {
      await timed('smp', () => {
        if (bytes.length < SMP_HEADER_SIZE) return;
        try {
          const h = decodeHeader(bytes);
          decodeCbor(bytes.subarray(SMP_HEADER_SIZE, SMP_HEADER_SIZE + h.length));
        } catch (e) {
          assertTyped(e, 'smp reply');
        }
      });
    });
  },
};

const auditExport: FuzzTarget = {
  name: 'audit-export',
  what: 'verifyAuditExport on mutated exports (JSON text): a verdict, never a throw; a changed entry never verifies',
  async setup() {
    const w = await getWorld();
    // a genuine two-entry export, built the way the app signs entries
    const { makeExport } = await import('./audit-fixture.ts');
    const text = await makeExport(TECH, w.tech);
    const valid = [new TextEncoder().encode(text)];
    const ok = await verifyAuditExport(text, [w.tech]);
    if (!ok.ok) throw new Error(`fuzz audit: the valid export does not verify (${JSON.stringify(ok)})`);
    const want = meaning(JSON.parse(text).entries);
    return fc.asyncProperty(inputs(valid, 256), async ({ bytes }) => {
      const s = new TextDecoder().decode(bytes);
      const r = await timed('audit', () => verifyAuditExport(s, [w.tech]));
      if (!r.ok) return;
      let entries: unknown;
      try {
        entries = JSON.parse(s).entries;
      } catch {
        throw new Error('verifyAuditExport accepted text that is not JSON');
      }
      if (meaning(entries) !== want) throw new Error('verifyAuditExport accepted changed entries');
    });
  },
};

export const TARGETS: FuzzTarget[] = [framing('console'), framing('raw'), smpReply, cbor, cose, mac0, keys, ihex, mcuboot, sealed, ...artifacts, eat, auditExport];

export { fc, ed25519Sign };

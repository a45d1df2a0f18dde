/**
 * fieldbench attest verify — appraise an attestation token offline.
 *
 * Exit: 0 trusted (or warning with --accept-warnings); 1 untrusted or warning
 * (the failing checks on stderr), or a trust bundle that does not verify;
 * 2 bad usage, unreadable files, unusable keys.
 */
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs, type CliCommand, type CliIo } from '../command.ts';
import { InputError, readEd25519Public, readInput } from '../files.ts';
import { KeyFormatError } from '../../core/trust/keys.ts';
import { parseVerificationKey, type VerificationKey } from '../../core/trust/verification-key.ts';
import { verifyBundle } from '../../core/trust/bundle.ts';
import { appraiseToken, claimsToJson, type ReferenceMeasurement } from '../../core/trust/eat.ts';
import { fromHex, toHex } from '../../core/base/bytes.ts';

const usage = `usage: fieldbench attest verify TOKEN (--key KEYFILE | --hmac-key FILE) [--nonce HEX]
         [--bundle BUNDLE --owner OWNER.pem [--allow-stale]] [--reference SHA256[,VERSION[,MODEL]]]...
         [--accept-warnings] [--json]

Appraises an attestation token (raw CBOR or hex text): a fieldbench EAT, or a
standard PSA token (RFC 9783 and the older PSA 2.0.0 / PSA_IOT_PROFILE_1, as
TF-M produces them) in a COSE_Sign1 (ES256 or EdDSA) or a COSE_Mac0 (HMAC):
signature, nonce freshness, lifecycle, debug state, firmware measurements
against reference values, revoked keys, interfaces, claim types and sizes.
The report names the profile it appraised.

  --key FILE        the device's verification key: PEM (a public key, or a
                    private key whose public half is used), JWK or COSE_Key;
                    Ed25519 for fieldbench devices, P-256 for ES256 tokens, a
                    symmetric JWK ("oct") or COSE_Key (kty 4) for COSE_Mac0.
  --hmac-key FILE   a bare symmetric attestation key (raw bytes) for COSE_Mac0.
  --nonce HEX       the challenge sent to the device (32, 48 or 64 bytes).
                    Without it freshness is not checked (a warning).
  --bundle FILE     trust bundle supplying reference measurements and
                    revocations; needs --owner, the owner public key (PEM)
                    that signs bundles. --allow-stale accepts an expired one.
  --reference SPEC  a reference measurement given by hand: SHA-256 hex of the
                    image, optionally its version and model. Repeatable.
  --accept-warnings exit 0 for a 'warning' verdict (default: exit 1).
  --json            print {verdict, reasons, claims} as JSON.

Without reference measurements (--bundle or --reference) firmware cannot be
appraised and the token is untrusted.

exit status: 0 trusted, 1 untrusted / warning / bundle rejected (reasons on stderr),
2 bad usage or unreadable input`;

function parseHex(s: string, what: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  if (clean.length === 0) throw new UsageError(`${what} must be hex digits (an even number)`);
  try {
    return fromHex(clean);
  } catch {
    throw new UsageError(`${what} must be hex digits (an even number)`);
  }
}

/** A token file holds raw CBOR, or the same as hex text. */
function tokenBytes(raw: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(raw).trim();
  if (text.length > 0 && /^[0-9a-fA-F\s]+$/.test(text) && text.replace(/\s+/g, '').length % 2 === 0) {
    return fromHex(text.replace(/\s+/g, ''));
  }
  return raw;
}

function parseReference(spec: string): ReferenceMeasurement {
  const [h, version = '', model = ''] = spec.split(',');
  if (!/^[0-9a-fA-F]{64}$/.test(h ?? '')) throw new UsageError(`--reference ${spec}: the first field must be a SHA-256 (64 hex digits)`);
  return { sha256: h.toLowerCase(), version, model };
}

const verify: CliCommand = {
  summary: 'appraise an attestation token (signature, nonce, lifecycle, debug, measurements, revocation)',
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const fail = (msg: string) => {
      io.err(`fieldbench attest verify: ${msg}\n`);
      return EXIT_USAGE;
    };
    let args;
    let nonce: Uint8Array | undefined;
    let refs: ReferenceMeasurement[];
    try {
      args = parseArgs(argv, { known: ['key', 'hmac-key', 'nonce', 'bundle', 'owner', 'reference'], booleans: ['json', 'accept-warnings', 'allow-stale'] });
      if (args.positional.length !== 1) throw new UsageError('give exactly one TOKEN file');
      if (args.has('key') === args.has('hmac-key')) throw new UsageError('give one of --key KEYFILE (the device key from its identity certificate) or --hmac-key FILE');
      if (args.has('bundle') !== args.has('owner')) throw new UsageError('--bundle and --owner go together (the owner key verifies the bundle)');
      const n = args.get('nonce');
      if (n !== undefined) {
        nonce = parseHex(n, '--nonce');
        if (![32, 48, 64].includes(nonce.length)) throw new UsageError(`--nonce is ${nonce.length} bytes; a nonce is 32, 48 or 64 bytes`);
      }
      refs = args.all('reference').map(parseReference);
    } catch (e) {
      if (e instanceof UsageError) {
        io.err(`fieldbench attest verify: ${e.message}\n${usage}\n`);
        return EXIT_USAGE;
      }
      throw e;
    }
    let token: Uint8Array;
    let key: VerificationKey;
    const revoked = new Set<string>();
    let published: Set<string> | undefined;
    try {
      token = tokenBytes(await readInput(io, args.positional[0]));
      const keyPath = args.has('key') ? args.require('key') : args.require('hmac-key');
      const keyBytes = await readInput(io, keyPath, 'device key');
      try {
        key = await parseVerificationKey(keyBytes, { rawMac: args.has('hmac-key') });
      } catch (e) {
        if (e instanceof KeyFormatError) throw new InputError(`${keyPath}: ${e.message}`);
        throw e;
      }
      if (args.has('bundle')) {
        const bundleBytes = await readInput(io, args.require('bundle'));
        const owner = await readEd25519Public(io, args.require('owner'), { what: 'owner key' });
        const b = await verifyBundle(bundleBytes, { ownerKeys: [owner], allowStale: args.has('allow-stale') });
        if (!b.ok) {
          io.err(`fieldbench attest verify: trust bundle rejected (${b.code}): ${b.reason}\n`);
          return EXIT_REJECTED;
        }
        if (b.value.stale) io.err(`fieldbench attest verify: warning: the trust bundle expired; reference values may be out of date\n`);
        for (const f of b.value.firmware) {
          refs.push({ sha256: toHex(f.sha256), version: f.version, model: f.model, signerId: toHex(f.signerKid), securityCounter: f.securityCounter });
        }
        for (const k of b.value.revocations.keyIds) revoked.add(toHex(k));
        published = new Set(b.value.configurations.map(toHex));
      }
    } catch (e) {
      if (e instanceof InputError) return fail(e.message);
      throw e;
    }
    const a = await appraiseToken(token, {
      devicePublicKey: key.kind === 'sign' ? (key.key.kty === 'OKP' ? key.key.x : key.key) : undefined,
      macKey: key.kind === 'mac' ? key.key : undefined,
      profiles: 'any',
      expectedNonce: nonce, referenceMeasurements: refs, revokedKeyIds: revoked, publishedConfigs: published, now: Date.now(),
    });
    const profileLine = a.appraised
      ? `${a.appraised.kind === 'fieldbench' ? 'fieldbench EAT' : 'standard PSA token'} (${a.appraised.profile}) in a ${a.appraised.envelope === 'mac0' ? 'COSE_Mac0' : 'COSE_Sign1'}`
      : 'not determined (the token did not verify)';
    if (args.has('json')) {
      io.out(JSON.stringify({ verdict: a.verdict, appraised: a.appraised ?? null, reasons: a.reasons, claims: a.claims ? claimsToJson(a.claims) : null }, null, 2) + '\n');
    } else {
      io.out(`verdict: ${a.verdict}\nappraised as: ${profileLine}\n`);
      for (const r of a.reasons) io.out(`  [${r.result}] ${r.check}: ${r.detail}\n`);
      if (a.claims) {
        const c = a.claims as unknown as Record<string, unknown>;
        io.out(`profile: ${a.claims.profile}\ninstance: ${toHex(a.claims.instanceId)}\n`);
        if (typeof c.model === 'string') io.out(`model: ${c.model}\n`);
        for (const s of a.claims.softwareComponents) io.out(`component: ${s.measurementType ?? '?'} ${s.version ?? ''} ${toHex(s.measurementValue)}\n`);
      }
    }
    if (a.verdict === 'trusted') return EXIT_OK;
    const bad = a.reasons.filter((r) => r.result === (a.verdict === 'untrusted' ? 'fail' : 'warn'));
    io.err(`fieldbench attest verify: ${a.verdict}: ${bad.map((r) => `${r.check}: ${r.detail}`).join('; ')}\n`);
    if (a.verdict === 'warning' && args.has('accept-warnings')) return EXIT_OK;
    return EXIT_REJECTED;
  },
};

export const commands: Record<string, CliCommand> = { 'attest verify': verify };

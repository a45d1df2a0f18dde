/**
 * fieldbench trust tools for the authorized entities: key generation, issuing
 * device identity certificates (manufacturer), technician credentials, signed
 * configurations and trust bundles (owner), generic COSE_Sign1 sign / verify,
 * and `inspect` for any of our files.
 *
 * Exit status: 0 done / accepted, 1 rejected (reason on stderr), 2 bad usage or
 * unreadable input.
 *
 * One file (over 500 lines): the authorities' verbs share their argument,
 * key-file and output handling; each verb is a few dozen lines.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { x25519 } from '@noble/curves/ed25519.js';
import { decodeCbor, Tag } from '../../core/base/cbor.ts';
import { command as sharedCommand, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, parseArgs, UsageError, type CliCommand, type CliIo } from '../command.ts';
import { InputError, parsePemAt, publicCoseKey, readEd25519Private, readEd25519Public, readInput } from '../files.ts';
import { GENERIC_MAX_BYTES, decodeSign1, signSign1, verifySign1, type CoseKey } from '../../core/trust/cose.ts';
import { ed25519PublicKey, generateEd25519 } from '../../core/trust/ed25519.ts';
import { decodeCoseKeyWithPrivate, keyId, KeyFormatError, parsePem, privateKeyPem, publicKeyPem } from '../../core/trust/keys.ts';
import { decodeCampaignUnverified, describeTarget as describeCampaignTarget } from '../../core/sync/campaign.ts';
import { artifactTypeOf, ARTIFACT_NAMES, CONTENT_TYPES, fromHex, iso, SchemaError, type ArtifactType } from '../../core/trust/artifact.ts';
import { toHex as hex } from '../../core/base/bytes.ts';
import { decodeReprovisionUnverified } from '../../core/trust/reprovision.ts';
import { decodeProfileUnverified } from '../../core/factory/profile.ts';
import { TrustArtifactError, type TrustResult } from '../../core/trust/result.ts';
import { artifactDigest, decodeBundleUnverified, issueBundle, verifyBundle, type FirmwareMeta, type TrustBundle } from '../../core/trust/bundle.ts';
import { decodeIdentityUnverified, issueIdentity, verifyIdentity } from '../../core/trust/identity.ts';
import { decodeCredentialUnverified, isPermission, issueCredential, verifyCredential, type Permission } from '../../core/trust/credential.ts';
import { decodeConfigUnverified, issueConfig, verifyConfig, type ConfigTarget, type Settings } from '../../core/trust/signed-config.ts';
import { parseSealed, seal, SealError } from '../../core/trust/seal.ts';
import { parseImage, McubootError, versionString } from '../../core/trust/mcuboot/parse.ts';
import { toHex } from '../../core/base/bytes.ts';

const DAY = 86400;
const td = new TextDecoder();

// ------------------------------------------------------------------ io helpers

async function writeOutput(io: CliIo, path: string, data: Uint8Array | string, opts: { secret?: boolean; force?: boolean } = {}): Promise<string> {
  const full = resolve(io.cwd, path);
  try {
    await writeFile(full, typeof data === 'string' ? data : data, { mode: opts.secret ? 0o600 : 0o644, flag: opts.force || !opts.secret ? 'w' : 'wx' });
    if (opts.secret) await chmod(full, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new InputError(`${path} exists; refusing to overwrite a private key (use --force)`);
    throw new InputError(`cannot write ${path}: ${code ?? (e as Error).message}`);
  }
  return full;
}

async function readCoseKey(io: CliIo, path: string): Promise<CoseKey> {
  const raw = await readInput(io, path);
  const text = td.decode(raw);
  if (/-----BEGIN /.test(text)) return publicCoseKey(parsePemAt(text, path), path);
  try {
    const { key } = decodeCoseKeyWithPrivate(raw);
    return key.kty === 'OKP' ? { kty: 'OKP', crv: 'Ed25519', x: key.x } : { kty: 'EC2', crv: 'P-256', x: key.x, y: key.y };
  } catch (e) {
    throw new InputError(`${path}: neither a PEM key nor a COSE_Key (${(e as Error).message})`);
  }
}

// X25519 keys (device encryption keys) in PEM, as `openssl genpkey -algorithm x25519` writes them.
const X25519_PKCS8 = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20);
const X25519_SPKI = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00);

function armour(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  return b.length >= prefix.length && prefix.every((x, i) => b[i] === x);
}

/** X25519 public key from 64 hex digits, a PUBLIC KEY PEM or a PRIVATE KEY PEM (file path or literal). */
async function readX25519Public(io: CliIo, spec: string): Promise<Uint8Array> {
  if (/^[0-9a-fA-F]{64}$/.test(spec.trim())) return fromHex(spec);
  const text = /-----BEGIN /.test(spec) ? spec : td.decode(await readInput(io, spec));
  const m = /-----BEGIN (PUBLIC KEY|PRIVATE KEY)-----([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) throw new InputError(`${spec}: expected 64 hex digits or an X25519 PEM key`);
  const der = new Uint8Array(Buffer.from(m[2].replace(/\s+/g, ''), 'base64'));
  if (m[1] === 'PUBLIC KEY' && der.length === 44 && startsWith(der, X25519_SPKI)) return der.slice(12);
  if (m[1] === 'PRIVATE KEY' && der.length === 48 && startsWith(der, X25519_PKCS8)) return x25519.getPublicKey(der.slice(16));
  throw new InputError(`${spec}: not an X25519 key (OID 1.3.101.110)`);
}

function hexArg(name: string, v: string, len?: number[]): Uint8Array {
  let b: Uint8Array;
  try {
    b = fromHex(v);
  } catch {
    throw new UsageError(`--${name}: '${v}' is not hex`);
  }
  if (len && !len.includes(b.length)) throw new UsageError(`--${name}: expected ${len.join(' or ')} bytes, got ${b.length}`);
  return b;
}

function intArg(name: string, v: string | undefined, dflt?: number, min = 0): number {
  if (v === undefined) {
    if (dflt === undefined) throw new UsageError(`--${name} is required`);
    return dflt;
  }
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name}: '${v}' is not a non-negative integer`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name}: ${v} is out of range`);
  return n;
}

function list(a: ReturnType<typeof parseArgs>, name: string): string[] {
  return a.all(name).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
}

/** Inline JSON or a path to a JSON file. */
async function jsonArg(io: CliIo, name: string, v: string): Promise<unknown> {
  const text = /^\s*[[{]/.test(v) ? v : td.decode(await readInput(io, v));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`--${name}: not valid JSON (${(e as Error).message})`);
  }
}

function nowArg(a: ReturnType<typeof parseArgs>): number {
  const v = a.get('now');
  if (v === undefined) return Date.now();
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--now: '${v}' is not an ISO date`);
  return t;
}

function validity(a: ReturnType<typeof parseArgs>, defaultDays: number): { notBefore: number; notAfter: number } {
  const days = intArg('days', a.get('days'), defaultDays, 1);
  const nb = a.get('not-before');
  const notBefore = nb === undefined ? Math.floor(Date.now() / 1000) : Math.floor(Date.parse(nb) / 1000);
  if (Number.isNaN(notBefore)) throw new UsageError(`--not-before: '${nb}' is not an ISO date`);
  return { notBefore, notAfter: notBefore + days * DAY };
}

/** JSON view: bytes as hex, Maps as objects. */
export function toJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), toJson(x)]));
  if (v instanceof Tag) return { tag: v.tag, value: toJson(v.value) };
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'bigint') return v.toString();
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, toJson(x)]));
  return v;
}

const command = (summary: string, usage: string, run: (argv: string[], io: CliIo) => Promise<number>): CliCommand =>
  sharedCommand(summary, usage, run, { inputErrors: [TrustArtifactError, KeyFormatError, SealError] });

async function emit(io: CliIo, json: boolean, obj: Record<string, unknown>, text: string): Promise<void> {
  io.out(json ? JSON.stringify(toJson(obj), null, 2) + '\n' : text + '\n');
}

// ------------------------------------------------------------------ verbs

const keygenUsage = 'usage: fieldbench keygen --out PREFIX [--role manufacturer|firmware|owner|technician|device] [--force] [--json]\n' +
  '  writes PREFIX.pem (Ed25519 private, mode 0600) and PREFIX.pub.pem; --role device also writes\n' +
  '  PREFIX.enc.pem / PREFIX.enc.pub.pem (X25519, for secrets sealed to the device)';
const ROLES = ['manufacturer', 'firmware', 'owner', 'technician', 'device'];

const identityUsage = 'usage: fieldbench identity issue --key MANUF.pem --serial SN --model MODEL --hw-rev REV --device-pub DEV.pub.pem\n' +
  '  --enc-pub X25519(hex|PEM file) [--ueid HEX] [--mac AA:BB:..] [--deveui HEX] [--days N (3650)] [--not-before ISO] --out FILE [--json]';
const credentialUsage = 'usage: fieldbench credential issue --key OWNER.pem --technician ID --name NAME --pub TECH.pub.pem\n' +
  '  --permit identify,attest,configure,update,interfaces,wipe,rotate-keys [--models M1,M2|*] [--devices SERIAL,kid:HEX,..]\n' +
  '  [--days N (30)] [--not-before ISO] --out FILE [--json]';
const configUsage = 'usage: fieldbench config sign --key OWNER.pem --settings JSON|FILE --target serial:SN|key:HEX|model:M|group:G --sequence N\n' +
  '  [--secrets JSON|FILE --device-enc-pub X25519(hex|PEM file)] [--days N (30)] [--not-before ISO] --out FILE [--json]\n' +
  '       fieldbench config sign --key OWNER.pem --request REQUEST.json [--target ..] [--sequence N] --out FILE\n' +
  '  (REQUEST.json: the app\'s "Prepare request": settings, and secrets already sealed to the device)';
const bundleUsage = 'usage: fieldbench bundle make --key OWNER.pem [--manufacturer PUB.pem ...] [--firmware PUB.pem ...] [--owner PUB.pem ...]\n' +
  '  [--revoke KIDHEX|serial:HEX|credential:HEX ...] [--firmware-meta JSON|FILE] [--publish CONFIG.cose ...]\n' +
  '  --version N [--days N (30)] --out FILE [--json]\n' +
  '  (without --owner the signing key becomes the only owner anchor)';
const bundleVerifyUsage = 'usage: fieldbench bundle verify BUNDLE --owner OWNER.pub.pem [--owner ...] [--held-version N] [--allow-stale] [--now ISO] [--json]';
const verifyUsage = 'usage: fieldbench trust verify FILE --bundle BUNDLE --owner OWNER.pub.pem [--allow-stale] [--now ISO]\n' +
  '  [--device-serial SN --device-model M [--device-pub DEV.pub.pem] [--group G]] [--permit P] [--technician-pub PUB.pem]\n' +
  '  [--held-sequence N] [--require-published] [--json]\n' +
  '  FILE is an identity certificate, technician credential or signed config (recognised by its type label)';
const coseSignUsage = 'usage: fieldbench cose sign --key PRIV.pem --payload FILE [--detached] [--alg -8|-19] [--kid HEX] [--content-type TEXT]\n' +
  '  [--aad HEX] [--untagged] --out FILE';
const coseVerifyUsage = 'usage: fieldbench cose verify MSG --key PUB.pem [--key ...] [--payload FILE] [--aad HEX] [--json]\n' +
  '  keys: Ed25519 or P-256 (ES256) public PEM, an Ed25519 or P-256 private PEM (its public half is used), or a COSE_Key file\n' +
  '  messages up to 16 MiB (artifacts bound for a device keep their tighter limits)';
const inspectUsage = 'usage: fieldbench inspect FILE [--json]\n' +
  '  recognises fieldbench artifacts, COSE_Sign1 / COSE_Encrypt messages, COSE_Keys, PEM keys and MCUboot images (nothing is verified)';

async function keygen(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json', 'force'], known: ['out', 'role'] });
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
  const prefix = a.require('out');
  const role = a.get('role') ?? 'technician';
  if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  const { privateKey, publicKey } = await generateEd25519();
  const files: Record<string, string> = {};
  files.private = await writeOutput(io, `${prefix}.pem`, privateKeyPem(privateKey), { secret: true, force: a.has('force') });
  files.public = await writeOutput(io, `${prefix}.pub.pem`, publicKeyPem(publicKey));
  privateKey.fill(0);
  const out: Record<string, unknown> = { role, kid: keyId(publicKey), publicKey, files };
  if (role === 'device') {
    const encPriv = x25519.utils.randomSecretKey();
    const encPub = x25519.getPublicKey(encPriv);
    files.encPrivate = await writeOutput(io, `${prefix}.enc.pem`, armour('PRIVATE KEY', Uint8Array.of(...X25519_PKCS8, ...encPriv)), { secret: true, force: a.has('force') });
    files.encPublic = await writeOutput(io, `${prefix}.enc.pub.pem`, armour('PUBLIC KEY', Uint8Array.of(...X25519_SPKI, ...encPub)));
    encPriv.fill(0);
    out.encPublicKey = encPub;
  }
  await emit(io, a.has('json'), out,
    `${role} key ${toHex(keyId(publicKey))}\n  private ${files.private} (0600: keep it secret)\n  public  ${files.public}` +
      (files.encPrivate ? `\n  X25519  ${files.encPrivate} / ${files.encPublic}` : ''));
  return EXIT_OK;
}

async function identityIssue(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: ['key', 'serial', 'model', 'hw-rev', 'device-pub', 'enc-pub', 'ueid', 'mac', 'deveui', 'days', 'not-before', 'out'] });
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
  const seed = await readEd25519Private(io, a.require('key'));
  const v = validity(a, 3650);
  const bytes = await issueIdentity({
    serial: a.require('serial'), model: a.require('model'), hwRev: a.require('hw-rev'),
    devicePublicKey: await readEd25519Public(io, a.require('device-pub'), { what: 'device key' }),
    deviceEncKey: await readX25519Public(io, a.require('enc-pub')),
    ueid: a.has('ueid') ? hexArg('ueid', a.get('ueid')!) : undefined,
    mac: a.has('mac') ? hexArg('mac', a.get('mac')!, [6, 8]) : undefined,
    devEui: a.has('deveui') ? hexArg('deveui', a.get('deveui')!, [8]) : undefined,
    ...v,
  }, seed);
  const out = a.require('out');
  await writeOutput(io, out, bytes);
  const c = decodeIdentityUnverified(bytes);
  await emit(io, a.has('json'), { file: out, bytes: bytes.length, ...c },
    `wrote ${out} (${bytes.length} bytes): identity of ${c.serial} (${c.model} ${c.hwRev}), device key ${toHex(keyId(c.devicePublicKey))}, valid until ${iso(c.notAfter)}`);
  return EXIT_OK;
}

async function credentialIssue(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: ['key', 'technician', 'name', 'pub', 'permit', 'models', 'devices', 'days', 'not-before', 'out'] });
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
  const permits = list(a, 'permit');
  if (permits.length === 0) throw new UsageError('--permit is required');
  for (const p of permits) if (!isPermission(p)) throw new UsageError(`--permit: unknown permission '${p}'`);
  const devices = list(a, 'devices').map((d) => (/^kid:/i.test(d) ? hexArg('devices', d.slice(4), [8]) : d));
  const models = list(a, 'models');
  if (!models.length && !devices.length) throw new UsageError('give the device scope: --models and/or --devices (--models \'*\' for every model)');
  const seed = await readEd25519Private(io, a.require('key'));
  const bytes = await issueCredential({
    technicianId: a.require('technician'), name: a.require('name'), publicKey: await readEd25519Public(io, a.require('pub'), { what: 'technician key' }),
    permissions: [...new Set(permits)] as Permission[], models, devices, ...validity(a, 30),
  }, seed);
  const out = a.require('out');
  await writeOutput(io, out, bytes);
  const c = decodeCredentialUnverified(bytes);
  await emit(io, a.has('json'), { file: out, bytes: bytes.length, ...c },
    `wrote ${out} (${bytes.length} bytes): credential ${toHex(c.credentialId)} for ${c.technicianId} (${c.name}): ${c.permissions.join(', ')} ` +
      `on ${[...c.models.map((m) => `model ${m}`), ...c.devices.map((d) => (typeof d === 'string' ? d : `kid:${toHex(d)}`))].join(', ')}, valid until ${iso(c.notAfter)}`);
  return EXIT_OK;
}

function parseTargetArg(v: string): ConfigTarget {
  const m = /^(serial|key|model|group):(.+)$/.exec(v);
  if (!m) return { kind: 'serial', serial: v };
  switch (m[1]) {
    case 'serial': return { kind: 'serial', serial: m[2] };
    case 'key': return { kind: 'key', keyId: hexArg('target', m[2], [8]) };
    case 'model': return { kind: 'model', model: m[2] };
    default: return { kind: 'group', group: m[2] };
  }
}

async function configSign(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: ['key', 'settings', 'target', 'sequence', 'secrets', 'device-enc-pub', 'request', 'days', 'not-before', 'out'] });
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
  // A technician's request (the app's "Prepare request"): settings, secrets already sealed to the device.
  let request: { device?: string; minSequence?: number; settings?: unknown; sealedSecrets?: string } | undefined;
  if (a.has('request')) {
    if (a.has('settings') || a.has('secrets')) throw new UsageError('--request carries the settings and sealed secrets: give neither --settings nor --secrets');
    const r = await jsonArg(io, 'request', a.get('request')!);
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw new InputError('--request must be a JSON object (from the app\'s "Prepare request")');
    request = r as typeof request;
  }
  const settings = request ? request.settings : await jsonArg(io, 'settings', a.require('settings'));
  if (!settings || typeof settings !== 'object' || Array.isArray(settings)) throw new InputError(`${request ? 'the request\'s settings' : '--settings'} must be a JSON object`);
  let secrets: Uint8Array | undefined;
  if (request?.sealedSecrets !== undefined) {
    if (typeof request.sealedSecrets !== 'string') throw new InputError('the request\'s sealedSecrets must be hex');
    secrets = hexArg('request sealedSecrets', request.sealedSecrets);
    try {
      parseSealed(secrets); // the owner cannot read them, but they must be well-formed sealed secrets
    } catch (e) {
      throw new InputError(`the request's sealed secrets are not valid: ${(e as Error).message}`);
    }
  } else if (a.has('secrets')) {
    if (!a.has('device-enc-pub')) throw new UsageError('--secrets needs --device-enc-pub (the device X25519 key to seal them to)');
    const s = await jsonArg(io, 'secrets', a.get('secrets')!);
    if (!s || typeof s !== 'object' || Array.isArray(s)) throw new InputError('--secrets must be a JSON object');
    secrets = seal(s as Record<string, unknown>, await readX25519Public(io, a.get('device-enc-pub')!));
  } else if (a.has('device-enc-pub')) throw new UsageError('--device-enc-pub is only used with --secrets');
  const target = a.has('target') ? a.get('target')! : request?.device !== undefined ? `serial:${request.device}` : a.require('target');
  const sequence = a.has('sequence') ? intArg('sequence', a.get('sequence')) : request?.minSequence;
  if (sequence === undefined) throw new UsageError('--sequence is required');
  if (request?.minSequence !== undefined && sequence < request.minSequence) {
    throw new UsageError(`--sequence ${sequence} is below the request's ${request.minSequence}: the device would refuse it as a replay`);
  }
  const seed = await readEd25519Private(io, a.require('key'));
  const bytes = await issueConfig({
    target: parseTargetArg(target), sequence,
    settings: settings as Settings, secrets, ...validity(a, 30),
  }, seed);
  const out = a.require('out');
  await writeOutput(io, out, bytes);
  const c = decodeConfigUnverified(bytes);
  await emit(io, a.has('json'), { file: out, bytes: bytes.length, digest: artifactDigest(bytes), ...c },
    `wrote ${out} (${bytes.length} bytes): configuration #${c.sequence} for ${describeTargetText(c.target)}, ${Object.keys(c.settings).length} setting(s)` +
      `${c.secrets ? ', sealed secrets' : ''}, valid until ${iso(c.notAfter)}, sha256 ${toHex(artifactDigest(bytes))}`);
  return EXIT_OK;
}

function describeTargetText(t: ConfigTarget): string {
  return t.kind === 'key' ? `device key ${toHex(t.keyId)}` : t.kind === 'serial' ? `device ${t.serial}` : `${t.kind} ${t.kind === 'model' ? t.model : t.group}`;
}

function firmwareMeta(v: unknown): FirmwareMeta[] {
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((f, i) => {
    const w = `--firmware-meta[${i}]`;
    if (!f || typeof f !== 'object') throw new InputError(`${w}: expected an object`);
    const o = f as Record<string, unknown>;
    const need = (k: string) => {
      if (o[k] === undefined) throw new InputError(`${w}: "${k}" is missing`);
      return o[k];
    };
    const sha = String(need('sha256'));
    const signer = String(need('signerKid'));
    const counter = need('securityCounter');
    if (typeof counter !== 'number' || !Number.isInteger(counter) || counter < 0) throw new InputError(`${w}: securityCounter must be a non-negative integer`);
    try {
      return { model: String(need('model')), version: String(need('version')), sha256: fromHex(sha), securityCounter: counter, signerKid: fromHex(signer) };
    } catch (e) {
      throw new InputError(`${w}: ${(e as Error).message}`);
    }
  });
}

async function bundleMake(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: ['key', 'manufacturer', 'firmware', 'owner', 'revoke', 'firmware-meta', 'publish', 'version', 'days', 'not-before', 'out'] });
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
  const seed = await readEd25519Private(io, a.require('key'));
  const version = intArg('version', a.get('version'), undefined, 1);
  const keysOf = (role: string) => Promise.all(a.all(role).map((p) => readCoseKey(io, p)));
  const owners = await keysOf('owner');
  if (owners.length === 0) owners.push({ kty: 'OKP', crv: 'Ed25519', x: await ed25519PublicKey(seed) });
  const revocations = { keyIds: [] as Uint8Array[], certSerials: [] as Uint8Array[], credentialIds: [] as Uint8Array[] };
  for (const r of list(a, 'revoke')) {
    if (/^serial:/i.test(r)) revocations.certSerials.push(hexArg('revoke', r.slice(7)));
    else if (/^credential:/i.test(r)) revocations.credentialIds.push(hexArg('revoke', r.slice(11)));
    else revocations.keyIds.push(hexArg('revoke', r.replace(/^kid:/i, ''), [8]));
  }
  const firmware = a.has('firmware-meta') ? firmwareMeta(await jsonArg(io, 'firmware-meta', a.get('firmware-meta')!)) : [];
  const configurations = await Promise.all(a.all('publish').map(async (p) => {
    const b = await readInput(io, p);
    if (artifactTypeOf(b) !== 'config') throw new InputError(`${p}: not a signed configuration`);
    return artifactDigest(b);
  }));
  const v = validity(a, 30);
  const bytes = await issueBundle({
    version, issued: v.notBefore, expires: v.notAfter,
    anchors: { manufacturer: await keysOf('manufacturer'), firmware: await keysOf('firmware'), owner: owners },
    revocations, firmware, configurations,
  }, seed);
  const out = a.require('out');
  await writeOutput(io, out, bytes);
  const b = decodeBundleUnverified(bytes);
  await emit(io, a.has('json'), { file: out, bytes: bytes.length, ...b },
    `wrote ${out} (${bytes.length} bytes): trust bundle v${b.version}, anchors ${b.anchors.manufacturer.length} manufacturer / ` +
      `${b.anchors.firmware.length} firmware / ${b.anchors.owner.length} owner, ${revocations.keyIds.length + revocations.certSerials.length + revocations.credentialIds.length} revocation(s), ` +
      `${firmware.length} firmware entr${firmware.length === 1 ? 'y' : 'ies'}, expires ${iso(b.expires)}`);
  return EXIT_OK;
}

async function ownerKeysArg(io: CliIo, a: ReturnType<typeof parseArgs>): Promise<CoseKey[]> {
  const keys = await Promise.all(a.all('owner').map((p) => readCoseKey(io, p)));
  if (keys.length === 0) throw new UsageError('--owner OWNER.pub.pem is required (the owner key you trust)');
  return keys;
}

function report<T>(io: CliIo, json: boolean, what: string, r: TrustResult<T>, describe: (v: T) => string): number {
  if (!r.ok) {
    if (json) io.out(JSON.stringify({ ok: false, code: r.code, reason: r.reason }, null, 2) + '\n');
    io.err(`rejected (${r.code}): ${r.reason}\n`);
    return EXIT_REJECTED;
  }
  if (json) io.out(JSON.stringify(toJson({ ok: true, type: what, signerKid: keyId(r.signer), value: r.value }), null, 2) + '\n');
  else io.out(`OK ${describe(r.value)}\n`);
  return EXIT_OK;
}

async function bundleVerify(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json', 'allow-stale'], known: ['owner', 'held-version', 'now'] });
  if (a.positional.length !== 1) throw new UsageError('expected one BUNDLE file');
  const bytes = await readInput(io, a.positional[0]);
  const r = await verifyBundle(bytes, {
    ownerKeys: await ownerKeysArg(io, a), now: nowArg(a), allowStale: a.has('allow-stale'),
    heldVersion: a.has('held-version') ? intArg('held-version', a.get('held-version')) : undefined,
  });
  if (r.ok && r.value.stale) io.err(`warning: trust bundle v${r.value.version} is STALE (expired ${iso(r.value.expires)})\n`);
  return report(io, a.has('json'), 'bundle', r, (b) => `trust bundle v${b.version}${b.stale ? ' (STALE)' : ''}, expires ${iso(b.expires)}`);
}

async function trustVerify(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, {
    booleans: ['json', 'allow-stale', 'require-published'],
    known: ['bundle', 'owner', 'now', 'device-serial', 'device-model', 'device-pub', 'group', 'permit', 'technician-pub', 'held-sequence'],
  });
  if (a.positional.length !== 1) throw new UsageError('expected one FILE');
  const bytes = await readInput(io, a.positional[0]);
  const now = nowArg(a);
  const br = await verifyBundle(await readInput(io, a.require('bundle')), { ownerKeys: await ownerKeysArg(io, a), now, allowStale: a.has('allow-stale') });
  if (!br.ok) {
    io.err(`rejected: the trust bundle does not verify (${br.code}): ${br.reason}\n`);
    return EXIT_REJECTED;
  }
  const bundle: TrustBundle = br.value;
  if (bundle.stale) io.err(`warning: trust bundle v${bundle.version} is STALE (expired ${iso(bundle.expires)})\n`);
  const devPub = a.has('device-pub') ? await readEd25519Public(io, a.get('device-pub')!, { what: 'device key' }) : undefined;
  const device = a.has('device-serial')
    ? { serial: a.get('device-serial')!, model: a.require('device-model'), keyId: devPub ? keyId(devPub) : undefined, groups: a.all('group') }
    : undefined;
  const type = artifactTypeOf(bytes);
  const json = a.has('json');
  switch (type) {
    case 'identity':
      return report(io, json, type, await verifyIdentity(bytes, { bundle, now, expect: { devicePublicKey: devPub, serial: device?.serial } }),
        (c) => `device identity certificate of ${c.serial} (${c.model} ${c.hwRev}), device key ${toHex(keyId(c.devicePublicKey))}, valid until ${iso(c.notAfter)}`);
    case 'credential': {
      const permit = a.get('permit');
      if (permit !== undefined && !isPermission(permit)) throw new UsageError(`--permit: unknown permission '${permit}'`);
      const tp = a.has('technician-pub') ? await readEd25519Public(io, a.get('technician-pub')!, { what: 'technician key' }) : undefined;
      return report(io, json, type, await verifyCredential(bytes, { bundle, now, permission: permit as Permission | undefined, device, technicianKey: tp }),
        (c) => `technician credential of ${c.technicianId} (${c.name}): ${c.permissions.join(', ')}, valid until ${iso(c.notAfter)}`);
    }
    case 'config':
      return report(io, json, type, await verifyConfig(bytes, {
        bundle, now, device, requirePublished: a.has('require-published'),
        heldSequence: a.has('held-sequence') ? intArg('held-sequence', a.get('held-sequence')) : undefined,
      }), (c) => `signed configuration #${c.sequence} for ${describeTargetText(c.target)}, valid until ${iso(c.notAfter)}`);
    case 'bundle':
      return report(io, json, type, br, (b) => `trust bundle v${b.version}`);
    default:
      io.err(`rejected (wrong-type): ${a.positional[0]} is not a fieldbench artifact\n`);
      return EXIT_REJECTED;
  }
}

async function coseSign(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['detached', 'untagged', 'json'], known: ['key', 'payload', 'alg', 'kid', 'content-type', 'aad', 'out'] });
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
  const alg = a.get('alg') ?? '-8';
  if (alg !== '-8' && alg !== '-19') throw new UsageError('--alg must be -8 (EdDSA) or -19 (Ed25519)');
  const seed = await readEd25519Private(io, a.require('key'));
  const payload = await readInput(io, a.require('payload'));
  const pub = await ed25519PublicKey(seed);
  const kid = a.has('kid') ? hexArg('kid', a.get('kid')!) : keyId(pub);
  const ct = a.get('content-type');
  const bytes = await signSign1({
    payload, privateKey: seed, alg: Number(alg) as -8 | -19, kid,
    protectedExtra: ct !== undefined ? new Map<number | string, unknown>([[3, /^\d+$/.test(ct) ? Number(ct) : ct]]) : undefined,
    externalAad: a.has('aad') ? hexArg('aad', a.get('aad')!) : undefined,
    tagged: !a.has('untagged'), detached: a.has('detached'),
  });
  const out = a.require('out');
  await writeOutput(io, out, bytes);
  await emit(io, a.has('json'), { file: out, bytes: bytes.length, alg: Number(alg), kid, detached: a.has('detached') },
    `wrote ${out} (${bytes.length} bytes): COSE_Sign1 alg ${alg}, kid ${toHex(kid)}${a.has('detached') ? ', detached payload' : ''}`);
  return EXIT_OK;
}

async function coseVerify(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: ['key', 'payload', 'aad'] });
  if (a.positional.length !== 1) throw new UsageError('expected one MSG file');
  const keyPaths = a.all('key');
  if (keyPaths.length === 0) throw new UsageError('--key PUB.pem is required');
  const keys = await Promise.all(keyPaths.map((p) => readCoseKey(io, p)));
  const bytes = await readInput(io, a.positional[0]);
  if (bytes.length > GENERIC_MAX_BYTES) throw new InputError(`${a.positional[0]} is ${bytes.length} bytes; cose verify accepts messages up to ${GENERIC_MAX_BYTES} bytes (16 MiB)`);
  const v = await verifySign1(bytes, keys, {
    maxBytes: GENERIC_MAX_BYTES,
    detachedPayload: a.has('payload') ? await readInput(io, a.get('payload')!) : undefined,
    externalAad: a.has('aad') ? hexArg('aad', a.get('aad')!) : undefined,
  });
  const json = a.has('json');
  if (!v.ok) {
    if (json) io.out(JSON.stringify({ ok: false, code: v.code, reason: v.reason }, null, 2) + '\n');
    io.err(`rejected (${v.code}): ${v.reason}\n`);
    return EXIT_REJECTED;
  }
  const ct = v.message.protected.get(3);
  const res = { ok: true, alg: v.alg, kid: v.kid, key: keyPaths[v.keyIndex], contentType: ct, payloadBytes: v.payload.length, payload: v.payload };
  if (json) io.out(JSON.stringify(toJson(res), null, 2) + '\n');
  else io.out(`OK COSE_Sign1 alg ${v.alg}${v.kid ? `, kid ${toHex(v.kid)}` : ''}, signed by ${keyPaths[v.keyIndex]}, payload ${v.payload.length} bytes${ct !== undefined ? `, content type ${String(ct)}` : ''}\n`);
  return EXIT_OK;
}

// ------------------------------------------------------------------ inspect

function headerView(m: Map<number | string, unknown>): Record<string, unknown> {
  const names: Record<number, string> = { 1: 'alg', 2: 'crit', 3: 'content type', 4: 'kid', 5: 'IV', 6: 'partial IV', 7: 'counter signature' };
  return Object.fromEntries([...m.entries()].map(([k, v]) => [typeof k === 'number' && names[k] ? `${names[k]} (${k})` : String(k), toJson(v)]));
}

function preview(b: Uint8Array): string {
  const printable = b.length > 0 && b.every((x) => x === 9 || x === 10 || x === 13 || (x >= 32 && x < 127));
  if (printable) return JSON.stringify(td.decode(b.slice(0, 200))) + (b.length > 200 ? '…' : '');
  return toHex(b.slice(0, 64)) + (b.length > 64 ? '…' : '');
}

function lines(obj: unknown, indent = '  '): string[] {
  const out: string[] = [];
  const walk = (v: unknown, pad: string, key: string) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      out.push(`${pad}${key}:`);
      for (const [k, x] of Object.entries(v)) walk(x, pad + '  ', k);
    } else if (Array.isArray(v) && v.some((x) => x && typeof x === 'object')) {
      out.push(`${pad}${key}: [${v.length}]`);
      v.forEach((x, i) => walk(x, pad + '  ', `[${i}]`));
    } else {
      out.push(`${pad}${key}: ${Array.isArray(v) && v.length === 0 ? '(none)' : Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ') : String(v)}`);
    }
  };
  for (const [k, v] of Object.entries(obj as object)) walk(v, indent, k);
  return out;
}

interface Inspection {
  kind: string;
  summary: string;
  details: Record<string, unknown>;
}

function timesReadable(o: Record<string, unknown>): Record<string, unknown> {
  const r: Record<string, unknown> = { ...o };
  for (const k of ['notBefore', 'notAfter', 'issued', 'expires']) if (typeof r[k] === 'number') r[k] = `${iso(r[k] as number)} (${r[k]})`;
  return r;
}

function inspectBytes(bytes: Uint8Array): Inspection | undefined {
  const text = td.decode(bytes.slice(0, 4096));
  if (/-----BEGIN /.test(text)) {
    try {
      const k = parsePem(td.decode(bytes));
      if (k.kind === 'ed25519-private') return { kind: 'pem', summary: 'Ed25519 private key (PKCS#8)', details: { note: 'private key material not shown' } };
      if (k.kind === 'ed25519-public') return { kind: 'pem', summary: `Ed25519 public key, kid ${toHex(keyId(k.publicKey))}`, details: { publicKey: toHex(k.publicKey), kid: toHex(keyId(k.publicKey)) } };
      return { kind: 'pem', summary: 'P-256 public key', details: { x: toHex(k.x), y: toHex(k.y) } };
    } catch (e) {
      const m = /-----BEGIN (PUBLIC KEY|PRIVATE KEY)-----([\s\S]*?)-----END \1-----/.exec(text);
      if (m) {
        const der = new Uint8Array(Buffer.from(m[2].replace(/\s+/g, ''), 'base64'));
        if (der.length === 44 && startsWith(der, X25519_SPKI)) return { kind: 'pem', summary: 'X25519 public key (device encryption key)', details: { publicKey: toHex(der.slice(12)), kid: toHex(keyId(der.slice(12))) } };
        if (der.length === 48 && startsWith(der, X25519_PKCS8)) return { kind: 'pem', summary: 'X25519 private key', details: { note: 'private key material not shown' } };
      }
      return { kind: 'pem', summary: `PEM file that is not a supported key: ${(e as Error).message}`, details: {} };
    }
  }
  if (bytes.length >= 32 && ((bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0 === 0x96f3b83d || (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0 === 0x96f3b83c)) {
    try {
      const img = parseImage(bytes);
      return {
        kind: 'mcuboot',
        summary: `MCUboot image, version ${versionString(img.header.version)}, ${img.header.imgSize} bytes of code, ${img.tlvs.length} TLVs`,
        details: {
          version: versionString(img.header.version), loadAddr: '0x' + img.header.loadAddr.toString(16), hdrSize: img.header.hdrSize, imgSize: img.header.imgSize,
          flags: img.flagNames.join(', ') || 'none', tlvs: img.tlvs.map((t) => ({ type: '0x' + t.type.toString(16), name: t.name, length: t.length, protected: t.protected })),
        },
      };
    } catch (e) {
      return { kind: 'mcuboot', summary: `MCUboot magic, but the image does not parse: ${e instanceof McubootError ? e.message : String(e)}`, details: {} };
    }
  }
  const type = artifactTypeOf(bytes);
  if (type) return inspectArtifact(bytes, type);
  let v: unknown;
  try {
    v = decodeCbor(bytes);
  } catch {
    return undefined;
  }
  if (v instanceof Tag && v.tag === 96) {
    try {
      const s = parseSealed(bytes);
      return { kind: 'cose-encrypt', summary: `COSE_Encrypt: A256GCM, ECDH-ES + HKDF-256 over X25519, ${s.ciphertext.length - 16} bytes of sealed secrets`, details: { recipientKid: s.recipientKid, ephemeralKey: s.ephemeralPublic, iv: s.iv } };
    } catch (e) {
      return { kind: 'cose-encrypt', summary: `COSE_Encrypt (tag 96) not in fieldbench's sealed-secrets profile: ${(e as Error).message}`, details: { value: toJson(v) } };
    }
  }
  try {
    const m = decodeSign1(bytes);
    const d: Record<string, unknown> = { tagged: m.tagged, protected: headerView(m.protected), unprotected: headerView(m.unprotected), payload: m.payload === null ? 'detached' : preview(m.payload), signature: toHex(m.signature) };
    return { kind: 'cose-sign1', summary: `COSE_Sign1${m.tagged ? '' : ' (untagged)'}, alg ${String(m.protected.get(1))}, payload ${m.payload === null ? 'detached' : `${m.payload.length} bytes`}`, details: d };
  } catch {
    /* not a Sign1 */
  }
  if (v instanceof Map && (v.has(1) && (v.get(1) === 1 || v.get(1) === 2))) {
    try {
      const { key, d } = decodeCoseKeyWithPrivate(bytes);
      const raw = key.kty === 'OKP' ? key.x : Uint8Array.of(4, ...key.x, ...key.y);
      return { kind: 'cose-key', summary: `COSE_Key ${key.kty} ${key.crv}${d ? ' with PRIVATE part' : ''}, kid ${toHex(keyId(raw))}`, details: { x: key.x, ...(key.kty === 'EC2' ? { y: key.y } : {}), kid: key.kid } };
    } catch {
      /* fall through */
    }
  }
  return { kind: 'cbor', summary: 'CBOR data (not a recognised structure)', details: { value: toJson(v) } };
}

function inspectArtifact(bytes: Uint8Array, type: ArtifactType): Inspection {
  const m = decodeSign1(bytes);
  const kid = m.protected.get(4);
  const base = { type: CONTENT_TYPES[type], signerKid: kid instanceof Uint8Array ? toHex(kid) : undefined, bytes: bytes.length, verified: false };
  try {
    switch (type) {
      case 'identity': {
        const c = decodeIdentityUnverified(bytes);
        return { kind: type, summary: `${ARTIFACT_NAMES[type]} of ${c.serial} (${c.model} ${c.hwRev})`, details: { ...base, ...timesReadable(toJson(c) as Record<string, unknown>), deviceKid: toHex(keyId(c.devicePublicKey)) } };
      }
      case 'credential': {
        const c = decodeCredentialUnverified(bytes);
        return { kind: type, summary: `${ARTIFACT_NAMES[type]} of ${c.technicianId} (${c.name})`, details: { ...base, ...timesReadable(toJson(c) as Record<string, unknown>), technicianKid: toHex(keyId(c.publicKey)) } };
      }
      case 'config': {
        const c = decodeConfigUnverified(bytes);
        return { kind: type, summary: `${ARTIFACT_NAMES[type]} #${c.sequence} for ${describeTargetText(c.target)}`, details: { ...base, digest: toHex(artifactDigest(bytes)), ...timesReadable(toJson(c) as Record<string, unknown>), ...(c.secrets ? { secrets: `sealed (${c.secrets.length} bytes)` } : {}) } };
      }
      case 'bundle': {
        const b = decodeBundleUnverified(bytes);
        const anchors = Object.fromEntries(Object.entries(b.anchors).map(([r, ks]) => [r, ks.map((k) => toHex(keyId(k.kty === 'OKP' ? k.x : Uint8Array.of(4, ...k.x, ...k.y))))]));
        return { kind: type, summary: `${ARTIFACT_NAMES[type]} v${b.version}`, details: { ...base, ...timesReadable(toJson({ ...b, anchors: undefined }) as Record<string, unknown>), anchors } };
      }
      case 'profile': {
        const p = decodeProfileUnverified(bytes);
        const fw = p.firmware.map((f) => `${f.version} sha256:${hex(f.sha256)}`).join(', ');
        return {
          kind: type,
          summary: `${ARTIFACT_NAMES[type]} ${JSON.stringify(p.name)} for ${p.model}: firmware ${fw}${p.configuration ? ', factory configuration' : ''}, serials ${p.identity.policy.serial.pattern} ${p.identity.policy.serial.first}..${p.identity.policy.serial.last}`,
          details: { ...base, digest: hex(artifactDigest(bytes)), ...timesReadable(toJson({ ...p, configuration: p.configuration ? `signed configuration (${p.configuration.length} bytes, sha256 ${hex(artifactDigest(p.configuration))})` : undefined, stationCredential: p.stationCredential ? `technician credential (${p.stationCredential.length} bytes)` : undefined }) as Record<string, unknown>) },
        };
      }
      case 'reprovision': {
        const a = decodeReprovisionUnverified(bytes);
        return { kind: type, summary: `${ARTIFACT_NAMES[type]} for device key ${hex(keyId(a.devicePublicKey))} (chip ${hex(a.chipUid)}): ${a.reason}`, details: { ...base, ...timesReadable(toJson(a) as Record<string, unknown>) } };
      }
      case 'campaign': {
        const c = decodeCampaignUnverified(bytes);
        return { kind: type, summary: `${ARTIFACT_NAMES[type]} ${JSON.stringify(c.name)} for ${describeCampaignTarget(c.target)}`, details: { ...base, digest: hex(artifactDigest(bytes)), ...timesReadable(toJson(c) as Record<string, unknown>) } };
      }
    }
  } catch (e) {
    return { kind: type, summary: `${ARTIFACT_NAMES[type]} with an invalid payload: ${e instanceof SchemaError ? e.message : (e as Error).message}`, details: base };
  }
}

async function inspect(argv: string[], io: CliIo): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: [] });
  if (a.positional.length !== 1) throw new UsageError('expected one FILE');
  const path = a.positional[0];
  const bytes = await readInput(io, path);
  const r = inspectBytes(bytes);
  if (!r) {
    io.err(`error: ${path}: not a recognised file (not PEM, MCUboot, CBOR or COSE)\n`);
    return EXIT_USAGE;
  }
  if (a.has('json')) io.out(JSON.stringify({ file: path, kind: r.kind, summary: r.summary, ...r.details }, null, 2) + '\n');
  else {
    const note = ['identity', 'credential', 'config', 'bundle', 'cose-sign1'].includes(r.kind) ? ' [signature NOT verified: use trust verify / cose verify]' : '';
    io.out([`${path}: ${r.summary}${note}`, ...lines(r.details)].join('\n') + '\n');
  }
  return EXIT_OK;
}

export const commands: Record<string, CliCommand> = {
  keygen: command('generate an Ed25519 key pair (PEM); --role device adds an X25519 encryption key', keygenUsage, keygen),
  'identity issue': command('manufacturer: issue a device identity certificate', identityUsage, identityIssue),
  'credential issue': command('owner: issue a technician credential (permissions, device scope, validity)', credentialUsage, credentialIssue),
  'config sign': command('owner: sign a configuration for a device, model or group (secrets sealed to the device)', configUsage, configSign),
  'bundle make': command('owner: make a trust bundle (anchors, revocations, firmware metadata)', bundleUsage, bundleMake),
  'bundle verify': command('verify a trust bundle against an owner key', bundleVerifyUsage, bundleVerify),
  'trust verify': command('verify an identity certificate, credential or signed config against a trust bundle', verifyUsage, trustVerify),
  'cose sign': command('sign a payload as COSE_Sign1 (Ed25519)', coseSignUsage, coseSign),
  'cose verify': command('verify any COSE_Sign1 (EdDSA / Ed25519 / ES256)', coseVerifyUsage, coseVerify),
  inspect: command('show what a file is: fieldbench artifact, COSE message, COSE_Key, PEM key or MCUboot image', inspectUsage, inspect),
};

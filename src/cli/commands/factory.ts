/**
 * The factory station's key and artifact verbs (docs/FACTORY.md):
 *  - `key wrap`:            a passphrase-wrapped key file (generate a new key inside it, or wrap a PEM)
 *  - `hsm keygen` / `hsm import`: the manufacturer key inside an HSM through PKCS#11
 *  - `profile sign` / `profile verify`: the owner-signed station profile
 *  - `label`:               a unit's label as SVG, PDF or ZPL (from the arguments or the control log)
 *
 * `bench run` (one area away, commands/bench.ts) uses these: it reads the
 * profile with loadStationProfile and the manufacturer key with signerFromArgs.
 */
import { dirname, resolve } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { command as sharedCommand, EXIT_OK, EXIT_REJECTED, parseArgs, UsageError, type CliCommand, type CliIo, type ParsedArgs } from '../command.ts';
import { InputError, readEd25519Public, readFirmware, readInput, readText } from '../files.ts';
import { requireSignerFromArgs, signerOptionNames, signerUsage, DEFAULT_PASS_ENV, DEFAULT_PIN_ENV, PKCS11_OPTIONS } from '../signer-options.ts';
import { loadStationProfile } from '../station-profile.ts';
import { RECORDS_FILE, parseRecordsLog } from '../../core/store/records-log.ts';
import { controlRows } from '../../core/factory/control-log.ts';
import { issueProfile, type ProfileFirmware, type ProfileInput, type InterfaceStateName } from '../../core/factory/profile.ts';
import { compilePolicy, type IdentifierPolicy } from '../../core/factory/identifiers.ts';
import { keyFingerprint, labelPdf, labelSvg, labelTemplate, labelZpl, LabelError, type LabelData } from '../../core/factory/label.ts';
import { verifyImage } from '../../core/trust/mcuboot/verify.ts';
import { McubootError } from '../../core/trust/mcuboot/parse.ts';
import { generateEd25519 } from '../../core/trust/ed25519.ts';
import { keyId, parsePem, publicKeyPem, KeyFormatError } from '../../core/trust/keys.ts';
import { SignerError } from '../../core/trust/signer.ts';
import { isWrappedKeyFile, unwrapKey, wrapKey } from '../../core/trust/wrapped-key.ts';
import { fromHex, SchemaError, iso } from '../../core/trust/artifact.ts';
import { TrustArtifactError } from '../../core/trust/result.ts';
import { toHex } from '../../core/base/bytes.ts';
import { signedConfigSequence } from '../station-profile.ts';

type Env = Record<string, string | undefined>;
type Io = CliIo & { env?: Env };

const DAY = 86400;

/** This area's "cannot use this input" errors (exit status 2). */
const INPUT_ERRORS = [SignerError, LabelError, SchemaError, TrustArtifactError, KeyFormatError];
const command = (summary: string, usage: string, run: (argv: string[], io: Io) => Promise<number>): CliCommand => sharedCommand<Io>(summary, usage, run, { inputErrors: INPUT_ERRORS });

/** Write a file; private material never goes through here except wrapped (mode 0600, never overwritten). */
async function writeOut(io: CliIo, path: string, data: Uint8Array | string, opts: { secret?: boolean; force?: boolean } = {}): Promise<string> {
  const full = resolve(io.cwd, path);
  try {
    await writeFile(full, data, { mode: opts.secret ? 0o600 : 0o644, flag: opts.secret || !opts.force ? 'wx' : 'w' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new InputError(`${path} exists; refusing to overwrite it${opts.secret ? ' (a key file is never overwritten)' : ' (use --force)'}`);
    throw new InputError(`cannot write ${path}: ${code ?? (e as Error).message}`);
  }
  return full;
}

function secret(env: Env, a: ParsedArgs, option: string, dflt: string, what: string): string {
  const name = a.get(option) ?? dflt;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`--${option}: ${JSON.stringify(name)} is not an environment variable name`);
  const v = env[name];
  if (!v) throw new InputError(`the ${what} is read from the environment variable ${name}, which is not set`);
  return v;
}

function noPositional(a: ParsedArgs): void {
  if (a.positional.length) throw new UsageError(`unexpected argument ${a.positional[0]}`);
}

// ------------------------------------------------------------------ key wrap

const wrapUsage =
  'usage: fieldbench key wrap (--generate | --in KEY.pem) --out KEY.wrapped [--pub KEY.pub.pem] [--label TEXT] [--pass-env VAR]\n' +
  `  a passphrase-wrapped Ed25519 key file (scrypt + AES-256-GCM); the passphrase is read from $VAR (default ${DEFAULT_PASS_ENV}),\n` +
  '  at least 12 characters. --generate makes a new key that never touches the disk in clear.';

async function keyWrap(argv: string[], io: Io): Promise<number> {
  const a = parseArgs(argv, { booleans: ['generate', 'json'], known: ['in', 'out', 'pub', 'label', 'pass-env'] });
  noPositional(a);
  if (a.has('generate') === a.has('in')) throw new UsageError('give --generate or --in KEY.pem (one of them)');
  const out = a.require('out');
  const pass = secret(io.env ?? process.env, a, 'pass-env', DEFAULT_PASS_ENV, 'passphrase');
  let seed: Uint8Array;
  if (a.has('generate')) seed = (await generateEd25519()).privateKey;
  else {
    const text = await readText(io, a.get('in')!, 'key');
    if (isWrappedKeyFile(text)) throw new InputError(`${a.get('in')} is already a wrapped key file`);
    let k;
    try {
      k = parsePem(text);
    } catch (e) {
      throw new InputError(`${a.get('in')}: ${(e as Error).message}`);
    }
    if (k.kind !== 'ed25519-private') throw new InputError(`${a.get('in')} holds no Ed25519 private key`);
    seed = k.seed;
  }
  try {
    const text = await wrapKey(seed, pass, { label: a.get('label') ?? '' });
    const { parseWrappedKey } = await import('../../core/trust/wrapped-key.ts');
    const pub = parseWrappedKey(text).publicKey;
    await writeOut(io, out, text, { secret: true });
    if (a.has('pub')) await writeOut(io, a.get('pub')!, publicKeyPem(pub), { force: true });
    const kid = toHex(keyId(pub));
    io.out(a.has('json') ? JSON.stringify({ file: out, kid, publicKey: toHex(pub) }) + '\n' : `wrapped key ${kid} -> ${out} (0600)${a.has('pub') ? `, public key ${a.get('pub')}` : ''}${a.has('in') ? `\n  ${a.get('in')} still holds the key in clear: delete it once the wrapped file is backed up` : ''}\n`);
  } finally {
    seed.fill(0);
  }
  return EXIT_OK;
}

// ------------------------------------------------------------------ hsm keygen / import

const hsmRef = '--pkcs11 MODULE.so (--slot ID | --token-label LABEL) --key-label LABEL [--pin-env VAR]';
const hsmKeygenUsage = `usage: fieldbench hsm keygen ${hsmRef} [--pub OUT.pub.pem] [--json]\n` +
  `  generate an Ed25519 key inside the token (sensitive, not extractable); PIN from $VAR (default ${DEFAULT_PIN_ENV})`;
const hsmImportUsage = `usage: fieldbench hsm import ${hsmRef} --in KEY.pem|KEY.wrapped [--pass-env VAR] [--pub OUT.pub.pem] [--json]\n` +
  '  move an existing Ed25519 key into the token (for a manufacturer key whose certificates are already in the field)';

function hsmArgs(a: ParsedArgs, io: Io) {
  const module = a.require('pkcs11');
  const keyLabel = a.require('key-label');
  const slot = a.get('slot');
  const tokenLabel = a.get('token-label');
  if (slot === undefined && tokenLabel === undefined) throw new UsageError('--slot ID or --token-label LABEL is required');
  if (slot !== undefined && !/^\d+$/.test(slot)) throw new UsageError(`--slot: ${JSON.stringify(slot)} is not a slot id`);
  return { module, keyLabel, slot, tokenLabel, pin: secret(io.env ?? process.env, a, 'pin-env', DEFAULT_PIN_ENV, 'token PIN') };
}

async function reportKey(io: Io, a: ParsedArgs, pub: Uint8Array, what: string): Promise<void> {
  if (a.has('pub')) await writeOut(io, a.get('pub')!, publicKeyPem(pub), { force: true });
  const kid = toHex(keyId(pub));
  io.out(a.has('json') ? JSON.stringify({ kid, publicKey: toHex(pub), keyLabel: a.get('key-label') }) + '\n' : `${what} key ${kid} (label ${JSON.stringify(a.get('key-label'))})${a.has('pub') ? `, public key ${a.get('pub')}` : ''}\n`);
}

async function hsmKeygen(argv: string[], io: Io): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: [...PKCS11_OPTIONS, 'pub'] });
  noPositional(a);
  const { pkcs11GenerateKey } = await import('../../core/trust/pkcs11.ts');
  const pub = await pkcs11GenerateKey(hsmArgs(a, io));
  await reportKey(io, a, pub, 'generated');
  return EXIT_OK;
}

async function hsmImport(argv: string[], io: Io): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: [...PKCS11_OPTIONS, 'pub', 'in', 'pass-env'] });
  noPositional(a);
  const ref = hsmArgs(a, io);
  const file = a.require('in');
  const text = await readText(io, file, 'key');
  let seed: Uint8Array;
  if (isWrappedKeyFile(text)) seed = await unwrapKey(text, secret(io.env ?? process.env, a, 'pass-env', DEFAULT_PASS_ENV, `passphrase of ${file}`));
  else {
    const k = parsePem(text);
    if (k.kind !== 'ed25519-private') throw new InputError(`${file} holds no Ed25519 private key`);
    seed = k.seed;
  }
  try {
    const { pkcs11ImportKey } = await import('../../core/trust/pkcs11.ts');
    const { ed25519PublicKey } = await import('../../core/trust/ed25519.ts');
    const pub = await ed25519PublicKey(seed);
    await pkcs11ImportKey(ref, seed, pub);
    await reportKey(io, a, pub, 'imported');
  } finally {
    seed.fill(0);
  }
  return EXIT_OK;
}

// ------------------------------------------------------------------ profile sign / verify

const profileSignUsage =
  'usage: fieldbench profile sign DESCRIPTION.json --out PROFILE.cose [--force] [--json]\n' +
  signerUsage('key', 'owner key') + '\n' +
  '  DESCRIPTION.json (paths relative to it):\n' +
  '    { "name": "line 1", "model": "pump",\n' +
  '      "firmware": [ { "image": "app.signed.bin", "signingKeys": ["fw.pub.pem"] }   (or "version", "sha256", "securityCounter") ],\n' +
  '      "configuration": "factory-config.cose",            (optional: an owner-signed configuration)\n' +
  '      "manufacturer": "mfr.pub.pem",                      (the key that may issue identities under this profile)\n' +
  '      "identity": { "serial": { "pattern": "PUMP-{n:06}", "first": 1, "last": 99999 },\n' +
  '                    "devEui": { "first": "70b3d57ed0000000", "count": 65536 }, "mac": { "first": "02aabb000000", "count": 65536 },\n' +
  '                    "certValidityDays": 3650, "hwRev": "B" },\n' +
  '      "tests": { "echo": true, "attestation": "trusted", "interfaces": { "shell": "disabled" } },\n' +
  '      "label": { "widthMm": 50, "heightMm": 25, "code": "qr", "dpi": 203 },\n' +
  '      "stationCredential": "station.cred",               (optional: the station\'s technician credential)\n' +
  '      "validity": { "days": 90, "notBefore": "2026-12-01T00:00:00Z" } }';

const profileVerifyUsage = 'usage: fieldbench profile verify PROFILE.cose --owner OWNER.pub.pem [--owner ...] [--now ISO] [--json]\n' +
  '  what the station checks before it runs a unit: owner signature, validity window, schema';

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new InputError(`${where}: expected an object`);
  return v as Json;
}

function only(o: Json, keys: string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new InputError(`${where}: unknown field ${JSON.stringify(k)} (known: ${keys.join(', ')})`);
}

function str(o: Json, k: string, where: string, optional = false): string | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || !v) throw new InputError(`${where}.${k}: expected a non-empty string`);
  return v;
}

function int(o: Json, k: string, where: string, optional = false): number | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InputError(`${where}.${k}: expected a non-negative integer`);
  return v;
}

function time(o: Json, k: string, where: string): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new InputError(`${where}.${k}: expected an ISO date`);
  return Math.floor(t / 1000);
}

async function firmwareEntry(io: Io, base: string, v: unknown, i: number): Promise<ProfileFirmware> {
  const where = `firmware[${i}]`;
  const f = obj(v, where);
  only(f, ['image', 'version', 'sha256', 'securityCounter', 'signingKeys'], where);
  const keys = f.signingKeys;
  if (!Array.isArray(keys) || keys.length === 0) throw new InputError(`${where}.signingKeys: a list of firmware signing public key files (at least one)`);
  const signingKeys = await Promise.all(keys.map((k, j) => {
    if (typeof k !== 'string') throw new InputError(`${where}.signingKeys[${j}]: a file name`);
    return readEd25519Public(io, resolve(base, k), { what: 'firmware signing key', publicOnly: true });
  }));
  if (f.image !== undefined) {
    if (f.sha256 !== undefined || f.version !== undefined) throw new InputError(`${where}: give "image" or "version" + "sha256", not both`);
    const path = resolve(base, String(f.image));
    const img = await readFirmware(io, path);
    let rep;
    try {
      rep = await verifyImage(img.data, { keys: signingKeys });
    } catch (e) {
      if (e instanceof McubootError) throw new InputError(`${f.image}: ${e.message}`);
      throw e;
    }
    if (!rep.ok) throw new InputError(`${f.image}: the image is not one the station could install: ${rep.reason}`);
    if (rep.hashAlg !== 'sha256' || !rep.digest) throw new InputError(`${f.image}: the profile names images by their SHA-256 hash TLV; this one is ${rep.hashAlg}`);
    const sc = int(f, 'securityCounter', where, true);
    if (sc !== undefined && sc !== (rep.securityCounter ?? 0)) throw new InputError(`${where}.securityCounter ${sc} differs from the image's ${rep.securityCounter ?? 0}`);
    // the version as the device reports and attests it: 2.0.0, not 2.0.0+0
    return { version: rep.version!.replace(/\+0$/, ''), sha256: rep.digest, securityCounter: rep.securityCounter ?? 0, signingKeys };
  }
  const hex = str(f, 'sha256', where)!;
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new InputError(`${where}.sha256: 64 hex digits (the image's hash TLV)`);
  return { version: str(f, 'version', where)!, sha256: fromHex(hex), securityCounter: int(f, 'securityCounter', where, true) ?? 0, signingKeys };
}

/** Turn a profile description (JSON) into the profile's input. Paths are relative to `base`. */
export async function profileFromDescription(io: Io, base: string, desc: unknown): Promise<ProfileInput> {
  const d = obj(desc, 'description');
  only(d, ['name', 'model', 'firmware', 'configuration', 'manufacturer', 'identity', 'tests', 'label', 'stationCredential', 'validity'], 'description');
  if (!Array.isArray(d.firmware) || d.firmware.length === 0) throw new InputError('description.firmware: at least one image');
  const firmware: ProfileFirmware[] = [];
  for (const [i, f] of d.firmware.entries()) firmware.push(await firmwareEntry(io, base, f, i));
  const id = obj(d.identity, 'identity');
  only(id, ['serial', 'devEui', 'mac', 'certValidityDays', 'hwRev'], 'identity');
  const serial = obj(id.serial, 'identity.serial');
  only(serial, ['pattern', 'first', 'last'], 'identity.serial');
  const block = (k: 'devEui' | 'mac') => {
    if (id[k] === undefined) return undefined;
    const b = obj(id[k], `identity.${k}`);
    only(b, ['first', 'count'], `identity.${k}`);
    return { first: str(b, 'first', `identity.${k}`)!.toLowerCase().replace(/[:-]/g, ''), count: int(b, 'count', `identity.${k}`)! };
  };
  const devEui = block('devEui');
  const mac = block('mac');
  const policy: IdentifierPolicy = {
    serial: { pattern: str(serial, 'pattern', 'identity.serial')!, first: int(serial, 'first', 'identity.serial')!, last: int(serial, 'last', 'identity.serial')! },
    ...(devEui ? { devEui } : {}),
    ...(mac ? { mac } : {}),
  };
  try {
    compilePolicy(policy);
  } catch (e) {
    throw new InputError(`identity: ${(e as Error).message}`);
  }
  const t = obj(d.tests ?? { echo: true, attestation: 'trusted', interfaces: {} }, 'tests');
  only(t, ['echo', 'attestation', 'interfaces'], 'tests');
  if (t.echo !== undefined && typeof t.echo !== 'boolean') throw new InputError('tests.echo: true or false');
  if (t.attestation !== undefined && t.attestation !== 'trusted') throw new InputError('tests.attestation: "trusted" (the only verdict a unit may leave the line with)');
  const interfaces = obj(t.interfaces ?? {}, 'tests.interfaces') as Record<string, InterfaceStateName>;
  for (const [k, v] of Object.entries(interfaces)) if (!['open', 'authenticated', 'disabled'].includes(v)) throw new InputError(`tests.interfaces.${k}: open, authenticated or disabled`);
  let label: Record<string, string | number> | undefined;
  if (d.label !== undefined) {
    labelTemplate(d.label); // refuse a template the label module cannot print, now rather than on the line
    label = d.label as Record<string, string | number>;
  }
  const v = obj(d.validity ?? {}, 'validity');
  only(v, ['days', 'notBefore', 'notAfter'], 'validity');
  const notBefore = time(v, 'notBefore', 'validity') ?? Math.floor(Date.now() / 1000);
  const notAfterT = time(v, 'notAfter', 'validity');
  const days = int(v, 'days', 'validity', true);
  if (notAfterT !== undefined && days !== undefined) throw new InputError('validity: give "days" or "notAfter", not both');
  if (days === 0) throw new InputError('validity.days: at least 1');
  const notAfter = notAfterT ?? notBefore + (days ?? 90) * DAY;
  const mfr = await readEd25519Public(io, resolve(base, str(d, 'manufacturer', 'description')!), { what: 'manufacturer key', publicOnly: true });
  let configuration: Uint8Array | undefined;
  if (d.configuration !== undefined) {
    configuration = await readInput(io, resolve(base, str(d, 'configuration', 'description')!), 'factory configuration');
    signedConfigSequence(configuration, String(d.configuration));
  }
  const stationCredential = d.stationCredential !== undefined ? await readInput(io, resolve(base, str(d, 'stationCredential', 'description')!), 'station credential') : undefined;
  return {
    name: str(d, 'name', 'description')!,
    model: str(d, 'model', 'description')!,
    firmware,
    ...(configuration ? { configuration } : {}),
    identity: { policy, certValidityDays: int(id, 'certValidityDays', 'identity', true) ?? 3650, ...(id.hwRev !== undefined ? { hwRev: str(id, 'hwRev', 'identity') } : {}) },
    tests: { echo: t.echo !== false, attestation: 'trusted', interfaces },
    ...(label ? { label } : {}),
    ...(stationCredential ? { stationCredential } : {}),
    manufacturerKid: keyId(mfr),
    notBefore,
    notAfter,
  };
}

async function profileSign(argv: string[], io: Io): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json', 'force'], known: ['out', ...signerOptionNames('key')] });
  if (a.positional.length !== 1) throw new UsageError('expected one DESCRIPTION.json');
  const descPath = resolve(io.cwd, a.positional[0]);
  let desc: unknown;
  try {
    desc = JSON.parse(await readText(io, descPath, 'profile description'));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${a.positional[0]}: not valid JSON (${(e as Error).message})`);
  }
  const out = a.require('out');
  const input = await profileFromDescription(io, dirname(descPath), desc);
  const owner = await requireSignerFromArgs(a, io, { keyOption: 'key', what: 'owner key' });
  let bytes: Uint8Array;
  try {
    bytes = await issueProfile(input, owner);
  } finally {
    owner.close();
  }
  await writeOut(io, out, bytes, { force: a.has('force') });
  const { sha256 } = await import('@noble/hashes/sha2.js');
  const digest = toHex(sha256(bytes));
  if (a.has('json')) io.out(JSON.stringify({ file: out, bytes: bytes.length, digest, owner: toHex(keyId(owner.publicKey)), notAfter: iso(input.notAfter as number) }) + '\n');
  else io.out(`station profile ${JSON.stringify(input.name)} for ${input.model} -> ${out} (${bytes.length} bytes, sha256 ${digest})\n  signed by owner key ${toHex(keyId(owner.publicKey))} (${owner.describe}), valid until ${iso(input.notAfter as number)}\n`);
  return EXIT_OK;
}

async function profileVerify(argv: string[], io: Io): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json'], known: ['owner', 'now'] });
  if (a.positional.length !== 1) throw new UsageError('expected one PROFILE file');
  const owners = a.all('owner');
  if (!owners.length) throw new UsageError('--owner OWNER.pub.pem is required (the key the station trusts for profiles)');
  const now = a.get('now');
  const nowMs = now === undefined ? undefined : Date.parse(now);
  if (nowMs !== undefined && Number.isNaN(nowMs)) throw new UsageError(`--now: ${JSON.stringify(now)} is not an ISO date`);
  const r = await loadStationProfile(io, a.positional[0], owners, nowMs);
  if (!r.ok) {
    if (a.has('json')) io.out(JSON.stringify({ ok: false, code: r.code, reason: r.reason }) + '\n');
    io.err(`rejected (${r.code}): ${r.reason}\n`);
    return EXIT_REJECTED;
  }
  const p = r.profile;
  if (a.has('json')) io.out(JSON.stringify({ ok: true, name: p.name, model: p.model, digest: toHex(p.digest), notAfter: iso(p.notAfter) }) + '\n');
  else io.out(`OK station profile ${JSON.stringify(p.name)} for ${p.model}, sha256 ${toHex(p.digest)}, valid until ${iso(p.notAfter)}\n`);
  return EXIT_OK;
}

// ------------------------------------------------------------------ label

const labelUsage =
  'usage: fieldbench label --serial SN --model MODEL (--device-pub DEV.pub.pem | --key-fingerprint HEX32) [--deveui HEX16] [--mac HEX12]\n' +
  '       fieldbench label --records DIR --serial SN           (a unit the station recorded: reprint its label)\n' +
  '  --format svg|pdf|zpl (default from --out\'s extension) --out FILE [--force]\n' +
  '  [--template JSON|FILE | --profile PROFILE.cose]   label stock: {widthMm, heightMm, code: qr|datamatrix, dpi} (the profile\'s is used for layout only)';

async function labelVerb(argv: string[], io: Io): Promise<number> {
  const a = parseArgs(argv, { booleans: ['json', 'force'], known: ['serial', 'model', 'device-pub', 'key-fingerprint', 'deveui', 'mac', 'records', 'format', 'out', 'template', 'profile'] });
  noPositional(a);
  const out = a.require('out');
  const ext = /\.(svg|pdf|zpl)$/i.exec(out)?.[1]?.toLowerCase();
  const format = a.get('format') ?? ext;
  if (format !== 'svg' && format !== 'pdf' && format !== 'zpl') throw new UsageError('--format svg, pdf or zpl (or an --out file ending in one of them)');
  let data: LabelData;
  if (a.has('records')) {
    for (const o of ['model', 'device-pub', 'key-fingerprint', 'deveui', 'mac']) if (a.has(o)) throw new UsageError(`--${o} comes from the records with --records`);
    const serial = a.require('serial');
    const text = await readText(io, resolve(io.cwd, a.get('records')!, RECORDS_FILE), 'records log');
    const log = parseRecordsLog(text);
    if (!log.ok) throw new InputError(`${a.get('records')}: ${log.reason}`);
    const rows = controlRows(log.entries).filter((r) => r.serial === serial && r.verdict === 'provisioned');
    if (rows.length === 0) throw new InputError(`the records in ${a.get('records')} hold no provisioned unit with serial ${JSON.stringify(serial)}`);
    const r = rows.at(-1)!;
    if (!r.devicePublicKey) throw new InputError(`the record of ${serial} has no device key`);
    data = { serial, model: r.model, ...(r.devEui ? { devEui: r.devEui } : {}), ...(r.mac ? { mac: r.mac } : {}), keyFingerprint: keyFingerprint(fromHex(r.devicePublicKey)) };
  } else {
    if (a.has('device-pub') === a.has('key-fingerprint')) throw new UsageError('give --device-pub DEV.pub.pem or --key-fingerprint HEX (one of them)');
    const fp = a.has('device-pub') ? keyFingerprint(await readEd25519Public(io, a.get('device-pub')!, { what: 'device key', publicOnly: true })) : a.get('key-fingerprint')!;
    data = { serial: a.require('serial'), model: a.require('model'), keyFingerprint: fp };
    if (a.has('deveui')) data.devEui = a.get('deveui')!.replace(/[:-]/g, '');
    if (a.has('mac')) data.mac = a.get('mac')!.replace(/[:-]/g, '');
  }
  if (a.has('template') && a.has('profile')) throw new UsageError('give --template or --profile, not both');
  let template: unknown;
  if (a.has('template')) {
    const v = a.get('template')!;
    const text = /^\s*\{/.test(v) ? v : await readText(io, v, 'label template');
    try {
      template = JSON.parse(text);
    } catch (e) {
      throw new InputError(`--template: not valid JSON (${(e as Error).message})`);
    }
  } else if (a.has('profile')) {
    const { decodeProfileUnverified } = await import('../../core/factory/profile.ts');
    template = decodeProfileUnverified(await readInput(io, a.get('profile')!, 'profile')).label;
  }
  const body = format === 'svg' ? labelSvg(data, template) : format === 'zpl' ? labelZpl(data, template) : await labelPdf(data, template);
  await writeOut(io, out, body, { force: a.has('force') });
  io.out(a.has('json') ? JSON.stringify({ file: out, format, ...data }) + '\n' : `label ${data.model} ${data.serial} (${format.toUpperCase()}) -> ${out}\n`);
  return EXIT_OK;
}

export const commands: Record<string, CliCommand> = {
  'key wrap': command('a passphrase-wrapped key file (new key, or an existing PEM) for a station without an HSM', wrapUsage, keyWrap),
  'hsm keygen': command('generate the manufacturer (or station) key inside an HSM through PKCS#11', hsmKeygenUsage, hsmKeygen),
  'hsm import': command('move an existing Ed25519 key into an HSM through PKCS#11', hsmImportUsage, hsmImport),
  'profile sign': command('owner: sign a station profile (model, firmware by digest, configuration, identity policy, tests, label)', profileSignUsage, profileSign),
  'profile verify': command('check a station profile as the station does (owner signature, validity, schema)', profileVerifyUsage, profileVerify),
  label: command("a unit's label (serial, model, DevEUI / MAC, 2D code with the key fingerprint) as SVG, PDF or ZPL", labelUsage, labelVerb),
};

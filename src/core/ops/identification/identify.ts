/**
 * Identify a device (NIST IR 8259A "device identification"): read what it
 * says it is, verify the manufacturer certificate against a verified trust
 * bundle, make it prove possession of the certified key with a fresh random
 * nonce, compare with the physical label, and look for the same identity
 * under another device in the inventory.
 *
 * An op (outcome.ts): progress states, then one Outcome; the UI and the CLI
 * only render them. Nothing here writes to the store: see record.ts.
 */
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { listGroups, findGroup } from '../../groups/enum.ts';
import { type DeviceIdentity, SECURITY_GROUP_DEFAULT_ID, SECURITY_GROUP_NAME, SEC_RC, SecurityGroup, describeSecError, popMessage } from '../../groups/security.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { ed25519Verify } from '../../trust/ed25519.ts';
import { type DeviceIdentityCert, verifyIdentity } from '../../trust/identity.ts';
import { keyId } from '../../trust/keys.ts';
import type { TrustFailure } from '../../trust/result.ts';
import { IdentifierError, normaliseId, type IdKind } from '../../store/ids.ts';
import { equalOptBytes, toHex } from '../../base/bytes.ts';
import { isLabelPayload, keyFingerprint, LabelError, parseLabelPayload } from '../../factory/label-code.ts';
import { type Op, type Outcome, because, cancellableSession, contract, done, failed, unsupported } from '../outcome.ts';

export const UNSUPPORTED_REASON = 'identity and attestation not supported by this device';

/** What the technician typed or scanned from the device's label. */
export interface DeviceLabel {
  serial?: string;
  /** EUI-48, any separators. */
  mac?: string;
  /** EUI-64 (LoRaWAN DevEUI), any separators. */
  devEui?: string;
  /** A factory label's key fingerprint (keyFingerprint of the identity key, 32 hex digits). */
  keyFingerprint?: string;
  /** A factory label's model. */
  model?: string;
}

/** A device record as the duplicate check needs it (inventory DeviceRecord fits). */
export interface InventoryDevice {
  id?: number;
  serial?: string;
  devicePublicKey?: string;
  ueid?: string;
  mac?: string;
  devEui?: string;
  label?: string;
  lastSeen?: number;
}

/** Inventory lookups for the duplicate check: every record carrying this identifier (normalised value). */
export interface InventoryLookup {
  findByIdentifier(id: { kind: IdKind; value: string }): Promise<InventoryDevice[]>;
}

export type CheckResult = 'pass' | 'warn' | 'fail';
export type IdentifyCheckName = 'certificate' | 'binding' | 'possession' | 'label' | 'duplicates';

export interface IdentifyCheck {
  check: IdentifyCheckName;
  result: CheckResult;
  detail: string;
  /** Stable code for failures of the certificate check. */
  code?: TrustFailure;
}

export type IdentityBadge = 'verified' | 'unverified' | 'label-mismatch' | 'duplicate';

export interface IdentifyResult {
  /** What the device presented over SMP. */
  presented: DeviceIdentity;
  /** The verified certificate (only when it chains to a manufacturer root and is not revoked). */
  certificate?: DeviceIdentityCert;
  /** Raw certificate bytes as read (for the record). */
  certificateBytes?: Uint8Array;
  label?: DeviceLabel;
  checks: IdentifyCheck[];
  badges: IdentityBadge[];
  /** True when the certificate, the binding and the proof of possession all pass. */
  verified: boolean;
  /** The device public key to use for attestation: set only when verified. */
  devicePublicKey?: Uint8Array;
  groupId: number;
}

export type IdentifyProgress =
  | { kind: 'finding-group' }
  | { kind: 'reading-identity' }
  | { kind: 'reading-certificate' }
  | { kind: 'verifying-certificate' }
  | { kind: 'proving-possession' }
  | { kind: 'comparing-label' }
  | { kind: 'checking-duplicates' };

/**
 * Why an identification ends without a result (on top of link/device/internal).
 * A device that fails the checks is NOT a failure: it is a done outcome whose
 * result says unverified (its checks give the reasons).
 */
/** identity-unreadable: the device did not give its identity; factory-fresh: it has none yet (a factory station provisions it). */
export type IdentifyFailure = 'identity-unreadable' | 'factory-fresh';

export type IdentifyOutcome = Outcome<IdentifyResult, IdentifyFailure>;
export type IdentifyState = IdentifyProgress | IdentifyOutcome;

export interface IdentifyContext {
  /** A verified trust bundle (verifyBundle). */
  bundle: TrustBundle;
  label?: DeviceLabel;
  inventory?: InventoryLookup;
  /** Date or ms since the epoch; default now. */
  now?: Date | number;
  /** The security group id, if already known (skips the enum lookup). */
  groupId?: number;
  /** Cancels the op: it stops at once and ends `cancelled`. */
  signal?: AbortSignal;
}

/**
 * Find the security group: by name in the Enum group's details, else (a
 * device that lists ids only, or has no Enum group) by probing the default
 * id. Returns null when the device does not have it.
 */
export async function findSecurityGroup(session: SmpSession): Promise<SecurityGroup | null> {
  const c = session.client;
  let ids: number[] | null = null;
  try {
    const groups = await listGroups(c);
    const named = findGroup(groups, SECURITY_GROUP_NAME);
    if (named) return new SecurityGroup(c, named.id);
    ids = groups.map((g) => g.id);
    // The default id under a real name of its own is some other application's group.
    const atDefault = groups.find((x) => x.id === SECURITY_GROUP_DEFAULT_ID);
    if (atDefault && atDefault.name !== `group ${SECURITY_GROUP_DEFAULT_ID}`) return null;
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
  }
  if (ids && !ids.includes(SECURITY_GROUP_DEFAULT_ID)) return null;
  const g = new SecurityGroup(c, SECURITY_GROUP_DEFAULT_ID);
  try {
    await g.identity();
    return g;
  } catch (e) {
    // A factory-fresh device answers in our group's own terms: it is ours, it just has no identity yet.
    if (e instanceof SmpError && e.kind === 'group' && e.group === SECURITY_GROUP_DEFAULT_ID && e.rc === SEC_RC.NotProvisioned) return g;
    // rc 8 (no such group), another group's error, or a reply without our fields: not ours.
    if (e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group' || e.kind === 'decode')) return null;
    throw e;
  }
}

function errorMessage(e: unknown): string {
  if (e instanceof SmpError) return describeSecError(e);
  return e instanceof Error ? e.message : String(e);
}

const ID_NAMES: Record<IdKind, string> = { serial: 'serial', devicePublicKey: 'device key', ueid: 'UEID', mac: 'MAC', devEui: 'DevEUI' };

function shortHex(h: string): string {
  return h.length > 16 ? `${h.slice(0, 16)}…` : h;
}

/** Compare what the device presents with what its certificate names. */
export function bindingCheck(presented: DeviceIdentity, cert: DeviceIdentityCert): IdentifyCheck {
  const problems: string[] = [];
  if (!equalOptBytes(presented.devicePublicKey, cert.devicePublicKey)) {
    problems.push(`the device presents key ${toHex(keyId(presented.devicePublicKey))}, the certificate certifies ${toHex(keyId(cert.devicePublicKey))}`);
  }
  if (presented.serial !== cert.serial) problems.push(`the device reports serial ${JSON.stringify(presented.serial)}, the certificate is for ${JSON.stringify(cert.serial)}`);
  if (!equalOptBytes(presented.deviceEncKey, cert.deviceEncKey)) problems.push('the device presents an encryption key other than the certified one');
  if (presented.model !== cert.model) problems.push(`the device reports model ${JSON.stringify(presented.model)}, the certificate says ${JSON.stringify(cert.model)}`);
  for (const [k, name] of [['ueid', 'UEID'], ['mac', 'MAC'], ['devEui', 'DevEUI']] as const) {
    const p = presented[k];
    const c = cert[k];
    if (c && !equalOptBytes(p, c)) problems.push(`the device reports ${name} ${p ? toHex(p) : '(none)'}, the certificate says ${toHex(c)}`);
    else if (p && !c) problems.push(`the device reports ${name} ${toHex(p)}, which its certificate does not certify`);
  }
  if (problems.length) return { check: 'binding', result: 'fail', detail: problems.join('; '), code: 'key-mismatch' };
  return { check: 'binding', result: 'pass', detail: `the certificate names exactly the key and serial ${JSON.stringify(cert.serial)} the device presents` };
}

/** Physical (label) against logical (what the device presents). */
export function labelCheck(presented: DeviceIdentity, label: DeviceLabel | undefined): IdentifyCheck {
  const entered = label ? (['serial', 'mac', 'devEui'] as const).filter((k) => label[k] !== undefined && label[k]!.trim() !== '') : [];
  const fp = label?.keyFingerprint?.trim().toLowerCase();
  if (!label || (entered.length === 0 && !fp)) return { check: 'label', result: 'warn', detail: 'no label entered: the physical device was not compared with its logical identity' };
  const problems: string[] = [];
  const agree: string[] = [];
  for (const k of entered) {
    const raw = label[k]!;
    let want: string;
    try {
      want = normaliseId(k, raw);
    } catch (e) {
      problems.push(`the label's ${ID_NAMES[k]} ${JSON.stringify(raw)} is not valid (${e instanceof IdentifierError ? e.message : String(e)})`);
      continue;
    }
    const has = k === 'serial' ? presented.serial.trim() : presented[k] ? toHex(presented[k]!) : undefined;
    if (has === undefined) problems.push(`the label shows ${ID_NAMES[k]} ${want}, but the device reports none`);
    else if (has === want) agree.push(ID_NAMES[k]);
    else if (k === 'serial' && has.toLowerCase() === want.toLowerCase()) problems.push(`the label's serial ${JSON.stringify(want)} differs from the device's ${JSON.stringify(has)} in letter case`);
    else problems.push(`the label shows ${ID_NAMES[k]} ${JSON.stringify(want)}, the device reports ${JSON.stringify(has)}`);
  }
  if (fp) {
    const has = keyFingerprint(presented.devicePublicKey);
    if (fp === has) agree.push('key fingerprint');
    else problems.push(`the label was printed for identity key ${fp.slice(0, 16)}…, the device holds key ${has.slice(0, 16)}…`);
  }
  if (label.model !== undefined && label.model !== presented.model) problems.push(`the label is for model ${JSON.stringify(label.model)}, the device reports ${JSON.stringify(presented.model)}`);
  if (problems.length) return { check: 'label', result: 'fail', detail: problems.join('; ') };
  return { check: 'label', result: 'pass', detail: `label matches the device (${agree.join(', ')})` };
}

/**
 * Same logical identifier (device key / UEID / MAC / DevEUI) recorded under
 * another physical serial, or this serial recorded with another device key
 * or UEID. A different MAC or DevEUI under the same serial is a warning:
 * those can be rotated by signed configuration.
 */
export async function duplicateCheck(presented: DeviceIdentity, label: DeviceLabel | undefined, inventory: InventoryLookup | undefined): Promise<IdentifyCheck> {
  if (!inventory) return { check: 'duplicates', result: 'warn', detail: 'no inventory available: duplicates not checked' };
  const serials = new Set<string>([presented.serial.trim()]);
  if (label?.serial?.trim()) serials.add(label.serial.trim());
  const logical: [Exclude<IdKind, 'serial'>, string][] = [['devicePublicKey', toHex(presented.devicePublicKey)]];
  if (presented.ueid) logical.push(['ueid', toHex(presented.ueid)]);
  if (presented.mac) logical.push(['mac', toHex(presented.mac)]);
  if (presented.devEui) logical.push(['devEui', toHex(presented.devEui)]);
  const fails: string[] = [];
  const warns: string[] = [];
  for (const [kind, value] of logical) {
    for (const r of await inventory.findByIdentifier({ kind, value })) {
      if (r.serial !== undefined && !serials.has(r.serial)) {
        fails.push(`${ID_NAMES[kind]} ${shortHex(value)} is already recorded under serial ${JSON.stringify(r.serial)}${r.id !== undefined ? ` (record ${r.id})` : ''}`);
      }
    }
  }
  const mine = Object.fromEntries(logical) as Partial<Record<IdKind, string>>;
  const seenRecords = new Set<number | undefined>();
  for (const serial of serials) {
    for (const r of await inventory.findByIdentifier({ kind: 'serial', value: serial })) {
      if (r.id !== undefined && seenRecords.has(r.id)) continue;
      seenRecords.add(r.id);
      for (const kind of ['devicePublicKey', 'ueid', 'mac', 'devEui'] as const) {
        const theirs = r[kind];
        if (theirs === undefined || mine[kind] === undefined || theirs === mine[kind]) continue;
        const line = `serial ${JSON.stringify(serial)} is recorded with ${ID_NAMES[kind]} ${shortHex(theirs)}, this device has ${shortHex(mine[kind]!)}`;
        if (kind === 'devicePublicKey' || kind === 'ueid') fails.push(line);
        else warns.push(`${line} (rotated?)`);
      }
    }
  }
  if (fails.length) return { check: 'duplicates', result: 'fail', detail: [...new Set(fails)].join('; ') };
  if (warns.length) return { check: 'duplicates', result: 'warn', detail: [...new Set(warns)].join('; ') };
  return { check: 'duplicates', result: 'pass', detail: 'no other device in the inventory carries these identifiers' };
}

export function badgesOf(checks: IdentifyCheck[]): { verified: boolean; badges: IdentityBadge[] } {
  const passed = (name: IdentifyCheckName) => checks.some((c) => c.check === name && c.result === 'pass');
  const verified = passed('certificate') && passed('binding') && passed('possession');
  const badges: IdentityBadge[] = [verified ? 'verified' : 'unverified'];
  if (checks.some((c) => c.check === 'label' && c.result === 'fail')) badges.push('label-mismatch');
  if (checks.some((c) => c.check === 'duplicates' && c.result === 'fail')) badges.push('duplicate');
  return { verified, badges };
}

export function identifyDevice(session: SmpSession, ctx: IdentifyContext): Op<IdentifyProgress, IdentifyResult, IdentifyFailure> {
  return contract(identifyBody(cancellableSession(session, ctx.signal), ctx), { signal: ctx.signal });
}

async function* identifyBody(session: SmpSession, ctx: IdentifyContext): AsyncGenerator<IdentifyState> {
  let g: SecurityGroup | null;
  yield { kind: 'finding-group' };
  g = ctx.groupId !== undefined ? new SecurityGroup(session.client, ctx.groupId) : await findSecurityGroup(session);
  if (!g) {
    yield unsupported(UNSUPPORTED_REASON);
    return;
  }

  yield { kind: 'reading-identity' };
  let presented: DeviceIdentity;
  try {
    presented = await g.identity();
  } catch (e) {
    if (e instanceof SmpError && e.notSupported) {
      yield unsupported(UNSUPPORTED_REASON);
      return;
    }
    if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e;
    if (e instanceof SmpError && e.kind === 'group' && e.rc === SEC_RC.NotProvisioned) {
      yield failed('factory-fresh', 'the device is factory-fresh: it has no identity yet (a factory station provisions it: fieldbench bench run)', { by: 'device' });
      return;
    }
    yield failed('identity-unreadable', because('could not read the device identity', errorMessage(e)), { by: 'device' });
    return;
  }
  const checks: IdentifyCheck[] = [];

  yield { kind: 'reading-certificate' };
  let certBytes: Uint8Array | undefined;
  let certProblem: string | undefined;
  if (presented.certLength === 0) {
    certProblem = 'the device has no identity certificate (not provisioned by a manufacturer)';
  } else {
    try {
      certBytes = await g.certificate();
    } catch (e) {
      if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
      certProblem = `the identity certificate could not be read: ${errorMessage(e)}`;
    }
  }

  yield { kind: 'verifying-certificate' };
  let certificate: DeviceIdentityCert | undefined;
  if (certBytes) {
    const v = await verifyIdentity(certBytes, { bundle: ctx.bundle, now: ctx.now });
    if (v.ok) {
      certificate = v.value;
      checks.push({
        check: 'certificate',
        result: 'pass',
        detail: `signed by manufacturer key ${toHex(v.value.issuer)}, valid until ${new Date(v.value.notAfter * 1000).toISOString().slice(0, 10)}, not revoked`,
      });
      checks.push(bindingCheck(presented, v.value));
    } else {
      checks.push({ check: 'certificate', result: 'fail', detail: v.reason, code: v.code });
    }
  } else {
    checks.push({ check: 'certificate', result: 'fail', detail: certProblem!, code: 'malformed' });
  }

  yield { kind: 'proving-possession' };
  const key = certificate?.devicePublicKey ?? presented.devicePublicKey;
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  try {
    const sig = await g.prove(nonce);
    if (sig.length === 64 && (await ed25519Verify(sig, popMessage(nonce), key))) {
      checks.push({ check: 'possession', result: 'pass', detail: `signed a fresh random nonce with ${certificate ? 'the certified' : 'the presented'} key ${toHex(keyId(key))}` });
    } else {
      checks.push({ check: 'possession', result: 'fail', detail: `the signature over a fresh random nonce does not verify with ${certificate ? 'the certified' : 'the presented'} key ${toHex(keyId(key))}: the device does not hold that key` });
    }
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
    checks.push({ check: 'possession', result: 'fail', detail: `the device refused to prove possession: ${errorMessage(e)}` });
  }

  yield { kind: 'comparing-label' };
  checks.push(labelCheck(presented, ctx.label));

  yield { kind: 'checking-duplicates' };
  checks.push(await duplicateCheck(presented, ctx.label, ctx.inventory));

  const { verified, badges } = badgesOf(checks);
  const identity: IdentifyResult = {
    presented,
    certificate,
    certificateBytes: certBytes,
    label: ctx.label,
    checks,
    badges,
    verified,
    devicePublicKey: verified ? key : undefined,
    groupId: g.id,
  };
  yield done(identity);
}

/**
 * Read a scanned label code: a fieldbench factory label (FB1;S=..;M=..;..;K=..,
 * every field, strictly: LabelError when damaged); a plain serial; key=value pairs (SN / S/N /
 * serial, MAC, DevEUI / EUI) separated by ';', ',', '|' or new lines; or a
 * LoRaWAN TR005 QR code (LW:D0:JoinEUI:DevEUI:ProfileID[:options], with an
 * optional S<serial> option).
 */
export function parseLabelCode(text: string): DeviceLabel {
  const t = text.trim();
  if (isLabelPayload(t)) {
    // a fieldbench factory label (src/core/factory/label-code.ts): strict, a damaged code is an error, not a guess
    let l;
    try {
      l = parseLabelPayload(t);
    } catch (e) {
      throw new LabelError('bad-payload', `the label's code is damaged: ${(e as Error).message}`);
    }
    return { serial: l.serial, model: l.model, keyFingerprint: l.keyFingerprint, ...(l.devEui ? { devEui: l.devEui } : {}), ...(l.mac ? { mac: l.mac } : {}) };
  }
  if (/^LW:D0:/i.test(t)) {
    const parts = t.split(':');
    const out: DeviceLabel = {};
    if (parts[3]) out.devEui = parts[3];
    for (const opt of parts.slice(5)) if (/^S/i.test(opt) && opt.length > 1) out.serial = opt.slice(1);
    return out;
  }
  const pairs = t.split(/[;\n|,]+/).map((p) => p.trim()).filter(Boolean);
  const out: DeviceLabel = {};
  let kv = false;
  for (const p of pairs) {
    const m = /^([A-Za-z/ _-]+?)\s*[:=]\s*(.+)$/.exec(p);
    if (!m) continue;
    const k = m[1].toLowerCase().replace(/[\s/_-]/g, '');
    const v = m[2].trim();
    if (k === 'sn' || k === 'serial' || k === 'serialnumber' || k === 's') (out.serial = v), (kv = true);
    else if (k === 'mac' || k === 'macaddress') (out.mac = v), (kv = true);
    else if (k === 'deveui' || k === 'eui' || k === 'eui64') (out.devEui = v), (kv = true);
  }
  if (!kv && t && !/[\n;|]/.test(t)) return { serial: t };
  return out;
}

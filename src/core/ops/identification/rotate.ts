/**
 * Key and identifier rotation (NIST IR 8259A device identification and data
 * protection): replace the device's LoRaWAN DevEUI (an identifier the network
 * operator assigns) or its LoRaWAN network key (AppKey) as an action of its
 * own, behind a confirmation and a technician login whose credential grants
 * `rotate-keys` (the owner issued it; the device checks it again). The new
 * value travels only inside the protected session (encrypted); the device
 * answers with a receipt signed by its identity key over (what, old, new,
 * nonce), which the op checks against the device's key, so the record proves
 * which device rotated what. A key is never in a state, a result or a record:
 * only its key id (first 8 bytes of its SHA-256).
 *
 *   rotateDevice(session, ctx)   finding-group → identifying → confirming → authenticating → rotating → verifying → checking → done
 *
 * What rotation does not touch: the identity key and the sealing key are
 * bound by the manufacturer's certificate; replacing them is re-provisioning
 * (an owner-signed authorization and a new certificate, factory/provision.ts).
 */
import { toHex } from '../../base/bytes.ts';
import { FieldbenchError } from '../../base/errors.ts';
import { fromLooseHex, equalBytes } from '../../base/bytes.ts';
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { ROTATION_SIZES, ROTATION_TARGETS, type RotationTarget, SecurityGroup, describeSecError, rotationKeyId, rotationReceiptMessage, secErrorName } from '../../groups/security.ts';
import { ed25519Verify } from '../../trust/ed25519.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { loginRefusal } from '../access/login.ts';
import { UNSUPPORTED_REASON, findSecurityGroup } from './identify.ts';
import { type Op, type Outcome, cancelled, isLinkLoss, cancellableSession, contract, done, failed, unsupported } from '../outcome.ts';

export { ROTATION_TARGETS, type RotationTarget } from '../../groups/security.ts';

/** What each target is, in words (CLI, UI, records). */
export const ROTATION_WORDS: Record<RotationTarget, string> = {
  'dev-eui': 'LoRaWAN DevEUI (identifier)',
  'app-key': 'LoRaWAN network key (AppKey)',
};

export type RotateProgress =
  | { kind: 'finding-group' }
  | { kind: 'identifying' }
  /** What the technician confirms: old and new (DevEUI hex, or key ids). */
  | { kind: 'confirming'; serial: string; model: string; what: RotationTarget; old: string; new: string }
  | { kind: 'authenticating' }
  | { kind: 'rotating' }
  | { kind: 'verifying' }
  | { kind: 'checking' };

export interface RotateResult {
  serial: string;
  what: RotationTarget;
  /** DevEUI (hex) or the old key's id (hex; '' when the device held no key). */
  old: string;
  /** DevEUI (hex) or the new key's id (hex). */
  new: string;
  /** The device's signature over the receipt (hex), verified against its identity key. */
  receiptSig: string;
  /** SHA-256 (hex) of the signed receipt message. */
  receiptSha256: string;
}

export type RotateFailure = 'bad-value' | 'wrong-device' | 'login' | 'permission' | 'refused' | 'bad-receipt' | 'not-rotated' | 'device';
export type RotateOutcome = Outcome<RotateResult, RotateFailure>;
export type RotateState = RotateProgress | RotateOutcome;

export interface RotateContext {
  what: RotationTarget;
  /** The new DevEUI (8 bytes) or network key (16 bytes): newRotationValue('app-key') makes a key. */
  value: Uint8Array;
  /** Ask the technician; false declines (cancelled, nothing sent). */
  confirm: (c: Extract<RotateProgress, { kind: 'confirming' }>) => Promise<boolean>;
  /** The technician login (rotate-keys), through the op's own group (so a cancel stops it too). */
  authenticate: (group: SecurityGroup) => Promise<unknown>;
  /** The device key from a VERIFIED identification: the device must present it, and the receipt must verify under it. */
  devicePublicKey?: Uint8Array;
  group?: SecurityGroup;
  signal?: AbortSignal;
}

/** A fresh random network key (16 bytes), made on this machine; the caller keeps it for the network server. */
export function newRotationValue(what: RotationTarget): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(ROTATION_SIZES[what]));
}

/** Parse a rotation value from hex (CLI, forms): a typed error says what is wrong. */
export function parseRotationValue(what: RotationTarget, text: string): Uint8Array {
  let b: Uint8Array;
  try {
    b = fromLooseHex(text);
  } catch {
    throw new FieldbenchError('bad-value', `"${text.trim()}" is not hexadecimal`);
  }
  const problem = valueProblem(what, b);
  if (problem) throw new FieldbenchError('bad-value', problem);
  return b;
}

/** Why a value cannot be used, or null. */
export function valueProblem(what: RotationTarget, b: Uint8Array): string | null {
  if (!ROTATION_TARGETS.includes(what)) return `"${what}" is not something a device rotates: use ${ROTATION_TARGETS.join(' or ')}`;
  const size = ROTATION_SIZES[what];
  if (!(b instanceof Uint8Array)) return `no new ${ROTATION_WORDS[what]} was given`;
  if (b.length !== size) return `a new ${ROTATION_WORDS[what]} is ${size} bytes (${size * 2} hex digits), not ${b.length}`;
  if (b.every((x) => x === 0) || b.every((x) => x === 0xff)) return `a new ${ROTATION_WORDS[what]} cannot be all zeros or all ones`;
  return null;
}


async function* rotateBody(session: SmpSession, ctx: RotateContext): AsyncGenerator<RotateState> {
  const problem = valueProblem(ctx.what, ctx.value);
  if (problem) {
    yield failed('bad-value', `not rotated: ${problem}`, { by: 'tool' });
    return;
  }
  yield { kind: 'finding-group' };
  const g = ctx.group ? new SecurityGroup(session.client, ctx.group.id) : await findSecurityGroup(session);
  if (!g) {
    yield unsupported(UNSUPPORTED_REASON);
    return;
  }
  yield { kind: 'identifying' };
  let id;
  try {
    id = await g.identity();
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    yield failed('device', `could not read who the device is: ${describeSecError(e)}`, { by: 'device' });
    return;
  }
  if (ctx.devicePublicKey && !equalBytes(ctx.devicePublicKey, id.devicePublicKey)) {
    yield failed('wrong-device', 'not rotated: this is not the device that was identified (it presents another device key): identify it again', { by: 'tool' });
    return;
  }
  const key = ctx.devicePublicKey ?? id.devicePublicKey;
  const expectedNew = ctx.what === 'dev-eui' ? ctx.value : rotationKeyId(ctx.value);
  const oldShown = ctx.what === 'dev-eui' ? (id.devEui ? toHex(id.devEui) : '') : '';
  if (ctx.what === 'dev-eui' && id.devEui && equalBytes(id.devEui, ctx.value)) {
    yield failed('bad-value', `not rotated: the device already has DevEUI ${toHex(ctx.value)}`, { by: 'tool' });
    return;
  }
  const confirming = { kind: 'confirming' as const, serial: id.serial, model: id.model, what: ctx.what, old: oldShown, new: toHex(expectedNew) };
  yield confirming;
  if (!(await ctx.confirm(confirming))) {
    yield cancelled('not rotated: the technician did not confirm');
    return;
  }
  yield { kind: 'authenticating' };
  const refused = await loginRefusal(ctx.authenticate, g);
  if (refused) {
    yield failed('login', `not rotated: ${refused.message}`, { by: refused.by });
    return;
  }
  yield { kind: 'rotating' };
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  let receipt;
  try {
    receipt = await g.rotate(ctx.what, ctx.value, nonce);
  } catch (e) {
    if (isLinkLoss(e)) throw e;
    const name = secErrorName(e);
    const words = describeSecError(e);
    if (name === 'Permission') yield failed('permission', `not rotated: the device refused: ${words} (the credential needs the rotate-keys permission)`, { by: 'device' });
    else if (name === 'NotAuthenticated' || name === 'SessionRequired') yield failed('login', `not rotated: the device refused: ${words}`, { by: 'device' });
    else if (e instanceof SmpError && e.notSupported) yield unsupported('this device cannot rotate keys or identifiers');
    else if (name) yield failed('refused', `not rotated: the device refused: ${words}`, { by: 'device' });
    else yield failed('device', `not rotated: ${words}`, { by: 'device' });
    return;
  }
  yield { kind: 'verifying' };
  const msg = rotationReceiptMessage({ what: ctx.what, old: receipt.old, new: receipt.new, nonce });
  if (!equalBytes(receipt.new, expectedNew)) {
    yield failed('bad-receipt', `the device's receipt names ${toHex(receipt.new)}, not the ${ROTATION_WORDS[ctx.what]} sent (${toHex(expectedNew)})`, { by: 'device' });
    return;
  }
  if (!(await ed25519Verify(receipt.sig, msg, key).catch(() => false))) {
    yield failed('bad-receipt', "the rotation receipt is not signed by this device's identity key: the answer did not come from the identified device", { by: 'device' });
    return;
  }
  if (ctx.what === 'dev-eui') {
    yield { kind: 'checking' };
    const after = await g.identity();
    if (!after.devEui || !equalBytes(after.devEui, ctx.value)) {
      yield failed('not-rotated', `the device signed the rotation, but still reports DevEUI ${after.devEui ? toHex(after.devEui) : '(none)'}`, { by: 'device' });
      return;
    }
  }
  yield done({ serial: id.serial, what: ctx.what, old: toHex(receipt.old), new: toHex(receipt.new), receiptSig: toHex(receipt.sig), receiptSha256: toHex(sha256(msg)) });
}

/** Rotate the device's DevEUI or network key (confirmation, `rotate-keys` permission, signed receipt). */
export function rotateDevice(session: SmpSession, ctx: RotateContext): Op<RotateProgress, RotateResult, RotateFailure> {
  return contract(rotateBody(cancellableSession(session, ctx.signal), ctx), { signal: ctx.signal });
}

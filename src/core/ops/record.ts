/**
 * Records of the identification, state-awareness, access and data-protection
 * ops (identify, attest, events, interface changes, wipe, rotation): each Outcome becomes one audit entry and an inventory update (a
 * RecordPlan, record-plan.ts). The app commits the plan (audit entry signed by
 * the technician through the signer callback, and the inventory update, in one
 * transaction); the CLI appends the entry to its records log. The ops
 * themselves stay free of storage, and the UI holds no audit policy.
 *
 * An identity that did not verify is audited but does NOT update the
 * inventory: its identifiers are claims, and merging them into the record of
 * the genuine device (or creating a look-alike record) would let a forgery
 * shape the inventory.
 */
import type { FieldbenchDB } from '../store/db.ts';
import { findByIdentifier } from '../store/inventory.ts';
import type { DeviceIdentifiersInput } from '../store/ids.ts';
import { toHex } from '../base/bytes.ts';
import { claimsToJson, type Appraisal, type EatClaims } from '../trust/eat.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import type { IdentifyOutcome, IdentifyResult, InventoryLookup } from './identification/identify.ts';
import type { AttestOutcome, EventsOutcome } from './state-awareness/attest.ts';
import type { InterfacesOutcome } from './access/interfaces.ts';
import type { WipeOutcome } from './data-protection/wipe.ts';
import { ROTATION_WORDS, type RotateOutcome } from './identification/rotate.ts';
import type { Cancelled, Failed, Unsupported } from './outcome.ts';
import { commitRecord, type RecordContext, type RecordPlan, type Recorded } from './record-plan.ts';

export type { RecordContext, Recorded } from './record-plan.ts';

/** The inventory as the identify op's duplicate check wants it. */
export function inventoryLookup(db: FieldbenchDB): InventoryLookup {
  return { findByIdentifier: (id) => findByIdentifier(db, id) };
}

/** The identifiers a device presented (as its records name it). */
export function identifiers(r: IdentifyResult): DeviceIdentifiersInput {
  const p = r.presented;
  return { serial: p.serial, devicePublicKey: p.devicePublicKey, ueid: p.ueid, mac: p.mac, devEui: p.devEui };
}

function labelText(r: IdentifyResult): string | undefined {
  const l = r.label;
  if (!l) return undefined;
  const parts = [l.serial && `serial ${l.serial.trim()}`, l.mac && `MAC ${l.mac.trim()}`, l.devEui && `DevEUI ${l.devEui.trim()}`].filter(Boolean);
  return parts.length ? parts.join(', ') : undefined;
}

/** The inventory's one-word verdict for an identification: the most serious badge. */
export function inventoryVerdict(r: IdentifyResult): string {
  if (!r.verified) return 'unverified';
  if (r.badges.includes('duplicate')) return 'duplicate';
  if (r.badges.includes('label-mismatch')) return 'label-mismatch';
  return 'verified';
}

/** A device known by its serial was seen (nothing else about it changes). */
export function seenUpdate(device: DeviceIdentifiersInput | undefined, time: number): RecordPlan['inventory'] {
  return device?.serial ? { ...device, seen: time } : null;
}

/** An op that ended without a result: failed (with its code), cancelled or not supported. */
function unfinishedPlan(op: string, o: Failed | Cancelled | Unsupported, device: DeviceIdentifiersInput | undefined, time: number): RecordPlan {
  const details: Record<string, unknown> = o.kind === 'failed' ? { code: o.code, reason: o.reason, retryable: o.retryable } : { reason: o.reason };
  const outcome = o.kind === 'failed' ? 'failed' : o.kind === 'cancelled' ? 'cancelled' : 'not-supported';
  return { audit: { op, device: device ?? {}, outcome, details, time }, inventory: seenUpdate(device, time) };
}

/** The identify op's record: a done outcome as its verdict; the others as failed / cancelled / not-supported. */
export function identifyRecord(o: IdentifyOutcome, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  const time = opts.time ?? Date.now();
  return o.kind === 'done' ? identificationPlan(o.result, time) : unfinishedPlan('identify', o, opts.device, time);
}

function identificationPlan(r: IdentifyResult, time: number): RecordPlan {
  const details: Record<string, unknown> = {
    badges: r.badges,
    checks: r.checks.map((c) => ({ check: c.check, result: c.result, detail: c.detail, ...(c.code ? { code: c.code } : {}) })),
    model: r.presented.model,
    hwRev: r.presented.hwRev,
  };
  if (r.certificate) {
    details.certSerial = toHex(r.certificate.certSerial);
    details.issuer = toHex(r.certificate.issuer);
    details.notAfter = r.certificate.notAfter;
  }
  if (r.certificateBytes) details.certificateSha256 = toHex(sha256(r.certificateBytes));
  const label = labelText(r);
  if (label) details.label = label;
  const outcome = !r.verified ? 'rejected' : r.badges.length > 1 ? 'attention' : 'ok';
  return {
    audit: { op: 'identify', device: identifiers(r), outcome, details, time },
    inventory: r.verified ? { ...identifiers(r), model: r.presented.model, verdict: inventoryVerdict(r), verdictTime: time, seen: time, label } : null,
  };
}

/** Record a finished identification (audit entry + inventory update, one transaction). */
export function recordIdentification(ctx: RecordContext, r: IdentifyResult): Promise<Recorded> {
  return commitRecord(ctx, identificationPlan(r, ctx.now ?? Date.now()));
}

export interface AttestationRecord {
  /** Identifiers of the device, from its VERIFIED identity. */
  device: DeviceIdentifiersInput;
  appraisal: Appraisal;
  nonce: Uint8Array;
  evidence: Uint8Array;
}

/** The attest op's record: an appraisal as its verdict; the other outcomes as failed / cancelled / not-supported. */
export function attestRecord(o: AttestOutcome, opts: { device: DeviceIdentifiersInput; time?: number }): RecordPlan {
  const time = opts.time ?? Date.now();
  return o.kind === 'done' ? attestationPlan({ device: opts.device, ...o.result }, time) : unfinishedPlan('attest', o, opts.device, time);
}

function attestationPlan(a: AttestationRecord, time: number): RecordPlan {
  const claims = a.appraisal.claims as EatClaims | null;
  const details: Record<string, unknown> = {
    verdict: a.appraisal.verdict,
    reasons: a.appraisal.reasons.map((r) => ({ check: r.check, result: r.result, detail: r.detail })),
    nonce: toHex(a.nonce),
    evidenceSha256: toHex(sha256(a.evidence)),
  };
  let firmware: string | undefined;
  if (claims) {
    const j = claimsToJson(claims);
    details.claims = {
      profile: j.profile,
      lifecycle: j.lifecycle,
      debugStatus: j.debugStatus,
      bootCount: j.bootCount,
      securityCounter: j.securityCounter,
      configDigest: j.configDigest,
      software: claims.softwareComponents.map((c) => ({ version: c.version ?? '', measurement: toHex(c.measurementValue) })),
    };
    for (const [k, v] of Object.entries(details.claims as Record<string, unknown>)) if (v === undefined) delete (details.claims as Record<string, unknown>)[k];
    firmware = claims.softwareComponents[0]?.version;
  }
  const outcome = a.appraisal.verdict === 'trusted' ? 'ok' : a.appraisal.verdict === 'warning' ? 'attention' : 'rejected';
  return {
    audit: { op: 'attest', device: a.device, outcome, details, time },
    inventory: { ...a.device, verdict: a.appraisal.verdict, verdictTime: time, seen: time, ...(firmware ? { firmware } : {}) },
  };
}

/** Record a finished attestation (audit entry + inventory update, one transaction). */
export function recordAttestation(ctx: RecordContext, a: AttestationRecord): Promise<Recorded> {
  return commitRecord(ctx, attestationPlan(a, ctx.now ?? Date.now()));
}

/** The event-log read's record: how many events up to which counter (the events themselves stay on the device). */
export function eventsRecord(o: EventsOutcome, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  const time = opts.time ?? Date.now();
  if (o.kind !== 'done') return unfinishedPlan('events', o, opts.device, time);
  return {
    audit: { op: 'events', device: opts.device ?? {}, outcome: 'ok', details: { count: o.result.events.length, last: o.result.last, truncated: o.result.truncated }, time },
    inventory: seenUpdate(opts.device, time),
  };
}

/** An interface change's record: what changed (name from → to), or why nothing did. */
export function interfacesRecord(o: InterfacesOutcome, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  const time = opts.time ?? Date.now();
  if (o.kind !== 'done') return unfinishedPlan('interface', o, opts.device, time);
  const changed = (o.result.changed ?? []).map((c) => `${c.name} ${c.from} -> ${c.to}`).join(', ');
  return {
    audit: { op: 'interface', device: opts.device ?? {}, outcome: 'ok', details: { changed: changed || 'nothing (already so)', interfaces: { ...o.result.interfaces } }, time },
    inventory: seenUpdate(opts.device, time),
  };
}

/** A wipe's record: which configuration was erased (the identity stays: the device is still who it was). */
export function wipeRecord(o: WipeOutcome, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  const time = opts.time ?? Date.now();
  const device = opts.device ?? (o.kind === 'done' ? { serial: o.result.serial } : undefined);
  if (o.kind !== 'done') return unfinishedPlan('wipe', o, device, time);
  return {
    audit: { op: 'wipe', device: device ?? {}, outcome: 'ok', details: { erasedSequence: o.result.erasedSequence, erased: o.result.erased.join(', '), kept: o.result.kept.join(', ') }, time },
    inventory: seenUpdate(device, time),
  };
}

/**
 * A rotation's record: what was rotated, old and new (the DevEUI, or key ids:
 * a key is never recorded) and the device's signed receipt. A new DevEUI
 * replaces the one the inventory holds for this device (`rotated`), so the
 * next identification does not flag it.
 */
export function rotateRecord(o: RotateOutcome, opts: { device?: DeviceIdentifiersInput; time?: number } = {}): RecordPlan {
  const time = opts.time ?? Date.now();
  const device = opts.device ?? (o.kind === 'done' ? { serial: o.result.serial } : undefined);
  if (o.kind !== 'done') return unfinishedPlan('rotate', o, device, time);
  const r = o.result;
  const details = { what: r.what, words: ROTATION_WORDS[r.what], old: r.old, new: r.new, receiptSig: r.receiptSig, receiptSha256: r.receiptSha256 };
  const inventory = seenUpdate(device, time);
  if (inventory && r.what === 'dev-eui') {
    delete inventory.devEui;
    inventory.rotated = { devEui: r.new };
  }
  return { audit: { op: 'rotate', device: device ?? {}, outcome: 'ok', details, time }, inventory };
}

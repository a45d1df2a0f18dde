/**
 * Record identifications and attestations: one audit entry (signed by the
 * technician through the signer callback) and the inventory update, in one
 * transaction (recordOperation). The UI and the CLI call these after the ops
 * finish; the ops themselves stay free of storage.
 *
 * An identity that did not verify is audited but does NOT update the
 * inventory: its identifiers are claims, and merging them into the record of
 * the genuine device (or creating a look-alike record) would let a forgery
 * shape the inventory.
 */
import type { AuditRecord, DeviceRecord, FieldbenchDB } from '../store/db.ts';
import { recordOperation } from '../store/audit.ts';
import { findByIdentifier } from '../store/inventory.ts';
import type { AuditSigner } from '../store/sig.ts';
import { type DeviceIdentifiersInput } from '../store/ids.ts';
import { claimsToJson, type Appraisal, type EatClaims } from '../trust/eat.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import type { IdentifyResult, InventoryLookup } from './identification/identify.ts';
import { toHex } from '../base/bytes.ts';

export interface RecordContext {
  db: FieldbenchDB;
  /** The technician's audit signer: the op never holds the key. */
  signer: AuditSigner;
  /** ms since the epoch; default now. */
  now?: number;
}

export type Recorded = { entry: AuditRecord; device?: DeviceRecord };

/** The inventory as the identify op's duplicate check wants it. */
export function inventoryLookup(db: FieldbenchDB): InventoryLookup {
  return { findByIdentifier: (id) => findByIdentifier(db, id) };
}

function identifiers(r: IdentifyResult): DeviceIdentifiersInput {
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

export async function recordIdentification(ctx: RecordContext, r: IdentifyResult): Promise<Recorded> {
  const time = ctx.now ?? Date.now();
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
  return recordOperation(
    ctx.db,
    { technician: ctx.signer, op: 'identify', device: identifiers(r), outcome, details, time },
    r.verified ? { ...identifiers(r), model: r.presented.model, verdict: inventoryVerdict(r), verdictTime: time, seen: time, label } : null,
  );
}

export interface AttestationRecord {
  /** Identifiers of the device, from its VERIFIED identity. */
  device: DeviceIdentifiersInput;
  appraisal: Appraisal;
  nonce: Uint8Array;
  evidence: Uint8Array;
}

export async function recordAttestation(ctx: RecordContext, a: AttestationRecord): Promise<Recorded> {
  const time = ctx.now ?? Date.now();
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
  return recordOperation(
    ctx.db,
    { technician: ctx.signer, op: 'attest', device: a.device, outcome, details, time },
    { ...a.device, verdict: a.appraisal.verdict, verdictTime: time, seen: time, ...(firmware ? { firmware } : {}) },
  );
}

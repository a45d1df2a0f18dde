/**
 * The factory control log: one entry per unit the line handled, provisioned or
 * failed, with every identifier, the certificate digest, the firmware digest,
 * the configuration sequence, the attestation verdict and the failure if any.
 *
 * It is NOT a second chain: an entry is an ordinary audit input (op
 * 'factory/unit') appended to a records log (store/records-log.ts,
 * cli/records.ts appendRecords), chained and signed there with the station's
 * own key, so `fieldbench audit verify --records DIR` checks it and the app's
 * records import reads it. This module only says what an entry holds and how
 * a log's unit entries export as JSON and CSV.
 */
import type { AuditInput, AuditExportEntry } from '../store/audit.ts';

export const CONTROL_OP = 'factory/unit';

export type UnitVerdict = 'provisioned' | 'failed';

export interface UnitStepRecord {
  step: string;
  outcome: 'done' | 'failed' | 'cancelled' | 'unsupported' | 'skipped';
  ms: number;
}

export interface UnitControlRecord {
  /** Where the unit was (port name). */
  port: string;
  verdict: UnitVerdict;
  /** SHA-256 (hex) of the station profile the unit ran under. */
  profileDigest: string;
  model: string;
  serial?: string;
  devEui?: string;
  mac?: string;
  /** Chip UID (hex). */
  ueid?: string;
  /** Ed25519 identity public key (hex). */
  devicePublicKey?: string;
  certificateDigest?: string;
  firmwareDigest?: string;
  configSequence?: number;
  attestation?: string;
  steps: UnitStepRecord[];
  failure?: { step: string; code: string; reason: string };
}

export class ControlRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlRecordError';
  }
}

const HEX = /^[0-9a-f]+$/;

function checkRecord(u: UnitControlRecord): void {
  const bad = (m: string): never => {
    throw new ControlRecordError(`control record of ${u?.port ?? '?'}: ${m}`);
  };
  if (!u || typeof u.port !== 'string' || !u.port) bad('a port is required');
  if (u.verdict !== 'provisioned' && u.verdict !== 'failed') bad(`verdict must be provisioned or failed`);
  if (u.verdict === 'failed' && !u.failure) bad('a failed unit needs its failure (step, code, reason)');
  if (u.verdict === 'provisioned') {
    if (u.failure) bad('a provisioned unit has no failure');
    for (const k of ['serial', 'certificateDigest', 'firmwareDigest', 'attestation'] as const) if (!u[k]) bad(`a provisioned unit needs ${k}`);
    if (u.attestation !== 'trusted') bad(`a provisioned unit's attestation is trusted, not ${u.attestation}`);
  }
  for (const k of ['profileDigest', 'devEui', 'mac', 'ueid', 'devicePublicKey', 'certificateDigest', 'firmwareDigest'] as const) {
    const v = u[k];
    if (v !== undefined && (typeof v !== 'string' || !HEX.test(v))) bad(`${k} must be lowercase hex`);
  }
}

/** The audit input of one unit (appended to the station's records log, signed with the station key). */
export function controlEntry(u: UnitControlRecord, time?: number): AuditInput {
  checkRecord(u);
  const device: AuditInput['device'] = {};
  if (u.serial) device.serial = u.serial;
  if (u.devEui) device.devEui = u.devEui;
  if (u.mac) device.mac = u.mac;
  if (u.ueid) device.ueid = u.ueid;
  if (u.devicePublicKey) device.devicePublicKey = u.devicePublicKey;
  const details = JSON.parse(JSON.stringify(u)) as Record<string, unknown>;
  return { op: CONTROL_OP, outcome: u.verdict, device, details, ...(time !== undefined ? { time } : {}) };
}

export interface ControlRow extends UnitControlRecord {
  seq: number;
  time: number;
  hash: string;
  signer: string;
}

/** The unit entries of a records log (other entries, e.g. torn-tail notes, are left out). */
export function controlRows(entries: AuditExportEntry[]): ControlRow[] {
  return entries
    .filter((e) => e.op === CONTROL_OP && e.details)
    .map((e) => ({ ...(e.details as unknown as UnitControlRecord), seq: e.seq, time: e.time, hash: e.hash, signer: e.signer }));
}

export function controlLogJson(entries: AuditExportEntry[]): string {
  return JSON.stringify({ format: 'fieldbench-control-log', version: 1, units: controlRows(entries) }, null, 2) + '\n';
}

export const CONTROL_CSV_COLUMNS = [
  'seq', 'time', 'port', 'verdict', 'model', 'serial', 'devEui', 'mac', 'ueid', 'devicePublicKey',
  'certificateDigest', 'firmwareDigest', 'configSequence', 'attestation', 'failedStep', 'failureCode', 'failureReason', 'profileDigest', 'hash',
] as const;

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  let s = String(v);
  // a cell a spreadsheet would run as a formula is quoted as text
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) || s !== String(v) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV, one row per unit, CRLF line ends. */
export function controlLogCsv(entries: AuditExportEntry[]): string {
  const lines = [CONTROL_CSV_COLUMNS.join(',')];
  for (const r of controlRows(entries)) {
    const row: Record<string, unknown> = { ...r, time: new Date(r.time).toISOString(), failedStep: r.failure?.step, failureCode: r.failure?.code, failureReason: r.failure?.reason };
    lines.push(CONTROL_CSV_COLUMNS.map((c) => csvCell(row[c])).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/**
 * The text a unit label's 2D code carries, without the renderers (label.ts
 * draws it; this module is small enough for the identify op and the app's
 * label scanner to import):
 *   FB1;S=<serial>;M=<model>[;E=<devEui 16 hex>][;A=<mac 12 hex>];K=<fingerprint 32 hex>
 * Values are percent-encoded outside [A-Za-z0-9._-/:], so ';', '=' and ZPL's
 * '^' and '~' never appear raw. The fingerprint is keyFingerprint(): the first
 * 16 bytes of SHA-256 over the Ed25519 identity public key, so a label printed
 * for one device key cannot pass identify on a device holding another.
 */
import { sha256 } from '@noble/hashes/sha2.js';

export interface LabelData {
  serial: string;
  model: string;
  /** 16 hex digits. */
  devEui?: string;
  /** 12 hex digits. */
  mac?: string;
  /** keyFingerprint(devicePublicKey): 32 lowercase hex digits. */
  keyFingerprint: string;
}

export type LabelFailure = 'bad-label' | 'bad-payload' | 'bad-template';

export class LabelError extends Error {
  constructor(
    readonly code: LabelFailure,
    message: string,
  ) {
    super(message);
    this.name = 'LabelError';
  }
}

export const LABEL_PAYLOAD_PREFIX = 'FB1;';

/** The label fingerprint of an Ed25519 public key: hex of SHA-256(pub)[0..16). */
export function keyFingerprint(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new LabelError('bad-label', 'the identity public key is 32 bytes (Ed25519)');
  let s = '';
  for (const x of sha256(publicKey).subarray(0, 16)) s += x.toString(16).padStart(2, '0');
  return s;
}

const PRINTABLE = /^[\x20-\x7e]+$/;

/** Validate label data (LabelError 'bad-label'); returns it with hex in lowercase. */
export function checkLabelData(d: LabelData): LabelData {
  const fail: (m: string) => never = (m) => {
    throw new LabelError('bad-label', m);
  };
  if (typeof d !== 'object' || d === null) fail('label data must be an object');
  if (typeof d.serial !== 'string' || d.serial.trim() !== d.serial || !PRINTABLE.test(d.serial) || d.serial.length > 64) fail('serial must be 1..64 printable ASCII characters, no leading or trailing space');
  if (typeof d.model !== 'string' || d.model.trim() !== d.model || !PRINTABLE.test(d.model) || d.model.length > 64) fail('model must be 1..64 printable ASCII characters, no leading or trailing space');
  if (d.devEui !== undefined && (typeof d.devEui !== 'string' || !/^[0-9a-fA-F]{16}$/.test(d.devEui))) fail('devEui must be 16 hex digits');
  if (d.mac !== undefined && (typeof d.mac !== 'string' || !/^[0-9a-fA-F]{12}$/.test(d.mac))) fail('mac must be 12 hex digits');
  if (typeof d.keyFingerprint !== 'string' || !/^[0-9a-fA-F]{32}$/.test(d.keyFingerprint)) fail('keyFingerprint must be 32 hex digits (keyFingerprint(publicKey))');
  const out: LabelData = { serial: d.serial, model: d.model, keyFingerprint: d.keyFingerprint.toLowerCase() };
  if (d.devEui !== undefined) out.devEui = d.devEui.toLowerCase();
  if (d.mac !== undefined) out.mac = d.mac.toLowerCase();
  return out;
}

const SAFE = /[A-Za-z0-9._\-/:]/;

function pct(v: string): string {
  let out = '';
  for (const ch of v) {
    if (SAFE.test(ch)) out += ch;
    else for (const b of new TextEncoder().encode(ch)) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function unpct(v: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(v)) throw new LabelError('bad-payload', 'bad percent escape in the label code');
  if (/[^A-Za-z0-9._\-/:%]/.test(v)) throw new LabelError('bad-payload', 'label code holds a character that must be escaped');
  try {
    return decodeURIComponent(v);
  } catch {
    throw new LabelError('bad-payload', 'bad percent escape in the label code');
  }
}

/** The text the 2D code carries. */
export function labelPayload(d: LabelData): string {
  const c = checkLabelData(d);
  const parts = [`S=${pct(c.serial)}`, `M=${pct(c.model)}`];
  if (c.devEui) parts.push(`E=${c.devEui.toUpperCase()}`);
  if (c.mac) parts.push(`A=${c.mac.toUpperCase()}`);
  parts.push(`K=${c.keyFingerprint.toUpperCase()}`);
  return LABEL_PAYLOAD_PREFIX + parts.join(';');
}

/** Is this scanned text one of our label payloads (as opposed to a plain serial or a LoRaWAN QR)? */
export function isLabelPayload(s: string): boolean {
  return typeof s === 'string' && s.trim().toUpperCase().startsWith(LABEL_PAYLOAD_PREFIX);
}

/** Parse a label payload strictly (LabelError 'bad-payload' / 'bad-label'). */
export function parseLabelPayload(s: string): LabelData {
  if (typeof s !== 'string') throw new LabelError('bad-payload', 'label code must be text');
  const t = s.trim();
  if (t.length > 512) throw new LabelError('bad-payload', 'label code is too long');
  if (!t.toUpperCase().startsWith(LABEL_PAYLOAD_PREFIX)) throw new LabelError('bad-payload', `not a fieldbench label code (it must start with ${LABEL_PAYLOAD_PREFIX})`);
  const fields = new Map<string, string>();
  for (const part of t.slice(LABEL_PAYLOAD_PREFIX.length).split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new LabelError('bad-payload', `label code field ${JSON.stringify(part)} is not KEY=VALUE`);
    const k = part.slice(0, eq).toUpperCase();
    if (!['S', 'M', 'E', 'A', 'K'].includes(k)) throw new LabelError('bad-payload', `unknown label code field ${k}`);
    if (fields.has(k)) throw new LabelError('bad-payload', `label code field ${k} appears twice`);
    fields.set(k, unpct(part.slice(eq + 1)));
  }
  for (const k of ['S', 'M', 'K']) if (!fields.has(k)) throw new LabelError('bad-payload', `label code lacks field ${k}`);
  const d: LabelData = { serial: fields.get('S')!, model: fields.get('M')!, keyFingerprint: fields.get('K')! };
  if (fields.has('E')) d.devEui = fields.get('E');
  if (fields.has('A')) d.mac = fields.get('A');
  return checkLabelData(d);
}


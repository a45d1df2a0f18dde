/**
 * Device identifiers: normalisation and the typed keys of the `ids`
 * multiEntry index ("find by any identifier").
 *
 * Every identifier is stored in one canonical text form so that the same
 * device typed in by hand, read over SMP, or taken from an attestation token
 * lands on the same index key:
 *   serial           trimmed text, case kept (serials are opaque)
 *   devicePublicKey  64 lowercase hex digits (Ed25519, 32 bytes)
 *   ueid             lowercase hex, 7..33 bytes (RFC 9711 section 4.2.1)
 *   mac              12 lowercase hex digits (EUI-48), separators removed
 *   devEui           16 lowercase hex digits (EUI-64, LoRaWAN DevEUI)
 */
import { FieldbenchError } from '../base/errors.ts';
import { fromHex, toHex } from '../base/bytes.ts';

export type IdKind = 'serial' | 'devicePublicKey' | 'ueid' | 'mac' | 'devEui';
export const ID_KINDS: readonly IdKind[] = ['serial', 'devicePublicKey', 'ueid', 'mac', 'devEui'];

/** Prefix of each kind inside the `ids` index, so a serial never collides with a MAC. */
export const ID_PREFIX: Record<IdKind, string> = {
  serial: 'serial:',
  devicePublicKey: 'key:',
  ueid: 'ueid:',
  mac: 'mac:',
  devEui: 'deveui:',
};

export interface DeviceIdentifiers {
  serial?: string;
  devicePublicKey?: string;
  ueid?: string;
  mac?: string;
  devEui?: string;
}

/** Input form: hex strings or raw bytes for the binary identifiers. */
export interface DeviceIdentifiersInput {
  serial?: string;
  devicePublicKey?: string | Uint8Array;
  ueid?: string | Uint8Array;
  mac?: string | Uint8Array;
  devEui?: string | Uint8Array;
}

export class IdentifierError extends FieldbenchError<'identifier'> {
  constructor(
    readonly kind: IdKind,
    message: string,
  ) {
    super('identifier', message);
    this.name = 'IdentifierError';
  }
}


function hexOf(kind: IdKind, v: string | Uint8Array, stripSeparators: boolean): string {
  if (v instanceof Uint8Array) return toHex(v);
  if (typeof v !== 'string') throw new IdentifierError(kind, `${kind} must be a string or bytes`);
  let s = v.trim();
  if (stripSeparators) s = s.replace(/[:\-.\s]/g, '');
  if (s.startsWith('0x') || s.startsWith('0X')) s = s.slice(2);
  if (!/^[0-9a-fA-F]*$/.test(s) || s.length % 2 !== 0) throw new IdentifierError(kind, `${kind} is not hex: ${JSON.stringify(v)}`);
  return s.toLowerCase();
}

/** Canonical form of one identifier; throws IdentifierError when malformed. */
export function normaliseId(kind: IdKind, v: string | Uint8Array): string {
  switch (kind) {
    case 'serial': {
      if (typeof v !== 'string') throw new IdentifierError(kind, 'serial must be text');
      const s = v.trim();
      if (s.length === 0 || s.length > 128) throw new IdentifierError(kind, 'serial must be 1..128 characters');
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(s)) throw new IdentifierError(kind, 'serial contains control characters');
      return s;
    }
    case 'devicePublicKey': {
      const h = hexOf(kind, v, false);
      if (h.length !== 64) throw new IdentifierError(kind, `device public key must be 32 bytes, got ${h.length / 2}`);
      return h;
    }
    case 'ueid': {
      const h = hexOf(kind, v, false);
      if (h.length < 14 || h.length > 66) throw new IdentifierError(kind, `UEID must be 7..33 bytes, got ${h.length / 2}`);
      return h;
    }
    case 'mac': {
      const h = hexOf(kind, v, true);
      if (h.length !== 12) throw new IdentifierError(kind, `MAC must be 6 bytes (EUI-48), got ${h.length / 2}`);
      return h;
    }
    case 'devEui': {
      const h = hexOf(kind, v, true);
      if (h.length !== 16) throw new IdentifierError(kind, `DevEUI must be 8 bytes (EUI-64), got ${h.length / 2}`);
      return h;
    }
  }
}

/** Normalise every present identifier; absent (undefined, null, '') ones are left out. */
export function normaliseIds(input: DeviceIdentifiersInput): DeviceIdentifiers {
  const out: DeviceIdentifiers = {};
  for (const k of ID_KINDS) {
    const v = input[k];
    if (v === undefined || v === null || v === '') continue;
    out[k] = normaliseId(k, v);
  }
  return out;
}

/** The typed `ids` index keys of normalised identifiers. */
export function idKeys(ids: DeviceIdentifiers): string[] {
  const out: string[] = [];
  for (const k of ID_KINDS) {
    const v = ids[k];
    if (v) out.push(ID_PREFIX[k] + v);
  }
  return out;
}

/**
 * Every typed index key an untyped identifier (as typed into a search box)
 * could stand for: a serial always, plus each binary kind whose shape fits.
 */
export function candidateKeys(raw: string): string[] {
  const out: string[] = [];
  for (const k of ID_KINDS) {
    try {
      out.push(ID_PREFIX[k] + normaliseId(k, raw));
    } catch {
      /* not this kind */
    }
  }
  return out;
}

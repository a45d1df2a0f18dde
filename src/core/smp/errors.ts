/**
 * SMP errors, normalised: v1 replies carry `rc` (MGMT_ERR_*), v2 replies carry
 * `err: {group, rc}` with group-specific codes. Both become SmpError with a
 * readable name.
 */
import { FieldbenchError } from '../base/errors.ts';
export const MGMT_ERR: Record<number, string> = {
  0: 'EOK',
  1: 'EUNKNOWN: unknown error',
  2: 'ENOMEM: device out of memory',
  3: 'EINVAL: invalid argument',
  4: 'ETIMEOUT: operation timed out on the device',
  5: 'ENOENT: no such entry',
  6: 'EBADSTATE: device in a state that does not allow this',
  7: 'EMSGSIZE: response too large for the device buffer',
  8: 'ENOTSUP: not supported by this device',
  9: 'ECORRUPT: corrupt data',
  10: 'EBUSY: device busy',
  11: 'EACCESSDENIED: access denied',
  12: 'UNSUPPORTED_TOO_OLD: protocol version too old for the device',
  13: 'UNSUPPORTED_TOO_NEW: protocol version too new for the device',
  256: 'EPERUSER: application-specific error',
};

/** Group-specific v2 error names (Zephyr's *_mgmt_err enums), by group id. */
export const GROUP_ERR: Record<number, Record<number, string>> = {
  0: { 1: 'unknown', 2: 'invalid format', 3: 'query not recognised', 4: 'RTC not set', 5: 'RTC command failed', 6: 'query response value not supported' },
  1: {
    1: 'unknown', 2: 'flash config query failed', 3: 'no image', 4: 'no TLVs', 5: 'invalid TLV', 6: 'TLV multiple hashes found',
    7: 'TLV invalid size', 8: 'hash not found', 9: 'no free slot', 10: 'flash open failed', 11: 'flash read failed',
    12: 'flash write failed', 13: 'flash erase failed', 14: 'invalid slot', 15: 'no free memory', 16: 'flash context already set',
    17: 'flash context not set', 18: 'flash area device null', 19: 'invalid page offset', 20: 'invalid offset',
    21: 'invalid length', 22: 'invalid image header', 23: 'invalid image header magic', 24: 'invalid hash', 25: 'invalid flash address',
    26: 'version get failed', 27: 'current version is newer', 28: 'image already pending', 29: 'invalid image vector table',
    30: 'invalid image too large', 31: 'invalid image data overrun', 32: 'image confirmation denied', 33: 'image setting test to active denied',
    34: 'active slot not known',
  },
  3: { 1: 'unknown', 2: 'key too long', 3: 'key not found', 4: 'read not supported', 5: 'root key not found', 6: 'write not supported', 7: 'delete not supported', 8: 'save not supported' },
  8: { 1: 'unknown', 2: 'file invalid name', 3: 'file not found', 4: 'file is directory', 5: 'file open failed', 6: 'file seek failed', 7: 'file read failed', 8: 'file truncate failed', 9: 'file delete failed', 10: 'file write failed', 11: 'file offset not valid', 12: 'file offset larger than file', 13: 'checksum hash not found', 14: 'mount point not found', 15: 'read-only filesystem', 16: 'file empty' },
  10: { 1: 'unknown', 2: 'too many group entries', 3: 'insufficient heap', 4: 'index too large' },
};

export type SmpErrorKind =
  | 'rc' // v1 rc != 0
  | 'group' // v2 err {group, rc}
  | 'timeout' // no reply in time
  | 'closed' // link closed while waiting
  | 'too-large' // request larger than the device buffer: refused before sending
  | 'decode' // reply could not be decoded
  | 'mismatch'; // reply for another group/command under our sequence number

export class SmpError extends FieldbenchError<SmpErrorKind> {
  constructor(
    readonly kind: SmpErrorKind,
    message: string,
    readonly rc?: number,
    readonly group?: number,
  ) {
    super(kind, message);
    this.name = 'SmpError';
  }

  /** True for "this device does not implement that group/command" (rc 8). */
  get notSupported(): boolean {
    return this.kind === 'rc' && this.rc === 8;
  }
}

export function describeRc(rc: number): string {
  return MGMT_ERR[rc] ?? `rc ${rc}`;
}

export function describeGroupErr(group: number, rc: number): string {
  return GROUP_ERR[group]?.[rc] ?? `group ${group} error ${rc}`;
}

/** Turn a reply body into an SmpError if it reports one, else null. */
export function replyError(body: Record<string, unknown>, group: number): SmpError | null {
  const rc = body.rc;
  if (typeof rc === 'number' && rc !== 0) return new SmpError('rc', `device answered ${describeRc(rc)}`, rc);
  const err = body.err as { group?: unknown; rc?: unknown } | undefined;
  if (err && typeof err === 'object' && typeof err.rc === 'number' && err.rc !== 0) {
    const g = typeof err.group === 'number' ? err.group : group;
    return new SmpError('group', `device answered: ${describeGroupErr(g, err.rc)} (group ${g}, rc ${err.rc})`, err.rc, g);
  }
  return null;
}

/**
 * SMP errors, normalised: v1 replies carry `rc` (MGMT_ERR_*), v2 replies carry
 * `err: {group, rc}` with group-specific codes. Both become SmpError with a
 * readable name.
 */
import { FieldbenchError } from '../base/errors.ts';
import { errorTexts } from '../protocol/define.ts';
import { ENUM_GROUP } from '../protocol/enum.ts';
import { FS_GROUP } from '../protocol/fs.ts';
import { IMAGE_GROUP } from '../protocol/image.ts';
import { MGMT, MGMT_RC } from '../protocol/mgmt.ts';
import { OS_GROUP } from '../protocol/os.ts';
import { SETTINGS_GROUP_DEF } from '../protocol/settings.ts';
/** MGMT_ERR rc -> text (v1 `rc`), from the protocol's one table. */
export const MGMT_ERR: Record<number, string> = { 0: 'EOK', ...errorTexts(MGMT) };

/** Group-specific v2 error texts (Zephyr's *_mgmt_err enums), by group id, from the protocol definitions. */
export const GROUP_ERR: Record<number, Record<number, string>> = Object.fromEntries(
  [OS_GROUP, IMAGE_GROUP, SETTINGS_GROUP_DEF, FS_GROUP, ENUM_GROUP].map((g) => [g.id, errorTexts(g)]),
);

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
    return this.kind === 'rc' && this.rc === MGMT_RC.ENOTSUP;
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
  if (typeof rc === 'number' && rc !== MGMT_RC.EOK) return new SmpError('rc', `device answered ${describeRc(rc)}`, rc);
  const err = body.err as { group?: unknown; rc?: unknown } | undefined;
  if (err && typeof err === 'object' && typeof err.rc === 'number' && err.rc !== MGMT_RC.EOK) {
    const g = typeof err.group === 'number' ? err.group : group;
    return new SmpError('group', `device answered: ${describeGroupErr(g, err.rc)} (group ${g}, rc ${err.rc})`, err.rc, g);
  }
  return null;
}

/** Types shared by the reference device's server and its groups. */
import type { ReferenceDevice } from './device.ts';
import { FieldbenchError } from '../core/base/errors.ts';

export type Body = Record<string, unknown>;

export interface RequestContext {
  device: ReferenceDevice;
  op: number;
  group: number;
  id: number;
  seq: number;
  version: number;
}

export type Handler = (body: Body, ctx: RequestContext) => Body | Promise<Body>;

export interface GroupDef {
  id: number;
  name: string;
  read?: Record<number, Handler>;
  write?: Record<number, Handler>;
}

/** Thrown by handlers: `rc` is an MGMT_ERR code; `groupRc` a group-specific code (v2 `err`). */
export class MgmtError extends FieldbenchError<'mgmt'> {
  constructor(
    readonly rc: number,
    readonly groupRc?: number,
    message?: string,
  ) {
    super('mgmt', message ?? (groupRc !== undefined ? `group error ${groupRc}` : `rc ${rc}`));
  }
}

export const RC = {
  OK: 0,
  EUNKNOWN: 1,
  ENOMEM: 2,
  EINVAL: 3,
  ETIMEOUT: 4,
  ENOENT: 5,
  EBADSTATE: 6,
  EMSGSIZE: 7,
  ENOTSUP: 8,
  ECORRUPT: 9,
  EBUSY: 10,
  EACCESSDENIED: 11,
} as const;


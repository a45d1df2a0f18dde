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

/** MGMT_ERR rc by name: the protocol's one table (core/protocol/mgmt.ts). */
export { MGMT_RC as RC } from '../core/protocol/mgmt.ts';


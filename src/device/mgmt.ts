/** Types shared by the reference device's server and its groups. */
import type { ReferenceDevice } from './device.ts';
import { FieldbenchError } from '../core/base/errors.ts';
import type { createDecoder } from '../core/smp/framing.ts';

/**
 * One served link: its own decoder, writer, queues and (kept by the groups
 * through `connectionState`) its own authentication and session. Nothing a
 * connection does is visible to another one.
 */
export class Connection {
  writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  sendChain: Promise<void> = Promise.resolve();
  lineQueue: Uint8Array[] = [];
  partialLine: Uint8Array[] = [];
  processingLines = false;
  packetQueue: Uint8Array[] = [];
  processingPackets = false;
  decoder!: ReturnType<typeof createDecoder>;
  open = true;
  /** Per-connection state of the groups (security: handshake, session), by owner. */
  readonly state = new Map<object, unknown>();
  constructor(readonly id: number) {}
}

/** What a request arrived with: its connection and whether it came inside a protected session. */
export interface Arrival {
  connection: Connection;
  /** Set by the security group when the request was unwrapped from a protected one. */
  protected?: boolean;
  /** Largest reply packet (default buf_size). */
  replyBudget?: number;
}



export type Body = Record<string, unknown>;

export interface RequestContext {
  device: ReferenceDevice;
  op: number;
  group: number;
  id: number;
  seq: number;
  version: number;
  /** The connection the request arrived on. */
  connection: Connection;
  /** True when it arrived inside the connection's protected session. */
  protected: boolean;
  /** Largest reply packet this request may get (less than buf_size inside a protected session). */
  replyBudget: number;
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
    /** The group whose error table `groupRc` belongs to (default: the request's group). */
    readonly errGroup?: number,
  ) {
    super('mgmt', message ?? (groupRc !== undefined ? `group error ${groupRc}` : `rc ${rc}`));
  }
}

/** MGMT_ERR rc by name: the protocol's one table (core/protocol/mgmt.ts). */
export { MGMT_RC as RC } from '../core/protocol/mgmt.ts';


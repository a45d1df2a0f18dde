/**
 * What an op's record function produces: the audit entry and the inventory
 * update for one finished op. The app writes both in one transaction
 * (commitRecord); the CLI appends the entry to its records log
 * (src/cli/records.ts), and the app rebuilds the inventory update from such
 * an entry when it imports the log (inventoryOfEntry), with the same rules.
 */
import type { AuditRecord, DeviceRecord, FieldbenchDB } from '../store/db.ts';
import { recordOperation, type AuditInput } from '../store/audit.ts';
import type { DeviceUpdate } from '../store/inventory.ts';
import type { AuditSigner } from '../store/sig.ts';

export interface RecordPlan {
  audit: AuditInput;
  /** null: the op leaves the inventory as it is (an unverified identity, a device whose identity is unknown). */
  inventory: DeviceUpdate | null;
}

export interface RecordContext {
  db: FieldbenchDB;
  /** The technician's audit signer: the op never holds the key. */
  signer: AuditSigner;
  /** ms since the epoch; default now. */
  now?: number;
}

export type Recorded = { entry: AuditRecord; device?: DeviceRecord };

/** Write a plan: the audit entry and the inventory update, in one transaction. */
export function commitRecord(ctx: Pick<RecordContext, 'db' | 'signer'>, plan: RecordPlan): Promise<Recorded> {
  return recordOperation(ctx.db, { technician: ctx.signer, ...plan.audit }, plan.inventory);
}

/** Drop undefined fields (audit details must be plain JSON). */
export function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

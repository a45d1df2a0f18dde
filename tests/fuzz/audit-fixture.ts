/** A genuine audit export for the fuzz target: a few operations recorded in a throwaway store and exported. */
import 'fake-indexeddb/auto';
import { openStore } from '../../src/core/store/db.ts';
import { exportAuditJson, recordOperation } from '../../src/core/store/audit.ts';
import { seedSigner } from '../../src/core/store/sig.ts';

export async function makeExport(seed: Uint8Array, _pub: Uint8Array): Promise<string> {
  const signer = await seedSigner('fuzz-tech', seed);
  const db = await openStore({ name: `fuzz-audit-${process.pid}-${Math.random().toString(36).slice(2)}` });
  try {
    for (let i = 0; i < 3; i++) {
      await recordOperation(
        db,
        { technician: signer, op: ['identify', 'configure', 'update'][i], outcome: 'ok', time: 1000 + i, details: { step: i } },
        { serial: `SN-${i}`, firmware: `1.${i}`, seen: 1000 + i },
      );
    }
    return await exportAuditJson(db);
  } finally {
    db.close();
    await db.delete();
  }
}

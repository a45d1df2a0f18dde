/**
 * Test-only page that mounts the records components (they are not mounted in
 * the app yet), built and served by tests/e2e/harness/serve.ts. Exposes
 * `window.__records.seed()` so tests can record operations the way the
 * device pages will (recordOperation: audit entry + inventory update).
 */
import { mount } from 'svelte';
import Harness from './Harness.svelte';
import '../../../src/ui/app.css';
import { openStore } from '../../../src/core/store/db.ts';
import { recordOperation } from '../../../src/core/store/audit.ts';
import { seedSigner } from '../../../src/core/store/sig.ts';

const db = await openStore();
const DAY = 86_400_000;

async function seed(): Promise<number> {
  const signer = await seedSigner('tech-e2e', new Uint8Array(32).fill(7));
  const now = Date.now();
  const ops: [Parameters<typeof recordOperation>[1], Parameters<typeof recordOperation>[2]][] = [
    [
      { op: 'identify', outcome: 'ok', technician: signer, details: { via: 'serial' }, time: now - 40 * DAY },
      { serial: 'SN-001', mac: '00:11:22:33:44:55', devEui: '70B3D57ED0000001', model: 'fieldbench-ref', firmware: '1.0.0', seen: now - 40 * DAY },
    ],
    [
      { op: 'attest', outcome: 'ok', technician: signer, details: { verdict: 'verified' }, time: now - 2 * DAY },
      { serial: 'SN-001', model: 'fieldbench-ref', firmware: '1.1.0', verdict: 'verified', seen: now - 2 * DAY },
    ],
    [
      { op: 'identify', outcome: 'ok', technician: signer, time: now - 3 * DAY },
      { serial: 'SN-002', ueid: '01' + 'ab'.repeat(16), model: 'other-board', firmware: '2.0.0', verdict: 'failed', seen: now - 3 * DAY },
    ],
    [
      // A second device under the same MAC as SN-001: a duplicate for the technician to look at.
      { op: 'identify', outcome: 'ok', technician: signer, time: now - DAY },
      { serial: 'SN-003', mac: '001122334455', model: 'fieldbench-ref', firmware: '1.1.0', verdict: 'unverified', seen: now - DAY },
    ],
    [{ op: 'update', outcome: 'rejected', technician: signer, details: { reason: 'downgrade' }, time: now - 1000 }, { serial: 'SN-001', seen: now - 1000 }],
  ];
  for (const [entry, update] of ops) await recordOperation(db, entry, update);
  return ops.length;
}

(globalThis as { __records?: unknown }).__records = { db, seed };
const target = document.getElementById('app')!;
mount(Harness, { target, props: { db } });
document.body.dataset.ready = '1';

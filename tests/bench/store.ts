/**
 * Local records: bulk device import, lookup by each identifier, and building
 * / exporting / verifying a 100,000-entry signed audit chain.
 * Runs on fake-indexeddb (in-memory, pure JS) in Node: absolute numbers are
 * not those of a browser's IndexedDB; the verify rate does not depend on it.
 */
import 'fake-indexeddb/auto';
import { openStore } from '../../src/core/store/db.ts';
import { addDevices, findByIdentifier, type DeviceUpdate } from '../../src/core/store/inventory.ts';
import { appendAudit, exportAudit, recordOperation, verifyAuditExport, type AuditInput } from '../../src/core/store/audit.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import type { BenchRow } from './types.ts';
import { toHex } from '../../src/core/base/bytes.ts';

const NOTE = 'fake-indexeddb (in-memory) in Node 20';
const DEVICES = 100_000;
const ENTRIES = 100_000;

function hex(i: number, bytes: number, salt: number): string {
  const b = new Uint8Array(bytes);
  const v = new DataView(b.buffer);
  v.setUint32(0, salt);
  v.setUint32(bytes - 4, i);
  return toHex(b);
}

function device(i: number): DeviceUpdate {
  return {
    serial: `SN-${String(i).padStart(7, '0')}`,
    devicePublicKey: hex(i, 32, 0x4b455931),
    ueid: '01' + hex(i, 16, 0x55454944),
    mac: hex(i, 6, 0x0200),
    devEui: hex(i, 8, 0x70b3d57e),
    model: `model-${i % 7}`,
    firmware: `1.${i % 13}.0`,
    verdict: i % 10 === 0 ? 'failed' : 'verified',
    seen: 1_700_000_000_000 + i,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const db = await openStore({ name: `fieldbench-bench-${process.pid}` });
  try {
    // --- bulk import
    const list = Array.from({ length: DEVICES }, (_, i) => device(i));
    let t = performance.now();
    for (let i = 0; i < DEVICES; i += 10_000) await addDevices(db, list.slice(i, i + 10_000));
    let dt = performance.now() - t;
    rows.push({ name: `insert ${DEVICES} devices (bulk, 10k per transaction)`, value: DEVICES / (dt / 1000), unit: 'dev/s', note: `${(dt / 1000).toFixed(1)} s; ${NOTE}` });

    // --- lookup by each identifier (raw text, as typed into the search box)
    const kinds = ['serial', 'devicePublicKey', 'ueid', 'mac', 'devEui'] as const;
    for (const k of kinds) {
      const times: number[] = [];
      for (let j = 0; j < 201; j++) {
        const i = (j * 7919) % DEVICES;
        const q = list[i][k] as string;
        const t0 = performance.now();
        const found = await findByIdentifier(db, q);
        times.push(performance.now() - t0);
        if (found.length !== 1 || found[0].serial !== list[i].serial) throw new Error(`lookup by ${k} failed for device ${i}`);
      }
      rows.push({ name: `find by ${k} among ${DEVICES} (median of 201)`, value: median(times), unit: 'ms', note: NOTE });
    }

    // --- audit chain
    const signer = await seedSigner('bench-tech', new Uint8Array(32).fill(5));
    const single = 1000;
    t = performance.now();
    for (let i = 0; i < single; i++) {
      await recordOperation(db, { technician: signer, op: 'attest', outcome: 'ok', details: { n: i } }, { serial: list[i].serial, verdict: 'verified', seen: 1_800_000_000_000 + i });
    }
    dt = performance.now() - t;
    rows.push({ name: `recordOperation (entry + inventory update, 1 tx each) x${single}`, value: single / (dt / 1000), unit: 'ops/s', note: NOTE });

    const BATCH = 2000;
    t = performance.now();
    for (let done = single; done < ENTRIES; done += BATCH) {
      const n = Math.min(BATCH, ENTRIES - done);
      const inputs: AuditInput[] = Array.from({ length: n }, (_, j) => ({
        op: 'identify',
        outcome: 'ok',
        device: { serial: list[(done + j) % DEVICES].serial },
        details: { n: done + j },
      }));
      await appendAudit(db, inputs, signer);
    }
    dt = performance.now() - t;
    rows.push({ name: `build audit chain to ${ENTRIES} entries (appendAudit, 2k per tx)`, value: (ENTRIES - single) / (dt / 1000), unit: 'entry/s', note: `hash + Ed25519 sign + store; ${NOTE}` });

    t = performance.now();
    const exp = await exportAudit(db);
    const json = JSON.stringify(exp);
    dt = performance.now() - t;
    rows.push({ name: `export ${ENTRIES}-entry audit trail to JSON`, value: ENTRIES / (dt / 1000), unit: 'entry/s', note: `${(json.length / 1e6).toFixed(1)} MB` });

    t = performance.now();
    const v = await verifyAuditExport(json, [signer.publicKey]);
    dt = performance.now() - t;
    if (!v.ok || v.count !== ENTRIES) throw new Error(`verification failed: ${JSON.stringify(v)}`);
    rows.push({ name: `verify ${ENTRIES}-entry audit export (parse, chain, signatures)`, value: ENTRIES / (dt / 1000), unit: 'entry/s', note: `${(dt / 1000).toFixed(2)} s; WebCrypto Ed25519 fast path, strict-rule fallback` });

    // tampered near the end: the full chain is walked before the break is named
    const tampered = structuredClone(exp);
    tampered.entries.splice(ENTRIES - 10, 1);
    t = performance.now();
    const tv = await verifyAuditExport(tampered, [signer.publicKey]);
    dt = performance.now() - t;
    if (tv.ok || tv.code !== 'deleted' || tv.index !== ENTRIES - 10) throw new Error(`tamper not named: ${JSON.stringify(tv)}`);
    rows.push({ name: `name a deletion near the end of ${ENTRIES} entries`, value: dt, unit: 'ms' });
  } finally {
    db.close();
    await db.delete();
  }
  return rows;
}

/**
 * The app imports a CLI records log (src/core/ops/records-import.ts): the log
 * is verified first, each entry is countersigned into the app's trail with
 * where it came from, the inventory follows by one rule, a second import adds
 * nothing, and a tampered or torn log imports nothing.
 */
import 'fake-indexeddb/auto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendRecords } from '../../src/cli/records.ts';
import { importRecordsLog, inventoryOfEntry } from '../../src/core/ops/records-import.ts';
import { openStore } from '../../src/core/store/db.ts';
import { exportAudit, verifyAuditExport } from '../../src/core/store/audit.ts';
import { findByIdentifier } from '../../src/core/store/inventory.ts';
import { RECORDS_FILE } from '../../src/core/store/records-log.ts';
import { seedSigner } from '../../src/core/store/sig.ts';

let n = 0;
async function world() {
  const dir = await mkdtemp(join(tmpdir(), 'fb-import-'));
  const t0 = 1_700_000_000_000;
  await appendRecords(dir, [
    { op: 'identify', device: { serial: 'SN-1', devicePublicKey: '11'.repeat(32) }, outcome: 'ok', details: { badges: ['verified'], model: 'fieldbench-ref' }, time: t0 },
    { op: 'update', device: { serial: 'SN-1' }, outcome: 'ok', details: { image: 'a.bin', version: '1.2.0' }, time: t0 + 1 },
    { op: 'configure', device: { serial: 'SN-1' }, outcome: 'ok', details: { action: 'apply', sequence: 7 }, time: t0 + 2 },
    { op: 'identify', device: { serial: 'SN-2' }, outcome: 'rejected', details: { badges: ['unverified'] }, time: t0 + 3 },
    { op: 'events', device: {}, outcome: 'failed', details: { code: 'link' }, time: t0 + 4 },
  ]);
  const db = await openStore({ name: `import-test-${process.pid}-${++n}` });
  const app = await seedSigner('app-tech', new Uint8Array(32).fill(9));
  return { dir, db, app, text: await readFile(join(dir, RECORDS_FILE), 'utf8') };
}

describe('importing a CLI records log into the app', () => {
  it('every entry is countersigned into the trail, naming where it came from; the inventory follows; the trail still verifies', async () => {
    const w = await world();
    const r = await importRecordsLog(w.db, w.app, w.text);
    expect(r).toMatchObject({ ok: true, imported: 5, skipped: 0 });
    const doc = await exportAudit(w.db);
    expect(doc.entries.map((e) => `${e.op}:${e.outcome}`)).toEqual(['identify:ok', 'update:ok', 'configure:ok', 'identify:rejected', 'events:failed']);
    expect(doc.entries[1].details).toMatchObject({ version: '1.2.0', importedFrom: { seq: 2, technician: expect.stringMatching(/^records:/) } });
    expect((await verifyAuditExport(doc, [w.app.publicKey])).ok).toBe(true);
    const [dev] = await findByIdentifier(w.db, 'SN-1');
    expect(dev).toMatchObject({ firmware: '1.2.0', configSeq: 7, verdict: 'verified', model: 'fieldbench-ref' });
    // an identity that did not verify leaves the inventory as it is (as the app's own identify does)
    expect(await findByIdentifier(w.db, 'SN-2')).toHaveLength(0);
  });

  it('a second import of the same log adds nothing; a longer log adds only what is new', async () => {
    const w = await world();
    await importRecordsLog(w.db, w.app, w.text);
    expect(await importRecordsLog(w.db, w.app, w.text)).toMatchObject({ ok: true, imported: 0, skipped: 5 });
    await appendRecords(w.dir, [{ op: 'attest', device: { serial: 'SN-1' }, outcome: 'ok', details: { verdict: 'trusted' }, time: 1_700_000_000_100 }]);
    const longer = await readFile(join(w.dir, RECORDS_FILE), 'utf8');
    expect(await importRecordsLog(w.db, w.app, longer)).toMatchObject({ ok: true, imported: 1, skipped: 5 });
    expect((await findByIdentifier(w.db, 'SN-1'))[0]).toMatchObject({ verdict: 'trusted' });
    expect(await w.db.audit.count()).toBe(6);
  });

  it('a tampered, torn or foreign file imports nothing, and says why by code', async () => {
    const w = await world();
    const tampered = w.text.replace('"1.2.0"', '"9.9.9"');
    expect(await importRecordsLog(w.db, w.app, tampered)).toMatchObject({ ok: false, code: 'modified' });
    expect(await importRecordsLog(w.db, w.app, w.text.slice(0, -20))).toMatchObject({ ok: false, code: 'torn' });
    expect(await importRecordsLog(w.db, w.app, '{"format":"fieldbench-audit"}\n')).toMatchObject({ ok: false, code: 'not-records' });
    // with trusted keys, a log signed by anyone else is refused
    const other = await seedSigner('x', new Uint8Array(32).fill(3));
    expect(await importRecordsLog(w.db, w.app, w.text, { trustedKeys: [other.publicKey] })).toMatchObject({ ok: false, code: 'bad-signature' });
    expect(await w.db.audit.count()).toBe(0);
  });

  it('inventoryOfEntry: nothing for an entry without a device', () => {
    expect(inventoryOfEntry({ seq: 1, time: 1, technician: { id: 'x', keyId: '' }, op: 'events', device: {}, outcome: 'ok', prev: '', hash: '', sig: '', signer: '' })).toBeNull();
  });
});

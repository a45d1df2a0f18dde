import 'fake-indexeddb/auto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type FieldbenchDB } from '../../src/core/store/db.ts';
import {
  appendAudit,
  AuditDetailsError,
  checkDetails,
  deviceHistory,
  exportAudit,
  exportAuditJson,
  exportEntryHash,
  recordOperation,
  verifyAuditExport,
  type AuditExport,
  type AuditExportEntry,
} from '../../src/core/store/audit.ts';
import { findByIdentifier } from '../../src/core/store/inventory.ts';
import { keyIdHex, seedSigner, verifyEd25519, type AuditSigner } from '../../src/core/store/sig.ts';
import { ed25519Sign, ed25519Verify } from '../../src/core/trust/ed25519.ts';
import { fromHex, toHex } from '../../src/core/base/bytes.ts';

let n = 0;
const dbs: FieldbenchDB[] = [];
async function fresh(): Promise<FieldbenchDB> {
  const db = await openStore({ name: `audit-test-${process.pid}-${++n}` });
  dbs.push(db);
  return db;
}
afterEach(async () => {
  for (const db of dbs.splice(0)) {
    db.close();
    await db.delete();
  }
});

const seedA = new Uint8Array(32).fill(1);
const seedB = new Uint8Array(32).fill(2);
const seedEvil = new Uint8Array(32).fill(66);
let alice: AuditSigner, bob: AuditSigner, evil: AuditSigner;
let chain: AuditExport;
beforeAll(async () => {
  alice = await seedSigner('alice', seedA);
  bob = await seedSigner('bob', seedB);
  evil = await seedSigner('alice', seedEvil);
  const db = await openStore({ name: `audit-chain-${process.pid}` });
  const ops = ['identify', 'attest', 'configure', 'update', 'interface', 'wipe', 'import', 'attest'];
  for (let i = 0; i < ops.length; i++) {
    await recordOperation(
      db,
      { technician: i % 3 === 2 ? bob : alice, op: ops[i], outcome: i === 5 ? 'rejected' : 'ok', time: 1000 + i, details: { step: i, note: `op ${i}` } },
      { serial: `SN-${i % 2}`, mac: `02:00:00:00:00:0${i % 2}`, firmware: `1.${i}`, seen: 1000 + i },
    );
  }
  chain = await exportAudit(db, 0);
  db.close();
  await db.delete();
});

const clone = (): AuditExport => structuredClone(chain);
const trusted = () => [alice.publicKey, bob.publicKey];

async function resign(e: AuditExportEntry, signer: AuditSigner): Promise<void> {
  e.technician = { id: signer.id, keyId: keyIdHex(signer.publicKey) };
  e.signer = toHex(signer.publicKey);
  e.hash = exportEntryHash(e);
  e.sig = toHex(await signer.sign(fromHex(e.hash)));
}

describe('signing and verification helpers', () => {
  it('seedSigner signs exactly like ed25519Sign, and verifyEd25519 agrees with ed25519Verify', async () => {
    const msg = new Uint8Array(32).fill(9);
    const sig = await alice.sign(msg);
    expect(sig).toEqual(await ed25519Sign(msg, seedA));
    expect(await verifyEd25519(sig, msg, alice.publicKey)).toBe(true);
    const bad = sig.slice();
    bad[5] ^= 1;
    expect(await verifyEd25519(bad, msg, alice.publicKey)).toBe(false);
    // S + L (non-canonical S): the strict rule rejects it; so must the fast path
    const sPlusL = sig.slice();
    const L = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const v = sPlusL[32 + i] + L[i] + carry;
      sPlusL[32 + i] = v & 0xff;
      carry = v >> 8;
    }
    if (carry === 0) {
      expect(await ed25519Verify(sPlusL, msg, alice.publicKey)).toBe(false);
      expect(await verifyEd25519(sPlusL, msg, alice.publicKey)).toBe(false);
    }
    // small-order public key (identity point) with a trivial signature
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const trivial = new Uint8Array(64);
    trivial.set(identity, 0);
    expect(await verifyEd25519(trivial, msg, identity)).toBe(await ed25519Verify(trivial, msg, identity));
    expect(await verifyEd25519(trivial, msg, identity)).toBe(false);
    expect(await verifyEd25519(new Uint8Array(63), msg, alice.publicKey)).toBe(false);
  });
});

describe('recording operations', () => {
  it('writes the entry and the inventory update together, chained and signed', async () => {
    const db = await fresh();
    const r1 = await recordOperation(db, { technician: alice, op: 'identify', outcome: 'ok', details: { info: 'x' } }, { serial: 'SN-1', devicePublicKey: '44'.repeat(32) });
    const r2 = await recordOperation(db, { technician: alice, op: 'attest', outcome: 'ok' }, { devicePublicKey: '44'.repeat(32), verdict: 'verified' });
    expect(r1.entry.seq).toBe(1);
    expect(r1.entry.prev).toEqual(new Uint8Array(32));
    expect(r2.entry.seq).toBe(2);
    expect(r2.entry.prev).toEqual(r1.entry.hash);
    expect(r2.entry.device).toEqual({ devicePublicKey: '44'.repeat(32) });
    expect(await verifyEd25519(r2.entry.sig, r2.entry.hash, alice.publicKey)).toBe(true);
    expect(r2.device?.id).toBe(r1.device?.id);
    expect((await findByIdentifier(db, 'SN-1'))[0].verdict).toBe('verified');
    expect((await deviceHistory(db, { serial: 'SN-1' })).map((e) => e.seq)).toEqual([1]);
    expect((await deviceHistory(db, { devicePublicKey: '44'.repeat(32) })).map((e) => e.seq)).toEqual([1, 2]);
    const v = await verifyAuditExport(await exportAuditJson(db), [alice.publicKey]);
    expect(v).toMatchObject({ ok: true, count: 2, authenticated: true });
  });

  it('a failure in the inventory write leaves no audit entry (one transaction)', async () => {
    const db = await fresh();
    await recordOperation(db, { technician: alice, op: 'identify', outcome: 'ok' }, { serial: 'SN-1' });
    const failing = () => {
      throw new Error('inventory write failed');
    };
    db.devices.hook('creating', failing);
    await expect(recordOperation(db, { technician: alice, op: 'identify', outcome: 'ok' }, { serial: 'SN-2' })).rejects.toThrow(/inventory write failed/);
    expect(await db.audit.count()).toBe(1);
    expect(await db.devices.count()).toBe(1);
    // the chain continues from the last committed entry
    db.devices.hook('creating').unsubscribe(failing);
    const r = await recordOperation(db, { technician: alice, op: 'identify', outcome: 'ok' }, { serial: 'SN-2' });
    expect(r.entry.seq).toBe(2);
    expect((await verifyAuditExport(await exportAudit(db))).ok).toBe(true);
  });

  it('concurrent appends are serialised into one chain', async () => {
    const db = await fresh();
    await Promise.all(Array.from({ length: 20 }, (_, i) => recordOperation(db, { technician: i % 2 ? alice : bob, op: 'identify', outcome: 'ok' }, { serial: `S${i}` })));
    const exp = await exportAudit(db);
    expect(exp.entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await verifyAuditExport(exp, trusted())).toMatchObject({ ok: true, count: 20 });
  });

  it('rejects details that look like secrets or do not survive export', async () => {
    const db = await fresh();
    for (const details of [{ wifiPsk: 'x' }, { nested: { Password: 'x' } }, { list: [{ accessToken: 'x' }] }, { privateKey: 'x' }, { private_key: 'x' }, { passphrase: 1 }, { clientSecret: 'x' }]) {
      await expect(recordOperation(db, { technician: alice, op: 'configure', outcome: 'ok', details }, { serial: 'S' })).rejects.toThrow(AuditDetailsError);
    }
    expect(() => checkDetails({ bytes: new Uint8Array(1) })).toThrow(/hex-encode/);
    expect(() => checkDetails({ ratio: 0.5 })).toThrow(/integers/);
    expect(() => checkDetails({ ok: true, n: 3, s: 'x', a: [null, 1], o: { keyId: 'ab' } })).not.toThrow();
    expect(await db.audit.count()).toBe(0);
    expect(await db.devices.count()).toBe(0);
  });

  it('appendAudit stores a batch in one transaction', async () => {
    const db = await fresh();
    const r = await appendAudit(db, [{ op: 'import', outcome: 'ok', device: { serial: 'A' } }, { op: 'import', outcome: 'ok', device: { serial: 'B' } }], bob);
    expect(r.entries.map((e) => e.seq)).toEqual([1, 2]);
    expect(await verifyAuditExport(await exportAudit(db), [bob.publicKey])).toMatchObject({ ok: true, count: 2 });
  });
});

describe('verifying an export', () => {
  it('accepts the intact trail, with and without trusted keys, through JSON', async () => {
    expect(await verifyAuditExport(JSON.stringify(chain), trusted())).toEqual({
      ok: true,
      count: 8,
      head: chain.head,
      authenticated: true,
      signers: [keyIdHex(alice.publicKey), keyIdHex(bob.publicKey)],
    });
    expect(await verifyAuditExport(chain)).toMatchObject({ ok: true, count: 8, authenticated: false });
    expect(await verifyAuditExport({ format: 'fieldbench-audit', version: 1, entries: [], head: null })).toMatchObject({ ok: true, count: 0 });
  });

  it('refuses an entry whose signer field names another key than the trusted one that signed it (found by fuzzing)', async () => {
    const x = clone();
    x.entries[0].signer = toHex(bob.publicKey);
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'bad-signature', index: 0 });
    const y = clone();
    y.entries[4].signer = y.entries[4].signer.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    expect(await verifyAuditExport(y, trusted())).toMatchObject({ ok: false, code: 'bad-signature', index: 4 });
  });

  it('refuses hex in another spelling (uppercase): one entry has one text (found by fuzzing)', async () => {
    const x = clone();
    x.entries[2].hash = x.entries[2].hash.toUpperCase();
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'malformed' });
  });

  it('names a deleted entry (middle, first, last)', async () => {
    let x = clone();
    x.entries.splice(3, 1);
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'deleted', index: 3, reason: expect.stringMatching(/seq 4 is missing/) });
    x = clone();
    x.entries.splice(2, 3);
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'deleted', index: 2, reason: expect.stringMatching(/seq 3\.\.5 are missing/) });
    x = clone();
    x.entries.shift();
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'deleted', index: 0 });
    x = clone();
    x.entries.pop();
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'deleted', index: 7, reason: expect.stringMatching(/seq 8 is missing at the end/) });
    // cutting the tail and rewriting head is caught against a head recorded elsewhere
    x.head = { seq: 7, hash: x.entries[6].hash };
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: true, count: 7 });
    expect(await verifyAuditExport(x, trusted(), { expectedHead: chain.head! })).toMatchObject({ ok: false, code: 'deleted', index: 7 });
  });

  it('names a reordered entry', async () => {
    let x = clone();
    [x.entries[2], x.entries[3]] = [x.entries[3], x.entries[2]];
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'reordered', index: 2, seq: 4 });
    x = clone();
    x.entries.push(...x.entries.splice(1, 1));
    x.head = { seq: 2, hash: x.entries[7].hash };
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'reordered', index: 1, seq: 3 });
    x = clone();
    x.entries.splice(1, 0, ...x.entries.splice(5, 1));
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'reordered', index: 1, seq: 6 });
  });

  it('names an inserted entry (forged in the middle, duplicated, appended after the head)', async () => {
    // forged entry, correctly chained after seq 3, signed by an intruder
    let x = clone();
    const forged: AuditExportEntry = { ...structuredClone(x.entries[3]), outcome: 'ok', op: 'wipe', prev: x.entries[2].hash };
    await resign(forged, evil);
    x.entries.splice(3, 0, forged);
    for (const keys of [trusted(), undefined]) {
      expect(await verifyAuditExport(x, keys)).toMatchObject({ ok: false, code: 'inserted', index: 3, seq: 4 });
    }
    // two forged entries chained to each other
    x = clone();
    const f1: AuditExportEntry = { ...structuredClone(x.entries[3]), op: 'wipe', prev: x.entries[2].hash };
    await resign(f1, evil);
    const f2: AuditExportEntry = { ...structuredClone(x.entries[3]), seq: 5, op: 'update', prev: f1.hash };
    await resign(f2, evil);
    x.entries.splice(3, 0, f1, f2);
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'inserted', index: 3, reason: expect.stringMatching(/entries 3\.\.4 were added/) });
    x = clone();
    x.entries.splice(5, 0, structuredClone(x.entries[2]));
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'inserted', index: 5, reason: expect.stringMatching(/copy of entry 2/) });
    x = clone();
    const extra: AuditExportEntry = { ...structuredClone(x.entries[7]), seq: 9, prev: x.entries[7].hash };
    await resign(extra, alice);
    x.entries.push(extra);
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'inserted', index: 8 });
  });

  it('names a modified entry (content changed, with or without rehashing)', async () => {
    let x = clone();
    x.entries[4].outcome = 'ok-edited';
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'modified', index: 4, seq: 5 });
    x = clone();
    x.entries[4].details = { step: 4, note: 'nothing happened' };
    x.entries[4].hash = exportEntryHash(x.entries[4]);
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'modified', index: 4 });
    x = clone();
    x.entries[6].time += 1;
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'modified', index: 6 });
    x = clone();
    x.entries[2].device = { serial: 'SN-X' };
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'modified', index: 2 });
  });

  it('detects signature forgery', async () => {
    // flipped signature bit
    let x = clone();
    const s = fromHex(x.entries[5].sig);
    s[10] ^= 0x40;
    x.entries[5].sig = toHex(s);
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'bad-signature', index: 5 });
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'bad-signature', index: 5 });
    // last entry rewritten and re-signed by an intruder (head updated): only trusted keys catch it
    x = clone();
    x.entries[7].outcome = 'rejected';
    await resign(x.entries[7], evil);
    x.head = { seq: 8, hash: x.entries[7].hash };
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'bad-signature', index: 7, reason: expect.stringMatching(/not a trusted technician key/) });
    expect(await verifyAuditExport(x)).toMatchObject({ ok: true, authenticated: false });
    // intruder key under alice's key id
    x = clone();
    x.entries[7].outcome = 'rejected';
    const keyId = x.entries[7].technician.keyId;
    await resign(x.entries[7], evil);
    x.entries[7].technician.keyId = keyId;
    x.entries[7].hash = exportEntryHash(x.entries[7]);
    x.entries[7].sig = toHex(await evil.sign(fromHex(x.entries[7].hash)));
    x.head = { seq: 8, hash: x.entries[7].hash };
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'bad-signature', index: 7, reason: expect.stringMatching(/does not match/) });
    expect(await verifyAuditExport(x, trusted())).toMatchObject({ ok: false, code: 'bad-signature', index: 7 });
    // only alice trusted: bob's first entry is named
    expect(await verifyAuditExport(chain, [alice.publicKey])).toMatchObject({ ok: false, code: 'bad-signature', index: 2 });
  });

  it('reports malformed input with its position', async () => {
    expect(await verifyAuditExport('{not json')).toMatchObject({ ok: false, code: 'malformed', index: -1 });
    expect(await verifyAuditExport({ format: 'other' })).toMatchObject({ ok: false, code: 'malformed', index: -1 });
    let x = clone();
    delete (x.entries[3] as Partial<AuditExportEntry>).outcome;
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'malformed', index: 3 });
    x = clone();
    x.entries[1].sig = 'zz';
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'malformed', index: 1 });
    x = clone();
    (x.entries[1] as unknown as Record<string, unknown>).extra = 1;
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'malformed', index: 1 });
    x = clone();
    (x.entries[1].details as Record<string, unknown>).step = 1.5;
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'malformed', index: 1 });
    x = clone();
    x.head = null;
    expect(await verifyAuditExport(x)).toMatchObject({ ok: false, code: 'malformed', index: -1 });
  });
});

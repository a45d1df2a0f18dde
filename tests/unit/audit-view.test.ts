import 'fake-indexeddb/auto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type AuditRecord, type FieldbenchDB } from '../../src/core/store/db.ts';
import { AuditDetailsError, recordOperation } from '../../src/core/store/audit.ts';
import { keyIdHex, seedSigner } from '../../src/core/store/sig.ts';
import {
  AUDIT_OUTCOMES,
  auditDeviceLabel,
  auditMatches,
  auditOps,
  auditSummary,
  describeAuditEntry,
  localTime,
  queryAudit,
} from '../../src/core/ops/records.ts';
import { toHex } from '../../src/core/base/bytes.ts';

type Entry = Parameters<typeof describeAuditEntry>[0];

const devKey = new Uint8Array(32).map((_, i) => i + 1);
const devKeyHex = toHex(devKey);

function entry(op: string, outcome: string, details?: Record<string, unknown>, device: AuditRecord['device'] = { serial: 'SN-7' }): Entry {
  return { seq: 3, time: new Date(2026, 10, 21, 9, 5, 7).getTime(), technician: { id: 'ada', keyId: '0123456789abcdef' }, op, device, outcome, details };
}

describe('describeAuditEntry', () => {
  it('gives device, op, outcome badge tone, who, local time and raw JSON', () => {
    const v = describeAuditEntry(entry('update', 'ok', { version: '1.1.0', confirmed: true }));
    expect(v).toMatchObject({ seq: 3, device: 'SN-7', op: 'update', outcome: 'ok', tone: 'ok', who: 'ada', whoKey: '0123456789abcdef', when: '2026-11-21 09:05:07' });
    expect(v.whenIso).toBe(new Date(2026, 10, 21, 9, 5, 7).toISOString());
    expect(v.summary).toBe('firmware 1.1.0 confirmed');
    expect(JSON.parse(v.raw)).toEqual({ version: '1.1.0', confirmed: true });
    expect(v.deviceTitle).toBe('Serial SN-7');
    expect(describeAuditEntry(entry('identify', 'ok')).raw).toBe('');
  });

  it('maps every recorded outcome to a badge tone and a meaning', () => {
    const tones = AUDIT_OUTCOMES.map((o) => describeAuditEntry(entry('x', o)).tone);
    expect(tones).toEqual(['ok', 'warn', 'bad', 'bad', 'neutral', 'bad', 'neutral']);
    for (const o of AUDIT_OUTCOMES) expect(describeAuditEntry(entry('x', o)).outcomeMeaning).not.toBe(o);
    const odd = describeAuditEntry(entry('x', 'ok-edited'));
    expect(odd.tone).toBe('neutral');
    expect(odd.outcome).toBe('ok-edited');
  });

  it('device column: serial, else the device key id, else another identifier', () => {
    expect(auditDeviceLabel({ serial: 'SN-1', devicePublicKey: devKeyHex })).toBe('SN-1');
    expect(auditDeviceLabel({ devicePublicKey: devKeyHex, mac: '001122334455' })).toBe(`key ${keyIdHex(devKey)}`);
    expect(auditDeviceLabel({ ueid: '01' + 'ab'.repeat(16) })).toBe('UEID 01ababababababab…');
    expect(auditDeviceLabel({ mac: '001122334455' })).toBe('MAC 001122334455');
    expect(auditDeviceLabel({})).toBe('—');
    const v = describeAuditEntry(entry('identify', 'failed', { reason: 'no answer' }, {}));
    expect(v.deviceTitle).toBe('no device identifiers recorded');
  });

  it('local time is the local wall clock', () => {
    expect(localTime(new Date(2027, 0, 2, 3, 4, 5).getTime())).toBe('2027-01-02 03:04:05');
  });
});

describe('auditSummary by operation', () => {
  const s = (op: string, outcome: string, details?: Record<string, unknown>) => auditSummary({ op, outcome, details });

  it('rotation, wipe and interface change in words (the key itself is never in a record, only key ids)', () => {
    expect(s('rotate', 'ok', { what: 'dev-eui', old: '', new: '70b3d57ed0001234' })).toBe('DevEUI replaced: none → 70:B3:D5:7E:D0:00:12:34; receipt signed by the device');
    expect(s('rotate', 'ok', { what: 'app-key', old: '0011223344556677', new: '8899aabbccddeeff' })).toBe('network key replaced: key id 0011223344556677 → 8899aabbccddeeff; receipt signed by the device');
    expect(s('rotate', 'failed', { code: 'login', reason: 'not rotated: the device refused the login: revoked' })).toBe('rotation failed: not rotated: the device refused the login: revoked');
    expect(s('wipe', 'ok', { erasedSequence: 4 })).toBe('wiped: configuration #4 and secrets erased; identity kept');
    expect(s('interface', 'ok', { changed: 'shell disabled -> authenticated' })).toBe('interfaces: shell disabled → authenticated');
  });

  it('configure', () => {
    const digest = '1a2b3c4d' + '0'.repeat(56);
    expect(s('configure', 'ok', { action: 'apply', sequence: 3, digest, source: 'site.cfg' })).toBe('configuration #3 applied (sha256 1a2b3c4d…)');
    expect(s('configure', 'ok', { action: 'restore', sequence: 2, digest, source: 'backup of 2026-11-20T10:00:00.000Z' })).toBe(
      'configuration #2 restored from backup of 2026-11-20T10:00:00.000Z (sha256 1a2b3c4d…)',
    );
    expect(s('configure', 'attention', { action: 'write', signed: false, note: 'unsigned', keys: ['wifi.ssid', 'net.mode'] })).toBe('unsigned settings written: wifi.ssid, net.mode');
    expect(s('configure', 'cancelled', { action: 'apply', code: 'cancelled', by: 'tool', reason: 'the technician did not confirm the changes' })).toBe(
      'configuration cancelled: the technician did not confirm the changes',
    );
    expect(s('configure', 'rejected', { action: 'apply', sequence: 1, code: 'rollback', by: 'device', reason: 'sequence 1 is not newer than 4' })).toBe(
      'configuration #1 refused by the device: sequence 1 is not newer than 4',
    );
    expect(s('configure', 'rejected', { action: 'apply', code: 'signature', by: 'tool', reason: 'not signed by the owner' })).toBe('configuration refused by this tool: not signed by the owner');
    expect(s('configure', 'failed', { action: 'apply', code: 'transfer', reason: 'link lost' })).toBe('configuration failed: link lost');
  });

  it('update', () => {
    expect(s('update', 'ok', { image: 'fw.bin', imageVersion: '1.1.0', version: '1.1.0', confirmed: true })).toBe('firmware 1.1.0 confirmed');
    // MCUboot's build number 0 is left out, as people write versions; another stays.
    expect(s('update', 'ok', { imageVersion: '1.1.0+0', version: '1.1.0+0', confirmed: true })).toBe('firmware 1.1.0 confirmed');
    expect(s('update', 'ok', { version: '1.1.0+7', confirmed: true })).toBe('firmware 1.1.0+7 confirmed');
    expect(s('update', 'attention', { imageVersion: '1.1.0', version: '1.1.0', confirmed: false })).toBe('firmware 1.1.0 running as a test, not confirmed');
    expect(s('update', 'cancelled', { image: 'fw.bin', imageVersion: '1.2.0', sent: 4096, reason: 'stopped' })).toBe('firmware update to 1.2.0 cancelled after 4096 bytes: stopped');
    expect(s('update', 'reverted', { image: 'fw.bin', reason: 'the device reverted to 1.0.0' })).toBe('firmware update (fw.bin) reverted: the device reverted to 1.0.0');
    expect(s('update', 'rejected', { reason: 'downgrade' })).toBe('firmware update rejected: downgrade');
    expect(s('update', 'failed', { imageVersion: '1.2.0', preflight: 'image not in the bundle', reason: 'refused before upload' })).toBe('firmware update to 1.2.0 failed: refused before upload');
  });

  it('attest', () => {
    const reasons = [
      { check: 'signature', result: 'pass', detail: 'EdDSA signature verified' },
      { check: 'interfaces', result: 'warn', detail: 'interface open without authentication: shell' },
    ];
    expect(s('attest', 'attention', { verdict: 'warning', reasons })).toBe('verdict warning: interfaces (interface open without authentication: shell)');
    expect(s('attest', 'ok', { verdict: 'trusted', reasons: [reasons[0]], claims: { software: [{ version: '1.1.0', measurement: 'aa' }] } })).toBe('verdict trusted, firmware 1.1.0');
    const bad = [reasons[1], { check: 'nonce', result: 'fail', detail: 'stale token' }];
    expect(s('attest', 'rejected', { verdict: 'untrusted', reasons: bad })).toBe('verdict untrusted: nonce (stale token); 1 more');
    expect(s('attest', 'failed', { reason: 'timeout' })).toBe('attestation failed: timeout');
    expect(s('attest', 'not-supported', { reason: 'no attestation group' })).toBe('attest: not supported by the device: no attestation group');
  });

  it('identify', () => {
    const checks = [
      { check: 'certificate', result: 'pass', detail: 'chains to the manufacturer' },
      { check: 'label', result: 'fail', detail: 'label says SN-8' },
    ];
    expect(s('identify', 'ok', { badges: ['verified'], checks: [checks[0]], model: 'fieldbench-ref' })).toBe('identity verified (fieldbench-ref)');
    expect(s('identify', 'attention', { badges: ['verified', 'label-mismatch'], checks })).toBe('identity verified, but label-mismatch: label (label says SN-8)');
    expect(s('identify', 'rejected', { badges: ['unverified'], checks: [{ check: 'possession', result: 'fail', detail: 'does not hold that key' }] })).toBe(
      'identity NOT verified: possession (does not hold that key)',
    );
    expect(s('identify', 'failed', { reason: 'no answer' })).toBe('identification failed: no answer');
  });

  it('events, other operations, and long text is clipped to one line', () => {
    expect(s('events', 'ok', { count: 12, last: 40, truncated: true })).toBe('12 events read, newest counter 40 (more on the device)');
    expect(s('events', 'ok', { count: 1, last: 1, truncated: false })).toBe('1 event read, newest counter 1');
    expect(s('import', 'ok', { kind: 'bundle', file: 'b.cbor', nested: { a: 1 } })).toBe('import done (kind bundle, file b.cbor)');
    expect(s('import', 'rejected', { reason: 'bad signature' })).toBe('import rejected: bad signature');
    const long = s('update', 'failed', { reason: 'x'.repeat(500) + '\nsecond line' });
    expect(long.length).toBe(200);
    expect(long).not.toContain('\n');
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('auditMatches', () => {
  const e = { op: 'identify', outcome: 'attention', device: { serial: 'SN-042', devicePublicKey: devKeyHex, mac: '001122334455' } };
  it('filters by operation, outcome and device text', () => {
    expect(auditMatches(e, {})).toBe(true);
    expect(auditMatches(e, { op: 'identify', outcome: 'attention' })).toBe(true);
    expect(auditMatches(e, { op: 'attest' })).toBe(false);
    expect(auditMatches(e, { outcome: 'ok' })).toBe(false);
    expect(auditMatches(e, { device: 'sn-04' })).toBe(true);
    expect(auditMatches(e, { device: '00:11:22' })).toBe(true);
    expect(auditMatches(e, { device: `key ${keyIdHex(devKey).slice(0, 8)}` })).toBe(true);
    expect(auditMatches(e, { device: devKeyHex.slice(10, 30).toUpperCase() })).toBe(true);
    expect(auditMatches(e, { device: 'SN-043' })).toBe(false);
    expect(auditMatches(e, { device: 'ffee' })).toBe(false);
    expect(auditMatches({ ...e, device: {} }, { device: 'SN' })).toBe(false);
  });
});

describe('queryAudit (store)', () => {
  let db: FieldbenchDB;
  let n = 0;
  beforeEach(async () => {
    db = await openStore({ name: `audit-view-${process.pid}-${n++}` });
  });
  afterEach(async () => {
    db.close();
    await db.delete();
  });

  async function seed() {
    const tech = await seedSigner('tech-1', new Uint8Array(32).fill(9));
    const t0 = Date.now() - 10_000;
    const rows: [string, string, Record<string, unknown>, Record<string, string>][] = [
      ['identify', 'ok', { badges: ['verified'] }, { serial: 'SN-1' }],
      ['attest', 'attention', { verdict: 'warning' }, { serial: 'SN-1' }],
      ['identify', 'rejected', { badges: ['unverified'] }, { devicePublicKey: devKeyHex }],
      ['update', 'ok', { version: '1.1.0', confirmed: true }, { serial: 'SN-2', mac: '00:11:22:33:44:55' }],
      ['configure', 'cancelled', { action: 'apply', reason: 'did not confirm' }, { serial: 'SN-2' }],
    ];
    let i = 0;
    for (const [op, outcome, details, device] of rows) await recordOperation(db, { technician: tech, op, outcome, details, device, time: t0 + i++ });
  }

  it('lists the newest first, filters over the whole trail, and limits what it returns', async () => {
    await seed();
    const all = await queryAudit(db);
    expect(all.total).toBe(5);
    expect(all.matched).toBe(5);
    expect(all.entries.map((e) => e.seq)).toEqual([5, 4, 3, 2, 1]);
    expect(all.entries[2].device).toBe(`key ${keyIdHex(devKey)}`);
    expect(all.entries[0].summary).toBe('configuration cancelled: did not confirm');
    expect(all.entries[0].who).toBe('tech-1');

    const ids = await queryAudit(db, { op: 'identify' });
    expect(ids.entries.map((e) => e.seq)).toEqual([3, 1]);
    expect(ids.matched).toBe(2);
    expect((await queryAudit(db, { outcome: 'ok' })).entries.map((e) => e.seq)).toEqual([4, 1]);
    expect((await queryAudit(db, { device: 'sn-1' })).entries.map((e) => e.seq)).toEqual([2, 1]);
    expect((await queryAudit(db, { device: '00-11-22' })).entries.map((e) => e.seq)).toEqual([4]);
    expect((await queryAudit(db, { device: keyIdHex(devKey) })).entries.map((e) => e.seq)).toEqual([3]);
    expect((await queryAudit(db, { op: 'identify', outcome: 'ok', device: 'SN-2' })).entries).toEqual([]);

    const limited = await queryAudit(db, { device: 'SN' }, 2);
    expect(limited.matched).toBe(4);
    expect(limited.entries.map((e) => e.seq)).toEqual([5, 4]);
    expect((await queryAudit(db, {}, 3)).entries.map((e) => e.seq)).toEqual([5, 4, 3]);
    expect(await auditOps(db)).toEqual(['attest', 'configure', 'identify', 'update']);
  });

  it('secrets never reach the trail, so the page cannot show them', async () => {
    const tech = await seedSigner('tech-1', new Uint8Array(32).fill(9));
    await expect(recordOperation(db, { technician: tech, op: 'configure', outcome: 'ok', details: { settings: { wifiPassword: 'hunter2' } }, device: { serial: 'SN-1' } })).rejects.toBeInstanceOf(
      AuditDetailsError,
    );
    expect((await queryAudit(db)).total).toBe(0);
  });
});

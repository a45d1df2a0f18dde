/**
 * The CLI's records log (src/cli/records.ts, format src/core/store/records-log.ts):
 * appends chain and sign like the app's audit trail, the per-user key is
 * private, a torn last line is reported and never silently dropped,
 * concurrent appends keep one chain, and tampering is named by code.
 */
import { mkdtemp, readFile, stat, writeFile, appendFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendRecords, recordsDir, recordsKey, RECORDS_KEY, RECORDS_PUB } from '../../src/cli/records.ts';
import { RECORDS_FILE, parseRecordsLog, verifyRecordsLog } from '../../src/core/store/records-log.ts';
import { verifyAuditExport } from '../../src/core/store/audit.ts';
import { logAsExport } from '../../src/core/store/records-log.ts';
import { keyIdHex } from '../../src/core/store/sig.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';

const tmp = () => mkdtemp(join(tmpdir(), 'fb-records-'));
const entry = (n: number) => ({ op: 'info', device: { serial: `SN-${n}` }, outcome: 'ok', details: { n }, time: 1_700_000_000_000 + n });

describe('records log', () => {
  it('appends hash-chained, signed entries that verify as an audit export does', async () => {
    const dir = await tmp();
    await appendRecords(dir, [entry(1)]);
    await appendRecords(dir, [entry(2), entry(3)]);
    const text = await readFile(join(dir, RECORDS_FILE), 'utf8');
    const v = await verifyRecordsLog(text);
    expect(v).toMatchObject({ ok: true, count: 3, head: { seq: 3 } });
    // The same entries are a valid app audit export, byte for byte the same entry format.
    const p = parseRecordsLog(text);
    expect(p.ok && (await verifyAuditExport(logAsExport(p.entries))).ok).toBe(true);
    // Signed by the per-user records key, whose public key lies beside it.
    const k = await recordsKey(dir);
    expect(k.created).toBe(false);
    expect(v.ok && v.signers).toEqual([keyIdHex(k.publicKey)]);
    expect((await stat(join(dir, RECORDS_KEY))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, RECORDS_PUB), 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    const trusted = await verifyRecordsLog(text, [k.publicKey]);
    expect(trusted).toMatchObject({ ok: true, authenticated: true });
  });

  it('signs with the technician key when the verb has one', async () => {
    const dir = await tmp();
    const seed = new Uint8Array(32).fill(3);
    await appendRecords(dir, [entry(1)], { seed, technician: 'alice' });
    const text = await readFile(join(dir, RECORDS_FILE), 'utf8');
    const v = await verifyRecordsLog(text, [await ed25519PublicKey(seed)]);
    expect(v).toMatchObject({ ok: true, authenticated: true, technicians: ['alice'] });
    // A key the verifier does not trust is named by code.
    expect(await verifyRecordsLog(text, [await ed25519PublicKey(new Uint8Array(32).fill(4))])).toMatchObject({ ok: false, code: 'bad-signature' });
  });

  it('a torn last line is reported by verify, then moved aside and recorded by the next append', async () => {
    const dir = await tmp();
    await appendRecords(dir, [entry(1), entry(2)]);
    const file = join(dir, RECORDS_FILE);
    const whole = await readFile(file, 'utf8');
    // A crash in the middle of writing the third line.
    await appendFile(file, '{"seq":3,"time":17000000');
    const v = await verifyRecordsLog(await readFile(file, 'utf8'));
    expect(v).toMatchObject({ ok: false, code: 'torn', count: 2, line: 4 });
    const r = await appendRecords(dir, [entry(3)]);
    expect(r.torn?.bytes).toBe('{"seq":3,"time":17000000'.length);
    expect(await readFile(r.torn!.savedAs, 'utf8')).toBe('{"seq":3,"time":17000000');
    const after = await readFile(file, 'utf8');
    expect(after.startsWith(whole)).toBe(true);
    const p = parseRecordsLog(after);
    expect(p.ok && p.entries.map((e) => [e.seq, e.op, e.outcome])).toEqual([
      [1, 'info', 'ok'],
      [2, 'info', 'ok'],
      [3, 'records', 'torn-tail'],
      [4, 'info', 'ok'],
    ]);
    expect(await verifyRecordsLog(after)).toMatchObject({ ok: true, count: 4 });
  });

  it('a broken line that is not the last is malformed: nothing is appended over it', async () => {
    const dir = await tmp();
    await appendRecords(dir, [entry(1)]);
    const file = join(dir, RECORDS_FILE);
    await appendFile(file, 'garbage\n');
    expect(await verifyRecordsLog(await readFile(file, 'utf8'))).toMatchObject({ ok: false, code: 'malformed', line: 3 });
    await expect(appendRecords(dir, [entry(2)])).rejects.toMatchObject({ code: 'malformed' });
  });

  it('tampering is named: a changed entry, a removed entry, a file that is no log', async () => {
    const dir = await tmp();
    await appendRecords(dir, [entry(1), entry(2), entry(3)]);
    const text = await readFile(join(dir, RECORDS_FILE), 'utf8');
    const lines = text.split('\n');
    expect(await verifyRecordsLog(lines.map((l, i) => (i === 2 ? l.replace('"ok"', '"rejected"') : l)).join('\n'))).toMatchObject({ ok: false, code: 'modified', line: 3 });
    expect(await verifyRecordsLog(lines.filter((_, i) => i !== 2).join('\n'))).toMatchObject({ ok: false, code: 'deleted' });
    expect(await verifyRecordsLog('{"format":"fieldbench-audit"}\n')).toMatchObject({ ok: false, code: 'not-records' });
    expect(await verifyRecordsLog('')).toMatchObject({ ok: false, code: 'not-records' });
  });

  it('concurrent appends keep one chain (the lock serialises them)', async () => {
    const dir = await tmp();
    await Promise.all(Array.from({ length: 6 }, (_, i) => appendRecords(dir, [entry(i)])));
    const v = await verifyRecordsLog(await readFile(join(dir, RECORDS_FILE), 'utf8'));
    expect(v).toMatchObject({ ok: true, count: 6 });
    expect((await readdir(dir)).filter((f) => f.endsWith('.lock'))).toEqual([]);
  });

  it('a records key readable by others is refused', async () => {
    const dir = await tmp();
    await recordsKey(dir);
    await writeFile(join(dir, RECORDS_KEY), await readFile(join(dir, RECORDS_KEY)), { mode: 0o644 });
    const { chmod } = await import('node:fs/promises');
    await chmod(join(dir, RECORDS_KEY), 0o644);
    await expect(appendRecords(dir, [entry(1)])).rejects.toMatchObject({ code: 'key' });
  });

  it('the folder: --records DIR, else $XDG_DATA_HOME/fieldbench, else ~/.local/share/fieldbench; "off" is none', () => {
    const args = (v?: string) => ({ get: (n: string) => (n === 'records' ? v : undefined) });
    expect(recordsDir(args('out/rec'), { cwd: '/w', env: {} })).toBe('/w/out/rec');
    expect(recordsDir(args('off'), { cwd: '/w', env: {} })).toBeNull();
    expect(recordsDir(args(), { cwd: '/w', env: { XDG_DATA_HOME: '/data' } })).toBe('/data/fieldbench');
    expect(recordsDir(args(), { cwd: '/w', env: { HOME: '/home/t' } })).toBe('/home/t/.local/share/fieldbench');
    // A relative XDG_DATA_HOME is invalid by the spec: ignored.
    expect(recordsDir(args(), { cwd: '/w', env: { XDG_DATA_HOME: 'rel', HOME: '/home/t' } })).toBe('/home/t/.local/share/fieldbench');
  });
});

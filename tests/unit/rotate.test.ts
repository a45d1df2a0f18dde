/**
 * Key and identifier rotation (issue 14 item 14): the op against the
 * reference device, the device's own checks tried as an attacker has them
 * (no login, a credential without rotate-keys, a bad value), the signed
 * receipt, the record (a key is never recorded; a new DevEUI replaces the
 * inventory's) and the CLI verb.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import 'fake-indexeddb/auto';
import { SEC, SEC_RC, SecurityGroup, rotationKeyId } from '../../src/core/groups/security.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { newRotationValue, parseRotationValue, rotateDevice } from '../../src/core/ops/identification/rotate.ts';
import { runOp } from '../../src/core/ops/outcome.ts';
import { rotateRecord } from '../../src/core/ops/record.ts';
import { commitRecord } from '../../src/core/ops/record-plan.ts';
import { inventoryOfEntry } from '../../src/core/ops/records-import.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import type { Permission } from '../../src/core/trust/credential.ts';
import { accessCommands } from '../../src/cli/commands/access.ts';
import { UsageError } from '../../src/cli/command.ts';
import { RECORDS_FILE, parseRecordsLog } from '../../src/core/store/records-log.ts';
import { FieldbenchDB } from '../../src/core/store/db.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import { findByIdentifier, upsertDevice } from '../../src/core/store/inventory.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { FAST, type World, world } from '../helpers/identity-world.ts';
import { LOGIN_ARGS, type LoginOptions, captureIo, loginFiles, narrowCredential, technicianLogin } from '../helpers/access-world.ts';

const NEW_EUI = Uint8Array.of(0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0x00, 0x12, 0x34);

/** The rotate-keys login; `precheck: false` leaves the refusal to the device. */
const login = (w: World, opts: LoginOptions = {}) => technicianLogin(w, { permission: 'rotate-keys', ...opts });
const narrow = (w: World, permissions: Permission[]) => narrowCredential(w.auth, permissions);

const group = (w: World) => new SecurityGroup(w.session.client, w.sec.groupId);

describe('rotate op', () => {
  it('rotates the DevEUI after a confirmation and a login; the receipt verifies; the device reports the new DevEUI', async () => {
    const w = await world();
    const before = await group(w).identity();
    const seen: string[] = [];
    let asked: unknown;
    const o = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: NEW_EUI, devicePublicKey: before.devicePublicKey, confirm: async (c) => ((asked = c), true), authenticate: login(w) }), { onState: (s) => void seen.push(s.kind) });
    expect(o).toMatchObject({ kind: 'done', result: { serial: before.serial, what: 'dev-eui', old: before.devEui ? toHex(before.devEui) : '', new: toHex(NEW_EUI) } });
    expect(seen).toEqual(['finding-group', 'identifying', 'confirming', 'authenticating', 'rotating', 'verifying', 'checking', 'done']);
    expect(asked).toMatchObject({ kind: 'confirming', what: 'dev-eui', new: toHex(NEW_EUI) });
    expect((await group(w).identity()).devEui).toEqual(NEW_EUI);
    const events = await group(w).allEvents();
    expect(events.some((e) => e.type === 'rotated' && /DevEUI rotated/.test(e.detail))).toBe(true);
    await w.close();
  });

  it('rotates the network key: only key ids come back, and the record never holds the key', async () => {
    const w = await world();
    const key = newRotationValue('app-key');
    expect(key.length).toBe(16);
    const o = await runOp(rotateDevice(w.session, { what: 'app-key', value: key, confirm: async () => true, authenticate: login(w) }));
    expect(o).toMatchObject({ kind: 'done', result: { what: 'app-key', old: '', new: toHex(rotationKeyId(key)) } });
    expect(w.sec.appKeyId).toEqual(rotationKeyId(key));
    const rec = rotateRecord(o as never, { device: { serial: 'SN-1' } });
    expect(rec.audit).toMatchObject({ op: 'rotate', outcome: 'ok', details: { what: 'app-key', new: toHex(rotationKeyId(key)) } });
    expect(JSON.stringify(rec)).not.toContain(toHex(key));
    // a second rotation names the first key's id as the old one
    const key2 = newRotationValue('app-key');
    const o2 = await runOp(rotateDevice(w.session, { what: 'app-key', value: key2, confirm: async () => true, authenticate: login(w) }));
    expect(o2).toMatchObject({ kind: 'done', result: { old: toHex(rotationKeyId(key)), new: toHex(rotationKeyId(key2)) } });
    await w.close();
  });

  it('a bad value fails by the tool before anything is sent; a declined confirmation logs in to nothing', async () => {
    const w = await world();
    let logins = 0;
    const authenticate = async () => void logins++;
    const start = w.device.stats.requests;
    for (const value of [new Uint8Array(8), new Uint8Array(8).fill(0xff), Uint8Array.of(1, 2, 3)]) {
      const o = await runOp(rotateDevice(w.session, { what: 'dev-eui', value, confirm: async () => true, authenticate }));
      expect(o).toMatchObject({ kind: 'failed', code: 'bad-value', by: 'tool' });
    }
    expect(w.device.stats.requests).toBe(start);
    const declined = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: NEW_EUI, confirm: async () => false, authenticate }));
    expect(declined).toMatchObject({ kind: 'cancelled' });
    expect(logins).toBe(0);
    const none = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: undefined as never, confirm: async () => true, authenticate }));
    expect(none).toMatchObject({ kind: 'failed', code: 'bad-value', reason: 'not rotated: no new LoRaWAN DevEUI (identifier) was given' });
    w.sec.opts.devEui = Uint8Array.from(NEW_EUI);
    const same = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: NEW_EUI, confirm: async () => true, authenticate }));
    expect(same).toMatchObject({ kind: 'failed', code: 'bad-value' });
    expect(() => parseRotationValue('dev-eui', 'zz')).toThrow(/not hexadecimal/);
    expect(() => parseRotationValue('dev-eui', '0011')).toThrow(/8 bytes/);
    expect(parseRotationValue('dev-eui', '70:B3:D5:7E:D0:00:12:34')).toEqual(NEW_EUI);
    await w.close();
  });

  it('another device than the identified one: refused by the tool before the login', async () => {
    const w = await world();
    const o = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: NEW_EUI, devicePublicKey: new Uint8Array(32).fill(7), confirm: async () => true, authenticate: login(w) }));
    expect(o).toMatchObject({ kind: 'failed', code: 'wrong-device', by: 'tool' });
    await w.close();
  });
});

describe('rotate: the device refuses an attacker', () => {
  it('unauthenticated: refused (rc NotAuthenticated), nothing rotated, the refusal logged', async () => {
    const w = await world();
    const before = (await group(w).identity()).devEui;
    const e = await w.session.client.write(w.sec.groupId, SEC.Rotate, { what: 'dev-eui', value: NEW_EUI, nonce: new Uint8Array(16) }).catch((x) => x);
    expect(e).toBeInstanceOf(SmpError);
    expect((e as SmpError).rc).toBe(SEC_RC.NotAuthenticated);
    const k = await w.session.client.write(w.sec.groupId, SEC.Rotate, { what: 'app-key', value: new Uint8Array(16).fill(5), nonce: new Uint8Array(16) }).catch((x) => x);
    expect((k as SmpError).rc).toBe(SEC_RC.NotAuthenticated);
    expect((await group(w).identity()).devEui).toEqual(before);
    expect(w.sec.appKeyId).toBeNull();
    expect(w.sec.eventLog().some((ev) => ev.type === 'access-denied' && /rotate-keys without authentication/.test(ev.detail))).toBe(true);
    await w.close();
  });

  it('a credential without rotate-keys: the tool says so before the login; without that check the device refuses (Permission)', async () => {
    const w = await world();
    const cred = await narrow(w, ['identify', 'configure', 'wipe']);
    const tool = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: NEW_EUI, confirm: async () => true, authenticate: login(w, { credential: cred }) }));
    expect(tool).toMatchObject({ kind: 'failed', code: 'login', by: 'tool' });
    expect((tool as { reason: string }).reason).toMatch(/rotate-keys/);
    const device = await runOp(rotateDevice(w.session, { what: 'dev-eui', value: NEW_EUI, confirm: async () => true, authenticate: login(w, { credential: cred, precheck: false }) }));
    expect(device).toMatchObject({ kind: 'failed', code: 'permission', by: 'device' });
    expect((device as { reason: string }).reason).toMatch(/needs the rotate-keys permission/);
    expect((await group(w).identity()).devEui).not.toEqual(NEW_EUI);
    await w.close();
  });

  it('a receipt not signed by the device key fails bad-receipt (a device answering with another key)', async () => {
    const w = await world();
    w.sec.misbehave.wrongKey = true;
    const o = await runOp(rotateDevice(w.session, { what: 'app-key', value: newRotationValue('app-key'), confirm: async () => true, authenticate: login(w, { precheck: false }) }));
    // with the wrong key the session itself fails (message 2 is signed too), or the receipt does
    expect(o.kind).toBe('failed');
    expect(['login', 'bad-receipt']).toContain((o as { code: string }).code);
    await w.close();
  });

  it('the device refuses a malformed value even from an authorised technician', async () => {
    const w = await world();
    const g = group(w);
    await login(w)(g);
    for (const body of [{ what: 'serial', value: NEW_EUI }, { what: 'dev-eui', value: Uint8Array.of(1, 2) }, { what: 'dev-eui', value: new Uint8Array(8) }, { what: 'app-key', value: 'x' }]) {
      const e = await w.session.client.write(w.sec.groupId, SEC.Rotate, { ...body, nonce: new Uint8Array(16) }).catch((x) => x);
      expect((e as SmpError).rc, JSON.stringify(body.what)).toBe(SEC_RC.Malformed);
    }
    await w.close();
  });
});

describe('rotate record and inventory', () => {
  it('a new DevEUI replaces the inventory record\'s (no second record, no conflict); importing the entry does the same', async () => {
    const db = new FieldbenchDB({ name: `rotate-${Math.random()}` });
    const old = '70b3d57ed0000001';
    await upsertDevice(db, { serial: 'SN-9', devicePublicKey: 'aa'.repeat(32), devEui: old, seen: 1 });
    const o = { kind: 'done' as const, result: { serial: 'SN-9', what: 'dev-eui' as const, old, new: toHex(NEW_EUI), receiptSig: '00', receiptSha256: '11' } };
    const plan = rotateRecord(o, { device: { serial: 'SN-9', devicePublicKey: 'aa'.repeat(32), devEui: old }, time: 5 });
    const signer = await seedSigner('tech-1', new Uint8Array(32).fill(3));
    await commitRecord({ db, signer }, plan);
    const recs = await findByIdentifier(db, { kind: 'serial', value: 'SN-9' });
    expect(recs.length).toBe(1);
    expect(recs[0].devEui).toBe(toHex(NEW_EUI));
    expect(await db.devices.count()).toBe(1);
    const u = inventoryOfEntry({ op: 'rotate', outcome: 'ok', device: { serial: 'SN-9', devEui: old }, details: { what: 'dev-eui', new: toHex(NEW_EUI) }, time: 9 } as never);
    expect(u).toMatchObject({ serial: 'SN-9', rotated: { devEui: toHex(NEW_EUI) } });
    expect(u!.devEui).toBeUndefined();
    db.close();
  });
});

describe('rotate CLI', () => {
  const files = (w: World) => loginFiles(w, 'fb-rotate-cli-');
  const io = captureIo;
  const loginArgs = LOGIN_ARGS;

  it('rotates the DevEUI and the network key (key written 0600 before sending), records both; bad usage is refused', async () => {
    const w = await world();
    const dir = await files(w);
    const records = join(dir, 'records');
    const cmds = accessCommands({ connect: async () => openSession(createVirtualDevice({ device: w.device, model: FAST }).link), prompt: async () => null });
    await expect(cmds.rotate.run(['--port', 'virtual', ...loginArgs], io(dir).io)).rejects.toBeInstanceOf(UsageError);
    await expect(cmds.rotate.run(['--port', 'virtual', '--dev-eui', '00', ...loginArgs], io(dir).io)).rejects.toThrow(/8 bytes/);
    await expect(cmds.rotate.run(['--port', 'virtual', '--app-key', ...loginArgs], io(dir).io)).rejects.toThrow(/--key-out/);
    // no terminal and no --yes: not rotated
    let r = io(dir);
    expect(await cmds.rotate.run(['--port', 'virtual', '--dev-eui', toHex(NEW_EUI), ...loginArgs, '--records', records], r.io)).toBe(1);
    expect(r.errors()).toMatch(/add --yes/);
    r = io(dir);
    expect(await cmds.rotate.run(['--port', 'virtual', '--dev-eui', toHex(NEW_EUI), '--yes', ...loginArgs, '--records', records], r.io)).toBe(0);
    expect(r.text()).toMatch(new RegExp(`-> ${toHex(NEW_EUI)}; receipt signed by the device`));
    const keyFile = join(dir, 'appkey.hex');
    r = io(dir);
    expect(await cmds.rotate.run(['--port', 'virtual', '--app-key', '--key-out', 'appkey.hex', '--yes', '--json', ...loginArgs, '--records', records], r.io)).toBe(0);
    const key = (await readFile(keyFile, 'utf8')).trim();
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(r.text()).new).toBe(toHex(w.sec.appKeyId!));
    // an existing key file is never overwritten
    r = io(dir);
    expect(await cmds.rotate.run(['--port', 'virtual', '--app-key', '--key-out', 'appkey.hex', '--yes', ...loginArgs], r.io)).toBe(2);
    expect(r.errors()).toMatch(/cannot write the new key/);
    const text = await readFile(join(records, RECORDS_FILE), 'utf8');
    const log = parseRecordsLog(text);
    if (!log.ok) throw new Error(log.reason);
    expect(log.entries.map((e) => [e.op, e.outcome])).toEqual([['rotate', 'cancelled'], ['rotate', 'ok'], ['rotate', 'ok']]);
    expect(text).not.toContain(key);
    await w.close();
  });
});

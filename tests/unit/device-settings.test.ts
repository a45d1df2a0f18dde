/**
 * No unsigned path on a provisioned device (issue 11 item 4): with Zephyr's
 * Settings group on (`--settings`), write, delete, commit and save need an
 * authenticated session with the configure permission. Raw wire of a real
 * `fieldbench device --listen --settings` process.
 */
import { describe, expect, it } from 'vitest';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { SETTINGS, SETTINGS_GROUP } from '../../src/core/protocol/settings.ts';
import { Op } from '../../src/core/smp/header.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { GROUP, type RawSmp, groupRc, protectedRequest, rawLogin } from '../helpers/raw-session.ts';
import { useListeningDevice } from '../helpers/listen-fixture.ts';

const ld = useListeningDevice(['--settings']);
const conn = ld.conn;


const NAME = 'fb/interval';
const val = new Uint8Array([5, 0, 0, 0]);
const write = (c: RawSmp) => c.request(Op.Write as 2, SETTINGS_GROUP, SETTINGS.ReadWrite, { name: NAME, val });
const save = (c: RawSmp) => c.request(Op.Write as 2, SETTINGS_GROUP, SETTINGS.LoadSave, {});
const read = (c: RawSmp) => c.request(Op.Read as 0, SETTINGS_GROUP, SETTINGS.ReadWrite, { name: NAME });


describe('Settings group on a provisioned device', () => {
  it('an unauthenticated Settings write, delete, commit or save is refused (rc 1); reads stay open', async () => {
    const c = await conn();
    const before = await read(c);
    expect(groupRc(await write(c))).toBe(SEC_RC.NotAuthenticated);
    expect((await write(c)).err).toMatchObject({ group: GROUP });
    expect(groupRc(await save(c))).toBe(SEC_RC.NotAuthenticated);
    expect(groupRc(await c.request(Op.Write as 2, SETTINGS_GROUP, SETTINGS.Delete, { name: NAME }))).toBe(SEC_RC.NotAuthenticated);
    expect(groupRc(await c.request(Op.Write as 2, SETTINGS_GROUP, SETTINGS.Commit, {}))).toBe(SEC_RC.NotAuthenticated);
    expect(await read(c)).toEqual(before);
  }, 20000);

  it('authenticated but sent plain: rc 15; inside the session without configure: rc 2; with configure: written and saved', async () => {
    const c = await conn();
    const s = await rawLogin(c, ld.devicePub, ld.dev.auth.credential, ld.dev.auth.technician.privateKey);
    expect(groupRc(s.reply)).toBeUndefined();
    expect(groupRc(await write(c))).toBe(SEC_RC.SessionRequired);
    expect(groupRc(await save(c))).toBe(SEC_RC.SessionRequired);
    // A technician whose credential lacks configure.
    const idOnly = await issueCredential(
      { technicianId: 'tech-ro', name: 'Read only', publicKey: ld.dev.auth.technician.publicKey, permissions: ['identify'], models: ['fieldbench-ref'], notAfter: new Date(Date.now() + 86400_000) },
      ld.dev.auth.owner.privateKey,
    );
    const r = await conn();
    const sr = await rawLogin(r, ld.devicePub, idOnly, ld.dev.auth.technician.privateKey);
    expect(groupRc(sr.reply)).toBeUndefined();
    expect(groupRc(await protectedRequest(r, sr, Op.Write as 2, SETTINGS_GROUP, SETTINGS.ReadWrite, { name: NAME, val }))).toBe(SEC_RC.Permission);
    // With configure, inside the session.
    const w = await protectedRequest(c, s, Op.Write as 2, SETTINGS_GROUP, SETTINGS.ReadWrite, { name: NAME, val });
    expect(w.err ?? w.rc ?? 0).toBe(0);
    const sv = await protectedRequest(c, s, Op.Write as 2, SETTINGS_GROUP, SETTINGS.LoadSave, {});
    expect(sv.err ?? sv.rc ?? 0).toBe(0);
    expect((await read(c)).val).toEqual(val);
  }, 20000);
});

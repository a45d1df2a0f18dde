import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { SecurityGroup, type DeviceIdentity } from '../../src/core/groups/security.ts';
import {
  SETTINGS_ERR, SETTINGS_GROUP, commitSettings, deleteSetting, loadSettings, readSetting, saveSettings, writeSetting,
} from '../../src/core/groups/settings.ts';
import { authenticateTechnician, AccessError } from '../../src/core/ops/access/login.ts';
import {
  FIELDBENCH_REF_SCHEMA, decodeSettingValue, encodeSettingValue, formatIssues, parseFieldInput, sealFormValues, validateSecrets, validateSettings,
} from '../../src/core/ops/configuration/schema.ts';
import { type ConfigureState, type CurrentConfig, UNSIGNED_NOTE, deviceRejection, readCurrentConfig } from '../../src/core/ops/configuration/read.ts';
import { SECRETS_KEY, diffSettings, diffSignedConfigs } from '../../src/core/ops/configuration/diff.ts';
import { applySignedConfig, auditDetails, checkSignedConfig, runToEnd } from '../../src/core/ops/configuration/apply.ts';
import { backupValidator, configBackupBytes, decodeSnapshot, storeConfigBackup } from '../../src/core/ops/configuration/backup.ts';
import { planRestore, restoreFromBackup } from '../../src/core/ops/configuration/restore.ts';
import { writeUnsignedSettings } from '../../src/core/ops/configuration/unsigned.ts';
import { exportAuditJson, recordOperation } from '../../src/core/store/audit.ts';
import { openStore } from '../../src/core/store/db.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import type { LogEvent } from '../../src/core/smp/client.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { type TrustBundle, verifyBundle } from '../../src/core/trust/bundle.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { seal } from '../../src/core/trust/seal.ts';
import { type ConfigInput, issueConfig } from '../../src/core/trust/signed-config.ts';
import { MgmtError, RC, type ReferenceDevice } from '../../src/device/device.ts';
import { installSettingsGroup } from '../../src/device/groups/settings.ts';
import { type Authorities, createSecureDevice, makeAuthorities } from '../../src/device/provisioning.ts';
import type { SecurityOptions } from '../../src/device/security.ts';
import { createVirtualDevice } from '../../src/device/virtual.ts';

const fast = { baudRate: 921600 * 40 };
const HOUR = 3600_000;
/** A Date (issue* take a number as seconds since the epoch, a Date as a time). */
const at = (offsetMs: number) => new Date(Date.now() + offsetMs);
const SECRET = 'Tr0ub4dor&3-never-in-clear';

const deviceSchemaCheck = (s: Record<string, unknown>) => {
  const issues = validateSettings(FIELDBENCH_REF_SCHEMA, s, { sealed: ['wifi_psk'] });
  return issues.length ? formatIssues(issues) : null;
};

let auth: Authorities;
let bundle: TrustBundle;

async function authorities() {
  if (!auth) {
    auth = await makeAuthorities();
    const b = await verifyBundle(auth.bundle, { ownerKeys: [auth.owner.publicKey] });
    if (!b.ok) throw new Error(b.reason);
    bundle = b.value;
  }
  return auth;
}

async function setup(security: SecurityOptions = {}, opts: { bufSize?: number; log?: (e: LogEvent) => void; timeoutMs?: number } = {}) {
  const a = await authorities();
  const { device, security: sec } = await createSecureDevice(a, { bufSize: opts.bufSize ?? 256, security: { validateSettings: deviceSchemaCheck, ...security } });
  const v = createVirtualDevice({ device, model: fast });
  const s = await openSession(v.link, { log: opts.log, logBodies: !!opts.log, timeoutMs: opts.timeoutMs });
  const g = new SecurityGroup(s.client, sec.groupId);
  const id = await g.identity();
  return { device, sec, s, g, id };
}

const login = (g: SecurityGroup, id: DeviceIdentity, a = auth) =>
  authenticateTechnician(g, id.devicePublicKey, a.credential, (m) => ed25519Sign(m, a.technician.privateKey));

const cfg = (sequence: number, extra: Partial<ConfigInput> = {}, signer = auth) =>
  issueConfig(
    { target: { kind: 'model', model: 'fieldbench-ref' }, sequence, settings: { interval: 60, name: 'pump-7', mode: 'eco' }, notAfter: at(24 * HOUR), ...extra },
    signer.owner.privateKey,
  );

function ctxFor(x: Awaited<ReturnType<typeof setup>>, over: Partial<Parameters<typeof applySignedConfig>[2]> = {}) {
  const backups: CurrentConfig[] = [];
  return {
    backups,
    ctx: {
      bundle,
      deviceIdentity: x.id,
      group: x.g,
      authenticate: async () => void (await login(x.g, x.id)),
      backup: async (c: CurrentConfig) => void backups.push(c),
      ...over,
    },
  };
}

async function states(gen: AsyncGenerator<ConfigureState | { kind: string }>): Promise<(ConfigureState | { kind: string })[]> {
  const out = [];
  for await (const s of gen) out.push(s);
  return out;
}

describe('schema', () => {
  it('validates types, ranges, enums, patterns, required fields and secrets with clear messages', () => {
    const S = FIELDBENCH_REF_SCHEMA;
    expect(validateSettings(S, { interval: 60, name: 'pump-7', mode: 'eco', wifi_ssid: 'plant' })).toEqual([]);
    const issues = validateSettings(S, { interval: 0, name: 'Pump 7', mode: 'turbo', wifi_psk: SECRET, colour: 'red' });
    const msg = formatIssues(issues);
    expect(msg).toContain('interval: must be at least 1, got 0');
    expect(msg).toContain("name: must be lowercase letters, digits and '-'");
    expect(msg).toContain('mode: must be one of normal, eco, maintenance, got "turbo"');
    expect(msg).toContain('wifi_psk is secret: it must be sealed');
    expect(msg).toContain('colour: not a setting of model fieldbench-ref');
    expect(msg).not.toContain(SECRET);
    expect(formatIssues(validateSettings(S, { name: 'x' }))).toBe('interval is required');
    expect(validateSettings(S, { interval: 3601 })[0].message).toBe('interval: must be at most 3600, got 3601');
    expect(validateSettings(S, { interval: 1.5 })[0].message).toContain('whole number');
    expect(validateSecrets(S, { wifi_psk: 'short' })[0].message).toBe('wifi_psk: must be at least 8 characters, got 5');
    expect(validateSecrets(S, { interval: 5 })[0].message).toContain('not a secret field');
    expect(parseFieldInput(S.fields.interval, ' 42 ')).toEqual({ value: 42 });
    expect(parseFieldInput(S.fields.interval, '4x')).toEqual({ error: 'must be a whole number' });
  });

  it('seals secret form fields to the device and keeps them out of the settings', async () => {
    const x = await setup();
    const r = sealFormValues(FIELDBENCH_REF_SCHEMA, { interval: 30, wifi_psk: SECRET, wifi_ssid: 'plant' }, x.id.deviceEncKey);
    expect(r.issues).toEqual([]);
    expect(r.settings).toEqual({ interval: 30, wifi_ssid: 'plant' });
    expect(r.sealedNames).toEqual(['wifi_psk']);
    expect(Buffer.from(r.secrets!).toString('latin1')).not.toContain(SECRET);
    expect(sealFormValues(FIELDBENCH_REF_SCHEMA, { interval: 30, wifi_psk: 'short' }, x.id.deviceEncKey).secrets).toBeUndefined();
    await x.s.close();
  });

  it('encodes settings values as a Zephyr application stores them', () => {
    const f = FIELDBENCH_REF_SCHEMA.fields;
    expect([...encodeSettingValue(f.interval, 'interval', 300)]).toEqual([0x2c, 0x01, 0, 0]);
    expect(decodeSettingValue(f.interval, 'interval', Uint8Array.of(0x2c, 1, 0, 0))).toBe(300);
    expect(decodeSettingValue(f.name, 'name', new TextEncoder().encode('pump-7'))).toBe('pump-7');
    expect(() => decodeSettingValue(f.interval, 'interval', Uint8Array.of(1))).toThrow(/4-byte integer/);
    expect(() => encodeSettingValue(f.interval, 'interval', 0)).toThrow(/at least 1/);
  });
});

describe('diff', () => {
  it('lists added, removed and changed keys; secrets only as sealed (n bytes)', async () => {
    const c = diffSettings({ interval: 60, name: 'a', mode: 'eco' }, { interval: 30, name: 'a', wifi_ssid: 'x' }, FIELDBENCH_REF_SCHEMA);
    expect(c.changed).toEqual([{ key: 'interval', from: '60', to: '30' }]);
    expect(c.added).toEqual([{ key: 'wifi_ssid', value: '"x"' }]);
    expect(c.removed).toEqual([{ key: 'mode', value: '"eco"' }]);
    expect(c.unchanged).toBe(1);
    const hidden = diffSettings({ wifi_psk: 'one-secret' }, { wifi_psk: 'two-secret' }, FIELDBENCH_REF_SCHEMA);
    expect(JSON.stringify(hidden)).not.toMatch(/one-secret|two-secret/);
    expect(hidden.changed[0].key).toBe('wifi_psk');
    const x = await setup();
    const a = await cfg(1);
    const b = await cfg(2, { settings: { interval: 90, name: 'pump-7' }, secrets: seal({ wifi_psk: SECRET }, x.id.deviceEncKey) });
    const d = diffSignedConfigs(a, b, FIELDBENCH_REF_SCHEMA);
    expect(d.from).toBe(1);
    expect(d.to).toBe(2);
    expect(d.changes.added[0].key).toBe(SECRETS_KEY);
    expect(d.changes.added[0].value).toMatch(/^sealed \(\d+ bytes\)$/);
    expect(JSON.stringify(d)).not.toContain(SECRET);
    await x.s.close();
  });
});

describe('signed configuration: every rejection, by the tool and by the device', () => {
  it('rejects EVERY single-bit flip of a signed configuration, in the tool and in the device', async () => {
    const x = await setup({}, { bufSize: 1024 });
    await login(x.g, x.id);
    const good = await cfg(3);
    const toolCodes = new Set<string>();
    const deviceCodes = new Set<string>();
    for (let i = 0; i < good.length * 8; i++) {
      const bad = good.slice();
      bad[i >> 3] ^= 1 << (i & 7);
      const t = await checkSignedConfig(bad, { bundle, deviceIdentity: x.id, heldSequence: 0 });
      expect(t.ok, `tool accepted flip of bit ${i}`).toBe(false);
      if (!t.ok) toolCodes.add(t.code);
      const d = await x.g.applyConfig(bad).then(
        () => null,
        (e) => deviceRejection(e),
      );
      expect(d, `device accepted flip of bit ${i}`).not.toBeNull();
      deviceCodes.add(d!.code);
    }
    expect(toolCodes.has('bad-signature')).toBe(true);
    expect(deviceCodes.has('bad-signature')).toBe(true);
    expect([...deviceCodes].every((c) => ['bad-signature', 'schema', 'malformed', 'transfer', 'replayed', 'wrong-target', 'expired', 'revoked', 'wrong-type'].includes(c)), [...deviceCodes].join(', ')).toBe(true);
    expect((await x.g.readConfig()).sequence).toBe(0);
    // The untouched one still applies.
    expect((await x.g.applyConfig(good)).sequence).toBe(3);
    await x.s.close();
  }, 120_000);

  const cases: [string, () => Promise<Uint8Array>, string, string][] = [
    ['wrong target', () => cfg(10, { target: { kind: 'model', model: 'other-model' } }), 'wrong-target', 'wrong-target'],
    ['wrong serial', () => cfg(10, { target: { kind: 'serial', serial: 'FB-9999' } }), 'wrong-target', 'wrong-target'],
    ['replayed (same sequence)', () => cfg(5), 'replayed', 'replayed'],
    ['replayed (lower sequence)', () => cfg(4), 'replayed', 'replayed'],
    ['expired', () => cfg(11, { notBefore: at(-3 * HOUR), notAfter: at(-2 * HOUR) }), 'expired', 'expired'],
    ['not yet valid', () => cfg(12, { notBefore: at(2 * HOUR), notAfter: at(3 * HOUR) }), 'not-yet-valid', 'expired'],
    ['wrong signer', async () => cfg(13, {}, await makeAuthorities()), 'x', 'bad-signature'],
    ['schema: interval out of range', () => cfg(14, { settings: { interval: 0 } }), 'schema', 'schema'],
    ['schema: bad name', () => cfg(15, { settings: { interval: 5, name: 'Pump 7!' } }), 'schema', 'schema'],
    ['schema: unknown mode', () => cfg(16, { settings: { interval: 5, mode: 'turbo' } }), 'schema', 'schema'],
    ['schema: missing required', () => cfg(17, { settings: { name: 'pump-7' } }), 'schema', 'schema'],
    ['schema: secret in cleartext', () => cfg(18, { settings: { interval: 5, wifi_psk: 'cleartext-psk' } }), 'schema', 'schema'],
    ['schema: unknown setting', () => cfg(19, { settings: { interval: 5, colour: 'red' } }), 'schema', 'schema'],
  ];

  it.each(cases)('%s', async (_name, make, toolCode, deviceCode) => {
    const x = await setup();
    await login(x.g, x.id);
    await x.g.applyConfig(await cfg(5));
    const bytes = await make();
    // The tool.
    const t = await checkSignedConfig(bytes, { bundle, deviceIdentity: x.id, heldSequence: 5 });
    expect(t.ok).toBe(false);
    if (!t.ok) {
      if (toolCode === 'x') expect(['no-key', 'wrong-issuer', 'bad-signature']).toContain(t.code);
      else expect(t.code).toBe(toolCode);
      expect(t.reason.length).toBeGreaterThan(10);
    }
    // The op stops at the tool's check, before backup, login or sending.
    const { ctx, backups } = ctxFor(x);
    const st = await states(applySignedConfig(x.s, bytes, ctx));
    const last = st.at(-1) as ConfigureState;
    expect(last.kind).toBe('failed');
    if (last.kind === 'failed') expect(last.by).toBe('tool');
    expect(st.map((s) => s.kind)).not.toContain('sending');
    expect(backups).toHaveLength(0);
    // The device, sent the same bytes directly.
    const d = await x.g.applyConfig(bytes).then(() => null, deviceRejection);
    expect(d?.code).toBe(deviceCode);
    expect((await x.g.readConfig()).sequence).toBe(5);
    if (deviceCode === 'schema') {
      const ev = (await x.g.allEvents()).filter((e) => e.type === 'config-rejected').at(-1);
      expect(ev?.detail).toMatch(/interval|name|mode|wifi_psk|colour/);
      expect(ev?.detail).not.toContain('cleartext-psk');
    }
    await x.s.close();
  });

  it('secrets sealed to another device are refused by the tool and the device', async () => {
    const x = await setup();
    await login(x.g, x.id);
    const other = await setup();
    const bytes = await cfg(2, { secrets: seal({ wifi_psk: SECRET }, other.id.deviceEncKey) });
    const t = await checkSignedConfig(bytes, { bundle, deviceIdentity: x.id });
    expect(t.ok ? '' : t.code).toBe('secrets');
    expect((await x.g.applyConfig(bytes).then(() => null, deviceRejection))?.code).toBe('secrets');
    await x.s.close();
    await other.s.close();
  });

  it('rotate.* settings need the rotate-keys permission on the device', async () => {
    const limited = await makeAuthorities({ permissions: ['identify', 'configure'] });
    const lb = await verifyBundle(limited.bundle, { ownerKeys: [limited.owner.publicKey] });
    const { device, security } = await createSecureDevice(limited, { bufSize: 256, security: { validateSettings: deviceSchemaCheck } });
    const v = createVirtualDevice({ device, model: fast });
    const s = await openSession(v.link);
    const g = new SecurityGroup(s.client, security.groupId);
    const id = await g.identity();
    const bytes = await cfg(1, { settings: { interval: 5, 'rotate.devEui': '0011223344556677' } }, limited);
    const st = (await runToEnd(
      applySignedConfig(s, bytes, {
        bundle: lb.ok ? lb.value : bundle, deviceIdentity: id, group: g, backup: async () => {},
        authenticate: async () => void (await login(g, id, limited)),
      }),
    )) as ConfigureState;
    expect(st).toMatchObject({ kind: 'failed', code: 'rotation-denied', by: 'device' });

    await s.close();
  });
});

describe('applySignedConfig', () => {
  it('checks, logs in, shows the diff, backs up, sends in chunks and reports the applied sequence', async () => {
    const x = await setup();
    const { ctx, backups } = ctxFor(x);
    await runToEnd(applySignedConfig(x.s, await cfg(1), ctx));
    const next = await cfg(2, { settings: { interval: 120, name: 'pump-7' }, secrets: seal({ wifi_psk: SECRET }, x.id.deviceEncKey) });
    const st = await states(applySignedConfig(x.s, next, ctx));
    const kinds = st.map((s) => s.kind);
    // the device shows what it holds only inside the session: the login comes before the diff
    expect(kinds.slice(0, 5)).toEqual(['checking', 'authenticating', 'diff', 'backing-up', 'sending']);
    expect(kinds.at(-1)).toBe('done');
    const sending = st.filter((s): s is Extract<ConfigureState, { kind: 'sending' }> => s.kind === 'sending');
    expect(sending.length).toBeGreaterThan(2); // chunked at bufSize 256
    expect(sending.at(-1)).toEqual({ kind: 'sending', sent: next.length, total: next.length });
    const diff = st.find((s) => s.kind === 'diff') as Extract<ConfigureState, { kind: 'diff' }>;
    expect(diff.diff.changes.changed).toContainEqual({ key: 'interval', from: '60', to: '120' });
    expect(diff.diff.changes.removed).toContainEqual({ key: 'mode', value: '"eco"' });
    expect(diff.diff.changes.added.map((c) => c.key)).toContain(SECRETS_KEY);
    expect(diff.diff.after[SECRETS_KEY]).toMatch(/^sealed \(\d+ bytes\)$/);
    expect(backups.at(-1)).toMatchObject({ source: 'signed', sequence: 1 });
    const applied = (st.at(-1) as Extract<ConfigureState, { kind: 'done' }>).result;
    expect(applied.sequence).toBe(2);
    const cur = await readCurrentConfig(x.s, { group: x.g });
    expect(cur).toMatchObject({ source: 'signed', sequence: 2, secretsSealed: true, settings: { interval: 120, name: 'pump-7' } });
    expect(toHex(cur.digest!)).toBe(toHex(applied.digest));
    await x.s.close();
  });

  it('a technician without configure permission, or a refused login, stops it with the device reason', async () => {
    const x = await setup();
    const { ctx } = ctxFor(x, { authenticate: async () => {} });
    const st = (await runToEnd(applySignedConfig(x.s, await cfg(1), ctx))) as ConfigureState;
    expect(st).toMatchObject({ kind: 'failed', code: 'not-authenticated', by: 'device' });
    const forged = await makeAuthorities();
    const { ctx: c2 } = ctxFor(x, { authenticate: async () => void (await login(x.g, x.id, forged)) });
    const st2 = (await runToEnd(applySignedConfig(x.s, await cfg(1), c2))) as ConfigureState;
    expect(st2).toMatchObject({ kind: 'failed', code: 'login', by: 'device' });
    await expect(login(x.g, x.id, forged)).rejects.toBeInstanceOf(AccessError);
    const { ctx: c3, backups } = ctxFor(x, { confirm: async () => false });
    expect(await runToEnd(applySignedConfig(x.s, await cfg(1), c3))).toMatchObject({ kind: 'cancelled' });
    expect(backups).toHaveLength(0);
    const { ctx: c4 } = ctxFor(x, { backup: async () => Promise.reject(new Error('store full')) });
    expect(await runToEnd(applySignedConfig(x.s, await cfg(1), c4))).toMatchObject({ kind: 'failed', code: 'backup' });
    expect((await x.g.readConfig()).sequence).toBe(0);
    await x.s.close();
  });

  it('a device without the security group is refused for signed configuration', async () => {
    const v = createVirtualDevice({ model: fast });
    installSettingsGroup(v.device);
    const s = await openSession(v.link);
    await authorities();
    const st = (await runToEnd(
      applySignedConfig(s, await cfg(1), {
        bundle, deviceIdentity: { serial: 'x', model: 'fieldbench-ref', hwRev: '', devicePublicKey: new Uint8Array(32), deviceEncKey: new Uint8Array(32), certLength: 0 },
        authenticate: async () => {}, backup: async () => {},
      }),
    )) as ConfigureState;
    expect(st).toMatchObject({ kind: 'unsupported' });
    await s.close();
  });
});

describe('a reset at every step of an apply', () => {
  const steps = ['chunk-0', 'chunk-1', 'verified', 'staged', 'committed'] as const;
  it.each(steps)('reset at %s leaves the old or the new configuration, whole', async (step) => {
    let device!: ReferenceDevice;
    let resetDone = false;
    const x = await setup({
      applyStep: async (st) => {
        if (st === step && !resetDone) {
          resetDone = true;
          await device.reboot();
        }
      },
    }, { timeoutMs: 1000 });
    device = x.device;
    const { ctx } = ctxFor(x);
    const old = await cfg(1);
    resetDone = true;
    expect(await runToEnd(applySignedConfig(x.s, old, ctx))).toMatchObject({ kind: 'done', result: { sequence: 1 } });
    resetDone = false;
    if (step.startsWith('chunk-')) {
      // Reset when the device has taken the n-th chunk of the new configuration.
      const n = Number(step.slice(6));
      const grp = device.groups.get(x.sec.groupId)!;
      const inner = grp.write![8];
      let chunks = 0;
      grp.write![8] = async (b, c) => {
        const r = await inner(b, c);
        if (chunks++ === n && !resetDone) {
          resetDone = true;
          await device.reboot();
        }
        return r;
      };
    }
    const next = await cfg(2, { settings: { interval: 7, name: 'pump-8', mode: 'maintenance' }, secrets: seal({ wifi_psk: SECRET }, x.id.deviceEncKey) });
    const end = (await runToEnd(applySignedConfig(x.s, next, ctx))) as ConfigureState;
    expect(resetDone).toBe(true);
    const cur = await readCurrentConfig(x.s, { group: x.g });
    const active = x.sec.activeConfig()!;
    if (cur.sequence === 2) {
      expect(cur.settings).toEqual({ interval: 7, name: 'pump-8', mode: 'maintenance' });
      expect(cur.secretsSealed).toBe(true);
      expect(toHex(active.digest)).toBe(toHex(sha256(next)));
    } else {
      expect(cur.sequence).toBe(1);
      expect(cur.settings).toEqual({ interval: 60, name: 'pump-7', mode: 'eco' });
      expect(cur.secretsSealed).toBe(false);
      expect(end.kind).toBe('failed');
    }
    if (step === 'committed') expect(cur.sequence).toBe(2);
    if (step !== 'committed') expect(end.kind).toBe('failed');
    // After the reset the apply can be redone (fresh login), or is refused as a replay if it had committed.
    const again = (await runToEnd(applySignedConfig(x.s, next, ctx))) as ConfigureState;
    if (cur.sequence === 2) expect(again).toMatchObject({ kind: 'failed', code: 'replayed', by: 'tool' });
    else expect(again).toMatchObject({ kind: 'done', result: { sequence: 2 } });
    await x.s.close();
  });
});

describe('restore', () => {
  it('explains that a replaced signed configuration needs a newer one from the owner', async () => {
    const x = await setup();
    const library = new Map<string, Uint8Array>();
    const one = await cfg(1);
    library.set(toHex(sha256(one)), one);
    const { ctx, backups } = ctxFor(x, { library: async (h) => library.get(h) });
    await runToEnd(applySignedConfig(x.s, one, ctx));
    await runToEnd(applySignedConfig(x.s, await cfg(2, { settings: { interval: 9 } }), ctx));
    const b = backups.at(-1)!;
    expect(b.signed).toEqual(one);
    const bytes = configBackupBytes(b);
    const st = (await runToEnd(restoreFromBackup(x.s, bytes, ctx))) as ConfigureState;
    expect(st).toMatchObject({ kind: 'failed', code: 'needs-newer' });
    if (st.kind === 'failed') expect(st.reason).toMatch(/#1.*#2/); // it names both sequences
    // A snapshot (signed bytes not in the library) says the same.
    const snap = configBackupBytes({ ...b, signed: undefined });
    expect(decodeSnapshot(snap)?.settings).toEqual({ interval: 60, name: 'pump-7', mode: 'eco' });
    expect(planRestore(snap, await readCurrentConfig(x.s, { group: x.g })).kind).toBe('needs-owner');
    // A backed-up signed configuration above the device's sequence is re-applied.
    const five = await cfg(5, { settings: { interval: 55 } });
    const re = (await runToEnd(restoreFromBackup(x.s, five, ctx))) as ConfigureState;
    expect(re).toMatchObject({ kind: 'done', result: { sequence: 5 } });
    await x.s.close();
  });
});

describe('secrets never appear in logs, store, audit or exports', () => {
  it('searches every log event, stored record, audit entry and export of a run', async () => {
    const events: LogEvent[] = [];
    const x = await setup({}, { log: (e) => events.push(e) });
    const db = await openStore({ name: `configure-secrets-${process.pid}` });
    const technician = await seedSigner('tech-001', auth.technician.privateKey);
    const { ctx } = ctxFor(x, {
      backup: async (c) => void (await storeConfigBackup(db, { deviceId: 1, device: { serial: x.id.serial } }, c)),
    });
    const first = sealFormValues(FIELDBENCH_REF_SCHEMA, { interval: 60, name: 'pump-7', wifi_psk: SECRET }, x.id.deviceEncKey);
    const one = await cfg(1, { settings: first.settings, secrets: first.secrets });
    const two = await cfg(2, { settings: { interval: 61, name: 'pump-7' }, secrets: seal({ wifi_psk: SECRET + '-2' }, x.id.deviceEncKey) });
    const all: unknown[] = [];
    for (const bytes of [one, two, one]) {
      const end = await runToEnd(applySignedConfig(x.s, bytes, ctx), (s) => all.push(s));
      await recordOperation(db, { technician, op: 'configure', outcome: end.kind === 'done' ? 'ok' : 'rejected', device: { serial: x.id.serial }, details: auditDetails(end as ConfigureState) }, null);
    }
    // Unsigned path refuses the secret outright.
    const v = createVirtualDevice({ model: fast });
    installSettingsGroup(v.device);
    const s2 = await openSession(v.link, { log: (e) => events.push(e), logBodies: true });
    await runToEnd(writeUnsignedSettings(s2, { interval: 5, wifi_psk: SECRET }, { schema: FIELDBENCH_REF_SCHEMA, confirmUnsigned: true }), (s) => all.push(s));
    await s2.close();
    // Device-side storage and event log, too.
    all.push(x.sec.storageSnapshot(), x.sec.eventLog(), await x.g.readConfig());
    const stored = [await db.artifacts.toArray(), await db.backups.toArray(), await db.audit.toArray()];
    const exported = await exportAuditJson(db);
    const needles = [SECRET, SECRET + '-2'].flatMap((t) => [t, Buffer.from(t).toString('hex'), Buffer.from(t).toString('base64').slice(0, 16)]);
    const haystack = (v: unknown) =>
      JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? Buffer.from(x).toString('latin1') + Buffer.from(x).toString('hex') : x));
    expect(events.some((e) => (e.type === 'tx' || e.type === 'rx') && e.body !== undefined)).toBe(true);
    for (const [what, v] of [['log', events], ['states', all], ['store', stored], ['export', exported]] as const) {
      const h = typeof v === 'string' ? v : haystack(v);
      for (const n of needles) expect(h.includes(n), `${what} contains the secret`).toBe(false);
    }
    expect((await db.backups.toArray()).length).toBe(2); // the replay of #1 stopped at the tool's check, before any backup
    db.close();
    await db.delete();
    await x.s.close();
  });
});

describe('settings group against the reference device', () => {
  async function stock(opts: Parameters<typeof installSettingsGroup>[1] = {}) {
    const v = createVirtualDevice({ model: fast });
    const store = installSettingsGroup(v.device, opts);
    const s = await openSession(v.link);
    return { v, store, s, c: s.client };
  }
  const bytes = (t: string) => new TextEncoder().encode(t);

  it('reads, writes, commits, saves, loads and deletes with Zephyr semantics', async () => {
    const { v, store, s, c } = await stock({ initial: { 'fb/name': bytes('factory') } });
    expect((await readSetting(c, 'fb/name')).value).toEqual(bytes('factory'));
    await writeSetting(c, 'fb/name', bytes('pump-7'));
    expect((await readSetting(c, 'fb/name')).value).toEqual(bytes('pump-7'));
    expect(store.effective.get('fb/name')).toEqual(bytes('factory')); // not committed yet
    await commitSettings(c);
    expect(store.effective.get('fb/name')).toEqual(bytes('pump-7'));
    await v.device.reboot(); // unsaved: lost
    expect((await readSetting(c, 'fb/name')).value).toEqual(bytes('factory'));
    await writeSetting(c, 'fb/name', bytes('pump-8'));
    await saveSettings(c);
    await v.device.reboot();
    expect((await readSetting(c, 'fb/name')).value).toEqual(bytes('pump-8'));
    await writeSetting(c, 'fb/name', bytes('scratch'));
    await loadSettings(c); // back to what is persisted
    expect((await readSetting(c, 'fb/name')).value).toEqual(bytes('pump-8'));
    await deleteSetting(c, 'fb/name');
    await expect(deleteSetting(c, 'fb/name')).rejects.toMatchObject({ rc: SETTINGS_ERR.KeyNotFound });
    await v.device.reboot();
    await expect(readSetting(c, 'fb/name')).rejects.toMatchObject({ kind: 'group', group: SETTINGS_GROUP, rc: SETTINGS_ERR.KeyNotFound });
    await s.close();
  });

  it('answers Zephyr errors: unknown root, key too long, value limit with max_size', async () => {
    const { s, c } = await stock({ roots: { fb: ['name', 'long'] } });
    await expect(readSetting(c, 'bt/id')).rejects.toMatchObject({ rc: SETTINGS_ERR.RootKeyNotFound });
    await expect(writeSetting(c, 'fb/colour', bytes('x'))).rejects.toMatchObject({ rc: SETTINGS_ERR.KeyNotFound });
    await expect(readSetting(c, 'fb/' + 'x'.repeat(40))).rejects.toMatchObject({ rc: SETTINGS_ERR.KeyTooLong });
    await writeSetting(c, 'fb/long', bytes('y'.repeat(40)));
    const r = await readSetting(c, 'fb/long', { maxSize: 100 });
    expect(r.maxSize).toBe(32);
    expect(r.value.length).toBe(32);
    expect((await readSetting(c, 'fb/long', { maxSize: 4 })).value).toEqual(bytes('yyyy'));
    await s.close();
  });

  it('writes a stock device unsigned only with explicit confirmation, and says so', async () => {
    const { v, s } = await stock();
    const schema = FIELDBENCH_REF_SCHEMA;
    expect(await runToEnd(writeUnsignedSettings(s, { interval: 5 }, { schema, confirmUnsigned: false }))).toMatchObject({ kind: 'failed', code: 'unsigned-not-confirmed' });
    expect(await runToEnd(writeUnsignedSettings(s, { interval: 0 }, { schema, confirmUnsigned: true }))).toMatchObject({ kind: 'failed', code: 'schema' });
    expect(await runToEnd(writeUnsignedSettings(s, { wifi_psk: SECRET }, { schema, confirmUnsigned: true }))).toMatchObject({ kind: 'failed', code: 'secrets' });
    const st = await states(writeUnsignedSettings(s, { interval: 300, name: 'pump-9', mode: 'eco' }, { schema, confirmUnsigned: true }));
    const end = st.at(-1)!;
    expect(end).toMatchObject({ kind: 'done', result: { unsigned: true, note: UNSIGNED_NOTE, saved: true } });
    expect(st.map((x) => x.kind)).toEqual(['checking', 'diff', 'writing', 'writing', 'writing', 'writing', 'committing', 'saving', 'done']);
    await v.device.reboot();
    const cur = await readCurrentConfig(s, { group: null, schema });
    expect(cur).toMatchObject({ source: 'settings', settings: { interval: 300, name: 'pump-9', mode: 'eco' }, hidden: ['wifi_psk'] });
    // Restore of a stock snapshot is an unsigned write, confirmation required.
    const snap = configBackupBytes(cur);
    expect(backupValidator(snap).ok).toBe(true);
    await runToEnd(writeUnsignedSettings(s, { interval: 1 }, { schema, confirmUnsigned: true }));
    const ctx = { bundle, deviceIdentity: { serial: 's', model: 'fieldbench-ref', hwRev: '', devicePublicKey: new Uint8Array(32), deviceEncKey: new Uint8Array(32), certLength: 0 }, group: null as never, authenticate: async () => {}, backup: async () => {} };
    expect(await runToEnd(restoreFromBackup(s, snap, { ...ctx, group: undefined }))).toMatchObject({ kind: 'failed', code: 'unsigned-not-confirmed' });
    expect(await runToEnd(restoreFromBackup(s, snap, { ...ctx, group: undefined, confirmUnsigned: true }))).toMatchObject({ kind: 'done', result: { unsigned: true } });
    expect((await readCurrentConfig(s, { group: null, schema })).settings.interval).toBe(300);
    await s.close();
  });

  it('a reset during save keeps the previous persisted generation whole', async () => {
    let device!: ReferenceDevice;
    let n = 0;
    const v = createVirtualDevice({ model: fast });
    device = v.device;
    const store = installSettingsGroup(device, {
      initial: { 'fb/interval': encodeSettingValue(FIELDBENCH_REF_SCHEMA.fields.interval, 'interval', 60), 'fb/name': bytes('old') },
      saveStep: async () => {
        if (n++ === 1) await device.reboot();
      },
    });
    const s = await openSession(v.link);
    await writeSetting(s.client, 'fb/interval', encodeSettingValue(FIELDBENCH_REF_SCHEMA.fields.interval, 'interval', 99));
    await writeSetting(s.client, 'fb/name', bytes('new'));
    await expect(saveSettings(s.client)).rejects.toBeTruthy();
    const p = store.persistedSnapshot();
    expect(new TextDecoder().decode(p.get('fb/name'))).toBe('old');
    expect(decodeSettingValue(FIELDBENCH_REF_SCHEMA.fields.interval, 'interval', p.get('fb/interval')!)).toBe(60);
    await s.close();
  });

  it('a secure device can refuse unsigned settings writes through the access hook', async () => {
    const x = await setup();
    installSettingsGroup(x.device, {
      access: (a) => {
        if (a !== 'read' && a !== 'load') throw new MgmtError(RC.EACCESSDENIED);
      },
    });
    const end = await runToEnd(writeUnsignedSettings(x.s, { interval: 5 }, { schema: FIELDBENCH_REF_SCHEMA, confirmUnsigned: true }));
    expect(end).toMatchObject({ kind: 'failed', code: 'access-denied' });
    await x.s.close();
  });
});

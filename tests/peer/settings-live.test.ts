/**
 * The Settings group (3) against the real Zephyr 4.4.0 smp_server (native_sim,
 * raw framing; its build enables CONFIG_MCUMGR_GRP_SETTINGS): command ids and
 * bodies as our client sends them, and Zephyr's answers.
 *
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts tests/peer/settings-live
 */
import { describe, expect, it } from 'vitest';
import { listGroups } from '../../src/core/groups/enum.ts';
import {
  SETTINGS_ERR, SETTINGS_GROUP, commitSettings, deleteSetting, loadSettings, readSetting, saveSettings, writeSetting,
} from '../../src/core/groups/settings.ts';
import { readStockSettings } from '../../src/core/ops/configuration/read.ts';
import { FIELDBENCH_REF_SCHEMA } from '../../src/core/ops/configuration/schema.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { fixturesAvailable, launchFixture } from './fixtures.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';

describe.skipIf(!!why)(`settings group on a live Zephyr smp_server${why ? ` (skipped: ${why})` : ''}`, () => {
  it('native_sim.serial_raw: lists the group, commit/load/save succeed, unknown names get Zephyr group errors', async () => {
    const fx = await launchFixture('native_sim.serial_raw');
    try {
      const s = await openSession(await fx.open(), { framing: fx.framing, timeoutMs: 3000 });
      const c = s.client;
      expect((await listGroups(c)).map((g) => g.id)).toContain(SETTINGS_GROUP);
      await commitSettings(c);
      await loadSettings(c);
      // This build has no writable settings backend: Zephyr 4.x answers SAVE_NOT_SUPPORTED (8).
      await saveSettings(c).catch((e) => expect(e).toMatchObject({ kind: 'group', group: SETTINGS_GROUP, rc: SETTINGS_ERR.SaveNotSupported }));
      // No handler for our subtree on a stock smp_server: ROOT_KEY_NOT_FOUND, as the reference device answers.
      await expect(readSetting(c, 'fb/interval')).rejects.toMatchObject({ kind: 'group', group: SETTINGS_GROUP, rc: SETTINGS_ERR.RootKeyNotFound });
      await expect(readSetting(c, 'fb/interval', { maxSize: 100 })).rejects.toMatchObject({ rc: SETTINGS_ERR.RootKeyNotFound });
      await expect(writeSetting(c, 'fb/interval', Uint8Array.of(60, 0, 0, 0))).rejects.toMatchObject({ kind: 'group', group: SETTINGS_GROUP, rc: SETTINGS_ERR.RootKeyNotFound });
      await expect(readSetting(c, 'x'.repeat(40))).rejects.toMatchObject({ kind: 'group', rc: SETTINGS_ERR.KeyTooLong });
      await expect(deleteSetting(c, 'fb/interval')).rejects.toMatchObject({ kind: 'group', rc: SETTINGS_ERR.KeyNotFound });
      // The stock-device read path of the configure op reports the refusal with the reason.
      await expect(readStockSettings(c, FIELDBENCH_REF_SCHEMA)).rejects.toThrow(/no settings handler for this name \(unknown subtree\) \(fb\/interval\)/);
      await s.close();
    } finally {
      await fx.stop();
    }
  });
});

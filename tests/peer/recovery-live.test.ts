/**
 * Flashing through MCUboot serial recovery on every serial-recovery fixture
 * (console and raw, each buffer size): the app is reset into recovery
 * (boot_mode 1), the re-signed app is uploaded into the primary slot, and the
 * image list must show its hash. With FIELDBENCH_RECORD=1 each transcript is
 * written to tests/golden/peer/update/recovery (upload data redacted).
 *
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts tests/peer/recovery-live
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RECOVERY_FIXTURES, fixturesAvailable } from './fixtures.ts';
import { liveCell } from './results.ts';
import { UPDATE_GOLDEN_DIR, goldenJson, recoveryScenario, runLiveUpdate } from './update-peer.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';

describe.skipIf(!!why)(`flash through MCUboot serial recovery${why ? ` (skipped: ${why})` : ''}`, () => {
  for (const id of RECOVERY_FIXTURES) {
    it(`${id}: upload to the primary slot, hash checked through the image list`, () => liveCell(id, 'recovery flash', async () => {
      const r = await runLiveUpdate(recoveryScenario(id));
      expect(r.golden.states.map((s) => s.kind)).toEqual(['preflight', 'serial-recovery', 'uploading', 'verifying', 'done']);
      expect(r.golden.outcome).toMatchObject({ kind: 'done', version: '1.0.0+1', hash: r.golden.image.hash });
      if (process.env.FIELDBENCH_RECORD === '1') {
        const dir = join(UPDATE_GOLDEN_DIR, 'recovery');
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, `${r.golden.scenario}.json`), goldenJson(r.golden));
      }
      return { kibs: r.uploadKiBs };
    }), 180_000);
  }
});

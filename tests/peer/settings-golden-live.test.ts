/**
 * The settings golden script, live: the native_sim smp_server must still give
 * the outcomes recorded in tests/golden/peer/settings.
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts tests/peer/settings-golden-live
 * Re-record: FIELDBENCH_RECORD=1 npx tsx tests/peer/settings-peer.ts
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturesAvailable } from './fixtures.ts';
import { SETTINGS_FIXTURE, SETTINGS_GOLDEN_DIR, recordSettings } from './settings-peer.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';

describe.skipIf(!!why)(`settings golden script on the live fixture${why ? ` (skipped: ${why})` : ''}`, () => {
  it(`${SETTINGS_FIXTURE}: same outcomes as recorded`, async () => {
    const want = JSON.parse(readFileSync(join(SETTINGS_GOLDEN_DIR, `${SETTINGS_FIXTURE}.json`), 'utf8')) as { steps: unknown };
    const { golden } = await recordSettings();
    expect(JSON.parse(JSON.stringify((golden as { steps: unknown }).steps))).toEqual(want.steps);
  });
});

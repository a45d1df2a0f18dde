/**
 * Firmware update against real MCUboot bootloaders (QEMU fixtures):
 *  - qemu_cortex_m0.serial: swap using offset: upload, test, reset (swap), confirm -> done, confirmed;
 *  - mps2_an385 app under a RAM_LOAD MCUboot: test answered ENOTSUP -> the op says so, resets, the
 *    bootloader loads the higher version -> done.
 * The image is the fixture's own app re-signed by our signImage (tests/peer/update-peer.ts).
 *
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts tests/peer/update-live
 * Re-record the golden (tests/golden/peer/update): FIELDBENCH_RECORD=1 npx tsx tests/peer/update-peer.ts
 */
import { describe, expect, it } from 'vitest';
import { fixturesAvailable } from './fixtures.ts';
import { liveCell } from './results.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP_UPDATE_FIXTURES, UPDATE_GOLDEN_DIR, UPDATE_SCENARIOS, appUpdateScenario, goldenJson, runLiveUpdate } from './update-peer.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';

describe.skipIf(!!why)(`firmware update on live MCUboot fixtures${why ? ` (skipped: ${why})` : ''}`, () => {
  it('qemu_cortex_m0 (MCUboot swap using offset): upload, test, reset, confirm', () => liveCell('qemu_cortex_m0.serial', 'flash', async () => {
    const r = await runLiveUpdate(UPDATE_SCENARIOS.swap);
    const kinds = r.golden.states.map((s) => s.kind);
    expect(kinds).toEqual(['preflight', 'uploading', 'verifying', 'testing', 'resetting', 'waiting-for-device', 'confirming', 'done']);
    expect(r.golden.outcome).toMatchObject({ kind: 'done', version: '1.0.0+1', confirmed: true, message: 'running 1.0.0+1, confirmed', hash: r.golden.image.hash });
    // the bootloader really swapped: its log (same UART) says so, and it booted v1.0.0
    const log = Buffer.concat(r.golden.events.filter((e) => e.dir === 'rx').map((e) => Buffer.from((e as { hex: string }).hex, 'hex'))).toString('latin1');
    expect(log).toContain('Starting swap using offset algorithm.');
    expect(log).toContain('I: Image version: v1.0.0');
    return { kibs: r.uploadKiBs, note: 'swap using offset: upload, test, reset, confirm' };
  }), 90_000);

  it('mps2_an385 app under RAM_LOAD MCUboot: test is ENOTSUP, reported, and the new image boots', () => liveCell('mps2_an385.serial_recovery', 'flash', async () => {
    const r = await runLiveUpdate(UPDATE_SCENARIOS.ramload);
    const skipped = r.states.find((s) => s.kind === 'testing' && s.skipped);
    expect(skipped).toMatchObject({ note: expect.stringMatching(/has no test\/confirm \(ENOTSUP\): test skipped; it boots the highest valid image at reset, without revert/) });
    expect(r.golden.outcome).toMatchObject({ kind: 'done', version: '1.0.0+1', confirmed: true, message: 'running 1.0.0+1 (no test/confirm in this bootloader)' });
    expect(r.golden.states.map((s) => s.kind)).not.toContain('confirming');
    return { kibs: r.uploadKiBs, note: 'RAM_LOAD: test ENOTSUP, reset, new image runs' };
  }), 90_000);

  for (const id of APP_UPDATE_FIXTURES) {
    it(`${id} app under RAM_LOAD MCUboot: upload, test ENOTSUP, reset, the new image runs`, () => liveCell(id, 'flash', async () => {
      const r = await runLiveUpdate(appUpdateScenario(id));
      expect(r.golden.states.map((s) => s.kind)).toEqual(['preflight', 'uploading', 'verifying', 'testing', 'testing', 'resetting', 'waiting-for-device', 'done']);
      expect(r.golden.outcome).toMatchObject({ kind: 'done', version: '1.0.0+1', confirmed: true, message: 'running 1.0.0+1 (no test/confirm in this bootloader)', hash: r.golden.image.hash });
      if (process.env.FIELDBENCH_RECORD === '1') {
        mkdirSync(UPDATE_GOLDEN_DIR, { recursive: true });
        writeFileSync(join(UPDATE_GOLDEN_DIR, `${r.golden.scenario}.json`), goldenJson(r.golden));
      }
      return { kibs: r.uploadKiBs, note: 'RAM_LOAD: test ENOTSUP, reset, new image runs' };
    }), 120_000);
  }
});

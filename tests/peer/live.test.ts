/**
 * The golden script, live against the real Zephyr SMP servers: the results
 * must equal what was recorded in tests/golden/peer, and the fresh wire
 * transcript must decode cleanly through our framing.
 *
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordLink } from '../../src/core/link/recording.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { PEER_FIXTURES, connectRecovery, fixturesAvailable, launchFixture, type PeerFixtureId } from './fixtures.ts';
import { GOLDEN_DIR } from './record.ts';
import { liveCell } from './results.ts';
import { SCRIPT_TIMEOUT_MS, bytesReviver, decodeTranscript, jsonRoundTrip, runPeerScript } from './script.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';

async function runOnce(id: PeerFixtureId, golden: { results: unknown; packets: { rx: unknown[] } }): Promise<void> {
  const fx = await launchFixture(id, { waitForClient: true });
  try {
    const rl = recordLink(fx.recovery ? await connectRecovery(fx) : await fx.open(), { peer: id, framing: fx.framing });
    if (fx.entry.qemu_cmd && !fx.recovery) await new Promise((r) => setTimeout(r, 1500));
    const session = await openSession(rl, { framing: fx.framing, lineGapMs: fx.lineGapMs, timeoutMs: SCRIPT_TIMEOUT_MS });
    const results = await runPeerScript(session, { recovery: fx.recovery });
    await session.close();
    // MCUboot's recovery in the 0eae053d builds reports no params (manifest: no recovery_buf_size): the
    // session measures its buffer instead (reported: false), as the golden recorded
    if (!fx.recovery || fx.entry.recovery_buf_size !== undefined) {
      expect(results.params).toEqual(
        fx.noParams
          ? { bufSize: 256, bufCount: 2, reported: false }
          : fx.recovery
          ? { bufSize: fx.entry.recovery_buf_size, bufCount: fx.entry.recovery_buf_count, reported: true }
          : { bufSize: fx.entry.buf_size, bufCount: fx.entry.buf_count, reported: true },
      );
    }
    expect(jsonRoundTrip(results)).toEqual(golden.results);
    const t = rl.toTranscript();
    const rx = decodeTranscript(fx.framing, t.chunks, 'rx');
    expect(rx.drops).toEqual([]);
    expect(rx.packets.length).toBe(golden.packets.rx.length);
  } finally {
    await fx.stop();
  }
}

describe.skipIf(!!why)(`live Zephyr SMP servers${why ? ` (skipped: ${why})` : ''}`, () => {
  for (const id of Object.keys(PEER_FIXTURES) as PeerFixtureId[]) {
    it(`${id}: the golden script gives the recorded results`, async () => {
      const golden = JSON.parse(readFileSync(join(GOLDEN_DIR, `${id}.json`), 'utf8'), bytesReviver);
      // one attempt: a lost request is a failure to find at its cause, not to retry
      // (the golden script reads the device info, then echoes up to the largest packet and the error cases)
      await liveCell(id, 'info', () => runOnce(id, golden));
    });
  }
});

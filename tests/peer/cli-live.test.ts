/**
 * The CLI's connect() on every fixture, as a user runs it: no --framing, no
 * --line-gap. The framing must be found (console or raw; UDP is datagram), the
 * params read, and the largest echo must come back, the pacing adapting
 * by itself (native_sim's pty drops bursts of lines: it backs off).
 *
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts tests/peer/cli-live
 */
import { describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/connect.ts';
import { parseArgs } from '../../src/cli/command.ts';
import { echo } from '../../src/core/groups/os.ts';
import { memoryPacingStore } from '../../src/core/smp/pacing.ts';
import { PEER_FIXTURES, fixturesAvailable, launchFixture, type PeerFixtureId } from './fixtures.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';
const APP_FIXTURES = (Object.keys(PEER_FIXTURES) as PeerFixtureId[]).filter((id) => !('recovery' in PEER_FIXTURES[id]));

describe.skipIf(!!why)(`the CLI finds framing and pacing on live fixtures${why ? ` (skipped: ${why})` : ''}`, () => {
  for (const id of [...APP_FIXTURES, 'mps2_an385.serial_recovery_raw' as const, 'mps2_an385.serial_recovery_buf2048' as const]) {
    it(`${id}: framing found, params read, largest echo answered`, async () => {
      const fx = await launchFixture(id, { waitForClient: true });
      try {
        if (fx.path === 'tcp') await (await fx.open()).close(); // start the emulator (it waits for a client)
        const err: string[] = [];
        const s = await connect(parseArgs(['--port', fx.spec, '--wait', '20000']), { out: () => {}, err: (t) => void err.push(t), cwd: process.cwd() }, { pacingStore: memoryPacingStore() });
        try {
          expect(s.framing).toBe(fx.framing);
          expect(s.framingDetected).toBe(fx.framing !== 'datagram');
          expect(s.params.reported).toBe(!fx.noParams);
          const big = 'q'.repeat(s.client.maxPacket - 14);
          expect(await echo(s.client, big)).toBe(big);
        } finally {
          await s.close();
        }
      } finally {
        await fx.stop();
      }
    }, 90_000);
  }
});

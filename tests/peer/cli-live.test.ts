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
import { PEER_FIXTURES, bootEmulator, fixturesAvailable, launchFixture, type PeerFixtureId } from './fixtures.ts';
import { liveCell } from './results.ts';

const enabled = process.env.FIELDBENCH_PEER === '1';
const why = !enabled ? 'set FIELDBENCH_PEER=1 to run against the live fixtures' : !fixturesAvailable() ? 'fixtures not extracted (see tests/peer/fixtures.ts)' : '';
// every fixture's application (the serial-recovery builds too: their app, before any reset into MCUboot)
const APP_FIXTURES = Object.keys(PEER_FIXTURES) as PeerFixtureId[];

describe.skipIf(!!why)(`the CLI finds framing and pacing on live fixtures${why ? ` (skipped: ${why})` : ''}`, () => {
  for (const id of APP_FIXTURES) {
    it(`${id}: framing found, params read, largest echo answered`, () => liveCell(id, 'echo', async () => {
      const fx = await launchFixture(id, { waitForClient: true });
      try {
        // the emulator boots on a first connection that reads its boot log (bootEmulator): the CLI then meets a
        // running device, as on a bench
        if (fx.path === 'tcp') await bootEmulator(fx);
        const err: string[] = [];
        const s = await connect(parseArgs(['--port', fx.spec, '--wait', '20000']), { out: () => {}, err: (t) => void err.push(t), cwd: process.cwd() }, { pacingStore: memoryPacingStore() });
        try {
          expect(s.framing).toBe(fx.framing);
          expect(s.framingDetected).toBe(fx.framing !== 'datagram');
          expect(s.params.reported).toBe(!fx.noParams);
          const big = 'q'.repeat(s.client.maxPacket - 14);
          expect(await echo(s.client, big)).toBe(big);
          if (fx.framing === 'datagram') {
            // UDP: payload KiB/s of the largest echo, one request in flight (measured, not asserted)
            const n = 50;
            const t0 = performance.now();
            for (let i = 0; i < n; i++) expect(await echo(s.client, big)).toBe(big);
            const kibs = (n * big.length) / 1024 / ((performance.now() - t0) / 1000);
            await liveCell(id, 'udp', async () => ({ kibs, note: `echo of ${s.client.maxPacket} B packets, each way` }));
          }
          return { note: `${s.framing}${s.framingDetected ? ' (found)' : ''}, ${s.params.bufSize} x ${s.params.bufCount}${s.params.reported ? '' : ' (not reported)'}, pacing step ${s.pacing.level}` };
        } finally {
          await s.close();
        }
      } finally {
        await fx.stop();
      }
    }), 90_000);
  }
});

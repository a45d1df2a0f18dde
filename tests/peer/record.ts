/**
 * Record golden transcripts from the real Zephyr SMP servers.
 *
 *   npx tsx tests/peer/record.ts [fixture-id ...]     (default: all of PEER_FIXTURES)
 *
 * Writes tests/golden/peer/<fixture-id>.json: the raw chunks both ways, the
 * packets they decode to, and what runPeerScript() saw. Needs the fixtures
 * extracted (see tests/peer/fixtures.ts) and, for QEMU, qemu-system-arm.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordLink } from '../../src/core/link/recording.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { PEER_FIXTURES, connectRecovery, launchFixture, zephyrVersionOf, type PeerFixtureId } from './fixtures.ts';
import { SCRIPT_TIMEOUT_MS, bytesReplacer, concatChunks, decodeTranscript, runPeerScript } from './script.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const GOLDEN_DIR = resolve(here, '../golden/peer');

/** Emulators boot MCUboot then the app after the socket opens; requests sent before that are lost. */
const EMULATOR_BOOT_MS = 1500;

export async function recordFixture(id: PeerFixtureId): Promise<string> {
  const fx = await launchFixture(id, { waitForClient: true });
  try {
    const link = fx.recovery ? await connectRecovery(fx) : await fx.open();
    const rl = recordLink(link, { peer: `zephyr ${zephyrVersionOf(fx.entry)} ${id} (${fx.entry.artifact})`, framing: fx.framing });
    // let an emulator boot (its boot log queues in the link and is recorded as the session reads it)
    if (fx.entry.qemu_cmd && !fx.recovery) await new Promise((r) => setTimeout(r, EMULATOR_BOOT_MS));
    const session = await openSession(rl, { framing: fx.framing, lineGapMs: fx.lineGapMs, timeoutMs: SCRIPT_TIMEOUT_MS });
    const results = await runPeerScript(session, { recovery: fx.recovery });
    await session.close();
    const t = rl.toTranscript();
    const tx = decodeTranscript(fx.framing, t.chunks, 'tx');
    const rx = decodeTranscript(fx.framing, t.chunks, 'rx');
    const info = results.info as { os?: { release?: string } };
    const golden = {
      fixture: id,
      zephyrVersion: zephyrVersionOf(fx.entry),
      zephyrBuild: /Zephyr OS build (\S+)/.exec(fx.output())?.[1] ?? /build (\S+) \*\*\*/.exec(Buffer.from(concatChunks(t.chunks, 'rx')).toString('latin1'))?.[1] ?? info.os?.release ?? null,
      manifest: {
        artifact: fx.entry.artifact,
        target: fx.entry.target,
        config: fx.entry.config,
        transport: fx.entry.transport,
        buf_size: fx.entry.buf_size,
        buf_count: fx.entry.buf_count,
        line_length_max: fx.entry.line_length_max,
        mcuboot: fx.entry.mcuboot,
        ...(fx.entry.transport === 'udp' ? { ip_family: fx.entry.ip_family, udp_port: fx.entry.udp_port } : {}),
        groups: fx.entry.groups,
        ...(fx.recovery ? { recovery_buf_size: fx.entry.recovery_buf_size, recovery_buf_count: fx.entry.recovery_buf_count } : {}),
      },
      recovery: fx.recovery,
      peer: t.peer,
      framing: t.framing,
      recordedAt: t.recordedAt,
      session: { lineGapMs: fx.lineGapMs, timeoutMs: SCRIPT_TIMEOUT_MS, firstSeq: tx.packets[0]?.header.seq ?? null, ...(link.datagram ? { datagram: link.datagram } : {}) },
      results,
      packets: { tx: tx.packets, rx: rx.packets },
      framingNotes: { txDrops: tx.drops, rxDrops: rx.drops, rxNoise: rx.noise },
      chunks: t.chunks,
    };
    mkdirSync(GOLDEN_DIR, { recursive: true });
    const file = join(GOLDEN_DIR, `${id}.json`);
    writeFileSync(file, JSON.stringify(golden, bytesReplacer, 1) + '\n');
    return file;
  } finally {
    await fx.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const ids = (process.argv.length > 2 ? process.argv.slice(2) : Object.keys(PEER_FIXTURES)) as PeerFixtureId[];
  for (const id of ids) {
    if (!(id in PEER_FIXTURES)) {
      console.error(`unknown fixture ${id}; known: ${Object.keys(PEER_FIXTURES).join(', ')}`);
      process.exit(2);
    }
    const file = await recordFixture(id);
    console.log(`recorded ${id} -> ${file}`);
  }
}

/**
 * A firmware update against a real MCUboot fixture (QEMU), shared by the live
 * test (tests/peer/update-live.test.ts) and the golden recorder
 * (`npx tsx tests/peer/update-peer.ts`), and the golden format that
 * tests/unit/golden-update.test.ts replays without QEMU.
 *
 * The image: the fixture's own app (its .signed.bin), its MCUboot header and
 * TLVs stripped, re-signed by our signImage with a higher version and an
 * Ed25519 signature from PEER_TEST_KEY (a TEST-ONLY key, derived from a public
 * string: never trust it for anything). These MCUboot builds verify only the
 * SHA-256 TLV (no signature type configured), so they accept it; our preflight
 * verifies the Ed25519 signature against PEER_TEST_KEY's public key.
 *
 * Never commit the fixtures or their firmware bytes: the golden keeps the
 * device's replies verbatim and our upload requests with every `data` bstr
 * replaced by {len, sha256} (redactUploadData).
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { recordLink, type TranscriptChunk } from '../../src/core/link/recording.ts';
import { runUpdate, type UpdateOptions, type UpdateState } from '../../src/core/ops/update/update.ts';
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { createDecoder, type Framing } from '../../src/core/smp/framing.ts';
import { SMP_HEADER_SIZE, decodeHeader, type SmpHeader } from '../../src/core/smp/header.ts';
import { decodeCborObject } from '../../src/core/base/cbor.ts';
import { parseImage } from '../../src/core/trust/mcuboot/parse.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { ed25519PublicKey } from '../../src/core/trust/ed25519.ts';
import { FIXTURES_DIR, connectRecovery, launchFixture, manifestEntry, zephyrVersionOf, type PeerFixtureId } from './fixtures.ts';
import { toHex } from '../../src/core/base/bytes.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const UPDATE_GOLDEN_DIR = resolve(here, '../golden/peer/update');

/** TEST-ONLY firmware signing key: SHA-256 of a public string. */
export const PEER_TEST_KEY = sha256(new TextEncoder().encode('fieldbench peer update test key (test only, public)'));

export interface UpdateScenario {
  /** Golden file name (without .json). */
  name: string;
  fixture: PeerFixtureId;
  /** The fixture's app image the update is derived from. */
  signedBin: string;
  version: string;
  timeoutMs: number;
  lineGapMs: number;
  /** What the bootloader is, as observed (for the docs and the replay test). */
  bootloader: string;
  /** Flash through MCUboot serial recovery (the app is reset into it first). */
  recovery?: boolean;
}

export const UPDATE_SCENARIOS: Record<string, UpdateScenario> = {
  swap: {
    name: 'qemu_cortex_m0.serial.update',
    fixture: 'qemu_cortex_m0.serial',
    signedBin: 'zephyr_4.4.0_smp_server_0eae053d_qemu_cortex_m0_serial.signed.bin',
    version: '1.0.0+1',
    timeoutMs: 3000,
    lineGapMs: 0,
    bootloader: 'MCUboot ee39e2d694bd, swap using offset ("Starting swap using offset algorithm."), no signature check (SHA-256 TLV only)',
  },
  ramload: {
    name: 'mps2_an385.ramload.update',
    fixture: 'mps2_an385.serial_recovery',
    signedBin: 'zephyr_f33aa2bc4a43_smp_server_27c54835_mps2_an385_serial_recovery.signed.bin',
    version: '1.0.0+1',
    timeoutMs: 3000,
    lineGapMs: 0,
    bootloader: 'MCUboot RAM_LOAD (images carry IMAGE_F_RAM_LOAD, load address 0x20240000), no test/confirm',
  },
};

/**
 * Application-mode flash (the app's own img group, under the RAM_LOAD MCUboot)
 * on the other serial-recovery builds: raw framing and each buffer size.
 */
export function appUpdateScenario(fixture: PeerFixtureId): UpdateScenario {
  const entry = manifestEntry(fixture);
  return {
    name: `${fixture}.app-update`,
    fixture,
    signedBin: entry.artifact.replace(/\.hex$/, '.signed.bin'),
    version: '1.0.0+1',
    timeoutMs: 3000,
    lineGapMs: 0,
    bootloader: UPDATE_SCENARIOS.ramload.bootloader,
  };
}
/** Every fixture flashed in application mode: the two scenarios above, and each other serial-recovery build. */
export const APP_UPDATE_FIXTURES = ['mps2_an385.serial_recovery_raw', 'mps2_an385.serial_recovery_buf400', 'mps2_an385.serial_recovery_buf512', 'mps2_an385.serial_recovery_buf1024', 'mps2_an385.serial_recovery_buf2048'] as const satisfies readonly PeerFixtureId[];

export interface DerivedImage {
  image: Uint8Array;
  /** The bytes as the fixture's build carried them: only hashes of it are recorded. */
  bodySha256: Uint8Array;
  bodySize: number;
  headerSize: number;
  loadAddr?: number;
  sourceVersion: string;
}

/** Strip MCUboot's header/TLVs from the fixture's signed app and re-sign it (our signImage, PEER_TEST_KEY). */
export async function deriveUpdateImage(sc: UpdateScenario, dir = FIXTURES_DIR): Promise<DerivedImage> {
  const src = new Uint8Array(readFileSync(join(dir, sc.signedBin)));
  const img = parseImage(src);
  const { hdrSize, imgSize, loadAddr, flags, version } = img.header;
  const body = src.subarray(hdrSize, hdrSize + imgSize);
  const ramLoad = (flags & 0x20) !== 0;
  const signed = await signImage(body, {
    key: PEER_TEST_KEY,
    version: sc.version,
    headerSize: hdrSize,
    padHeader: true,
    ...(ramLoad ? { loadAddr } : {}),
  });
  return {
    image: signed.image,
    bodySha256: sha256(body),
    bodySize: body.length,
    headerSize: hdrSize,
    ...(ramLoad ? { loadAddr } : {}),
    sourceVersion: `${version.major}.${version.minor}.${version.revision}+${version.build}`,
  };
}

export async function peerTestPublicKey(): Promise<Uint8Array> {
  return ed25519PublicKey(PEER_TEST_KEY);
}

/** Options the op runs with, live and in replay. */
export function updateOptions(trustedKey: Uint8Array): UpdateOptions {
  return { trustedKeys: [trustedKey], confirm: 'test-then-confirm', resetSettleMs: 1500, bootTimeoutMs: 30000, firstChunkTimeoutMs: 20000 };
}

/**
 * A state as the golden keeps it: the kind and its salient fields (no timings).
 * The goldens were recorded before the op contract (outcome.ts); their summary
 * of the outcome keeps that form (done's fields flat, a failure as 'error'
 * with message and recoverable), so the recorded files stay as they were.
 */
export function summarizeState(s: UpdateState): Record<string, unknown> {
  switch (s.kind) {
    case 'preflight':
      return { kind: s.kind, ok: s.report.ok, reason: s.report.reason, checks: s.report.checks.map((c) => `${c.name}:${c.result}`) };
    case 'uploading':
      return { kind: s.kind };
    case 'done':
      return { kind: s.kind, version: s.result.version, hash: toHex(s.result.hash), confirmed: s.result.confirmed, message: s.result.message };
    case 'failed':
      return { kind: 'error', message: s.reason, recoverable: s.retryable };
    case 'testing':
      return { kind: s.kind, ...(s.skipped ? { skipped: true } : {}), ...(s.note ? { note: s.note } : {}) };
    case 'resumed':
      return { kind: s.kind, from: s.from };
    case 'cancelled':
      return { kind: s.kind, sent: s.details?.sent ?? 0 };
    default:
      return { kind: s.kind };
  }
}

/** Consecutive 'uploading' states collapse into one. */
export function stateTrail(states: UpdateState[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const s of states) {
    const x = summarizeState(s);
    if (x.kind === 'uploading' && out.at(-1)?.kind === 'uploading') continue;
    out.push(x);
  }
  return out;
}

// ------------------------------------------------------------------ golden transcript with redacted upload data

export interface RedactedData {
  $redacted: 'image bytes';
  len: number;
  sha256: string;
}

export type UpdateEvent =
  | { dir: 'tx'; t_ms: number; header: SmpHeader; body: Record<string, unknown> }
  | { dir: 'rx'; t_ms: number; hex: string };

/** Replace the `data` bstr of img upload requests (group 1, id 1) with its length and SHA-256. */
export function redactUploadData(header: SmpHeader, body: Record<string, unknown>): Record<string, unknown> {
  if (header.group !== 1 || header.id !== 1 || !(body.data instanceof Uint8Array)) return body;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    out[k] = k === 'data' ? ({ $redacted: 'image bytes', len: v instanceof Uint8Array ? v.length : 0, sha256: toHex(sha256(v as Uint8Array)) } satisfies RedactedData) : v;
  }
  return out;
}

/**
 * Turn a recorded transcript into events: each request our side sent becomes
 * one tx event (decoded, upload data redacted; the raw tx bytes are dropped),
 * rx chunks stay verbatim.
 */
export function toUpdateEvents(framing: Framing, chunks: TranscriptChunk[]): { events: UpdateEvent[]; txDrops: string[] } {
  const events: UpdateEvent[] = [];
  const txDrops: string[] = [];
  let t = 0;
  const dec = createDecoder(
    framing,
    (p) => {
      const header = decodeHeader(p);
      const body = header.length === 0 ? {} : (decodeCborObject(p.subarray(SMP_HEADER_SIZE)) as Record<string, unknown>);
      events.push({ dir: 'tx', t_ms: t, header, body: redactUploadData(header, body) });
    },
    { acceptOps: [0, 2], onDrop: (r) => txDrops.push(r) },
  );
  for (const c of chunks) {
    if (c.dir === 'rx') events.push({ dir: 'rx', t_ms: c.t_ms, hex: c.hex });
    else {
      t = c.t_ms;
      dec.push(Buffer.from(c.hex, 'hex'));
    }
  }
  return { events, txDrops };
}

export interface UpdateGolden {
  scenario: string;
  fixture: string;
  zephyrVersion: string;
  artifact: string;
  bootloader: string;
  framing: Framing;
  recordedAt: string;
  session: { lineGapMs: number; timeoutMs: number; firstSeq: number; maxPacket: number; window: number; params: { bufSize: number; bufCount: number } };
  /** What we uploaded: derived from the fixture's app; only sizes and hashes are kept. */
  image: {
    derivedFrom: string;
    sourceVersion: string;
    version: string;
    size: number;
    headerSize: number;
    bodySize: number;
    bodySha256: string;
    loadAddr?: number;
    fileSha256: string;
    /** The image's SHA-256 TLV: what img_mgmt reports as the slot hash. */
    hash: string;
    signer: 'PEER_TEST_KEY (test only)';
  };
  states: Record<string, unknown>[];
  outcome: Record<string, unknown>;
  durationMs: number;
  /** From the op's start to the last byte acknowledged (preflight included). */
  uploadMs?: number;
  events: UpdateEvent[];
}

// ------------------------------------------------------------------ live run

export interface LiveUpdateResult {
  golden: UpdateGolden;
  states: UpdateState[];
  derived: DerivedImage;
  bootLog: string;
  /** Image KiB/s from the first chunk's reply to the last. */
  uploadKiBs?: number;
}

const EMULATOR_BOOT_MS = 1500;

/** Flash each serial-recovery fixture through MCUboot's recovery (reset boot_mode 1 first). */
export function recoveryScenario(fixture: PeerFixtureId): UpdateScenario {
  const entry = manifestEntry(fixture);
  return {
    name: `${fixture}.recovery-flash`,
    fixture,
    signedBin: entry.artifact.replace(/\.hex$/, '.signed.bin'),
    version: '1.0.0+1',
    timeoutMs: 3000,
    lineGapMs: 0,
    recovery: true,
    bootloader: 'MCUboot serial recovery (boot_serial): upload writes the primary slot, 4-byte-aligned chunk acceptance',
  };
}

export async function runLiveUpdate(sc: UpdateScenario, log?: (s: string) => void): Promise<LiveUpdateResult> {
  const derived = await deriveUpdateImage(sc);
  const pub = await peerTestPublicKey();
  const fx = await launchFixture(sc.fixture, { waitForClient: true });
  try {
    const entry = manifestEntry(sc.fixture);
    const rl = recordLink(sc.recovery ? await connectRecovery(fx) : await fx.open(), { peer: `zephyr ${zephyrVersionOf(entry)} ${sc.fixture} (${entry.artifact})`, framing: fx.framing });
    if (!sc.recovery) await new Promise((r) => setTimeout(r, EMULATOR_BOOT_MS));
    const firstSeq = 1;
    const session: SmpSession = await openSession(rl, { framing: fx.framing, lineGapMs: sc.lineGapMs, timeoutMs: sc.timeoutMs, initialSeq: firstSeq });
    // no caps of ours: window and packet size come from the device's params and the session's pacing
    const states: UpdateState[] = [];
    let uploadedAt: number | undefined;
    let firstAck: { t: number; sent: number } | undefined;
    const t0 = performance.now();
    const final = await runUpdate(session, derived.image, updateOptions(pub), (s) => {
      if (s.kind === 'uploading' && s.sent > 0) firstAck ??= { t: performance.now(), sent: s.sent };
      if (s.kind === 'uploading' && s.sent === s.total) uploadedAt ??= performance.now();
      states.push(s);
      if (!log) return;
      if (s.kind !== 'uploading') log(`${Math.round(performance.now() - t0)} ms ${JSON.stringify(summarizeState(s))}`);
      else if (s.sent === s.total) log(`${Math.round(performance.now() - t0)} ms uploaded ${s.total}`);
    });
    const durationMs = Math.round(performance.now() - t0);
    await session.close();
    const t = rl.toTranscript();
    const { events, txDrops } = toUpdateEvents(fx.framing, t.chunks);
    if (txDrops.length) throw new Error(`our own requests did not decode: ${txDrops.join(', ')}`);
    const pre = states.find((s) => s.kind === 'preflight');
    const report = pre?.kind === 'preflight' ? pre.report : undefined;
    const golden: UpdateGolden = {
      scenario: sc.name,
      fixture: sc.fixture,
      zephyrVersion: zephyrVersionOf(entry),
      artifact: entry.artifact,
      bootloader: sc.bootloader,
      framing: fx.framing,
      recordedAt: t.recordedAt,
      session: { lineGapMs: sc.lineGapMs, timeoutMs: sc.timeoutMs, firstSeq, maxPacket: session.client.maxPacket, window: session.client.window, params: { bufSize: session.params.bufSize, bufCount: session.params.bufCount } },
      image: {
        derivedFrom: sc.signedBin,
        sourceVersion: derived.sourceVersion,
        version: sc.version,
        size: derived.image.length,
        headerSize: derived.headerSize,
        bodySize: derived.bodySize,
        bodySha256: toHex(derived.bodySha256),
        ...(derived.loadAddr !== undefined ? { loadAddr: derived.loadAddr } : {}),
        fileSha256: toHex(sha256(derived.image)),
        hash: report?.image.hash ? toHex(report.image.hash) : '',
        signer: 'PEER_TEST_KEY (test only)',
      },
      states: stateTrail(states),
      outcome: summarizeState(final),
      durationMs,
      ...(uploadedAt !== undefined ? { uploadMs: Math.round(uploadedAt - t0) } : {}),
      events,
    };
    // image KiB/s from the first chunk's reply to the last (the first chunk's slot erase left out)
    const uploadKiBs = firstAck && uploadedAt !== undefined && uploadedAt > firstAck.t ? (derived.image.length - firstAck.sent) / 1024 / ((uploadedAt - firstAck.t) / 1000) : undefined;
    return { golden, states, derived, bootLog: fx.output(), uploadKiBs };
  } finally {
    await fx.stop();
  }
}

/** JSON for golden files: Uint8Array -> {"$hex"}. */
export function goldenJson(v: unknown): string {
  return (
    JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? { $hex: toHex(x) } : x), 1) + '\n'
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const which = process.argv.slice(2).length ? process.argv.slice(2) : [...Object.keys(UPDATE_SCENARIOS), ...APP_UPDATE_FIXTURES];
  for (const k of which) {
    const sc = UPDATE_SCENARIOS[k] ?? ((APP_UPDATE_FIXTURES as readonly string[]).includes(k) ? appUpdateScenario(k as PeerFixtureId) : undefined);
    if (!sc) {
      console.error(`unknown scenario ${k}; known: ${Object.keys(UPDATE_SCENARIOS).join(', ')}`);
      process.exit(2);
    }
    const r = await runLiveUpdate(sc, (s) => console.log(`[${k}] ${s}`));
    if (process.env.FIELDBENCH_RECORD === '1') {
      mkdirSync(UPDATE_GOLDEN_DIR, { recursive: true });
      const file = join(UPDATE_GOLDEN_DIR, `${sc.name}.json`);
      writeFileSync(file, goldenJson(r.golden));
      console.log(`recorded ${file}`);
    }
    console.log(`[${k}] outcome ${JSON.stringify(r.golden.outcome)} in ${r.golden.durationMs} ms, ${r.golden.events.length} events`);
  }
}

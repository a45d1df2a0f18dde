/**
 * Verified firmware update (NIST IR 8259A "software update"): one op that
 * checks an MCUboot image against what the device runs and what we trust
 * (preflight.ts), uploads it with the pipelined, resumable engine (engine.ts)
 * and walks the bootloader's test -> reset -> confirm protocol. An op
 * (outcome.ts): progress states, then one Outcome (done with the running
 * version, failed with an UpdateFailure code, cancelled with the bytes sent);
 * the UI and the CLI render them, ops/update/record.ts turns the outcome into
 * the audit entry.
 */
import { type ImageSlot, IMG, erase, readState, writeState } from '../../groups/image.ts';
import { Group } from '../../smp/header.ts';
import { maxRequestPacket } from '../../smp/session.ts';
import { reset } from '../../groups/os.ts';
import { carrySecureSession } from '../../groups/security.ts';
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { consoleEncodedSize } from '../../smp/framing.ts';
import { equalPresentBytes, toHex } from '../../base/bytes.ts';
import { sleep, UploadError, uploadImage, type UploadProgress, type UploadResult } from './engine.ts';
import { preflightImage, type PreflightOptions, type PreflightReport } from './preflight.ts';
import { type Cancelled, type Op, type Outcome, cancelled, contract, done, failed, runOp } from '../outcome.ts';

export type UpdateProgress =
  | { kind: 'preflight'; report: PreflightReport }
  | { kind: 'uploading'; sent: number; total: number; bytesPerSecond: number; etaMs: number }
  | { kind: 'resumed'; from: number }
  /** MCUboot serial recovery: said before the upload starts (it overwrites the primary slot). */
  | { kind: 'serial-recovery'; note: string }
  | { kind: 'verifying' }
  | { kind: 'testing'; skipped?: boolean; note?: string }
  | { kind: 'resetting' }
  | { kind: 'waiting-for-device' }
  | { kind: 'confirming' };

/** What a done update leaves: the version running, its hash, whether it is confirmed, in words. */
export interface UpdateResult {
  version: string;
  hash: Uint8Array;
  confirmed: boolean;
  message: string;
}

/** A cancelled update says how far it got (bytes uploaded; a later run resumes from there). */
export interface UpdateCancelDetails {
  sent: number;
}

export type UpdateOutcome = Outcome<UpdateResult, UpdateFailure, UpdateCancelDetails>;
export type UpdateState = UpdateProgress | UpdateOutcome;

/**
 * Why an update ended without success. `not-booted`: the bootloader did not
 * run the new image (rejected or reverted it). `unconfirmed`: the new image
 * RUNS but could not be confirmed: it reverts at the next reboot.
 */
export type UpdateFailure =
  | 'preflight-read'
  | 'preflight-refused'
  | 'erase'
  | 'corrupted'
  | 'reconnect'
  | 'upload'
  | 'state-read'
  | 'not-listed'
  | 'mark-refused'
  | 'reset-refused'
  | 'no-return'
  | 'not-booted'
  | 'unconfirmed'
  /** Serial recovery: the primary slot does not list the image's hash after the upload (corrupt or not valid). */
  | 'hash-mismatch';

export interface UpdateOptions extends PreflightOptions {
  signal?: AbortSignal;
  /** Resume an interrupted upload of the same image (default true); false erases the slot first. */
  resume?: boolean;
  /** test-then-confirm (default), confirm-now (permanent before reset), test-only (leave unconfirmed). */
  confirm?: 'test-then-confirm' | 'confirm-now' | 'test-only';
  /** Open a new session after the device resets or the link drops (USB re-enumerates). */
  reconnect?: () => Promise<SmpSession>;
  /** Per-request timeout of the first chunk, which makes the device erase the slot (default 20000 ms). */
  firstChunkTimeoutMs?: number;
  /** How long the device may take to come back after reset (default 30000 ms). */
  bootTimeoutMs?: number;
  /** Pause after the reset reply before talking to the device again (default 500 ms). */
  resetSettleMs?: number;
  /** Consecutive timeouts without progress before the upload gives up (default 4). */
  maxStalls?: number;
}

// ------------------------------------------------------------------ the op

class Channel<T> {
  private items: T[] = [];
  private waiter: (() => void) | null = null;
  push(x: T): void {
    this.items.push(x);
    this.waiter?.();
  }
  async next(): Promise<T> {
    while (this.items.length === 0) await new Promise<void>((r) => (this.waiter = r));
    this.waiter = null;
    return this.items.shift()!;
  }
}

/** Idempotent requests are retried on timeout (a lost line); refusals and link loss are not. */
async function retry<T>(fn: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof SmpError && e.kind === 'timeout') || i >= attempts) throw e;
    }
  }
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The update op: progress states, then one Outcome (outcome.ts). */
export function updateFirmware(session: SmpSession, image: Uint8Array, opts: UpdateOptions): Op<UpdateProgress, UpdateResult, UpdateFailure, UpdateCancelDetails> {
  // How far it got, for the words of a cancel (the contract ends the op at the next state once the signal fires).
  const at = { sent: 0, marked: false, uploading: false, recovery: false };
  const cancelledOutcome = (): Cancelled<UpdateCancelDetails> =>
    at.marked
      ? cancelled('cancelled before reset: the image is uploaded and marked; it is installed at the next reboot', { sent: at.sent })
      : at.uploading
        ? cancelled(`upload cancelled at ${at.sent} of ${image.length} bytes; ${at.recovery ? RECOVERY_RERUN : 'run again to resume'}`, { sent: at.sent })
        : cancelled('cancelled before upload', { sent: 0 });
  return contract(updateBody(session, image, opts, at), { signal: opts.signal, cancelled: cancelledOutcome });
}

async function* updateBody(session: SmpSession, image: Uint8Array, opts: UpdateOptions, at: { sent: number; marked: boolean; uploading: boolean; recovery: boolean }): AsyncGenerator<UpdateState> {
  const signal = opts.signal;
  let s = session;
  let report: PreflightReport;
  try {
    report = await retry(() => preflightImage(s, image, opts));
  } catch (e) {
    yield failed('preflight-read', `could not read the device for preflight: ${errMessage(e)}`, { retryable: true });
    return;
  }
  yield { kind: 'preflight', report };
  if (!report.ok) {
    yield failed('preflight-refused', `refused: ${report.reason}`, { retryable: false, by: 'tool' });
    return;
  }
  const hash = report.image.hash!;
  const version = report.image.version!;
  const recovery = report.device.serialRecovery;
  if (recovery) {
    at.recovery = true;
    yield { kind: 'serial-recovery', note: RECOVERY_WARNING };
    await fitRecoveryBuffer(s, signal);
  }
  at.uploading = true;

  // ---- upload, with reconnect-and-resume on link loss
  if (opts.resume === false && !recovery) {
    try {
      await erase(s.client, undefined, { timeoutMs: 30000, signal });
    } catch (e) {
      yield failed('erase', `could not erase the upload slot: ${errMessage(e)}`, { retryable: !(e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group')) });
      return;
    }
  }
  let sent = 0;
  let attempt = 0;
  let matchFailures = 0;
  let match: boolean | undefined;
  for (;;) {
    const ch = new Channel<UpdateState | { kind: 'end'; result?: UploadResult; error?: UploadError }>();
    const samples: [number, number][] = [];
    let lastEmit = 0;
    const progress = (p: UploadProgress, force = false) => {
      sent = at.sent = p.sent;
      const t = performance.now();
      samples.push([t, p.sent]);
      while (samples.length > 2 && t - samples[0][0] > 3000) samples.shift();
      if (!force && t - lastEmit < 100 && p.sent < p.total) return;
      lastEmit = t;
      const [t0, b0] = samples[0];
      const bps = t > t0 ? ((p.sent - b0) * 1000) / (t - t0) : 0;
      ch.push({ kind: 'uploading', sent: p.sent, total: p.total, bytesPerSecond: Math.round(bps), etaMs: bps > 0 ? Math.round(((p.total - p.sent) * 1000) / bps) : NaN });
    };
    const baud = s.link.baudRate;
    const lineBps = baud ? (baud / 10) * (s.framing === 'console' ? s.params.bufSize / consoleEncodedSize(s.params.bufSize) : 1) : undefined;
    uploadImage(s.client, image, {
      sha: report.image.fileSha256,
      signal,
      firstChunkTimeoutMs: opts.firstChunkTimeoutMs,
      maxStalls: opts.maxStalls,
      lineBytesPerSecond: lineBps,
      onProgress: (p) => progress(p),
      onResume: (from) => {
        ch.push({ kind: 'resumed', from });
        samples.length = 0;
      },
    }).then(
      (result) => ch.push({ kind: 'end', result }),
      (error: UploadError) => ch.push({ kind: 'end', error }),
    );
    let end: { result?: UploadResult; error?: UploadError };
    for (;;) {
      const ev = await ch.next();
      if (ev.kind === 'end') {
        end = ev;
        break;
      }
      yield ev;
    }
    if (end.result) {
      match = end.result.match;
      yield { kind: 'uploading', sent: image.length, total: image.length, bytesPerSecond: 0, etaMs: 0 };
      if (match === false) {
        if (++matchFailures < 3) continue; // garbled data reached flash (no CRC on raw framing): upload again
        yield failed('corrupted', 'the device reports the uploaded data does not match the image SHA-256 (corrupted in transit); nothing was installed', { retryable: true });
        return;
      }
      break;
    }
    const err = end.error!;
    if (signal?.aborted) return; // the contract ends it: cancelled, with the bytes sent
    const linkLost = err.cause instanceof SmpError && err.cause.kind === 'closed';
    if (err.recoverable && opts.reconnect && (linkLost || s.client.closed) && attempt++ < 3) {
      yield { kind: 'waiting-for-device' };
      try {
        s = await reconnectWithin(s, opts.reconnect, opts.bootTimeoutMs ?? 30000, signal);
      } catch (e) {
        yield failed('reconnect', `${err.message}; reconnecting failed: ${errMessage(e)}`, { retryable: true });
        return;
      }
      continue;
    }
    const hint = recovery ? ` (${RECOVERY_RERUN})` : err.recoverable ? ' (run again to resume from where the device stopped)' : '';
    yield failed('upload', err.message + hint, { retryable: err.recoverable });
    return;
  }

  if (recovery) {
    // ---- serial recovery wrote the primary slot: it must list the image's hash there
    yield { kind: 'verifying' };
    let listed: ImageSlot[];
    try {
      listed = await retry(() => readState(s.client, { signal }));
    } catch (e) {
      yield failed('state-read', `could not read the image list after the upload: ${errMessage(e)}; the primary slot may not hold a bootable image`, { retryable: true });
      return;
    }
    const primary = listed.find((x) => x.image === 0 && x.slot === 0);
    if (!primary || !equalPresentBytes(primary.hash, hash)) {
      const got = primary?.hash ? `hash ${toHex(primary.hash).slice(0, 16)}…` : 'no valid image';
      yield failed('hash-mismatch', `after the upload the primary slot reports ${got}, the image's hash is ${toHex(hash).slice(0, 16)}…: the written image is not the one sent; flash it again before resetting`, {
        retryable: true,
        by: 'device',
      });
      return;
    }
    yield done({ version, hash, confirmed: true, message: `wrote ${version} to the primary slot through MCUboot serial recovery (hash verified); it boots at the next reset` });
    return;
  }

  // ---- the device lists the uploaded image?
  yield { kind: 'verifying' };
  let slots: ImageSlot[];
  try {
    slots = await retry(() => readState(s.client, { signal }));
  } catch (e) {
    yield failed('state-read', `could not read image state after upload: ${errMessage(e)}`, { retryable: true });
    return;
  }
  const uploaded = slots.find((x) => equalPresentBytes(x.hash, hash) && !x.active);
  if (!uploaded) {
    yield failed('not-listed', `the device does not list the uploaded image (hash ${toHex(hash).slice(0, 16)}…) in a free slot${match === undefined ? ' and did not check the upload hash' : ''}`, { retryable: true });
    return;
  }

  // ---- test (or permanent) request
  const mode = opts.confirm ?? 'test-then-confirm';
  const overwriteOnly = report.device.bootMode === 2;
  const permanentNow = mode === 'confirm-now' || overwriteOnly;
  yield { kind: 'testing', note: permanentNow ? (overwriteOnly ? 'overwrite-only bootloader: the upgrade is permanent (no revert)' : 'marking the image permanent before reset') : 'marking the image for a test boot' };
  let testSkipped = false;
  try {
    await retry(() => writeState(s.client, hash, permanentNow, { signal }));
  } catch (e) {
    if (e instanceof SmpError && e.notSupported) {
      testSkipped = true;
      yield {
        kind: 'testing',
        skipped: true,
        note: `the bootloader (${report.device.bootModeName ?? 'mode unknown'}) has no test/confirm (ENOTSUP): test skipped; it boots the highest valid image at reset, without revert`,
      };
    } else {
      yield failed('mark-refused', `device refused to mark the image for ${permanentNow ? 'upgrade' : 'test'}: ${errMessage(e)}`, { retryable: !(e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group')) });
      return;
    }
  }
  at.marked = true;
  if (signal?.aborted) return; // cancelled before reset (the contract's outcome says the image is marked)

  // ---- reset and wait for the device to come back
  yield { kind: 'resetting' };
  try {
    await reset(s.client, { timeoutMs: 2000 });
  } catch (e) {
    if (!(e instanceof SmpError && (e.kind === 'timeout' || e.kind === 'closed'))) {
      yield failed('reset-refused', `device refused to reset: ${errMessage(e)}`, { retryable: true });
      return;
    }
  }
  yield { kind: 'waiting-for-device' };
  // Until the device has rebooted, it lists the image as uploaded and pending (or, without
  // test/confirm, present and not running). Poll until that changes; re-send the reset only
  // if nothing changed for a while (a second reset right after a test boot would revert it).
  const notYet = (slots: ImageSlot[]) => {
    const u = slots.find((x) => equalPresentBytes(x.hash, hash));
    return !!u && !u.active && (testSkipped || u.pending === true);
  };
  const bootMs = opts.bootTimeoutMs ?? 30000;
  const deadline = Date.now() + bootMs;
  let lastReset = Date.now();
  let resets = 0;
  let after: ImageSlot[] = [];
  try {
    s = await waitForDevice(s, opts, signal);
    for (;;) {
      after = await retry(() => readState(s.client, { signal }));
      if (!notYet(after)) break;
      if (signal?.aborted) throw new Error('cancelled');
      if (Date.now() > deadline) throw new Error(`it still lists the new image as not yet installed after ${bootMs} ms`);
      if (Date.now() - lastReset > Math.min(5000, bootMs / 3) && resets < 2) {
        resets++;
        yield { kind: 'resetting' };
        await reset(s.client, { timeoutMs: 2000 }).catch(() => {});
        lastReset = Date.now();
        yield { kind: 'waiting-for-device' };
        s = await waitForDevice(s, opts, signal);
        continue;
      }
      await sleep(100, signal);
    }
  } catch (e) {
    yield failed('no-return', `device did not come back after reset: ${errMessage(e)}`, { retryable: true });
    return;
  }
  const running = after.find((x) => x.active);
  if (!running || !equalPresentBytes(running.hash, hash)) {
    yield failed(
      'not-booted',
      `the device did not boot the new image (its bootloader rejected or reverted it): it runs ${running ? `${running.version} (${toHex(running.hash ?? new Uint8Array()).slice(0, 16)}…)` : 'nothing it reports'}`,
      { retryable: false, by: 'device' },
    );
    return;
  }
  if (running.confirmed) {
    yield done({ version, hash, confirmed: true, message: testSkipped ? `running ${version} (no test/confirm in this bootloader)` : `running ${version}, permanent` });
    return;
  }
  if (mode === 'test-only') {
    yield done({ version, hash, confirmed: false, message: `running ${version} as a test: it reverts at the next reboot unless confirmed` });
    return;
  }
  // The new image is active and is the one preflight verified: confirm it.
  yield { kind: 'confirming' };
  try {
    const st = await retry(() => writeState(s.client, undefined, true, { signal }));
    const now = st.find((x) => x.active);
    if (!now || !equalPresentBytes(now.hash, hash) || !now.confirmed) throw new Error('the device does not report the running image as confirmed');
  } catch (e) {
    yield failed('unconfirmed', `confirming failed: ${errMessage(e)}; the device reverts to the previous image at its next reboot`, { retryable: true });
    return;
  }
  yield done({ version, hash, confirmed: true, message: `running ${version}, confirmed` });
}

/** Said before a serial-recovery upload starts. */
export const RECOVERY_WARNING =
  'MCUboot serial recovery writes the primary slot directly: there is no test boot and no revert, and an interrupted upload leaves the device unbootable until it is flashed again';
/** What to do after an interrupted serial-recovery upload (recovery keeps no upload state). */
export const RECOVERY_RERUN = 'run again: serial recovery keeps no upload state, so the upload starts over; until it completes the primary slot holds no bootable image';

/** MCUboot's serial receive buffer by default (CONFIG_BOOT_SERIAL_MAX_RECEIVE_SIZE). */
export const MCUBOOT_RECOVERY_BUF = 1024;

/**
 * Serial recovery takes one request at a time. When it did not report its
 * buffer (MCUboot before mcumgr params support), measure it: an image-list
 * read padded to the largest request MCUboot's default buffer takes is
 * answered if the buffer is that large (bs_list reads no body), and dropped
 * without a reply otherwise; then the session's conservative limit stays.
 */
async function fitRecoveryBuffer(s: SmpSession, signal?: AbortSignal): Promise<void> {
  const c = s.client;
  c.setLimits(c.maxPacket, 1);
  if (s.params.reported || !s.measuredParams) return;
  const want = maxRequestPacket(s.framing, MCUBOOT_RECOVERY_BUF);
  if (want <= c.maxPacket) return;
  const before = c.maxPacket;
  let pad = 'x'.repeat(Math.max(0, want - c.packetSize({ pad: '' })));
  while (pad.length > 0 && c.packetSize({ pad }) > want) pad = pad.slice(1); // the text head grows past 23 and 255 characters
  c.setLimits(want, 1);
  try {
    await c.read(Group.Image, IMG.State, { pad }, { timeoutMs: 1500, signal });
    s.measuredParams({ bufSize: MCUBOOT_RECOVERY_BUF, bufCount: 1 });
  } catch (e) {
    if (e instanceof SmpError && e.kind === 'closed') throw e;
    c.setLimits(before, 1);
  }
}

async function reconnectWithin(old: SmpSession, reconnect: () => Promise<SmpSession>, ms: number, signal?: AbortSignal): Promise<SmpSession> {
  await old.close().catch(() => {});
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new Error('cancelled');
    try {
      const s = await reconnect();
      carrySecureSession(old.client, s.client); // a technician session continues on the new link (a new key exchange)
      return s;
    } catch (e) {
      last = e;
      await sleep(250, signal);
    }
  }
  throw new Error(`no session within ${ms} ms: ${errMessage(last)}`);
}

async function waitForDevice(s: SmpSession, opts: UpdateOptions, signal?: AbortSignal): Promise<SmpSession> {
  const bootMs = opts.bootTimeoutMs ?? 30000;
  await sleep(opts.resetSettleMs ?? 500, signal);
  if (opts.reconnect) return reconnectWithin(s, opts.reconnect, bootMs, signal);
  if (s.client.closed) throw new Error('the link closed at reset; give a reconnect option to reopen it');
  const deadline = Date.now() + bootMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new Error('cancelled');
    try {
      await readState(s.client, { timeoutMs: 1000, signal });
      return s;
    } catch (e) {
      last = e;
      if (e instanceof SmpError && e.kind === 'closed') throw e;
    }
  }
  throw new Error(`no answer within ${bootMs} ms: ${errMessage(last)}`);
}

/** Run the op to its end (CLI, tests): every state to onState, and the Outcome. */
export function runUpdate(session: SmpSession, image: Uint8Array, opts: UpdateOptions, onState?: (s: UpdateState) => void): Promise<UpdateOutcome> {
  return runOp<UpdateState>(updateFirmware(session, image, opts), { onState }) as Promise<UpdateOutcome>;
}

/**
 * UI state for the verified firmware update (Svelte 5 runes). Holds the
 * chosen image, runs the update op (preflight, then updateFirmware) and keeps
 * what it reports for the components to render. All protocol logic is in
 * src/core/ops/update/; this module only sequences calls and remembers
 * states (so a panel remounted after an unplug can still offer "Resume").
 */
import { type ImageSlot, readState } from '../../core/groups/image.ts';
import { type DeviceModel, type PreflightReport, preflightImage } from '../../core/ops/update/preflight.ts';
import { type UpdateOptions, type UpdateOutcome, type UpdateState, updateFirmware } from '../../core/ops/update/update.ts';
import { isOutcome, thrownFailure } from '../../core/ops/outcome.ts';
import type { SmpSession } from '../../core/groups/session.ts';
import { ARTIFACT_LIMITS, listArtifacts } from '../../core/store/artifacts.ts';
import type { FieldbenchDB } from '../../core/store/db.ts';
import type { TrustBundle } from '../../core/trust/bundle.ts';
import { readFirmwareFile } from '../../core/trust/ihex.ts';

/** A firmware image from the local library (content-addressed: sha256 is the hex key). */
export interface LibraryFirmware {
  name: string;
  bytes: Uint8Array;
  sha256: string;
  /** What the library's validator recorded (version, model, ...), if anything. */
  meta?: Record<string, unknown>;
}

export interface ChosenImage {
  name: string;
  /** The MCUboot image as it is uploaded (a .hex file is converted to its binary). */
  image: Uint8Array;
  format: 'bin' | 'hex';
  origin: 'library' | 'file';
}

export type { UpdateOutcome };

/** What an update run needs beside the session and the image. */
export interface UpdateSettings {
  trustedKeys: Uint8Array[];
  bundle?: TrustBundle | null;
  deviceModel?: DeviceModel;
  reconnect?: () => Promise<SmpSession>;
  /** Options passed through to the op (confirm mode, timeouts). */
  options?: Pick<UpdateOptions, 'confirm' | 'bootTimeoutMs' | 'resetSettleMs' | 'firstChunkTimeoutMs' | 'maxStalls' | 'now'>;
  onDone?: (outcome: UpdateOutcome, info: { name: string; report: PreflightReport | null }) => void;
  /** Every state of a run as the op emits it (e.g. for the log pane). */
  onState?: (state: UpdateState) => void;
}

export interface UploadProgressView {
  sent: number;
  total: number;
  bytesPerSecond: number;
  etaMs: number;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Firmware artifacts of the local library, newest first. */
export async function loadLibraryFirmware(db: FieldbenchDB): Promise<LibraryFirmware[]> {
  const recs = await listArtifacts(db, 'firmware');
  return recs
    .sort((a, b) => b.added - a.added)
    .map((r) => ({ name: r.name ?? `firmware ${r.sha256.slice(0, 12)}`, bytes: r.bytes, sha256: r.sha256, meta: r.meta }));
}

export class UpdateController {
  source = $state.raw<ChosenImage | null>(null);
  sourceError = $state('');
  /** The latest preflight report (from the stand-alone check or from the run). */
  report = $state.raw<PreflightReport | null>(null);
  checking = $state(false);
  checkError = $state('');
  /** States of the current run, in order (consecutive progress states collapse into one). */
  states = $state.raw<UpdateState[]>([]);
  progress = $state.raw<UploadProgressView | null>(null);
  resumedFrom = $state<number | null>(null);
  running = $state(false);
  cancelling = $state(false);
  /** The op is waiting for the link to come back in the middle of the upload. */
  linkWaiting = $state(false);
  /** The link was lost mid-upload and the run ended: Resume continues from the device's offset. */
  linkLost = $state.raw<{ sent: number; total: number; message: string } | null>(null);
  outcome = $state.raw<UpdateOutcome | null>(null);
  slots = $state.raw<ImageSlot[] | null>(null);
  slotsError = $state('');
  readingSlots = $state(false);

  private abort: AbortController | null = null;
  private preflightKey: { source: ChosenImage; session: SmpSession; model?: string } | null = null;
  private preflightToken = 0;

  /** Use a file's bytes (.bin or .hex) or a library image. Never throws: a bad file sets sourceError. */
  choose(name: string, bytes: Uint8Array, origin: ChosenImage['origin'] = 'file'): boolean {
    if (this.running) return false;
    this.sourceError = '';
    this.report = null;
    this.checkError = '';
    this.preflightKey = null;
    this.clearRun();
    this.linkLost = null;
    if (bytes.length === 0) {
      this.source = null;
      this.sourceError = `${name} is empty`;
      return false;
    }
    if (bytes.length > ARTIFACT_LIMITS.firmware) {
      this.source = null;
      this.sourceError = `${name} is ${bytes.length} bytes: larger than any firmware image this app accepts (${ARTIFACT_LIMITS.firmware} bytes)`;
      return false;
    }
    try {
      const f = readFirmwareFile(name, bytes);
      this.source = { name, image: f.data, format: f.format, origin };
      return true;
    } catch (e) {
      this.source = null;
      this.sourceError = `${name} could not be read as firmware: ${message(e)}`;
      return false;
    }
  }

  clearRun(): void {
    this.states = [];
    this.progress = null;
    this.resumedFrom = null;
    this.outcome = null;
    this.linkWaiting = false;
  }

  /** Run preflight for the chosen image on this session unless already done for both. */
  async ensurePreflight(session: SmpSession, settings: UpdateSettings): Promise<void> {
    const source = this.source;
    if (!source || this.running) return;
    // Again when the device's model becomes known (it is compared with the bundle's listing).
    const model = settings.deviceModel?.name;
    if (this.preflightKey?.source === source && this.preflightKey.session === session && this.preflightKey.model === model) return;
    this.preflightKey = { source, session, model };
    await this.preflight(session, settings);
  }

  /** Check the chosen image against the device and the trusted keys; nothing is sent but reads. */
  async preflight(session: SmpSession, settings: UpdateSettings): Promise<void> {
    const source = this.source;
    if (!source) return;
    const token = ++this.preflightToken;
    this.checking = true;
    this.checkError = '';
    try {
      const report = await preflightImage(session, source.image, { trustedKeys: settings.trustedKeys, bundle: settings.bundle ?? undefined, deviceModel: settings.deviceModel, now: settings.options?.now });
      if (token === this.preflightToken && this.source === source) this.report = report;
    } catch (e) {
      if (token === this.preflightToken) {
        this.report = null;
        this.checkError = `Could not read the device for the pre-flight check: ${message(e)}`;
        this.preflightKey = null;
      }
    } finally {
      if (token === this.preflightToken) this.checking = false;
    }
  }

  canUpload(session: SmpSession | null): boolean {
    // After a successful run the device runs this image: choose another (or the same again) to start over.
    return !!session && !session.client.closed && !!this.source && this.report?.ok === true && !this.running && !this.checking && this.outcome?.kind !== 'done';
  }

  /** Start (or, after a lost link, resume) the update. The op re-checks preflight before sending anything. */
  async start(session: SmpSession, settings: UpdateSettings): Promise<UpdateOutcome | null> {
    const source = this.source;
    if (!source || this.running) return null;
    this.preflightToken++; // a stand-alone check in flight no longer counts
    this.checking = false;
    this.clearRun();
    this.linkLost = null;
    this.running = true;
    this.cancelling = false;
    this.cancelReason = null;
    const abort = (this.abort = new AbortController());
    let afterUpload = false;
    let uploadStarted = false;
    let outcome: UpdateOutcome | null = null;
    try {
      for await (const st of updateFirmware(session, source.image, {
        ...settings.options,
        trustedKeys: settings.trustedKeys,
        bundle: settings.bundle ?? undefined,
        deviceModel: settings.deviceModel,
        reconnect: settings.reconnect && this.stopWhenDisconnected(settings.reconnect),
        signal: abort.signal,
        resume: true,
      })) {
        if (isOutcome(st)) outcome = st as UpdateOutcome;
        this.push(st);
        settings.onState?.(st);
        switch (st.kind) {
          case 'preflight':
            this.report = st.report;
            break;
          case 'uploading':
            uploadStarted = true;
            this.linkWaiting = false;
            this.progress = { sent: st.sent, total: st.total, bytesPerSecond: st.bytesPerSecond, etaMs: st.etaMs };
            break;
          case 'resumed':
            uploadStarted = true;
            this.linkWaiting = false;
            this.resumedFrom = st.from;
            this.progress = { sent: st.from, total: source.image.length, bytesPerSecond: 0, etaMs: NaN };
            break;
          case 'waiting-for-device':
            if (!afterUpload) this.linkWaiting = true;
            break;
          case 'verifying':
            afterUpload = true;
            this.linkWaiting = false;
            break;
        }
      }
    } catch (e) {
      // the op never throws (outcome.ts); a throwing onState callback still ends the run with an outcome
      outcome = thrownFailure(e);
      this.push(outcome);
    } finally {
      this.running = false;
      this.cancelling = false;
      this.linkWaiting = false;
      this.abort = null;
    }
    outcome ??= { kind: 'failed', code: 'internal', reason: 'the update ended without an outcome', retryable: false };
    if (outcome.kind === 'cancelled' && this.cancelReason) {
      // "upload cancelled at N of M bytes; run again to resume" -> said once, with who stopped it
      outcome = { ...outcome, reason: `${this.cancelReason} (${outcome.reason.replace(/^upload cancelled /, '')})` };
      this.states = [...this.states.slice(0, -1), outcome];
    }
    this.cancelReason = null;
    if (outcome.kind === 'failed' && outcome.retryable && uploadStarted && !afterUpload && session.client.closed) {
      this.linkLost = { sent: this.progress?.sent ?? 0, total: source.image.length, message: outcome.reason };
    }
    this.outcome = outcome;
    // The device's slots changed (or may have): show them as they are now.
    if (!session.client.closed) void this.readSlots(session);
    settings.onDone?.(outcome, { name: source.name, report: this.report });
    return outcome;
  }

  /** Continue an upload the link dropped: a live session, or one from `reconnect`. */
  async resume(session: SmpSession | null, settings: UpdateSettings): Promise<UpdateOutcome | null> {
    let s = session && !session.client.closed ? session : null;
    if (!s && settings.reconnect) {
      try {
        s = await settings.reconnect();
      } catch (e) {
        if (this.linkLost) this.linkLost = { ...this.linkLost, message: `reconnecting failed: ${message(e)}` };
        return null;
      }
    }
    if (!s) return null;
    return this.start(s, settings);
  }

  /**
   * The engine's reconnect, except that the technician's Disconnect cancels the
   * run instead of being retried until the boot timeout (issue 14 defect 11).
   */
  private stopWhenDisconnected(reconnect: () => Promise<SmpSession>): () => Promise<SmpSession> {
    return async () => {
      try {
        return await reconnect();
      } catch (e) {
        if ((e as { disconnectedByUser?: unknown })?.disconnectedByUser === true) this.cancel('disconnected by the technician: the upload was stopped');
        throw e;
      }
    };
  }

  /** Why the run was cancelled, when not by its own Cancel button. */
  private cancelReason: string | null = null;

  cancel(reason?: string): void {
    if (!this.abort) return;
    this.cancelReason = reason ?? null;
    this.cancelling = true;
    this.abort.abort();
  }

  async readSlots(session: SmpSession): Promise<void> {
    this.readingSlots = true;
    try {
      this.slots = await readState(session.client);
      this.slotsError = '';
    } catch (e) {
      this.slotsError = `Could not read the firmware slots: ${message(e)}`;
    } finally {
      this.readingSlots = false;
    }
  }

  private push(st: UpdateState): void {
    const prev = this.states.at(-1);
    if (st.kind === 'uploading' && prev?.kind === 'uploading') this.states = [...this.states.slice(0, -1), st];
    else this.states = [...this.states, st];
  }
}

/**
 * The app's update state: it outlives the panel, which the device page
 * unmounts while the link is down, so "Resume" is still offered when the
 * device is back.
 */
export const sharedUpdate = new UpdateController();

/**
 * Verified firmware update (NIST IR 8259A "software update"): one op that
 * checks an MCUboot image against what the device runs and what we trust,
 * uploads it with a pipelined, resumable engine, and walks the bootloader's
 * test -> reset -> confirm protocol. Emits a discriminated union of states;
 * the UI and the CLI render them.
 *
 * Upload engine (img_mgmt upload, as Zephyr implements it):
 *  - each request is sized against the device's buf_size by its exact encoded
 *    size (8-byte header + CBOR map; the bstr length prefix and the `off`
 *    integer grow with their values);
 *  - the first chunk (off 0, len, sha) goes alone: the device either starts a
 *    new upload (erasing the slot) or, when `sha` matches an interrupted upload,
 *    answers with the offset it already has (resume);
 *  - then up to client.window (buf_count - 1) chunks are in flight with
 *    pipelined offsets; the device drops a chunk at an unexpected offset and
 *    answers with the offset it expects: the pipeline restarts from there
 *    (stale replies of the abandoned pipeline are ignored by epoch);
 *  - a lost request shows up as a mismatch on the next reply, or as a timeout
 *    (the pipeline restarts at the last confirmed offset);
 *  - the last reply's `match` (device-side SHA-256 of the whole image) is
 *    honoured: false fails the upload.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { type ImageSlot, type SlotInfo, IMG, readState, slotInfo, uploadBody, writeState } from '../groups/image.ts';
import { type BootloaderInfo, MCUBOOT_MODES, bootloaderInfo, modeHasTestConfirm, reset } from '../groups/os.ts';
import { encodeCbor } from '../base/cbor.ts';
import type { SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import { Group, SMP_HEADER_SIZE } from '../smp/header.ts';
import type { SmpSession } from '../groups/session.ts';
import { consoleEncodedSize } from '../smp/framing.ts';
import { keyId } from '../trust/keys.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { type ImageVerifyReport, TLV, formatUuid, parseImage, parseUuid, verifyImage } from '../trust/mcuboot.ts';
import { FieldbenchError } from '../base/errors.ts';
import { equalPresentBytes, toHex } from '../base/bytes.ts';

// ------------------------------------------------------------------ types

export type CheckOutcome = 'pass' | 'fail' | 'warn' | 'skip';
export type PreflightCheckName = 'format' | 'signature' | 'revocation' | 'version' | 'security-counter' | 'model' | 'slot' | 'bundle' | 'bootloader';

export interface PreflightCheck {
  name: PreflightCheckName;
  result: CheckOutcome;
  reason: string;
}

/** What the device is, as far as an update needs it. */
export interface DeviceFacts {
  slots: ImageSlot[];
  slotInfo?: SlotInfo[];
  bootloader?: BootloaderInfo;
  bufSize: number;
  bufCount: number;
  /** Largest request packet the device takes (buf_size less the framing's share); default bufSize. */
  maxPacket?: number;
  /** Why some facts could not be read. */
  unavailable: string[];
}

/** The device's model: a name (matched against bundle metadata) and/or the UUIDs images carry (imgtool --vid/--cid). */
export interface DeviceModel {
  name?: string;
  /** 16 raw bytes, a UUID string, or a name (uuid5 in the DNS namespace, as imgtool --vid). */
  vendorId?: Uint8Array | string;
  /** 16 raw bytes, a UUID string, or a name (uuid5 in the vendor namespace, as imgtool --cid). */
  classId?: Uint8Array | string;
}

export interface PreflightOptions {
  /** Raw 32-byte Ed25519 public keys of firmware signers. */
  trustedKeys: Uint8Array[];
  deviceModel?: DeviceModel;
  /** A verified trust bundle: firmware anchors, revocations, firmware metadata. */
  bundle?: TrustBundle;
  /** Unsigned images are never uploaded. */
  allowUnsigned?: false;
  /** Seconds since the epoch (bundle freshness). */
  now?: () => number;
  /** Security counter jump (new - running) above which preflight warns. */
  counterJumpWarn?: number;
}

export interface PreflightReport {
  ok: boolean;
  /** First failure's reason, or a summary. */
  reason: string;
  checks: PreflightCheck[];
  image: {
    size: number;
    version?: string;
    /** The image hash TLV (what the device reports as the slot's hash). */
    hash?: Uint8Array;
    /** SHA-256 of the whole file (the upload's resume key). */
    fileSha256: Uint8Array;
    securityCounter?: number;
    signerKeyIndex?: number;
  };
  device: {
    activeVersion?: string;
    activeHash?: Uint8Array;
    bootMode?: number;
    bootModeName?: string;
    testConfirm: boolean;
    slotSize?: number;
    runningSecurityCounter?: number;
  };
  /** Image bytes per continuation request at this device's buf_size. */
  chunkSize: number;
  verify?: ImageVerifyReport;
}

export type UpdateState =
  | { kind: 'preflight'; report: PreflightReport }
  | { kind: 'uploading'; sent: number; total: number; bytesPerSecond: number; etaMs: number }
  | { kind: 'resumed'; from: number }
  | { kind: 'verifying' }
  | { kind: 'testing'; skipped?: boolean; note?: string }
  | { kind: 'resetting' }
  | { kind: 'waiting-for-device' }
  | { kind: 'confirming' }
  | { kind: 'done'; version: string; hash: Uint8Array; confirmed: boolean; message: string }
  | { kind: 'cancelled'; sent: number; message: string }
  | { kind: 'error'; message: string; recoverable: boolean };

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

export class UploadError extends FieldbenchError<'upload'> {
  constructor(
    message: string,
    readonly recoverable: boolean,
    readonly cause?: unknown,
  ) {
    super('upload', message);
    this.name = 'UploadError';
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      r();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
// ------------------------------------------------------------------ chunk sizing

const EMPTY = new Uint8Array(0);

function cborUintSize(v: number): number {
  return v < 24 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : v < 0x100000000 ? 5 : 9;
}

/** Fields of an upload request other than data. */
export interface UploadFields {
  off: number;
  len?: number;
  sha?: Uint8Array;
  image?: number;
  upgrade?: boolean;
}

/**
 * Largest data length such that header + CBOR({...fields, data}) fits in
 * `bufSize`, counting the bstr length prefix exactly (1, 2, 3 or 5 bytes).
 */
export function maxChunkData(bufSize: number, fields: UploadFields): number {
  const base = encodeCbor(uploadBody({ ...fields, data: EMPTY })).length - 1; // minus the empty bstr's 1-byte head
  const avail = bufSize - SMP_HEADER_SIZE - base;
  for (const h of [1, 2, 3, 5]) {
    const n = avail - h;
    if (n < 0) continue;
    if (cborUintSize(n) <= h) return Math.min(n, 0xffff - base - h);
  }
  return 0;
}

/** Exact packet size of an upload request (for tests and benches). */
export function uploadPacketSize(fields: UploadFields, dataLength: number): number {
  return SMP_HEADER_SIZE + encodeCbor(uploadBody({ ...fields, data: new Uint8Array(dataLength) })).length;
}

/** Continuation chunk sizes by the byte size of `off`: the size only changes at 24, 256, 65536. */
class ChunkSizer {
  private cache = new Map<number, number>();
  constructor(private readonly bufSize: number) {}
  at(off: number): number {
    const k = cborUintSize(off);
    let n = this.cache.get(k);
    if (n === undefined) {
      n = maxChunkData(this.bufSize, { off });
      this.cache.set(k, n);
    }
    return n;
  }
}

// ------------------------------------------------------------------ upload engine

export interface UploadProgress {
  sent: number;
  total: number;
}

export interface UploadEngineOptions {
  /** SHA-256 of the whole image (resume key; the device checks it at the end). */
  sha?: Uint8Array;
  signal?: AbortSignal;
  window?: number;
  image?: number;
  upgrade?: boolean;
  firstChunkTimeoutMs?: number;
  chunkTimeoutMs?: number;
  maxStalls?: number;
  /** Wire bytes per second, to extend timeouts by the send queue's time. */
  lineBytesPerSecond?: number;
  onProgress?: (p: UploadProgress) => void;
  onResume?: (from: number) => void;
}

export interface UploadResult {
  match?: boolean;
  requests: number;
  resyncs: number;
  timeouts: number;
  resumedFrom?: number;
}

/** SMP-level EINVAL (not an img_mgmt group error): the request did not decode, i.e. it was garbled in transit. */
function isGarbled(e: unknown): boolean {
  return e instanceof SmpError && e.kind === 'rc' && e.rc === 3;
}

/** Pipelined, resynchronising, resumable upload of `image` to the device's upload slot. */
export async function uploadImage(client: SmpClient, image: Uint8Array, opts: UploadEngineOptions = {}): Promise<UploadResult> {
  const total = image.length;
  const sha = opts.sha ?? sha256(image);
  const window = Math.max(1, opts.window ?? client.window);
  const sizer = new ChunkSizer(client.maxPacket);
  const firstFields: UploadFields = { off: 0, len: total, sha, image: opts.image, upgrade: opts.upgrade };
  const firstN = Math.min(total, maxChunkData(client.maxPacket, firstFields));
  if (firstN < 32 || sizer.at(total) < 1) throw new UploadError(`device buffer of ${client.maxPacket} bytes is too small for image upload requests`, false);
  const lineBps = opts.lineBytesPerSecond;
  const queueMs = lineBps ? Math.ceil(((window + 1) * client.maxPacket * 1.4 * 1000) / lineBps) : 0;
  const chunkTimeout = (opts.chunkTimeoutMs ?? client.timeoutMs) + queueMs;
  const firstTimeout = Math.max(opts.firstChunkTimeoutMs ?? 20000, chunkTimeout);
  const maxStalls = opts.maxStalls ?? 4;
  const result: UploadResult = { requests: 0, resyncs: 0, timeouts: 0 };
  const signal = opts.signal;
  let started = false;

  const checkAbort = () => {
    if (signal?.aborted) throw new UploadError('upload cancelled', true);
  };
  const fatal = (e: unknown): UploadError => {
    if (e instanceof UploadError) return e;
    if (e instanceof SmpError) {
      if (e.kind === 'closed') return new UploadError(signal?.aborted ? 'upload cancelled' : `link lost during upload: ${e.message}`, true, e);
      if (e.kind === 'timeout') return new UploadError(`device stopped answering during upload: ${e.message}`, true, e);
      if (e.kind === 'rc' || e.kind === 'group') return new UploadError(`device refused the upload: ${e.message}`, false, e);
      return new UploadError(`upload failed: ${e.message}`, true, e);
    }
    return new UploadError(`upload failed: ${(e as Error)?.message ?? e}`, true, e);
  };

  /** Send the first chunk alone; returns the offset the device expects next. */
  const start = async (): Promise<number> => {
    let stalls = 0;
    for (;;) {
      checkAbort();
      try {
        result.requests++;
        const r = await client.write(Group.Image, IMG.Upload, uploadBody({ ...firstFields, data: image.subarray(0, firstN) }), {
          timeoutMs: firstTimeout,
          signal,
        });
        if (typeof r.off !== 'number' || r.off < 0 || r.off > total) throw new UploadError(`device answered the first chunk with an invalid offset ${String(r.off)}`, false);
        if (r.off === total) {
          result.match = typeof r.match === 'boolean' ? r.match : result.match;
          return total;
        }
        if (r.off !== firstN) {
          if (r.off === 0) throw new UploadError('device did not accept the first chunk (answered offset 0)', true);
          result.resumedFrom = r.off;
          opts.onResume?.(r.off);
        } else if (started) {
          // a restart after the device lost its upload state
        }
        started = true;
        return r.off;
      } catch (e) {
        if ((isGarbled(e) || (e instanceof SmpError && e.kind === 'timeout')) && ++stalls <= maxStalls && !signal?.aborted) {
          result.timeouts++;
          continue;
        }
        throw fatal(e);
      }
    }
  };

  let acked = await start();
  opts.onProgress?.({ sent: acked, total });
  if (acked === total) return result;

  return new Promise<UploadResult>((resolve, reject) => {
    let next = acked;
    let epoch = 0;
    let inflight = 0;
    let finished = false;
    let stalls = 0;
    let restarting = false;
    let mismatchesWithoutProgress = 0;

    const finish = (e?: unknown) => {
      if (finished) return;
      finished = true;
      signal?.removeEventListener('abort', onAbort);
      if (e) reject(fatal(e));
      else resolve(result);
    };
    const onAbort = () => finish(new UploadError('upload cancelled', true));
    signal?.addEventListener('abort', onAbort, { once: true });

    const restart = () => {
      restarting = true;
      epoch++;
      // Wait for the abandoned pipeline to drain before the lone first chunk.
      const go = () => {
        if (finished) return;
        if (inflight > 0) return void setTimeout(go, 5);
        start().then(
          (off) => {
            restarting = false;
            acked = next = off;
            opts.onProgress?.({ sent: acked, total });
            if (off === total) finish();
            else pump();
          },
          (e) => finish(e),
        );
      };
      go();
    };

    const resync = (to: number) => {
      result.resyncs++;
      epoch++;
      if (to === 0) return restart();
      next = to;
      acked = to;
    };

    const pump = () => {
      while (!finished && !restarting && inflight < window && next < total) {
        const off = next;
        const n = Math.min(sizer.at(off), total - off);
        next += n;
        send(off, n, epoch);
      }
    };

    const send = (off: number, n: number, ep: number) => {
      inflight++;
      result.requests++;
      client.write(Group.Image, IMG.Upload, { off, data: image.subarray(off, off + n) }, { timeoutMs: chunkTimeout, signal }).then(
        (r) => {
          inflight--;
          if (finished) return;
          const R = r.off;
          if (typeof R !== 'number' || R < 0 || R > total) return finish(new UploadError(`device answered with an invalid offset ${String(R)}`, false));
          if (R === total && R === off + n) {
            result.match = typeof r.match === 'boolean' ? r.match : undefined;
            opts.onProgress?.({ sent: total, total });
            return finish();
          }
          if (ep !== epoch || restarting) return pump();
          if (R === off + n) {
            stalls = 0;
            mismatchesWithoutProgress = 0;
            if (R > acked) {
              acked = R;
              opts.onProgress?.({ sent: acked, total });
            }
          } else {
            if (++mismatchesWithoutProgress > 50) return finish(new UploadError('device keeps answering with unexpected offsets; giving up', true));
            if (R === total) {
              // the device completed the upload through another request
              opts.onProgress?.({ sent: total, total });
              return finish();
            }
            resync(R);
          }
          pump();
        },
        (e: unknown) => {
          inflight--;
          if (finished) return;
          if ((e instanceof SmpError && e.kind === 'timeout') || isGarbled(e)) {
            // A lost request/reply, or one garbled on the line (raw framing has no CRC): the device
            // answers EINVAL to a request it cannot decode. Restart at the last confirmed offset.
            result.timeouts++;
            if (ep !== epoch || restarting) return pump();
            if (++stalls > maxStalls) return finish(e);
            // Lost request (or reply): restart the pipeline at the last confirmed offset.
            result.resyncs++;
            epoch++;
            next = acked;
            return pump();
          }
          finish(e);
        },
      );
    };

    pump();
  });
}

/**
 * Stop-and-wait upload with fixed 128-byte chunks, one request at a time, as
 * common tools upload: the baseline the pipelined engine is measured against.
 */
export async function uploadStopAndWait(
  client: SmpClient,
  image: Uint8Array,
  opts: { chunk?: number; signal?: AbortSignal; timeoutMs?: number; onProgress?: (p: UploadProgress) => void } = {},
): Promise<{ requests: number; match?: boolean }> {
  const chunk = opts.chunk ?? 128;
  const sha = sha256(image);
  let off = 0;
  let requests = 0;
  let match: boolean | undefined;
  while (off < image.length) {
    if (opts.signal?.aborted) throw new UploadError('upload cancelled', true);
    const n = Math.min(chunk, image.length - off);
    const body = off === 0 ? uploadBody({ off: 0, len: image.length, sha, data: image.subarray(0, n) }) : { off, data: image.subarray(off, off + n) };
    requests++;
    const r = await client.write(Group.Image, IMG.Upload, body, { timeoutMs: opts.timeoutMs ?? (off === 0 ? 20000 : undefined), signal: opts.signal });
    if (typeof r.off !== 'number') throw new UploadError('upload reply lacks "off"', false);
    off = r.off;
    if (typeof r.match === 'boolean') match = r.match;
    opts.onProgress?.({ sent: off, total: image.length });
  }
  return { requests, match };
}

// ------------------------------------------------------------------ preflight

/** Read what preflight needs from the device. */
export async function readDeviceFacts(session: SmpSession): Promise<DeviceFacts> {
  const c = session.client;
  const facts: DeviceFacts = { slots: [], bufSize: session.params.bufSize, bufCount: session.params.bufCount, maxPacket: c.maxPacket, unavailable: [] };
  facts.slots = await readState(c);
  try {
    facts.slotInfo = await slotInfo(c);
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
    facts.unavailable.push(`slot info: ${e.message}`);
  }
  try {
    facts.bootloader = await bootloaderInfo(c);
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
    facts.unavailable.push(`bootloader info: ${e.message}`);
  }
  return facts;
}

function parseDeviceVersion(v: string): number[] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:[.+](\d+))?$/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] ?? 0)] : undefined;
}

function cmpVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** RFC 4122 DNS namespace: imgtool derives --vid names with it. */
const NAMESPACE_DNS = Uint8Array.of(0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8);

function uuidBytes(v: Uint8Array | string | undefined, ns: Uint8Array | undefined): Uint8Array | undefined {
  if (v === undefined) return undefined;
  if (v instanceof Uint8Array) return v;
  return parseUuid(v, ns);
}

/** Check an image against the device's facts and what we trust. Never throws on bad input. */
export async function checkImage(image: Uint8Array, facts: DeviceFacts, opts: PreflightOptions): Promise<PreflightReport> {
  const checks: PreflightCheck[] = [];
  const add = (name: PreflightCheckName, result: CheckOutcome, reason: string) => checks.push({ name, result, reason });
  const nowS = opts.now ? opts.now() : Math.floor(Date.now() / 1000);
  const active = facts.slots.find((s) => s.active) ?? facts.slots.find((s) => s.slot === 0);
  const mode = facts.bootloader?.mode;
  const report: PreflightReport = {
    ok: false,
    reason: '',
    checks,
    image: { size: image.length, fileSha256: sha256(image) },
    device: {
      activeVersion: active?.version,
      activeHash: active?.hash,
      bootMode: mode,
      bootModeName: mode !== undefined ? MCUBOOT_MODES[mode] ?? `mode ${mode}` : undefined,
      testConfirm: modeHasTestConfirm(mode),
    },
    chunkSize: maxChunkData(facts.maxPacket ?? facts.bufSize, { off: 0x10000 }),
  };

  // Bundle: fresh, and its firmware anchors / revocations apply.
  const bundle = opts.bundle;
  const keys = [...opts.trustedKeys];
  if (bundle) {
    for (const k of bundle.anchors.firmware) if (k.kty === 'OKP' && !keys.some((x) => equalPresentBytes(x, k.x))) keys.push(k.x);
    if (bundle.stale || bundle.expires <= nowS) {
      add('bundle', 'fail', `trust bundle v${bundle.version} expired at ${new Date(bundle.expires * 1000).toISOString()}: its firmware list may be outdated (get a fresh bundle)`);
    } else {
      add('bundle', 'pass', `trust bundle v${bundle.version}, valid until ${new Date(bundle.expires * 1000).toISOString()}`);
    }
  } else {
    add('bundle', 'skip', 'no trust bundle given: image is checked against the given keys only');
  }

  // Model UUIDs (expected values) for the signature check.
  let vendorId: Uint8Array | undefined;
  let classId: Uint8Array | undefined;
  try {
    vendorId = uuidBytes(opts.deviceModel?.vendorId, NAMESPACE_DNS);
    classId = uuidBytes(opts.deviceModel?.classId, vendorId);
  } catch (e) {
    add('model', 'fail', `device model UUID unusable: ${(e as Error).message}`);
  }

  // Signature and hash (as MCUboot verifies them).
  const slotSize = facts.slotInfo?.[0]?.maxImageSize ?? facts.slotInfo?.[0]?.slots.find((s) => s.slot !== active?.slot)?.size;
  report.device.slotSize = slotSize;
  const v = await verifyImage(image, { keys, requireSignature: true, vendorId, classId });
  report.verify = v;
  const sigChecks = v.checks.filter((c) => ['format', 'encryption', 'unprotected-tlvs', 'hash', 'key', 'signature'].includes(c.name));
  const sigFail = sigChecks.find((c) => c.result === 'fail');
  if (keys.length === 0) add('signature', 'fail', 'no trusted firmware keys given: refusing to upload an image that cannot be verified');
  else if (sigFail) add('signature', 'fail', `${sigFail.name}: ${sigFail.reason}`);
  else add('signature', 'pass', `${v.checks.find((c) => c.name === 'hash')?.reason}; ${v.checks.find((c) => c.name === 'signature')?.reason}`);
  const img = v.image;
  const hashTlv = img?.tlvs.find((t) => !t.protected && t.type === TLV.SHA256 && t.length === 32);
  report.image.version = v.version;
  report.image.hash = hashTlv?.value.slice();
  report.image.securityCounter = v.securityCounter;
  report.image.signerKeyIndex = v.keyIndex;
  const signer = v.keyIndex !== undefined ? keys[v.keyIndex] : undefined;
  if (img && !hashTlv) add('format', 'fail', `image carries a ${v.hashAlg?.toUpperCase() ?? 'non-SHA-256'} hash only: img_mgmt identifies images by their SHA-256 TLV (sign with --sha 256)`);

  // Revocation of the signing key.
  if (bundle && signer) {
    const kid = keyId(signer);
    if (bundle.revocations.keyIds.some((r) => equalPresentBytes(r, kid))) add('revocation', 'fail', `the signing key ${toHex(kid)} is revoked by trust bundle v${bundle.version}`);
    else add('revocation', 'pass', `signing key ${toHex(kid)} is not revoked`);
  }

  // Model: bundle metadata and/or UUID TLVs.
  const meta = bundle?.firmware.find((f) => equalPresentBytes(f.sha256, report.image.fileSha256) || (hashTlv && equalPresentBytes(f.sha256, hashTlv.value)));
  const modelNotes: string[] = [];
  let modelFail: string | undefined;
  let modelWarn: string | undefined;
  if (bundle) {
    if (!meta) modelFail = `image (sha256 ${toHex(report.image.fileSha256).slice(0, 16)}…) is not listed in trust bundle v${bundle.version}`;
    else {
      if (opts.deviceModel?.name && meta.model !== opts.deviceModel.name) modelFail = `bundle lists this image for model '${meta.model}', the device is '${opts.deviceModel.name}'`;
      else if (meta.version && v.version && meta.version !== v.version && parseDeviceVersion(meta.version)?.join('.') !== parseDeviceVersion(v.version)?.join('.')) {
        modelFail = `bundle says version ${meta.version}, image header says ${v.version}`;
      } else if (v.securityCounter !== undefined && meta.securityCounter !== v.securityCounter) {
        modelFail = `bundle says security counter ${meta.securityCounter}, image carries ${v.securityCounter}`;
      } else if (signer && !equalPresentBytes(meta.signerKid, keyId(signer))) {
        modelFail = `bundle says the image is signed by key ${toHex(meta.signerKid)}, it is signed by ${toHex(keyId(signer))}`;
      } else modelNotes.push(`bundle lists it for model '${meta.model}'${opts.deviceModel?.name ? '' : ' (device model not given: not compared)'}`);
      if (!opts.deviceModel?.name) modelWarn = `bundle lists the image for model '${meta.model}' but the device's model was not given`;
    }
  }
  const uuidChecks = v.checks.filter((c) => c.name === 'vendor-id' || c.name === 'class-id');
  for (const c of uuidChecks) {
    if (c.result === 'fail') modelFail ??= c.reason;
    else if (c.result === 'pass') {
      modelNotes.push(c.reason);
      if (!vendorId && !classId) modelWarn ??= `image carries ${c.reason} but the device's UUIDs were not given`;
    }
  }
  if (!checks.some((c) => c.name === 'model')) {
    if (modelFail) add('model', 'fail', modelFail);
    else if (modelWarn) add('model', 'warn', modelWarn);
    else if (modelNotes.length) add('model', 'pass', modelNotes.join('; '));
    else add('model', 'warn', 'no model information (no bundle entry, no UUID TLVs): cannot confirm the image is meant for this device');
  }

  // Version vs what the device runs.
  const newV = img ? [img.header.version.major, img.header.version.minor, img.header.version.revision, img.header.version.build] : undefined;
  const curV = active ? parseDeviceVersion(active.version) : undefined;
  if (!newV) add('version', 'fail', 'image version unreadable');
  else if (!active) add('version', 'warn', 'the device reports no running image');
  else if (hashTlv && active.hash && equalPresentBytes(hashTlv.value, active.hash)) add('version', 'fail', `the device already runs this image (${active.version})`);
  else if (!curV) add('version', 'warn', `device version '${active.version}' unreadable: not compared`);
  else {
    const c = cmpVersions(newV, curV);
    const vs = `${v.version} over running ${active.version}`;
    if (c < 0) add('version', 'fail', `rollback refused: ${vs}`);
    else if (c === 0) add('version', 'warn', `same version as running (${active.version}), different image`);
    else if (newV[0] - curV[0] > 1) add('version', 'warn', `suspiciously large version jump: ${vs}`);
    else add('version', 'pass', vs);
  }

  // Security counter vs the running image's (known from the bundle's metadata).
  const runningMeta = bundle && active?.hash ? bundle.firmware.find((f) => equalPresentBytes(f.sha256, active.hash!)) : undefined;
  report.device.runningSecurityCounter = runningMeta?.securityCounter;
  const jumpWarn = opts.counterJumpWarn ?? 16;
  if (v.securityCounter === undefined) add('security-counter', 'warn', 'image has no security counter: the device cannot refuse a later rollback to it');
  else if (runningMeta) {
    const d = v.securityCounter - runningMeta.securityCounter;
    if (d < 0) add('security-counter', 'fail', `rollback refused: security counter ${v.securityCounter} is below the running image's ${runningMeta.securityCounter}`);
    else if (d > jumpWarn) add('security-counter', 'warn', `suspiciously large security counter jump ${runningMeta.securityCounter} -> ${v.securityCounter}: older images can never boot again`);
    else add('security-counter', 'pass', `security counter ${runningMeta.securityCounter} -> ${v.securityCounter}`);
  } else if (v.securityCounter >= 0xffff0000) add('security-counter', 'warn', `security counter ${v.securityCounter} is near its maximum: no later update could raise it`);
  else add('security-counter', 'skip', `image security counter ${v.securityCounter}; the running image's is unknown (no bundle entry): the device enforces it`);

  // Fits the slot.
  if (!img) add('slot', 'skip', 'image unreadable');
  else if (slotSize === undefined) add('slot', 'skip', `slot size unknown (${facts.unavailable.join('; ') || 'no slot info'}): the device checks it`);
  else if (image.length > slotSize) add('slot', 'fail', `image of ${image.length} bytes does not fit the ${slotSize}-byte slot`);
  else add('slot', 'pass', `${image.length} of ${slotSize} bytes`);

  // Bootloader mode: informational.
  if (mode === undefined) add('bootloader', 'skip', 'bootloader mode unknown: test/confirm will be tried');
  else if (modeHasTestConfirm(mode)) add('bootloader', 'pass', `${report.device.bootModeName}: test boot, then confirm (reverts if not confirmed)`);
  else add('bootloader', 'warn', `${report.device.bootModeName}: no test/confirm; the new image boots without revert`);

  const failed = checks.find((c) => c.result === 'fail');
  report.ok = !failed;
  report.reason = failed ? `${failed.name}: ${failed.reason}` : `ok: ${v.version} signed by trusted key #${v.keyIndex}`;
  return report;
}

/** Preflight against a connected device: read its facts, then check. */
export async function preflightImage(session: SmpSession, image: Uint8Array, opts: PreflightOptions): Promise<PreflightReport> {
  return checkImage(image, await readDeviceFacts(session), opts);
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

export async function* updateFirmware(session: SmpSession, image: Uint8Array, opts: UpdateOptions): AsyncGenerator<UpdateState> {
  const signal = opts.signal;
  let s = session;
  let report: PreflightReport;
  try {
    report = await retry(() => preflightImage(s, image, opts));
  } catch (e) {
    yield { kind: 'error', message: `could not read the device for preflight: ${errMessage(e)}`, recoverable: true };
    return;
  }
  yield { kind: 'preflight', report };
  if (!report.ok) {
    yield { kind: 'error', message: `refused: ${report.reason}`, recoverable: false };
    return;
  }
  const hash = report.image.hash!;
  const version = report.image.version!;
  if (signal?.aborted) {
    yield { kind: 'cancelled', sent: 0, message: 'cancelled before upload' };
    return;
  }

  // ---- upload, with reconnect-and-resume on link loss
  if (opts.resume === false) {
    try {
      await s.client.write(Group.Image, IMG.Erase, {}, { timeoutMs: 30000, signal });
    } catch (e) {
      yield { kind: 'error', message: `could not erase the upload slot: ${errMessage(e)}`, recoverable: !(e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group')) };
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
      sent = p.sent;
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
        yield { kind: 'error', message: 'the device reports the uploaded data does not match the image SHA-256 (corrupted in transit); nothing was installed', recoverable: true };
        return;
      }
      break;
    }
    const err = end.error!;
    if (signal?.aborted) {
      yield { kind: 'cancelled', sent, message: `upload cancelled at ${sent} of ${image.length} bytes; run again to resume` };
      return;
    }
    const linkLost = err.cause instanceof SmpError && err.cause.kind === 'closed';
    if (err.recoverable && opts.reconnect && (linkLost || s.client.closed) && attempt++ < 3) {
      yield { kind: 'waiting-for-device' };
      try {
        s = await reconnectWithin(s, opts.reconnect, opts.bootTimeoutMs ?? 30000, signal);
      } catch (e) {
        yield { kind: 'error', message: `${err.message}; reconnecting failed: ${errMessage(e)}`, recoverable: true };
        return;
      }
      continue;
    }
    yield { kind: 'error', message: err.message + (err.recoverable ? ' (run again to resume from where the device stopped)' : ''), recoverable: err.recoverable };
    return;
  }

  // ---- the device lists the uploaded image?
  yield { kind: 'verifying' };
  let slots: ImageSlot[];
  try {
    slots = await retry(() => readState(s.client, { signal }));
  } catch (e) {
    yield { kind: 'error', message: `could not read image state after upload: ${errMessage(e)}`, recoverable: true };
    return;
  }
  const uploaded = slots.find((x) => equalPresentBytes(x.hash, hash) && !x.active);
  if (!uploaded) {
    yield { kind: 'error', message: `the device does not list the uploaded image (hash ${toHex(hash).slice(0, 16)}…) in a free slot${match === undefined ? ' and did not check the upload hash' : ''}`, recoverable: true };
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
      yield { kind: 'error', message: `device refused to mark the image for ${permanentNow ? 'upgrade' : 'test'}: ${errMessage(e)}`, recoverable: !(e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group')) };
      return;
    }
  }
  if (signal?.aborted) {
    yield { kind: 'cancelled', sent, message: 'cancelled before reset: the image is uploaded and marked; it is installed at the next reboot' };
    return;
  }

  // ---- reset and wait for the device to come back
  yield { kind: 'resetting' };
  try {
    await reset(s.client, { timeoutMs: 2000 });
  } catch (e) {
    if (!(e instanceof SmpError && (e.kind === 'timeout' || e.kind === 'closed'))) {
      yield { kind: 'error', message: `device refused to reset: ${errMessage(e)}`, recoverable: true };
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
    yield { kind: 'error', message: `device did not come back after reset: ${errMessage(e)}`, recoverable: true };
    return;
  }
  const running = after.find((x) => x.active);
  if (!running || !equalPresentBytes(running.hash, hash)) {
    yield {
      kind: 'error',
      message: `the device did not boot the new image (its bootloader rejected or reverted it): it runs ${running ? `${running.version} (${toHex(running.hash ?? new Uint8Array()).slice(0, 16)}…)` : 'nothing it reports'}`,
      recoverable: false,
    };
    return;
  }
  if (running.confirmed) {
    yield { kind: 'done', version, hash, confirmed: true, message: testSkipped ? `running ${version} (no test/confirm in this bootloader)` : `running ${version}, permanent` };
    return;
  }
  if (mode === 'test-only') {
    yield { kind: 'done', version, hash, confirmed: false, message: `running ${version} as a test: it reverts at the next reboot unless confirmed` };
    return;
  }
  // The new image is active and is the one preflight verified: confirm it.
  yield { kind: 'confirming' };
  try {
    const st = await retry(() => writeState(s.client, undefined, true, { signal }));
    const now = st.find((x) => x.active);
    if (!now || !equalPresentBytes(now.hash, hash) || !now.confirmed) throw new Error('the device does not report the running image as confirmed');
  } catch (e) {
    yield { kind: 'error', message: `confirming failed: ${errMessage(e)}; the device reverts to the previous image at its next reboot`, recoverable: true };
    return;
  }
  yield { kind: 'done', version, hash, confirmed: true, message: `running ${version}, confirmed` };
}

async function reconnectWithin(old: SmpSession, reconnect: () => Promise<SmpSession>, ms: number, signal?: AbortSignal): Promise<SmpSession> {
  await old.close().catch(() => {});
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new Error('cancelled');
    try {
      return await reconnect();
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

/** Run the op to its end (CLI, tests): all states, and the final one. */
export async function runUpdate(session: SmpSession, image: Uint8Array, opts: UpdateOptions, onState?: (s: UpdateState) => void): Promise<UpdateState> {
  let last: UpdateState | undefined;
  for await (const st of updateFirmware(session, image, opts)) {
    onState?.(st);
    last = st;
  }
  return last ?? { kind: 'error', message: 'update ended without a result', recoverable: true };
}

export { formatUuid, parseImage };

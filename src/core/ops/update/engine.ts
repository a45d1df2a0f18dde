/**
 * The image upload engine of the software update (ops/update/update.ts).
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
 *    honoured: false fails the upload;
 *  - the device's reported offset is followed exactly: a reply inside the
 *    chunk just sent (MCUboot serial recovery writes only the part of a chunk
 *    that fills whole flash words: 951 bytes sent, 948 taken) is progress, not
 *    a mismatch; the next chunk starts there, and later chunks end on the
 *    alignment learnt from it so the device takes them whole;
 *  - a resume is claimed only when the device answers the first chunk with
 *    more than that chunk held (it kept an earlier upload of the same image).
 */
import { sha256Large } from '../../base/digest.ts';
import { IMG, uploadBody, uploadChunk } from '../../groups/image.ts';
import { encodeCbor } from '../../base/cbor.ts';
import type { SmpClient } from '../../smp/client.ts';
import { SmpError } from '../../smp/errors.ts';
import { Group, SMP_HEADER_SIZE } from '../../smp/header.ts';
import { FieldbenchError } from '../../base/errors.ts';
import { MGMT_RC } from '../../protocol/mgmt.ts';

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

export const sleep = (ms: number, signal?: AbortSignal) =>
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

/**
 * Continuation chunk sizes by the byte size of `off` (the size only changes at
 * 24, 256, 65536), cut so that a chunk ends on the device's write alignment
 * once one is learnt (learnAlignment).
 */
export class ChunkSizer {
  private cache = new Map<number, number>();
  /** Bytes the device writes in whole units of (1 until a partial acceptance shows otherwise). */
  align = 1;
  constructor(private bufSize: number) {}
  /** Size chunks for another packet limit from now on (the session's pacing lowered it). */
  resize(bufSize: number): void {
    if (bufSize === this.bufSize) return;
    this.bufSize = bufSize;
    this.cache.clear();
  }
  at(off: number): number {
    const k = cborUintSize(off);
    let n = this.cache.get(k);
    if (n === undefined) {
      n = maxChunkData(this.bufSize, { off });
      this.cache.set(k, n);
    }
    if (this.align > 1) {
      const end = Math.floor((off + n) / this.align) * this.align;
      if (end > off) return end - off;
    }
    return n;
  }
  /**
   * The device took [off, took) of a chunk that went to `sent`: it writes whole
   * flash words. Learn the largest power of two (up to 512) dividing `took`.
   */
  learnAlignment(took: number): void {
    if (took <= 0) return;
    let a = 1;
    while (a < 512 && took % (a * 2) === 0) a *= 2;
    this.align = this.align === 1 ? a : Math.min(this.align, a);
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
  /** Replies that took only the aligned part of a chunk (followed, not counted as resyncs). */
  partial: number;
  /** The write alignment learnt from partial acceptances (1: none seen). */
  align: number;
}

/** SMP-level EINVAL (not an img_mgmt group error): the request did not decode, i.e. it was garbled in transit. */
function isGarbled(e: unknown): boolean {
  return e instanceof SmpError && e.kind === 'rc' && e.rc === MGMT_RC.EINVAL;
}

/** Pipelined, resynchronising, resumable upload of `image` to the device's upload slot. */
export async function uploadImage(client: SmpClient, image: Uint8Array, opts: UploadEngineOptions = {}): Promise<UploadResult> {
  const total = image.length;
  const sha = opts.sha ?? (await sha256Large(image));
  // read at each send: the session's pacing may lower the window and the packet size during the upload
  const window = () => Math.max(1, Math.min(opts.window ?? Infinity, client.windowFor(client.maxPacket)));
  const sizer = new ChunkSizer(client.maxPacket);
  const firstFields: UploadFields = { off: 0, len: total, sha, image: opts.image, upgrade: opts.upgrade };
  let firstN = Math.min(total, maxChunkData(client.maxPacket, firstFields));
  if (firstN < 32 || sizer.at(total) < 1) throw new UploadError(`device buffer of ${client.maxPacket} bytes is too small for image upload requests`, false);
  const lineBps = opts.lineBytesPerSecond;
  const queueMs = lineBps ? Math.ceil(((window() + 1) * client.maxPacket * 1.4 * 1000) / lineBps) : 0;
  const chunkTimeout = (opts.chunkTimeoutMs ?? client.timeoutMs) + queueMs;
  const firstTimeout = Math.max(opts.firstChunkTimeoutMs ?? 20000, chunkTimeout);
  const maxStalls = opts.maxStalls ?? 4;
  const result: UploadResult = { requests: 0, resyncs: 0, timeouts: 0, partial: 0, align: 1 };
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
        // sized again at each try: pacing may have lowered the packet size after a loss
        firstN = Math.max(32, Math.min(total, maxChunkData(client.maxPacket, firstFields)));
        const r = await client.write(Group.Image, IMG.Upload, uploadBody({ ...firstFields, data: image.subarray(0, firstN) }), {
          timeoutMs: firstTimeout,
          signal,
        });
        if (typeof r.off !== 'number' || r.off < 0 || r.off > total) throw new UploadError(`device answered the first chunk with an invalid offset ${String(r.off)}`, false);
        if (r.off === total) {
          result.match = typeof r.match === 'boolean' ? r.match : result.match;
          return total;
        }
        if (r.off === 0) throw new UploadError('device did not accept the first chunk (answered offset 0)', true);
        if (r.off > firstN && !started) {
          // it holds more than this chunk: it kept an earlier upload of the same image
          result.resumedFrom = r.off;
          opts.onResume?.(r.off);
        } else if (r.off < firstN) {
          // it took the aligned part of the chunk (MCUboot serial recovery): follow it
          result.partial++;
          sizer.learnAlignment(r.off);
          result.align = sizer.align;
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
      sizer.resize(client.maxPacket);
      while (!finished && !restarting && inflight < window() && next < total) {
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
          if (R > off && R < off + n && R >= acked) {
            // the device took the aligned part of this chunk: progress; continue exactly at R
            result.partial++;
            sizer.learnAlignment(R);
            result.align = sizer.align;
            stalls = 0;
            mismatchesWithoutProgress = 0;
            acked = R;
            opts.onProgress?.({ sent: acked, total });
            epoch++; // chunks sent after this one assumed it was taken whole
            next = R;
            return pump();
          }
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
  const sha = await sha256Large(image);
  let off = 0;
  let requests = 0;
  let match: boolean | undefined;
  while (off < image.length) {
    if (opts.signal?.aborted) throw new UploadError('upload cancelled', true);
    const n = Math.min(chunk, image.length - off);
    const ch = off === 0 ? { off: 0, len: image.length, sha, data: image.subarray(0, n) } : { off, data: image.subarray(off, off + n) };
    requests++;
    let r: { off: number; match?: boolean };
    try {
      r = await uploadChunk(client, ch, { timeoutMs: opts.timeoutMs ?? (off === 0 ? 20000 : undefined), signal: opts.signal });
    } catch (e) {
      if (e instanceof SmpError && e.kind === 'decode') throw new UploadError(e.message, false);
      throw e;
    }
    off = r.off;
    if (r.match !== undefined) match = r.match;
    opts.onProgress?.({ sent: off, total: image.length });
  }
  return { requests, match };
}

/**
 * A recording link: wraps a Link and notes every chunk that crosses it, in
 * each direction, with the time since recording began. The transcript is
 * plain JSON (hex chunks), used for golden tests against real devices and
 * for attaching a wire log to a bug report.
 *
 * Framework-free: runs in the browser and in Node.
 */
import type { DatagramInfo, Link, LinkClosed } from './link.ts';
import { fromHex, toHex } from '../base/bytes.ts';

export interface TranscriptChunk {
  dir: 'tx' | 'rx';
  /** Milliseconds since the recording started (fractional). */
  t_ms: number;
  hex: string;
}

export interface Transcript {
  /** What was on the other end, e.g. "zephyr 4.4.0 native_sim serial". */
  peer: string;
  framing: 'console' | 'raw' | 'datagram';
  /** ISO 8601 time the recording started. */
  recordedAt: string;
  chunks: TranscriptChunk[];
  /** How the link ended, if it has. */
  closed?: LinkClosed;
}

export interface RecordingOptions {
  peer: string;
  framing: 'console' | 'raw' | 'datagram';
  /** Clock in ms; default performance.now(). */
  now?: () => number;
}


export class RecordingLink implements Link {
  readonly label: string;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  readonly baudRate?: number;
  readonly datagram?: DatagramInfo;
  readonly chunks: TranscriptChunk[] = [];
  private readonly t0: number;
  private readonly startedAt: string;
  private readonly now: () => number;
  private outcome: LinkClosed | undefined;

  constructor(
    readonly inner: Link,
    private readonly opts: RecordingOptions,
  ) {
    this.label = inner.label;
    this.baudRate = inner.baudRate;
    this.datagram = inner.datagram;
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
    this.startedAt = new Date().toISOString();
    this.closed = inner.closed.then((c) => (this.outcome = c));

    const record = (dir: 'tx' | 'rx', chunk: Uint8Array) => {
      // hex is taken now: the caller may reuse its buffer afterwards
      if (chunk.length) this.chunks.push({ dir, t_ms: Math.round((this.now() - this.t0) * 1000) / 1000, hex: toHex(chunk) });
    };

    this.readable = inner.readable.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          record('rx', chunk);
          controller.enqueue(chunk);
        },
      }),
    );

    let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        writer ??= inner.writable.getWriter();
        // record what was handed to the link, before it can fail: a failed write is still evidence
        record('tx', chunk);
        await writer.write(chunk);
      },
      close: async () => {
        writer?.releaseLock();
        writer = undefined;
      },
      abort: async () => {
        writer?.releaseLock();
        writer = undefined;
      },
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  toTranscript(): Transcript {
    const t: Transcript = { peer: this.opts.peer, framing: this.opts.framing, recordedAt: this.startedAt, chunks: this.chunks.slice() };
    if (this.outcome) t.closed = this.outcome;
    return t;
  }
}

export function recordLink(inner: Link, opts: RecordingOptions): RecordingLink {
  return new RecordingLink(inner, opts);
}

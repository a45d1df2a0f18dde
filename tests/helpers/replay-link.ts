/**
 * A Link that plays a recorded transcript back: it checks that what is
 * written to it is byte for byte what was sent when recording (chunk
 * boundaries may differ), and releases each recorded rx chunk once every tx
 * byte recorded before it has been written. Timing is not reproduced:
 * replies come as soon as they are due.
 */
import type { DatagramInfo, Link, LinkClosed } from '../../src/core/link/link.ts';
import { type TranscriptChunk } from '../../src/core/link/recording.ts';
import { fromHex } from '../../src/core/base/bytes.ts';

export class ReplayLink implements Link {
  readonly label: string;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  /** A replay of a datagram link (UDP): each recorded rx chunk is one datagram. */
  readonly datagram?: DatagramInfo;
  /** First divergence of our tx from the recording, if any. */
  mismatch: string | undefined;
  /** tx bytes matched so far. */
  txMatched = 0;
  private readonly chunks: { dir: 'tx' | 'rx'; bytes: Uint8Array }[];
  private i = 0;
  private off = 0;
  private outcome: LinkClosed | undefined;
  private resolveClosed!: (c: LinkClosed) => void;
  private readCtl!: ReadableStreamDefaultController<Uint8Array>;
  private writeCtl!: WritableStreamDefaultController;

  constructor(chunks: TranscriptChunk[], label = 'replay', opts: { datagram?: DatagramInfo } = {}) {
    this.label = label;
    if (opts.datagram) this.datagram = opts.datagram;
    this.chunks = chunks.map((c) => ({ dir: c.dir, bytes: fromHex(c.hex) }));
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.readCtl = c;
      },
    });
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.writeCtl = c;
      },
      write: (chunk) => this.onWrite(chunk),
    });
    queueMicrotask(() => this.release());
  }

  /** Every recorded chunk has been consumed (tx written, rx delivered). */
  get finished(): boolean {
    return this.i >= this.chunks.length;
  }

  /** Where the replay stands, for failure messages. */
  get position(): string {
    return `chunk ${this.i} of ${this.chunks.length}, byte ${this.off}, ${this.txMatched} tx bytes matched`;
  }

  private release(): void {
    while (!this.outcome && this.i < this.chunks.length && this.chunks[this.i].dir === 'rx') {
      this.readCtl.enqueue(this.chunks[this.i].bytes.slice());
      this.i++;
    }
  }

  private onWrite(data: Uint8Array): void {
    if (this.outcome) throw new Error('replay link is closed');
    this.release();
    for (let k = 0; k < data.length; k++) {
      const c = this.chunks[this.i];
      if (!c) return this.fail(`wrote ${data.length - k} byte(s) more than were recorded (first: ${hex(data.subarray(k, k + 16))})`);
      const want = c.bytes[this.off];
      if (data[k] !== want) {
        return this.fail(
          `tx differs from the recording at tx byte ${this.txMatched} (chunk ${this.i} offset ${this.off}): ` +
            `recorded ${hex(c.bytes.subarray(this.off, this.off + 16))}… wrote ${hex(data.subarray(k, k + 16))}…`,
        );
      }
      this.txMatched++;
      if (++this.off === c.bytes.length) {
        this.i++;
        this.off = 0;
        this.release();
      }
    }
  }

  private fail(message: string): never {
    this.mismatch ??= message;
    this.finish({ reason: 'error', message });
    throw new Error(message);
  }

  private finish(c: LinkClosed): void {
    if (this.outcome) return;
    this.outcome = c;
    try {
      this.readCtl.close();
    } catch {
      /* cancelled */
    }
    try {
      this.writeCtl.error(new Error(c.reason === 'closed' ? 'replay link closed' : `replay link: ${c.message}`));
    } catch {
      /* already errored */
    }
    this.resolveClosed(c);
  }

  async close(): Promise<void> {
    this.finish({ reason: 'closed' });
  }
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

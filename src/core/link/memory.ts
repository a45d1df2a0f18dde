/**
 * An in-memory link pair with a link model: line-rate pacing (baud, 10 bits
 * per byte for 8N1), latency, and a bounded receive buffer that drops what
 * overflows (a UART overrun). Simulations, tests and benchmarks use it so
 * that timing is real.
 */
import type { Link, LinkClosed } from './link.ts';

export interface LinkModel {
  /** Bits per second on the line; undefined = unpaced. */
  baudRate?: number;
  /** Bits on the wire per byte (8N1 = 10). */
  bitsPerByte?: number;
  /** One-way latency added to every delivery (USB frames, OS buffering). */
  latencyMs?: number;
  /** Receive buffer of each end; bytes that arrive while it is full are dropped (overrun). */
  rxBufferBytes?: number;
}

export interface LinkPairStats {
  /** Bytes dropped at each end's receive buffer, [a, b]. */
  overrunBytes: [number, number];
}

export interface LinkPair {
  a: Link;
  b: Link;
  stats: LinkPairStats;
  /** The cable is pulled: both ends see {reason:'lost'}. */
  unplug(message?: string): void;
}

interface Delivery {
  at: number;
  chunk: Uint8Array;
}

/** One direction of the cable, delivering into the receiving end's inbox. */
class Direction {
  private queue: Delivery[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private txFreeAt = 0;
  overrun = 0;

  constructor(
    private readonly model: LinkModel,
    private readonly to: Inbox,
  ) {}

  /** Transmit: resolves when the last bit has left the sender. */
  send(chunk: Uint8Array): Promise<void> {
    const copy = chunk.slice();
    const { baudRate, latencyMs = 0 } = this.model;
    if (!baudRate && !latencyMs) {
      this.deliver(copy);
      return Promise.resolve();
    }
    const now = performance.now();
    const start = Math.max(now, this.txFreeAt);
    const txTime = baudRate ? (copy.length * (this.model.bitsPerByte ?? 10) * 1000) / baudRate : 0;
    this.txFreeAt = start + txTime;
    this.queue.push({ at: this.txFreeAt + latencyMs, chunk: copy });
    this.arm();
    const wait = this.txFreeAt - now;
    return wait > 1 ? new Promise((r) => setTimeout(r, wait)) : Promise.resolve();
  }

  private arm(): void {
    if (this.timer || this.queue.length === 0) return;
    const delay = Math.max(0, this.queue[0].at - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = performance.now();
      while (this.queue.length && this.queue[0].at <= now + 0.5) this.deliver(this.queue.shift()!.chunk);
      this.arm();
    }, delay);
  }

  private deliver(chunk: Uint8Array): void {
    if (!this.to.open) return;
    const cap = this.model.rxBufferBytes;
    if (cap !== undefined) {
      const room = cap - this.to.bytes;
      if (room <= 0) {
        this.overrun += chunk.length;
        return;
      }
      if (chunk.length > room) {
        this.overrun += chunk.length - room;
        chunk = chunk.subarray(0, room);
      }
    }
    this.to.put(chunk);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
  }
}

/** What has arrived at one end and not been read yet. */
class Inbox {
  chunks: Uint8Array[] = [];
  bytes = 0;
  open = true;
  private wake: (() => void) | null = null;

  put(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.wake?.();
  }

  async take(): Promise<Uint8Array | null> {
    while (this.chunks.length === 0) {
      if (!this.open) return null;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    const c = this.chunks.shift()!;
    this.bytes -= c.length;
    return c;
  }

  shut(): void {
    this.open = false;
    this.wake?.();
  }
}

class MemoryEnd implements Link {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  readonly baudRate?: number;
  readonly inbox = new Inbox();
  tx!: Direction;
  private resolveClosed!: (c: LinkClosed) => void;
  private ended = false;

  constructor(
    readonly label: string,
    model: LinkModel,
  ) {
    this.baudRate = model.baudRate;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    const inbox = this.inbox;
    this.readable = new ReadableStream<Uint8Array>(
      {
        async pull(c) {
          const chunk = await inbox.take();
          if (chunk) c.enqueue(chunk);
          else c.close();
        },
        cancel() {
          inbox.shut();
        },
      },
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.ended) throw new Error('link is closed');
        return this.tx.send(chunk);
      },
    });
  }

  end(c: LinkClosed): void {
    if (this.ended) return;
    this.ended = true;
    this.tx.stop();
    this.inbox.shut();
    this.resolveClosed(c);
  }

  async close(): Promise<void> {
    this.end({ reason: 'closed' });
  }
}

export function createLinkPair(model: LinkModel = {}, labels: [string, string] = ['memory:host', 'memory:device']): LinkPair {
  const a = new MemoryEnd(labels[0], model);
  const b = new MemoryEnd(labels[1], model);
  a.tx = new Direction(model, b.inbox);
  b.tx = new Direction(model, a.inbox);
  return {
    a,
    b,
    stats: {
      get overrunBytes(): [number, number] {
        return [b.tx.overrun, a.tx.overrun];
      },
    },
    unplug(message = 'cable unplugged') {
      a.end({ reason: 'lost', message });
      b.end({ reason: 'lost', message });
    },
  };
}

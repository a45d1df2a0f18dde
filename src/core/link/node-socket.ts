/**
 * Adapter from a Node duplex socket (net.Socket for TCP, tty.ReadStream for a
 * serial port or pty, which is also writable) to a Link. Node-only: imported
 * by node-tty.ts and node-tcp.ts, never by browser code.
 */
import type { Socket } from 'node:net';
import type { Link, LinkClosed } from './link.ts';
import { FieldbenchError } from '../base/errors.ts';

/** Errors that mean "the other end went away" rather than a fault on our side. */
const LOST_CODES = new Set(['EIO', 'ENXIO', 'ENODEV', 'EPIPE', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EBADF']);

/** The error a write or read gets once the link is closed or lost. */
export class LinkClosedError extends FieldbenchError<'link-closed'> {
  constructor(readonly closed: LinkClosed) {
    super('link-closed', closed.reason === 'closed' ? 'link is closed' : `link ${closed.reason}: ${closed.message}`);
    this.name = 'LinkClosedError';
  }
}

/**
 * What the Node links (socket, datagram) share: one outcome, recorded once; on it the
 * writable errors with LinkClosedError, the readable ends, the port is released, and
 * only then does `closed` resolve.
 */
export abstract class NodeLink implements Link {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  protected outcome: LinkClosed | undefined;
  private resolveClosed!: (c: LinkClosed) => void;
  private readCtl!: ReadableStreamDefaultController<Uint8Array>;
  private writeCtl!: WritableStreamDefaultController;
  protected readEnded = false;

  constructor(
    readonly label: string,
    readStrategy: QueuingStrategy<Uint8Array>,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.readCtl = c;
        },
        pull: () => this.readWanted(),
        cancel: () => {
          // the consumer is done reading; keep the link up
          this.readEnded = true;
          this.readCancelled();
        },
      },
      readStrategy,
    );
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.writeCtl = c;
      },
      write: async (chunk) => {
        if (this.outcome) throw new LinkClosedError(this.outcome);
        if (!(chunk instanceof Uint8Array)) throw new TypeError('link writes take Uint8Array chunks');
        if (chunk.length === 0) return;
        await this.send(chunk);
      },
      // closing or aborting the writable does not close the port (as with WebSerial)
    });
  }

  /** Send a non-empty chunk while the link is up. */
  protected abstract send(chunk: Uint8Array): Promise<void>;
  /** Release the port; `closed` resolves once this settles. */
  protected abstract release(): Promise<void>;
  /** The readable has room for more. */
  protected readWanted(): void {}
  /** The consumer cancelled the readable. */
  protected readCancelled(): void {}

  /** Queue bytes for the reader; false when it has no room left (the caller may pause its source). */
  protected enqueue(bytes: Uint8Array): boolean {
    if (this.outcome || this.readEnded) return true;
    this.readCtl.enqueue(bytes);
    return (this.readCtl.desiredSize ?? 1) > 0;
  }

  /** Record the outcome once, end both streams, release the port, then resolve `closed`. */
  protected finish(outcome: LinkClosed): void {
    if (this.outcome) return;
    this.outcome = outcome;
    try {
      this.writeCtl.error(new LinkClosedError(outcome));
    } catch {
      /* already errored */
    }
    if (!this.readEnded) {
      this.readEnded = true;
      try {
        this.readCtl.close();
      } catch {
        /* cancelled by the consumer */
      }
    }
    void this.release().then(
      () => this.resolveClosed(outcome),
      () => this.resolveClosed(outcome),
    );
  }

  async close(): Promise<void> {
    this.finish({ reason: 'closed' });
    await this.closed;
  }
}

const READ_HIGH_WATER = 64 * 1024;

export class SocketLink extends NodeLink {
  private socketClosed: Promise<void>;

  constructor(
    private readonly sock: Socket,
    label: string,
    readonly baudRate?: number,
    /** How to describe the other end going away, e.g. "device disconnected (EIO)". */
    private readonly describeLoss: (why: string) => string = (why) => `connection lost (${why})`,
  ) {
    super(label, new ByteLengthQueuingStrategy({ highWaterMark: READ_HIGH_WATER }));
    this.socketClosed = new Promise((r) => {
      if (sock.destroyed && sock.closed) r();
      else sock.once('close', () => r());
    });
    sock.on('data', (buf: Buffer) => {
      // plain Uint8Array view (no copy): each read gets its own memory from Node
      if (!this.enqueue(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))) sock.pause();
    });
    sock.on('end', () => this.finish({ reason: 'lost', message: this.describeLoss('end of stream') }));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (this.outcome) return;
      const code = e.code ?? '';
      if (LOST_CODES.has(code)) this.finish({ reason: 'lost', message: this.describeLoss(code) });
      else this.finish({ reason: 'error', message: e.message });
    });
    sock.on('close', () => this.finish({ reason: 'lost', message: this.describeLoss('closed') }));
  }

  protected override readWanted(): void {
    if (!this.outcome) this.sock.resume();
  }

  protected override readCancelled(): void {
    // stop pulling from the OS
    this.sock.pause();
  }

  protected send(chunk: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Node keeps a reference to the chunk until the callback; callers may
      // reuse their buffer once this promise resolves.
      this.sock.write(chunk, (err) => {
        if (err) reject(this.outcome ? new LinkClosedError(this.outcome) : err);
        else resolve();
      });
    });
  }

  protected release(): Promise<void> {
    if (!this.sock.destroyed) this.sock.destroy();
    return this.socketClosed;
  }
}

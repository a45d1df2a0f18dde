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

const READ_HIGH_WATER = 64 * 1024;

export class SocketLink implements Link {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  private outcome: LinkClosed | undefined;
  private resolveClosed!: (c: LinkClosed) => void;
  private readCtl!: ReadableStreamDefaultController<Uint8Array>;
  private writeCtl!: WritableStreamDefaultController;
  private readEnded = false;
  private socketClosed: Promise<void>;

  constructor(
    private readonly sock: Socket,
    readonly label: string,
    readonly baudRate?: number,
    /** How to describe the other end going away, e.g. "device disconnected (EIO)". */
    private readonly describeLoss: (why: string) => string = (why) => `connection lost (${why})`,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.socketClosed = new Promise((r) => {
      if (sock.destroyed && sock.closed) r();
      else sock.once('close', () => r());
    });

    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.readCtl = c;
        },
        pull: () => {
          if (!this.outcome) sock.resume();
        },
        cancel: () => {
          // the consumer is done reading; stop pulling from the OS but keep the link up
          this.readEnded = true;
          sock.pause();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: READ_HIGH_WATER }),
    );

    this.writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.writeCtl = c;
      },
      write: (chunk) => this.write(chunk),
      // closing or aborting the writable does not close the port (as with WebSerial)
    });

    sock.on('data', (buf: Buffer) => {
      if (this.readEnded) return;
      // plain Uint8Array view (no copy): each read gets its own memory from Node
      this.readCtl.enqueue(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      if ((this.readCtl.desiredSize ?? 1) <= 0) sock.pause();
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

  private write(chunk: Uint8Array): Promise<void> {
    if (this.outcome) return Promise.reject(new LinkClosedError(this.outcome));
    if (!(chunk instanceof Uint8Array)) return Promise.reject(new TypeError('link writes take Uint8Array chunks'));
    if (chunk.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      // Node keeps a reference to the chunk until the callback; callers may
      // reuse their buffer once this promise resolves.
      this.sock.write(chunk, (err) => {
        if (err) reject(this.outcome ? new LinkClosedError(this.outcome) : err);
        else resolve();
      });
    });
  }

  /** Record the outcome once, end both streams, release the socket, then resolve `closed`. */
  private finish(outcome: LinkClosed): void {
    if (this.outcome) return;
    this.outcome = outcome;
    const err = new LinkClosedError(outcome);
    try {
      this.writeCtl.error(err);
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
    if (!this.sock.destroyed) this.sock.destroy();
    void this.socketClosed.then(() => this.resolveClosed(outcome));
  }

  async close(): Promise<void> {
    this.finish({ reason: 'closed' });
    await this.closed;
  }
}

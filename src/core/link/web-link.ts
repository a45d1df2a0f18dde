/**
 * What the WebSerial and WebUSB links share: a pull-driven readable, a writable,
 * one `closed` outcome, and the close / lost lifecycle (the first end wins; a
 * lost device is torn down without the polite goodbye a user close sends).
 * Browser-only module: reads nothing from `navigator` itself.
 */
import type { Link, LinkClosed } from './link.ts';

export abstract class WebLink implements Link {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  private resolveClosed!: (c: LinkClosed) => void;
  protected done = false;
  private closing: Promise<void> | null = null;
  private readCtrl!: ReadableStreamDefaultController<Uint8Array>;

  constructor(
    readonly label: string,
    readonly baudRate: number | undefined,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.readCtrl = c;
        },
        pull: (c) => this.pull(c),
        cancel: () => this.cancelRead(),
      },
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
    });
  }

  /** Deliver at least one chunk into `c`, or end the readable (endReadable) when the link is done. */
  protected abstract pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void>;
  protected abstract write(chunk: Uint8Array): Promise<void>;
  /** Release the device; `polite` on a user close (the device is still there to be told). */
  protected abstract teardown(polite: boolean): Promise<void>;
  /** Stop listening for the device's disconnect events. */
  protected abstract unlisten(): void;
  /** The consumer cancelled the readable. */
  protected async cancelRead(): Promise<void> {}

  protected endReadable(): void {
    try {
      this.readCtrl.close();
    } catch {
      /* already closed or errored */
    }
  }

  private finish(c: LinkClosed): void {
    if (this.done) return;
    this.done = true;
    this.unlisten();
    this.resolveClosed(c);
  }

  protected lost(message: string): void {
    if (this.done) return;
    this.finish({ reason: 'lost', message });
    // Wake a pending read, then release the device (closing a lost port still frees its handle).
    this.closing ??= this.teardown(false);
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.finish({ reason: 'closed' });
      this.closing = this.teardown(true);
    }
    return this.closing;
  }
}

/**
 * Open a link to each device the user granted before, `max` at most. Returns the links
 * that opened; throws the first open error when none did.
 */
export async function openGranted<T>(granted: T[], max: number | undefined, open: (t: T) => Promise<Link>): Promise<Link[]> {
  const links: Link[] = [];
  let firstError: unknown;
  for (const t of granted) {
    if (max !== undefined && links.length >= max) break;
    try {
      links.push(await open(t));
    } catch (e) {
      firstError ??= e;
    }
  }
  if (links.length === 0) throw firstError;
  return links;
}

/**
 * A link over a MessagePort (a browser's MessageChannel or Node's worker_threads): the far end
 * runs in another thread (a worker), so a simulated device's work (its crypto, its flash) does not
 * share the event loop of the tool that talks to it. The benchmarks of the factory line run their
 * reference devices this way (tests/helpers/device-worker.ts), so they measure the station.
 *
 *   const { port1, port2 } = new MessageChannel();
 *   worker.postMessage({ port: port2 }, [port2]);   // the worker: device.serve(messagePortLink(port))
 *   const link = messagePortLink(port1, 'worker:unit-1');
 *
 * `bridgeToPort(link, port)` carries an existing link's bytes to a port and back (the station end
 * of a memory pair with a line model, so pacing stays on the station's side of the cable).
 *
 * On the port: a data message is a Uint8Array (its buffer transferred); a control message
 * `{ fb: 'end', reason: 'closed' | 'lost', message? }` says the other end went away (a MessagePort
 * has no portable close event), and a close() or a loss sends one before the port is closed.
 * Both ends of a channel speak this; either end ending makes the other `lost` (a cable's far end
 * closing looks like an unplug).
 */
import type { Link, LinkClosed } from './link.ts';

/** The part of a MessagePort this module uses (DOM and Node worker_threads alike). */
export interface PortLike {
  postMessage(message: unknown, transfer?: Transferable[] | readonly unknown[]): void;
  addEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
  start?(): void;
  close(): void;
}

interface EndMessage {
  fb: 'end';
  reason: 'closed' | 'lost';
  message?: string;
}

const isEnd = (d: unknown): d is EndMessage => typeof d === 'object' && d !== null && (d as EndMessage).fb === 'end';

function post(port: PortLike, chunk: Uint8Array): void {
  // a copy we own, so the writer may reuse its buffer once write() resolved; its buffer is transferred
  const copy = chunk.slice();
  port.postMessage(copy, [copy.buffer]);
}

/** A chunk read from a link is ours: transfer its buffer as it is when the chunk is all of it. */
function postRead(port: PortLike, chunk: Uint8Array): void {
  if (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer) port.postMessage(chunk, [chunk.buffer]);
  else post(port, chunk);
}

class PortLink implements Link {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  private resolveClosed!: (c: LinkClosed) => void;
  private ended = false;
  private queue: Uint8Array[] = [];
  private wake: (() => void) | null = null;

  constructor(
    private readonly port: PortLike,
    readonly label: string,
    readonly baudRate?: number,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    port.addEventListener('message', (ev) => {
      const d = ev.data;
      if (this.ended) return;
      if (d instanceof Uint8Array) {
        this.queue.push(d);
        this.wake?.();
      } else if (isEnd(d)) {
        this.end({ reason: 'lost', message: d.message ?? (d.reason === 'closed' ? 'the far end closed the link' : 'the far end was lost') }, false);
      }
    });
    port.start?.();
    this.readable = new ReadableStream<Uint8Array>(
      {
        pull: async (c) => {
          while (this.queue.length === 0 && !this.ended) {
            await new Promise<void>((r) => (this.wake = r));
            this.wake = null;
          }
          const chunk = this.queue.shift();
          if (chunk) c.enqueue(chunk);
          else c.close();
        },
        cancel: () => {
          this.queue = [];
        },
      },
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.ended) throw new Error('link is closed');
        post(this.port, chunk);
      },
    });
  }

  private end(c: LinkClosed, tell: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    if (tell) {
      try {
        this.port.postMessage({ fb: 'end', reason: c.reason === 'closed' ? 'closed' : 'lost', ...(c.reason !== 'closed' ? { message: c.message } : {}) } satisfies EndMessage);
      } catch {
        // the port is already gone
      }
    }
    this.port.close();
    this.wake?.();
    this.resolveClosed(c);
  }

  async close(): Promise<void> {
    this.end({ reason: 'closed' }, true);
  }
}

/** A Link whose far end is at the other side of `port` (see the module comment). */
export function messagePortLink(port: PortLike, label = 'message-port', opts: { baudRate?: number } = {}): Link {
  return new PortLink(port, label, opts.baudRate);
}

/**
 * Carry `link`'s bytes to `port` and the port's bytes into `link`, until either ends: the far end
 * of the port sees `link` ending (an unplug) as a loss; when the far end goes away, `onFarEnd` runs
 * (default: close `link`; a memory pair's end passes its pair's unplug, so the other end of the
 * cable notices too). Resolves when the bridge is down.
 */
export async function bridgeToPort(link: Link, port: PortLike, opts: { onFarEnd?: (message: string) => void } = {}): Promise<void> {
  let down = false;
  const writer = link.writable.getWriter();
  let writes = Promise.resolve();
  const stop = (tell: EndMessage | null) => {
    if (down) return;
    down = true;
    if (tell) {
      try {
        port.postMessage(tell);
      } catch {
        // gone already
      }
    }
    port.close();
  };
  port.addEventListener('message', (ev) => {
    const d = ev.data;
    if (down) return;
    if (d instanceof Uint8Array) {
      writes = writes.then(() => writer.write(d)).catch(() => stop({ fb: 'end', reason: 'lost', message: 'the link ended' }));
    } else if (isEnd(d)) {
      stop(null);
      const message = d.message ?? (d.reason === 'closed' ? 'the far end closed the link' : 'the far end was lost');
      if (opts.onFarEnd) opts.onFarEnd(message);
      else void link.close();
    }
  });
  port.start?.();
  const reader = link.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || down) break;
      postRead(port, value);
    }
  } catch {
    // the link failed: the far end hears it below
  }
  const c = await Promise.race([link.closed, Promise.resolve<LinkClosed>({ reason: 'lost', message: 'the link ended' })]);
  stop({ fb: 'end', reason: c.reason === 'closed' ? 'closed' : 'lost', ...(c.reason !== 'closed' ? { message: c.message } : {}) });
  reader.releaseLock();
  writer.releaseLock();
}

/**
 * A link is a duplex byte stream to one device: a readable and a writable
 * (the shape of WebSerial's SerialPort and of zmk-studio's transports).
 * Every link (WebSerial, WebUSB, Node tty/TCP, in-memory) implements this
 * and passes the shared contract suite in tests/unit/link-contract.test.ts.
 */
import { FieldbenchError } from '../base/errors.ts';
export interface Link {
  /** Human-readable description, e.g. "WebSerial 2fe3:0100" or "tcp://127.0.0.1:5556". */
  readonly label: string;
  /** Bytes from the device. Ends (done) when the link closes or the device goes away. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the device. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves once the link is closed, with the reason (user close, device lost, error). */
  readonly closed: Promise<LinkClosed>;
  /** Close the link and release the underlying port. Idempotent. */
  close(): Promise<void>;
  /** Line rate in bits per second when known (serial), for pacing and progress estimates. */
  readonly baudRate?: number;
  /**
   * Set on datagram links (UDP): every write is one datagram, every chunk read
   * is one datagram, and nothing larger than `maxPayload` can be sent. The
   * session then sends one SMP packet per datagram, with no framing.
   */
  readonly datagram?: DatagramInfo;
}

export interface DatagramInfo {
  /** Largest datagram payload the path carries unfragmented (the MTU less IP and UDP headers). */
  maxPayload: number;
}

export type LinkClosed =
  | { reason: 'closed' }
  | { reason: 'lost'; message: string }
  | { reason: 'error'; message: string };

/** Typed errors raised while opening a link, each with remediation text for the user. */
export type LinkOpenErrorKind =
  | 'unsupported' // the browser/runtime has no such API
  | 'cancelled' // the user closed the chooser without choosing
  | 'busy' // port already open in another app or tab
  | 'permission' // OS denied access (Linux: dialout group, snap raw-usb)
  | 'gone' // device unplugged or not found
  | 'protocol' // the device does not expose an interface we can drive
  | 'failed';

export class LinkOpenError extends FieldbenchError<LinkOpenErrorKind> {
  constructor(
    readonly kind: LinkOpenErrorKind,
    message: string,
    readonly remedy: string,
    readonly cause?: unknown,
  ) {
    super(kind, message);
    this.name = 'LinkOpenError';
  }
}

/**
 * WebSerial link (browser only). `requestSerialLink` shows the browser's port
 * chooser; `reconnectSerialLinks` reopens ports the user granted before;
 * `linkFromSerialPort` wraps an already-obtained SerialPort (testable with a fake).
 *
 * The SerialPort's readable is replaced after non-fatal errors (break, framing,
 * parity, buffer overrun) and becomes null after a fatal one (device lost); the
 * link presents one continuous readable across the former and ends on the latter.
 */
import { LinkOpenError, type Link } from './link.ts';
import { openGranted, WebLink } from './web-link.ts';
import { chooserError, errMessage, hex4, navigatorApi, REMEDY, serialOpenError, settleWithin, unsupportedError } from './web-support.ts';

export interface SerialPortInfoLike {
  usbVendorId?: number;
  usbProductId?: number;
  bluetoothServiceClassId?: number | string;
}

export interface SerialOpenOptions {
  baudRate: number;
  bufferSize?: number;
  dataBits?: 7 | 8;
  stopBits?: 1 | 2;
  parity?: 'none' | 'even' | 'odd';
  flowControl?: 'none' | 'hardware';
}

/** The part of the Web Serial SerialPort that the link uses. */
export interface SerialPortLike {
  readonly readable: ReadableStream<Uint8Array> | null;
  readonly writable: WritableStream<Uint8Array> | null;
  open(options: SerialOpenOptions): Promise<void>;
  close(): Promise<void>;
  getInfo(): SerialPortInfoLike;
  addEventListener?(type: string, listener: (ev: Event) => void): void;
  removeEventListener?(type: string, listener: (ev: Event) => void): void;
}

export interface SerialLike {
  requestPort(options?: { filters?: SerialPortFilter[] }): Promise<SerialPortLike>;
  getPorts(): Promise<SerialPortLike[]>;
  addEventListener(type: string, listener: (ev: Event) => void): void;
  removeEventListener(type: string, listener: (ev: Event) => void): void;
}

export interface SerialPortFilter {
  usbVendorId?: number;
  usbProductId?: number;
  bluetoothServiceClassId?: number | string;
}

export interface SerialLinkOptions {
  baudRate?: number;
  /** Receive buffer in bytes; at least 65536 so a full SMP response never overruns. */
  bufferSize?: number;
  flowControl?: 'none' | 'hardware';
  /** EventTarget firing 'disconnect' for the port (navigator.serial); the port's own events are used too. */
  serial?: Pick<SerialLike, 'addEventListener' | 'removeEventListener'>;
  label?: string;
}

export interface ReconnectOptions extends SerialLinkOptions {
  filters?: SerialPortFilter[];
  /** Open at most this many ports (opening a port toggles DTR, which resets some boards). */
  max?: number;
}

export const DEFAULT_BAUD = 115200;
export const MIN_BUFFER = 65536;

/** Errors after which SerialPort.readable is replaced and reading can go on. */
const NON_FATAL = new Set(['BreakError', 'FramingError', 'ParityError', 'BufferOverrunError']);

export function serialApi(): SerialLike | undefined {
  return navigatorApi<SerialLike>('serial');
}

export function serialSupported(): boolean {
  return serialApi() !== undefined;
}

export function serialPortLabel(port: SerialPortLike): string {
  let info: SerialPortInfoLike = {};
  try {
    info = port.getInfo();
  } catch {
    /* some ports (virtual, Bluetooth) may not report info */
  }
  if (info.usbVendorId !== undefined) return `WebSerial ${hex4(info.usbVendorId)}:${hex4(info.usbProductId)}`;
  if (info.bluetoothServiceClassId !== undefined) return `WebSerial Bluetooth ${String(info.bluetoothServiceClassId)}`;
  return 'WebSerial port';
}

/** Ask the user for a port (must run from a user gesture), open it and return the link. */
export async function requestSerialLink(opts: SerialLinkOptions & { filters?: SerialPortFilter[] } = {}): Promise<Link> {
  const serial = serialApi();
  if (!serial) throw unsupportedError('serial');
  let port: SerialPortLike;
  try {
    port = await serial.requestPort(opts.filters && opts.filters.length ? { filters: opts.filters } : {});
  } catch (e) {
    throw chooserError(e, 'serial');
  }
  return linkFromSerialPort(port, { serial, ...opts });
}

/**
 * Reopen ports the user already granted (no chooser, works without a gesture).
 * Returns a link for every granted port matching `filters` that opens; throws the
 * first open error when none opens, and 'gone' when no granted port is present.
 */
export async function reconnectSerialLinks(opts: ReconnectOptions = {}): Promise<Link[]> {
  const serial = serialApi();
  if (!serial) throw unsupportedError('serial');
  const ports = (await serial.getPorts()).filter((p) => matchesFilters(p, opts.filters));
  if (ports.length === 0)
    throw new LinkOpenError('gone', 'No previously used serial port is plugged in.', REMEDY.gone);
  return openGranted(ports, opts.max, (port) => linkFromSerialPort(port, { serial, ...opts }));
}

function matchesFilters(port: SerialPortLike, filters?: SerialPortFilter[]): boolean {
  if (!filters || filters.length === 0) return true;
  let info: SerialPortInfoLike = {};
  try {
    info = port.getInfo();
  } catch {
    return false;
  }
  return filters.some(
    (f) =>
      (f.usbVendorId === undefined || f.usbVendorId === info.usbVendorId) &&
      (f.usbProductId === undefined || f.usbProductId === info.usbProductId) &&
      (f.bluetoothServiceClassId === undefined || f.bluetoothServiceClassId === info.bluetoothServiceClassId),
  );
}

/** Filters matching the port behind a WebSerial link (for reconnecting to the same device), or undefined. */
export function serialFiltersFor(link: Link): SerialPortFilter[] | undefined {
  if (!(link instanceof SerialLink)) return undefined;
  let info: SerialPortInfoLike = {};
  try {
    info = link.port.getInfo();
  } catch {
    return undefined;
  }
  if (info.usbVendorId === undefined) return undefined;
  return [{ usbVendorId: info.usbVendorId, usbProductId: info.usbProductId }];
}

/** Open `port` and wrap it as a Link. Throws LinkOpenError. */
export async function linkFromSerialPort(port: SerialPortLike, opts: SerialLinkOptions = {}): Promise<Link> {
  const baudRate = opts.baudRate ?? DEFAULT_BAUD;
  const bufferSize = Math.max(opts.bufferSize ?? MIN_BUFFER, MIN_BUFFER);
  try {
    await port.open({ baudRate, bufferSize, dataBits: 8, stopBits: 1, parity: 'none', flowControl: opts.flowControl ?? 'none' });
  } catch (e) {
    throw serialOpenError(e);
  }
  if (!port.readable || !port.writable) {
    await port.close().catch(() => {});
    throw new LinkOpenError('gone', 'The serial port opened but has no data streams.', REMEDY.gone);
  }
  return new SerialLink(port, opts.label ?? serialPortLabel(port), baudRate, opts.serial);
}

class SerialLink extends WebLink {
  private reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  private writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private readonly onDisconnect = (ev: Event) => {
    const target = (ev as Event & { port?: unknown }).port ?? ev.target;
    if (target === this.port || (ev.currentTarget as unknown) === this.port) this.lost('The serial device was disconnected.');
  };

  constructor(
    readonly port: SerialPortLike,
    label: string,
    baudRate: number,
    private readonly serial?: Pick<SerialLike, 'addEventListener' | 'removeEventListener'>,
  ) {
    super(label, baudRate);
    port.addEventListener?.('disconnect', this.onDisconnect);
    serial?.addEventListener('disconnect', this.onDisconnect);
  }

  protected override async cancelRead(): Promise<void> {
    const r = this.reader;
    this.reader = null;
    if (r) await r.cancel().catch(() => {});
  }

  protected async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new Error(`${this.label} is closed`);
    if (!this.writer) {
      const w = this.port.writable;
      if (!w) {
        this.lost('The serial port can no longer be written.');
        throw new Error(`${this.label} is closed`);
      }
      this.writer = w.getWriter();
    }
    try {
      await this.writer.write(chunk);
    } catch (e) {
      this.lost(`Write failed: ${errMessage(e)}`);
      throw e;
    }
  }

  protected async pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (this.done) return this.endReadable();
      if (!this.reader) {
        const r = this.port.readable;
        if (!r) {
          this.lost('The serial device was lost.');
          return this.endReadable();
        }
        this.reader = r.getReader();
      }
      const reader = this.reader;
      let res: ReadableStreamReadResult<Uint8Array>;
      try {
        res = await reader.read();
      } catch (e) {
        this.release(reader);
        if (this.done) return this.endReadable();
        const name = (e as { name?: string })?.name ?? '';
        if (NON_FATAL.has(name) && this.port.readable) continue; // a fresh readable is available
        this.lost(`Read failed: ${errMessage(e)}`);
        return this.endReadable();
      }
      if (res.done) {
        this.release(reader);
        if (this.done) return this.endReadable();
        // The port's stream ended without our asking: the device is gone.
        if (!this.port.readable || this.port.readable.locked) {
          this.lost('The serial device stopped sending.');
          return this.endReadable();
        }
        continue;
      }
      if (res.value && res.value.byteLength > 0) {
        c.enqueue(res.value);
        return;
      }
    }
  }

  private release(reader: ReadableStreamDefaultReader<Uint8Array>): void {
    if (this.reader === reader) this.reader = null;
    try {
      reader.releaseLock();
    } catch {
      /* already released */
    }
  }

  protected unlisten(): void {
    this.port.removeEventListener?.('disconnect', this.onDisconnect);
    this.serial?.removeEventListener('disconnect', this.onDisconnect);
  }

  protected async teardown(): Promise<void> {
    const r = this.reader;
    this.reader = null;
    if (r) {
      await r.cancel().catch(() => {});
      try {
        r.releaseLock();
      } catch {
        /* ignore */
      }
    }
    this.endReadable();
    const w = this.writer;
    this.writer = null;
    if (w) {
      // Flush what is queued, but never hang on a port that no longer drains (flow control, wedged device).
      if (!(await settleWithin(w.close(), 1000))) await settleWithin(w.abort(), 1000);
      try {
        w.releaseLock();
      } catch {
        /* ignore */
      }
    }
    await settleWithin(this.port.close(), 2000);
  }
}

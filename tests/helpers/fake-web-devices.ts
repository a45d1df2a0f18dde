/**
 * In-Node fakes of Web Serial's SerialPort / navigator.serial and WebUSB's
 * USBDevice / navigator.usb, behaving as Chrome's do where our links depend on it:
 *  - SerialPort.open rejects with InvalidStateError when already open, NetworkError
 *    "Failed to open serial port." when another program holds it; readable is
 *    replaced after a non-fatal error (BreakError, FramingError, ...) and is null
 *    after the device is lost; close() rejects while a stream is locked;
 *  - USBDevice transfers need open() + claimInterface(); a pending transferIn
 *    rejects with AbortError when the interface is released or the device closed,
 *    and with NotFoundError when the device is unplugged; navigator.usb fires a
 *    'disconnect' event carrying `.device`.
 * Each fake exposes `peer` (the device's end of the wire) for the link contract.
 */

export interface Peer {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  unplug(): Promise<void>;
}

function dom(name: string, message: string): DOMException {
  return new DOMException(message, name);
}

/** A byte queue the device side writes into and the host side drains. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private waiters: (() => void)[] = [];
  total = 0;
  push(b: Uint8Array): void {
    if (b.byteLength === 0) return;
    this.chunks.push(b.slice());
    this.total += b.byteLength;
    for (const w of this.waiters.splice(0)) w();
  }
  take(max: number): Uint8Array | null {
    if (this.chunks.length === 0) return null;
    const first = this.chunks[0]!;
    if (first.byteLength <= max) {
      this.chunks.shift();
      this.total -= first.byteLength;
      return first;
    }
    this.chunks[0] = first.subarray(max);
    this.total -= max;
    return first.subarray(0, max);
  }
  wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  wakeAll(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

// ---------------------------------------------------------------- Web Serial

export interface FakeSerialPortOptions {
  usbVendorId?: number;
  usbProductId?: number;
  /** Another program holds the port: open() rejects with NetworkError. */
  busy?: boolean;
  /** open() rejects with this error instead. */
  openError?: DOMException;
}

export class FakeSerialPort extends EventTarget {
  openOptions: { baudRate: number; bufferSize?: number } | undefined;
  readonly opts: FakeSerialPortOptions;
  private isOpen = false;
  private gone = false;
  private readCtrl: ReadableStreamDefaultController<Uint8Array> | null = null;
  private writeCtrl: WritableStreamDefaultController | null = null;
  private curReadable: ReadableStream<Uint8Array> | null = null;
  private curWritable: WritableStream<Uint8Array> | null = null;
  private toDevice: ReadableStreamDefaultController<Uint8Array> | null = null;
  private fromDevice = new ByteQueue();
  /** Writes never complete (hardware flow control held off, wedged device) until close/unplug. */
  stallWrites = false;
  private stalled: ((e: DOMException) => void)[] = [];
  /** set by FakeSerial so disconnect events bubble to navigator.serial */
  parent: EventTarget | null = null;
  peer!: Peer;

  constructor(opts: FakeSerialPortOptions = {}) {
    super();
    this.opts = opts;
  }

  getInfo(): { usbVendorId?: number; usbProductId?: number } {
    return this.opts.usbVendorId === undefined ? {} : { usbVendorId: this.opts.usbVendorId, usbProductId: this.opts.usbProductId };
  }

  get readable(): ReadableStream<Uint8Array> | null {
    return this.isOpen && !this.gone ? this.curReadable : null;
  }
  get writable(): WritableStream<Uint8Array> | null {
    return this.isOpen && !this.gone ? this.curWritable : null;
  }

  async open(options: { baudRate: number; bufferSize?: number }): Promise<void> {
    if (this.isOpen) throw dom('InvalidStateError', 'The port is already open.');
    if (this.opts.openError) throw this.opts.openError;
    if (this.opts.busy || this.gone) throw dom('NetworkError', 'Failed to open serial port.');
    if (!(options.baudRate > 0)) throw new TypeError('baudRate must be positive');
    this.openOptions = options;
    this.isOpen = true;
    this.fromDevice = new ByteQueue();
    this.makeReadable();
    this.curWritable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.writeCtrl = c;
      },
      write: async (chunk) => {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk must be a Uint8Array');
        if (this.gone) throw dom('NetworkError', 'The device has been lost.');
        await new Promise((r) => setImmediate(r)); // the OS write takes a moment
        if (this.stallWrites) await new Promise<never>((_, rej) => this.stalled.push(rej));
        if (this.gone) throw dom('NetworkError', 'The device has been lost.');
        this.toDevice?.enqueue(chunk.slice()); // copied, as Chrome does
      },
    });
    let ended = false;
    const deviceReadable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.toDevice = c;
      },
      cancel: () => {
        ended = true;
      },
    });
    const q = this.fromDevice;
    const deviceWritable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.gone || !this.isOpen) throw new Error('port is not open on the host side');
        q.push(chunk);
      },
    });
    this.peer = {
      readable: deviceReadable,
      writable: deviceWritable,
      unplug: async () => this.unplug(),
    };
    void ended;
  }

  private makeReadable(): void {
    const q = this.fromDevice;
    const mine = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.readCtrl = c;
        },
        pull: async (c) => {
          for (;;) {
            if (this.curReadable !== mine || this.gone || !this.isOpen) return;
            const b = q.take(this.openOptions?.bufferSize ?? 255);
            if (b) {
              c.enqueue(b);
              return;
            }
            await q.wait();
          }
        },
        cancel: () => {
          q.wakeAll();
        },
      },
      { highWaterMark: 0 },
    );
    this.curReadable = mine;
  }

  /** A non-fatal receive error (e.g. 'BreakError'): the readable errors and a new one replaces it. */
  injectReadError(name: 'BreakError' | 'FramingError' | 'ParityError' | 'BufferOverrunError'): void {
    const c = this.readCtrl;
    this.makeReadable();
    c?.error(dom(name, `fake ${name}`));
    this.fromDevice.wakeAll();
  }

  /** Device goes away: fatal NetworkError on the streams, 'disconnect' event. */
  unplug(): void {
    if (this.gone) return;
    this.gone = true;
    for (const r of this.stalled.splice(0)) r(dom('NetworkError', 'The device has been lost.'));
    try {
      this.readCtrl?.error(dom('NetworkError', 'The device has been lost.'));
    } catch {
      /* already closed */
    }
    try {
      this.writeCtrl?.error(dom('NetworkError', 'The device has been lost.'));
    } catch {
      /* ignore */
    }
    try {
      this.toDevice?.close();
    } catch {
      /* ignore */
    }
    this.fromDevice.wakeAll();
    const ev = new Event('disconnect', { bubbles: true });
    this.dispatchEvent(ev);
    this.parent?.dispatchEvent(Object.assign(new Event('disconnect'), { port: this }));
  }

  /** Plug back in (a fresh, closed port again). */
  replug(): void {
    this.gone = false;
    this.isOpen = false;
  }

  get isOpenNow(): boolean {
    return this.isOpen;
  }

  async close(): Promise<void> {
    if (!this.isOpen) throw dom('InvalidStateError', 'The port is already closed.');
    if (this.curReadable?.locked || this.curWritable?.locked)
      throw dom('InvalidStateError', 'Failed to close: a stream is locked.');
    this.isOpen = false;
    for (const r of this.stalled.splice(0)) r(dom('AbortError', 'The port was closed.'));
    try {
      this.readCtrl?.close();
    } catch {
      /* ignore */
    }
    try {
      this.toDevice?.close();
    } catch {
      /* ignore */
    }
    this.fromDevice.wakeAll();
  }
}

export class FakeSerial extends EventTarget {
  ports: FakeSerialPort[] = [];
  /** What the chooser does next: a port to return, or an error to throw. */
  nextChoice: FakeSerialPort | DOMException | null = null;
  requestOptions: unknown;

  add(port: FakeSerialPort): FakeSerialPort {
    port.parent = this;
    this.ports.push(port);
    return port;
  }
  async requestPort(options?: unknown): Promise<FakeSerialPort> {
    this.requestOptions = options;
    const c = this.nextChoice;
    this.nextChoice = null;
    if (c instanceof DOMException) throw c;
    if (!c) throw dom('NotFoundError', 'No port selected by the user.');
    if (!this.ports.includes(c)) this.add(c);
    return c;
  }
  async getPorts(): Promise<FakeSerialPort[]> {
    return this.ports.slice();
  }
}

// ---------------------------------------------------------------- WebUSB

type Ep = { endpointNumber: number; direction: 'in' | 'out'; type: 'bulk' | 'interrupt' | 'isochronous'; packetSize: number };
type Alt = { alternateSetting: number; interfaceClass: number; interfaceSubclass: number; interfaceProtocol: number; endpoints: Ep[] };
type Iface = { interfaceNumber: number; alternate: Alt; alternates: Alt[]; claimed: boolean };

function iface(n: number, cls: number, sub: number, eps: Ep[]): Iface {
  const alt = { alternateSetting: 0, interfaceClass: cls, interfaceSubclass: sub, interfaceProtocol: 0, endpoints: eps };
  return { interfaceNumber: n, alternate: alt, alternates: [alt], claimed: false };
}

export type FakeUsbKind = 'cdc-acm' | 'vendor' | 'hid-only';

export interface ControlRecord {
  requestType: string;
  recipient: string;
  request: number;
  value: number;
  index: number;
  data?: Uint8Array;
}

export class FakeUsbDevice {
  readonly vendorId: number;
  readonly productId: number;
  readonly productName: string;
  readonly serialNumber = 'FAKE0001';
  opened = false;
  configuration: { configurationValue: number; interfaces: Iface[] } | null = null;
  readonly configurations: { configurationValue: number; interfaces: Iface[] }[];
  readonly controls: ControlRecord[] = [];
  /** claimInterface rejects as when the OS driver holds the interface. */
  busy = false;
  gone = false;
  parent: EventTarget | null = null;
  peer!: Peer;
  transferInLengths: number[] = [];
  private fromDevice = new ByteQueue();
  private toDevice: ReadableStreamDefaultController<Uint8Array> | null = null;
  private pendingIn = new Set<(e: DOMException) => void>();
  readonly packetSize: number;

  constructor(kind: FakeUsbKind = 'cdc-acm', opts: { vendorId?: number; productId?: number; packetSize?: number } = {}) {
    this.vendorId = opts.vendorId ?? 0x2fe3;
    this.productId = opts.productId ?? 0x0100;
    this.productName = kind === 'vendor' ? 'Fake vendor bulk' : 'Fake CDC ACM';
    const ps = (this.packetSize = opts.packetSize ?? 64);
    const interfaces =
      kind === 'cdc-acm'
        ? [
            iface(0, 0x02, 0x02, [{ endpointNumber: 3, direction: 'in', type: 'interrupt', packetSize: 16 }]),
            iface(1, 0x0a, 0x00, [
              { endpointNumber: 1, direction: 'in', type: 'bulk', packetSize: ps },
              { endpointNumber: 2, direction: 'out', type: 'bulk', packetSize: ps },
            ]),
          ]
        : kind === 'vendor'
          ? [
              iface(0, 0x03, 0x00, [{ endpointNumber: 4, direction: 'in', type: 'interrupt', packetSize: 8 }]),
              iface(1, 0xff, 0x00, [
                { endpointNumber: 5, direction: 'out', type: 'bulk', packetSize: ps },
                { endpointNumber: 6, direction: 'in', type: 'bulk', packetSize: ps },
              ]),
            ]
          : [iface(0, 0x03, 0x00, [{ endpointNumber: 1, direction: 'in', type: 'interrupt', packetSize: 8 }])];
    this.configurations = [{ configurationValue: 1, interfaces }];
    this.resetPeer();
  }

  private resetPeer(): void {
    this.fromDevice = new ByteQueue();
    const q = this.fromDevice;
    const readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.toDevice = c;
      },
    });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.gone) throw new Error('device unplugged');
        q.push(chunk);
      },
    });
    this.peer = { readable, writable, unplug: async () => this.unplug() };
  }

  private ep(n: number, dir: 'in' | 'out'): Iface {
    const cfg = this.configuration;
    if (!cfg) throw dom('InvalidStateError', 'The device must have a configuration selected.');
    const i = cfg.interfaces.find((x) => x.alternate.endpoints.some((e) => e.endpointNumber === n && e.direction === dir));
    if (!i) throw dom('NotFoundError', `The specified endpoint is not part of a claimed and selected alternate interface.`);
    if (!i.claimed) throw dom('InvalidStateError', 'The specified endpoint is not part of a claimed and selected alternate interface.');
    return i;
  }

  private check(): void {
    if (this.gone) throw dom('NotFoundError', 'The device was disconnected.');
    if (!this.opened) throw dom('InvalidStateError', 'The device must be opened first.');
  }

  async open(): Promise<void> {
    if (this.gone) throw dom('NotFoundError', 'The device was disconnected.');
    this.opened = true;
  }
  async close(): Promise<void> {
    if (this.gone) throw dom('NotFoundError', 'The device was disconnected.');
    for (const i of this.configuration?.interfaces ?? []) i.claimed = false;
    this.abortPending(dom('AbortError', 'The transfer was cancelled.'));
    this.opened = false;
    try {
      this.toDevice?.close();
    } catch {
      /* ignore */
    }
  }
  async selectConfiguration(v: number): Promise<void> {
    this.check();
    const c = this.configurations.find((x) => x.configurationValue === v);
    if (!c) throw dom('NotFoundError', 'The configuration value provided is not supported by the device.');
    this.configuration = c;
  }
  async claimInterface(n: number): Promise<void> {
    this.check();
    const i = this.configuration?.interfaces.find((x) => x.interfaceNumber === n);
    if (!i) throw dom('NotFoundError', 'The interface number provided is not supported by the device in its current configuration.');
    if (this.busy) throw dom('NetworkError', 'Unable to claim interface.');
    i.claimed = true;
  }
  async releaseInterface(n: number): Promise<void> {
    this.check();
    const i = this.configuration?.interfaces.find((x) => x.interfaceNumber === n);
    if (!i) throw dom('NotFoundError', 'interface not found');
    i.claimed = false;
    this.abortPending(dom('AbortError', 'The transfer was cancelled.'));
  }
  async selectAlternateInterface(): Promise<void> {
    this.check();
  }
  async controlTransferOut(setup: Omit<ControlRecord, 'data'>, data?: BufferSource): Promise<{ status: 'ok'; bytesWritten: number }> {
    this.check();
    if (setup.recipient === 'interface') {
      const i = this.configuration?.interfaces.find((x) => x.interfaceNumber === (setup.index & 0xff));
      if (!i?.claimed) throw dom('InvalidStateError', 'The specified interface has not been claimed.');
    }
    const bytes = data ? new Uint8Array(ArrayBuffer.isView(data) ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data) : undefined;
    this.controls.push({ ...setup, data: bytes });
    return { status: 'ok', bytesWritten: bytes?.byteLength ?? 0 };
  }
  async transferIn(ep: number, length: number): Promise<{ status: 'ok'; data: DataView }> {
    this.check();
    this.ep(ep, 'in');
    this.transferInLengths.push(length);
    const q = this.fromDevice;
    for (;;) {
      const b = q.take(length);
      if (b) {
        const copy = b.slice();
        return { status: 'ok', data: new DataView(copy.buffer) };
      }
      let reject!: (e: DOMException) => void;
      const aborted = new Promise<never>((_, r) => (reject = r));
      this.pendingIn.add(reject);
      try {
        await Promise.race([q.wait(), aborted]);
      } finally {
        this.pendingIn.delete(reject);
      }
      this.check();
      this.ep(ep, 'in');
    }
  }
  async transferOut(ep: number, data: BufferSource): Promise<{ status: 'ok'; bytesWritten: number }> {
    this.check();
    this.ep(ep, 'out');
    const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    await new Promise((r) => setImmediate(r));
    this.check();
    // a bulk transfer moves at most 16 KiB at once here, like a short write
    const n = Math.min(bytes.byteLength, 16384);
    this.toDevice?.enqueue(bytes.slice(0, n));
    return { status: 'ok', bytesWritten: n };
  }
  async clearHalt(): Promise<void> {
    this.check();
  }

  private abortPending(e: DOMException): void {
    for (const r of this.pendingIn) r(e);
    this.pendingIn.clear();
  }

  unplug(): void {
    if (this.gone) return;
    this.gone = true;
    this.opened = false;
    this.abortPending(dom('NotFoundError', 'The device was disconnected.'));
    try {
      this.toDevice?.close();
    } catch {
      /* ignore */
    }
    this.parent?.dispatchEvent(Object.assign(new Event('disconnect'), { device: this }));
  }
}

export class FakeUsb extends EventTarget {
  devices: FakeUsbDevice[] = [];
  nextChoice: FakeUsbDevice | DOMException | null = null;
  requestOptions: unknown;
  add(d: FakeUsbDevice): FakeUsbDevice {
    d.parent = this;
    this.devices.push(d);
    return d;
  }
  async requestDevice(options: { filters: unknown[] }): Promise<FakeUsbDevice> {
    if (!options || !Array.isArray(options.filters)) throw new TypeError("Failed to execute 'requestDevice': required member filters is undefined.");
    this.requestOptions = options;
    const c = this.nextChoice;
    this.nextChoice = null;
    if (c instanceof DOMException) throw c;
    if (!c) throw dom('NotFoundError', 'No device selected.');
    if (!this.devices.includes(c)) this.add(c);
    return c;
  }
  async getDevices(): Promise<FakeUsbDevice[]> {
    return this.devices.filter((d) => !d.gone);
  }
}

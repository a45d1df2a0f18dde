/**
 * WebUSB link (browser only) for devices without an OS serial driver in the way:
 *  - CDC-ACM: claim the communication (0x02/0x02) and data (0x0a) interfaces, send
 *    SET_LINE_CODING (0x20) and SET_CONTROL_LINE_STATE (0x22, DTR|RTS) class requests,
 *    then move bytes over the data interface's bulk IN/OUT endpoints;
 *  - vendor: an interface of class 0xff with one bulk IN and one bulk OUT endpoint.
 * `linkFromUsbDevice` wraps an already-obtained USBDevice (testable with a fake).
 */
import { LinkOpenError, type Link } from './link.ts';
import { openGranted, WebLink } from './web-link.ts';
import { chooserError, errMessage, hex4, navigatorApi, isGoneError, REMEDY, settleWithin, usbOpenError, unsupportedError } from './web-support.ts';

export interface UsbEndpointLike {
  endpointNumber: number;
  direction: 'in' | 'out';
  type: 'bulk' | 'interrupt' | 'isochronous';
  packetSize: number;
}
export interface UsbAlternateLike {
  alternateSetting: number;
  interfaceClass: number;
  interfaceSubclass: number;
  interfaceProtocol: number;
  endpoints: UsbEndpointLike[];
}
export interface UsbInterfaceLike {
  interfaceNumber: number;
  alternate: UsbAlternateLike;
  alternates: UsbAlternateLike[];
  claimed?: boolean;
}
export interface UsbConfigurationLike {
  configurationValue: number;
  interfaces: UsbInterfaceLike[];
}
export interface UsbControlSetup {
  requestType: 'standard' | 'class' | 'vendor';
  recipient: 'device' | 'interface' | 'endpoint' | 'other';
  request: number;
  value: number;
  index: number;
}
export type UsbTransferStatus = 'ok' | 'stall' | 'babble';

/** The part of the WebUSB USBDevice that the link uses. */
export interface UsbDeviceLike {
  readonly vendorId: number;
  readonly productId: number;
  readonly productName?: string;
  readonly serialNumber?: string;
  readonly opened: boolean;
  readonly configuration: UsbConfigurationLike | null | undefined;
  readonly configurations: UsbConfigurationLike[];
  open(): Promise<void>;
  close(): Promise<void>;
  selectConfiguration(value: number): Promise<void>;
  claimInterface(n: number): Promise<void>;
  releaseInterface(n: number): Promise<void>;
  selectAlternateInterface(n: number, alt: number): Promise<void>;
  controlTransferOut(setup: UsbControlSetup, data?: BufferSource): Promise<{ status: UsbTransferStatus; bytesWritten: number }>;
  transferIn(ep: number, length: number): Promise<{ status: UsbTransferStatus; data?: DataView }>;
  transferOut(ep: number, data: BufferSource): Promise<{ status: UsbTransferStatus; bytesWritten: number }>;
  clearHalt(direction: 'in' | 'out', ep: number): Promise<void>;
}

export interface UsbDeviceFilter {
  vendorId?: number;
  productId?: number;
  classCode?: number;
  subclassCode?: number;
  protocolCode?: number;
  serialNumber?: string;
}

export interface UsbLike {
  requestDevice(options: { filters: UsbDeviceFilter[] }): Promise<UsbDeviceLike>;
  getDevices(): Promise<UsbDeviceLike[]>;
  addEventListener(type: string, listener: (ev: Event) => void): void;
  removeEventListener(type: string, listener: (ev: Event) => void): void;
}

export type UsbLinkMode = 'auto' | 'cdc-acm' | 'vendor';

export interface UsbLinkOptions {
  /** Line rate sent with SET_LINE_CODING (CDC-ACM only). */
  baudRate?: number;
  mode?: UsbLinkMode;
  /** EventTarget firing 'disconnect' with `.device` (navigator.usb). */
  usb?: Pick<UsbLike, 'addEventListener' | 'removeEventListener'>;
  label?: string;
}

export const CDC_SET_LINE_CODING = 0x20;
export const CDC_SET_CONTROL_LINE_STATE = 0x22;
const CLASS_CDC = 0x02;
const SUBCLASS_ACM = 0x02;
const CLASS_CDC_DATA = 0x0a;
const CLASS_VENDOR = 0xff;
/** Packets requested per transferIn: large enough to drain a full SMP frame in few round trips. */
const PACKETS_PER_TRANSFER = 32;

export function usbApi(): UsbLike | undefined {
  return navigatorApi<UsbLike>('usb');
}

export function usbSupported(): boolean {
  return usbApi() !== undefined;
}

export function usbDeviceLabel(d: UsbDeviceLike): string {
  const name = d.productName ? ` ${d.productName}` : '';
  return `WebUSB ${hex4(d.vendorId)}:${hex4(d.productId)}${name}`;
}

/** Ask the user for a USB device (must run from a user gesture), open it and return the link. */
export async function requestUsbLink(opts: UsbLinkOptions & { filters?: UsbDeviceFilter[] } = {}): Promise<Link> {
  const usb = usbApi();
  if (!usb) throw unsupportedError('usb');
  let device: UsbDeviceLike;
  try {
    device = await usb.requestDevice({ filters: opts.filters ?? [] });
  } catch (e) {
    throw chooserError(e, 'usb');
  }
  return linkFromUsbDevice(device, { usb, ...opts });
}

/** Reopen devices the user already granted; same contract as reconnectSerialLinks. */
export async function reconnectUsbLinks(opts: UsbLinkOptions & { filters?: UsbDeviceFilter[]; max?: number } = {}): Promise<Link[]> {
  const usb = usbApi();
  if (!usb) throw unsupportedError('usb');
  const devices = (await usb.getDevices()).filter(
    (d) =>
      !opts.filters?.length ||
      opts.filters.some(
        (f) =>
          (f.vendorId === undefined || f.vendorId === d.vendorId) &&
          (f.productId === undefined || f.productId === d.productId) &&
          (f.serialNumber === undefined || f.serialNumber === d.serialNumber),
      ),
  );
  if (devices.length === 0) throw new LinkOpenError('gone', 'No previously used USB device is plugged in.', REMEDY.gone);
  return openGranted(devices, opts.max, (d) => linkFromUsbDevice(d, { usb, ...opts }));
}

interface Plan {
  mode: 'cdc-acm' | 'vendor';
  control?: UsbInterfaceLike;
  data: UsbInterfaceLike;
  alt: UsbAlternateLike;
  epIn: UsbEndpointLike;
  epOut: UsbEndpointLike;
}

function bulkPair(alt: UsbAlternateLike): { epIn: UsbEndpointLike; epOut: UsbEndpointLike } | null {
  const epIn = alt.endpoints.find((e) => e.type === 'bulk' && e.direction === 'in');
  const epOut = alt.endpoints.find((e) => e.type === 'bulk' && e.direction === 'out');
  return epIn && epOut ? { epIn, epOut } : null;
}

function findAlt(iface: UsbInterfaceLike, cls: number): { alt: UsbAlternateLike; epIn: UsbEndpointLike; epOut: UsbEndpointLike } | null {
  const alts = iface.alternates?.length ? iface.alternates : [iface.alternate];
  for (const alt of alts) {
    if (alt.interfaceClass !== cls) continue;
    const pair = bulkPair(alt);
    if (pair) return { alt, ...pair };
  }
  return null;
}

/** Choose the interfaces to drive; exported for tests and diagnostics. */
export function planUsbInterfaces(config: UsbConfigurationLike, mode: UsbLinkMode = 'auto'): Plan | null {
  const ifaces = config.interfaces;
  if (mode !== 'vendor') {
    const controls = ifaces.filter((i) =>
      (i.alternates?.length ? i.alternates : [i.alternate]).some(
        (a) => a.interfaceClass === CLASS_CDC && a.interfaceSubclass === SUBCLASS_ACM,
      ),
    );
    for (const control of controls) {
      // The data interface normally follows its communication interface (IAD / union descriptor).
      const ordered = [...ifaces].sort(
        (a, b) =>
          Number(a.interfaceNumber !== control.interfaceNumber + 1) - Number(b.interfaceNumber !== control.interfaceNumber + 1),
      );
      for (const data of ordered) {
        const found = findAlt(data, CLASS_CDC_DATA);
        if (found) return { mode: 'cdc-acm', control, data, ...found };
      }
    }
    if (mode === 'cdc-acm') return null;
  }
  for (const data of ifaces) {
    const found = findAlt(data, CLASS_VENDOR);
    if (found) return { mode: 'vendor', data, ...found };
  }
  return null;
}

/** Open `device`, claim its CDC-ACM or vendor bulk interface and wrap it as a Link. Throws LinkOpenError. */
export async function linkFromUsbDevice(device: UsbDeviceLike, opts: UsbLinkOptions = {}): Promise<Link> {
  const baudRate = opts.baudRate ?? 115200;
  const claimed: number[] = [];
  const fail = async (err: LinkOpenError): Promise<never> => {
    for (const n of claimed) await device.releaseInterface(n).catch(() => {});
    await device.close().catch(() => {});
    throw err;
  };
  try {
    if (!device.opened) await device.open();
  } catch (e) {
    throw usbOpenError(e, 'open the device');
  }
  try {
    if (!device.configuration) {
      const first = device.configurations[0];
      if (!first) return await fail(noInterface(device, opts.mode));
      await device.selectConfiguration(first.configurationValue);
    }
  } catch (e) {
    return await fail(usbOpenError(e, 'select the USB configuration'));
  }
  const plan = planUsbInterfaces(device.configuration!, opts.mode ?? 'auto');
  if (!plan) return await fail(noInterface(device, opts.mode));
  try {
    for (const iface of plan.control ? [plan.control, plan.data] : [plan.data]) {
      await device.claimInterface(iface.interfaceNumber);
      claimed.push(iface.interfaceNumber);
    }
    if (plan.data.alternate.alternateSetting !== plan.alt.alternateSetting)
      await device.selectAlternateInterface(plan.data.interfaceNumber, plan.alt.alternateSetting);
  } catch (e) {
    return await fail(usbOpenError(e, 'claim the USB interface'));
  }
  if (plan.control) {
    const index = plan.control.interfaceNumber;
    try {
      const coding = new Uint8Array(7);
      new DataView(coding.buffer).setUint32(0, baudRate, true); // dwDTERate
      coding[4] = 0; // 1 stop bit
      coding[5] = 0; // no parity
      coding[6] = 8; // 8 data bits
      // A stall here means the function ignores line coding (common for native USB CDC); that is fine.
      await device.controlTransferOut({ requestType: 'class', recipient: 'interface', request: CDC_SET_LINE_CODING, value: 0, index }, coding);
      await device.controlTransferOut({ requestType: 'class', recipient: 'interface', request: CDC_SET_CONTROL_LINE_STATE, value: 0x03, index });
    } catch (e) {
      return await fail(usbOpenError(e, 'configure the CDC-ACM line'));
    }
  }
  return new UsbLink(device, plan, claimed, opts.label ?? usbDeviceLabel(device), plan.mode === 'cdc-acm' ? baudRate : undefined, opts.usb);
}

/** Filters matching the device behind a WebUSB link (for reconnecting to the same device), or undefined. */
export function usbFiltersFor(link: Link): UsbDeviceFilter[] | undefined {
  if (!(link instanceof UsbLink)) return undefined;
  const d = link.device;
  return [{ vendorId: d.vendorId, productId: d.productId, ...(d.serialNumber ? { serialNumber: d.serialNumber } : {}) }];
}

function noInterface(device: UsbDeviceLike, mode?: UsbLinkMode): LinkOpenError {
  const want = mode === 'vendor' ? 'a vendor-specific bulk interface' : mode === 'cdc-acm' ? 'a CDC-ACM interface' : 'a CDC-ACM or vendor-specific bulk interface';
  return new LinkOpenError(
    'protocol',
    `${usbDeviceLabel(device)} has no ${want}.`,
    'Choose the device that runs the MCUmgr firmware, or use "Connect over USB serial" if the operating system already provides a serial port for it.',
  );
}

class UsbLink extends WebLink {
  private readonly readLen: number;
  private readonly onDisconnect = (ev: Event) => {
    if ((ev as Event & { device?: unknown }).device === this.device) this.lost('The USB device was disconnected.');
  };

  constructor(
    readonly device: UsbDeviceLike,
    private readonly plan: Plan,
    private readonly claimed: number[],
    label: string,
    baudRate: number | undefined,
    private readonly usb?: Pick<UsbLike, 'addEventListener' | 'removeEventListener'>,
  ) {
    super(label, baudRate);
    this.readLen = Math.min(16384, Math.max(64, plan.epIn.packetSize || 64) * PACKETS_PER_TRANSFER);
    usb?.addEventListener('disconnect', this.onDisconnect);
  }

  protected async pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    const ep = this.plan.epIn.endpointNumber;
    for (;;) {
      if (this.done) return this.endReadable();
      let res: Awaited<ReturnType<UsbDeviceLike['transferIn']>>;
      try {
        res = await this.device.transferIn(ep, this.readLen);
      } catch (e) {
        if (this.done) return this.endReadable();
        this.lost(isGoneError(e) ? 'The USB device was disconnected.' : `USB read failed: ${errMessage(e)}`);
        return this.endReadable();
      }
      if (this.done) return this.endReadable();
      if (res.status === 'stall') {
        try {
          await this.device.clearHalt('in', ep);
          continue;
        } catch (e) {
          this.lost(`USB read stalled: ${errMessage(e)}`);
          return this.endReadable();
        }
      }
      if (res.status === 'babble') {
        this.lost('USB read overflow (babble): the device sent more than requested.');
        return this.endReadable();
      }
      const dv = res.data;
      if (dv && dv.byteLength > 0) {
        // Copy: the DataView may alias a buffer the browser reuses.
        c.enqueue(new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength).slice());
        return;
      }
      // zero-length packet: read again
    }
  }

  protected async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new Error(`${this.label} is closed`);
    const ep = this.plan.epOut.endpointNumber;
    let off = 0;
    while (off < chunk.byteLength) {
      const part = off === 0 ? chunk : chunk.subarray(off);
      let res: Awaited<ReturnType<UsbDeviceLike['transferOut']>>;
      try {
        res = await this.device.transferOut(ep, part as Uint8Array<ArrayBuffer>);
      } catch (e) {
        if (!this.done) this.lost(isGoneError(e) ? 'The USB device was disconnected.' : `USB write failed: ${errMessage(e)}`);
        throw new Error(`${this.label}: write failed: ${errMessage(e)}`);
      }
      if (res.status === 'stall') {
        await this.device.clearHalt('out', ep);
        continue;
      }
      if (res.bytesWritten <= 0) throw new Error(`${this.label}: write made no progress`);
      off += res.bytesWritten;
    }
  }

  protected unlisten(): void {
    this.usb?.removeEventListener('disconnect', this.onDisconnect);
  }

  protected async teardown(polite: boolean): Promise<void> {
    this.endReadable();
    if (polite && this.plan.control) {
      await settleWithin(
        this.device.controlTransferOut({
          requestType: 'class',
          recipient: 'interface',
          request: CDC_SET_CONTROL_LINE_STATE,
          value: 0,
          index: this.plan.control.interfaceNumber,
        }),
        1000,
      );
    }
    // Releasing the interface aborts a pending transferIn, which ends the read loop.
    for (const n of this.claimed) await settleWithin(this.device.releaseInterface(n), 1000);
    await settleWithin(this.device.close(), 2000);
  }
}

import { afterEach, describe, expect, it, vi } from 'vitest';
import { LinkOpenError } from '../../src/core/link/link.ts';
import {
  linkFromSerialPort,
  reconnectSerialLinks,
  requestSerialLink,
  serialFiltersFor,
  type SerialPortLike,
} from '../../src/core/link/webserial.ts';
import {
  CDC_SET_CONTROL_LINE_STATE,
  CDC_SET_LINE_CODING,
  linkFromUsbDevice,
  planUsbInterfaces,
  reconnectUsbLinks,
  requestUsbLink,
  usbFiltersFor,
  type UsbDeviceLike,
} from '../../src/core/link/webusb.ts';
import { linkContract, within } from '../helpers/link-contract.ts';
import { FakeSerial, FakeSerialPort, FakeUsb, FakeUsbDevice } from '../helpers/fake-web-devices.ts';

const asPort = (p: FakeSerialPort) => p as unknown as SerialPortLike;
const asDev = (d: FakeUsbDevice) => d as unknown as UsbDeviceLike;

linkContract('WebSerial', async () => {
  const serial = new FakeSerial();
  const port = serial.add(new FakeSerialPort({ usbVendorId: 0x2fe3, usbProductId: 0x0100 }));
  const link = await linkFromSerialPort(asPort(port), { serial });
  return { link, peer: port.peer };
});

linkContract('WebUSB CDC-ACM', async () => {
  const usb = new FakeUsb();
  const dev = usb.add(new FakeUsbDevice('cdc-acm'));
  const link = await linkFromUsbDevice(asDev(dev), { usb });
  return { link, peer: dev.peer };
});

linkContract('WebUSB vendor bulk', async () => {
  const usb = new FakeUsb();
  const dev = usb.add(new FakeUsbDevice('vendor', { packetSize: 512 }));
  const link = await linkFromUsbDevice(asDev(dev), { usb, mode: 'vendor' });
  return { link, peer: dev.peer };
});

async function readN(rs: ReadableStream<Uint8Array>, n: number): Promise<Uint8Array> {
  const r = rs.getReader();
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const { value, done } = await r.read();
    if (done) throw new Error('ended early');
    out.set(value, off);
    off += value.length;
  }
  r.releaseLock();
  return out;
}

async function write(ws: WritableStream<Uint8Array>, b: Uint8Array): Promise<void> {
  const w = ws.getWriter();
  await w.write(b);
  w.releaseLock();
}

async function openErr(p: Promise<unknown>): Promise<LinkOpenError> {
  const e = await p.then(
    () => {
      throw new Error('expected a LinkOpenError');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LinkOpenError);
  return e as LinkOpenError;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('WebSerial link specifics', () => {
  it('opens with the requested baud rate and a receive buffer of at least 64 KiB', async () => {
    const port = new FakeSerialPort({ usbVendorId: 0x1915, usbProductId: 0x520f });
    const link = await linkFromSerialPort(asPort(port), { baudRate: 1000000, bufferSize: 1024 });
    expect(port.openOptions?.baudRate).toBe(1000000);
    expect(port.openOptions?.bufferSize).toBeGreaterThanOrEqual(65536);
    expect(link.baudRate).toBe(1000000);
    expect(link.label).toBe('WebSerial 1915:520f');
    await link.close();
    expect(port.isOpenNow).toBe(false); // the port is released for the next user
  });

  it('keeps reading across a non-fatal BreakError/FramingError', async () => {
    const port = new FakeSerialPort();
    const link = await linkFromSerialPort(asPort(port));
    await write(port.peer.writable, new Uint8Array([1, 2]));
    expect(await readN(link.readable, 2)).toEqual(new Uint8Array([1, 2]));
    const r = link.readable.getReader();
    const pending = r.read();
    await new Promise((res) => setTimeout(res, 10));
    port.injectReadError('BreakError');
    await write(port.peer.writable, new Uint8Array([3]));
    expect((await within(2000, pending, 'read after break')).value).toEqual(new Uint8Array([3]));
    port.injectReadError('FramingError');
    await write(port.peer.writable, new Uint8Array([4]));
    expect((await within(2000, r.read(), 'read after framing error')).value).toEqual(new Uint8Array([4]));
    r.releaseLock();
    const state = await Promise.race([link.closed, new Promise((res) => setTimeout(() => res('open'), 30))]);
    expect(state).toBe('open');
    await link.close();
  });

  it('close() does not hang on a port whose writes never drain, and releases the port', async () => {
    const port = new FakeSerialPort();
    const link = await linkFromSerialPort(asPort(port));
    port.stallWrites = true;
    const w = link.writable.getWriter();
    const stuck = w.write(new Uint8Array(100));
    stuck.catch(() => {});
    await new Promise((r) => setTimeout(r, 20));
    await within(4000, link.close(), 'close() with a stalled write');
    expect(await link.closed).toEqual({ reason: 'closed' });
    expect(port.isOpenNow).toBe(false);
    await within(2000, stuck.then(() => 'resolved', () => 'rejected'), 'the stalled write to settle');
    w.releaseLock();
  });

  it('reports loss from a navigator.serial disconnect event even with no read pending', async () => {
    const serial = new FakeSerial();
    const port = serial.add(new FakeSerialPort());
    const link = await linkFromSerialPort(asPort(port), { serial });
    port.unplug();
    const c = await within(2000, link.closed, 'closed');
    expect(c).toEqual({ reason: 'lost', message: expect.stringMatching(/disconnected/) });
  });

  it('ignores disconnect events for other ports', async () => {
    const serial = new FakeSerial();
    const a = serial.add(new FakeSerialPort());
    const b = serial.add(new FakeSerialPort());
    const link = await linkFromSerialPort(asPort(a), { serial });
    b.unplug();
    const state = await Promise.race([link.closed, new Promise((res) => setTimeout(() => res('open'), 30))]);
    expect(state).toBe('open');
    await link.close();
  });

  it('maps a second open of the same port (InvalidStateError) to busy with a remedy', async () => {
    const port = new FakeSerialPort();
    const first = await linkFromSerialPort(asPort(port));
    const e = await openErr(linkFromSerialPort(asPort(port)));
    expect(e.kind).toBe('busy');
    expect(e.remedy).toMatch(/another program or browser tab/);
    await first.close();
  });

  it('maps NetworkError "Failed to open serial port." (held by another program) to busy', async () => {
    const e = await openErr(linkFromSerialPort(asPort(new FakeSerialPort({ busy: true }))));
    expect(e.kind).toBe('busy');
  });

  it('maps SecurityError to permission with the Linux dialout / snap remedy', async () => {
    const port = new FakeSerialPort({ openError: new DOMException('Access denied.', 'SecurityError') });
    const e = await openErr(linkFromSerialPort(asPort(port)));
    expect(e.kind).toBe('permission');
    expect(e.remedy).toMatch(/dialout/);
    expect(e.remedy).toMatch(/snap connect chromium:raw-usb/);
  });

  it('requestSerialLink: no navigator.serial is "unsupported" with the browser list', async () => {
    vi.stubGlobal('navigator', {});
    const e = await openErr(requestSerialLink());
    expect(e.kind).toBe('unsupported');
    expect(e.remedy).toMatch(/Chrome, Edge and Opera/);
    expect(e.remedy).toMatch(/Firefox 151/);
    expect(e.remedy).toMatch(/Safari does not/);
  });

  it('requestSerialLink: closing the chooser (NotFoundError) is "cancelled"', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    const e = await openErr(requestSerialLink());
    expect(e.kind).toBe('cancelled');
  });

  it('requestSerialLink passes filters and opens the chosen port', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    const port = new FakeSerialPort({ usbVendorId: 0x2fe3, usbProductId: 1 });
    serial.nextChoice = port;
    const link = await requestSerialLink({ filters: [{ usbVendorId: 0x2fe3 }], baudRate: 230400 });
    expect(serial.requestOptions).toEqual({ filters: [{ usbVendorId: 0x2fe3 }] });
    expect(port.openOptions?.baudRate).toBe(230400);
    // the link listens on navigator.serial for disconnects
    port.unplug();
    expect((await within(2000, link.closed, 'closed')).reason).toBe('lost');
  });

  it('reconnectSerialLinks reopens previously granted ports without a chooser', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    const a = serial.add(new FakeSerialPort({ usbVendorId: 0x2fe3, usbProductId: 1 }));
    serial.add(new FakeSerialPort({ usbVendorId: 0x0483, usbProductId: 2 }));
    const links = await reconnectSerialLinks({ filters: [{ usbVendorId: 0x2fe3 }] });
    expect(links.map((l) => l.label)).toEqual(['WebSerial 2fe3:0001']);
    expect(a.isOpenNow).toBe(true);
    await links[0]!.close();
    serial.ports = [];
    expect((await openErr(reconnectSerialLinks())).kind).toBe('gone');
  });

  it('reconnects to the same device: serialFiltersFor + max opens only that port', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    const other = serial.add(new FakeSerialPort({ usbVendorId: 0x0483, usbProductId: 0x374b }));
    const mine = serial.add(new FakeSerialPort({ usbVendorId: 0x2fe3, usbProductId: 0x0100 }));
    const twin = serial.add(new FakeSerialPort({ usbVendorId: 0x2fe3, usbProductId: 0x0100 }));
    const first = await linkFromSerialPort(asPort(mine), { serial });
    const filters = serialFiltersFor(first);
    expect(filters).toEqual([{ usbVendorId: 0x2fe3, usbProductId: 0x0100 }]);
    mine.unplug();
    await first.closed;
    serial.ports = serial.ports.filter((p) => p !== mine);
    const links = await reconnectSerialLinks({ filters, max: 1 });
    expect(links).toHaveLength(1);
    expect(twin.isOpenNow).toBe(true);
    expect(other.isOpenNow).toBe(false); // never touched: opening toggles DTR and may reset a board
    await links[0]!.close();
    expect(serialFiltersFor({ label: 'x' } as never)).toBeUndefined();
  });

  it('reconnectSerialLinks throws the open error when every granted port fails', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    serial.add(new FakeSerialPort({ busy: true }));
    expect((await openErr(reconnectSerialLinks())).kind).toBe('busy');
  });
});

describe('WebUSB link specifics', () => {
  it('claims both CDC interfaces and sends SET_LINE_CODING then SET_CONTROL_LINE_STATE(DTR|RTS)', async () => {
    const dev = new FakeUsbDevice('cdc-acm');
    const link = await linkFromUsbDevice(asDev(dev), { baudRate: 921600 });
    expect(dev.configuration?.interfaces.map((i) => i.claimed)).toEqual([true, true]);
    expect(dev.controls.map((c) => [c.requestType, c.recipient, c.request, c.value, c.index])).toEqual([
      ['class', 'interface', CDC_SET_LINE_CODING, 0, 0],
      ['class', 'interface', CDC_SET_CONTROL_LINE_STATE, 3, 0],
    ]);
    // dwDTERate 921600 LE, 1 stop bit, no parity, 8 data bits
    expect(Array.from(dev.controls[0]!.data!)).toEqual([0x00, 0x10, 0x0e, 0x00, 0, 0, 8]);
    expect(link.baudRate).toBe(921600);
    expect(link.label).toBe('WebUSB 2fe3:0100 Fake CDC ACM');
    await write(dev.peer.writable, new Uint8Array([7]));
    expect(await readN(link.readable, 1)).toEqual(new Uint8Array([7]));
    // transferIn asks for a multiple of the endpoint's packet size
    expect(dev.transferInLengths.length).toBeGreaterThan(0);
    for (const n of dev.transferInLengths) expect(n % 64).toBe(0);
    expect(dev.transferInLengths[0]).toBeGreaterThanOrEqual(512);
    await link.close();
    // closing drops DTR and releases the device
    expect(dev.controls.at(-1)).toMatchObject({ request: CDC_SET_CONTROL_LINE_STATE, value: 0 });
    expect(dev.opened).toBe(false);
  });

  it('auto mode falls back to the vendor bulk interface; cdc-acm mode refuses it', async () => {
    const cfg = new FakeUsbDevice('vendor').configurations[0]!;
    const plan = planUsbInterfaces(cfg, 'auto');
    expect(plan?.mode).toBe('vendor');
    expect([plan?.epIn.endpointNumber, plan?.epOut.endpointNumber]).toEqual([6, 5]);
    expect(planUsbInterfaces(cfg, 'cdc-acm')).toBeNull();
    const dev = new FakeUsbDevice('vendor');
    const e = await openErr(linkFromUsbDevice(asDev(dev), { mode: 'cdc-acm' }));
    expect(e.kind).toBe('protocol');
    expect(dev.opened).toBe(false); // released after the failure
    const link = await linkFromUsbDevice(asDev(new FakeUsbDevice('vendor')));
    expect(link.baudRate).toBeUndefined();
    await link.close();
  });

  it('a device with no usable interface is a "protocol" error', async () => {
    const e = await openErr(linkFromUsbDevice(asDev(new FakeUsbDevice('hid-only'))));
    expect(e.kind).toBe('protocol');
    expect(e.message).toMatch(/CDC-ACM or vendor-specific bulk/);
  });

  it('an interface held by the OS driver is "busy" and the device is closed again', async () => {
    const dev = new FakeUsbDevice('cdc-acm');
    dev.busy = true;
    const e = await openErr(linkFromUsbDevice(asDev(dev)));
    expect(e.kind).toBe('busy');
    expect(e.remedy).toMatch(/Connect over USB serial/);
    expect(dev.opened).toBe(false);
  });

  it('navigator.usb disconnect for this device ends the link as lost', async () => {
    const usb = new FakeUsb();
    vi.stubGlobal('navigator', { usb });
    const dev = new FakeUsbDevice('cdc-acm');
    usb.nextChoice = dev;
    const link = await requestUsbLink({ filters: [{ vendorId: 0x2fe3 }] });
    expect(usb.requestOptions).toEqual({ filters: [{ vendorId: 0x2fe3 }] });
    dev.unplug();
    expect(await within(2000, link.closed, 'closed')).toEqual({ reason: 'lost', message: expect.any(String) });
  });

  it('usbFiltersFor names the device by vendor, product and serial number', async () => {
    const link = await linkFromUsbDevice(asDev(new FakeUsbDevice('cdc-acm')));
    expect(usbFiltersFor(link)).toEqual([{ vendorId: 0x2fe3, productId: 0x0100, serialNumber: 'FAKE0001' }]);
    await link.close();
  });

  it('requestUsbLink maps unsupported and cancelled; reconnectUsbLinks uses getDevices', async () => {
    vi.stubGlobal('navigator', {});
    const u = await openErr(requestUsbLink());
    expect(u.kind).toBe('unsupported');
    expect(u.remedy).toMatch(/Firefox and Safari do not/);
    const usb = new FakeUsb();
    vi.stubGlobal('navigator', { usb });
    expect((await openErr(requestUsbLink())).kind).toBe('cancelled');
    expect((await openErr(reconnectUsbLinks())).kind).toBe('gone');
    usb.add(new FakeUsbDevice('cdc-acm'));
    const links = await reconnectUsbLinks();
    expect(links).toHaveLength(1);
    await links[0]!.close();
  });
});

/**
 * The app's connection state machine (src/ui/connection.svelte.ts) driven in Node with
 * the fake navigator.serial, the real WebSerial link, SMP session, info op and the
 * reference device on the far end of the fake cable.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { flushSync } from 'svelte';
import type { Link, LinkClosed } from '../../src/core/link/link.ts';
import { ReferenceDevice } from '../../src/device/device.ts';
import { Connection } from '../../src/ui/connection.svelte.ts';
import { FakeSerial, FakeSerialPort, FakeUsb } from '../helpers/fake-web-devices.ts';

/** A serial port whose far end is a fresh reference device each time it is opened. */
class DevicePort extends FakeSerialPort {
  override async open(options: { baudRate: number; bufferSize?: number }): Promise<void> {
    await super.open(options);
    const peer = this.peer;
    let resolve!: (c: LinkClosed) => void;
    const closed = new Promise<LinkClosed>((r) => (resolve = r));
    const link: Link = {
      label: 'device end',
      readable: peer.readable,
      writable: peer.writable,
      closed,
      async close() {
        resolve({ reason: 'closed' });
      },
    };
    void new ReferenceDevice().serve(link).catch(() => {});
  }
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('Connection (app state)', () => {
  it('connects over WebSerial, reads the device, notices an unplug and reconnects to the granted port', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial, usb: new FakeUsb() });
    const port = new DevicePort({ usbVendorId: 0x2fe3, usbProductId: 0x0100 });
    serial.nextChoice = port;
    const conn = new Connection();
    expect(conn.serialSupported).toBe(true);
    await conn.connect('serial');
    flushSync();
    expect(conn.status).toBe('connected');
    expect(conn.label).toBe('WebSerial 2fe3:0100');
    const st = conn.infoState;
    expect(st?.kind).toBe('done');
    if (st?.kind !== 'done') return;
    expect(st.result.params).toMatchObject({ bufSize: 384, bufCount: 4 });
    expect(st.result.groups?.map((g) => g.id)).toEqual(expect.arrayContaining([0, 1]));
    expect(conn.log.some((l) => /→ read os\/6/.test(l.text))).toBe(true);

    port.unplug();
    await until(() => conn.status === 'disconnected', 'disconnected');
    expect(conn.lostReason).toMatch(/disconnected|lost/);

    // still unplugged: a calm "gone" problem, staying on the device page
    serial.ports = [];
    await conn.reconnect();
    expect(conn.status).toBe('disconnected');
    expect(conn.problem?.kind).toBe('gone');

    port.replug();
    serial.add(port);
    expect(conn.deviceBack).toBe(false);
    serial.dispatchEvent(Object.assign(new Event('connect'), { port }));
    expect(conn.deviceBack).toBe(true);
    await conn.reconnect();
    expect(conn.deviceBack).toBe(false);
    expect(conn.status).toBe('connected');
    expect(conn.problem).toBeNull();
    expect(conn.infoState?.kind).toBe('done');

    await conn.disconnect();
    expect(conn.status).toBe('closed');
    expect(port.isOpenNow).toBe(false);
  });

  it('a cancelled chooser is a calm problem and leaves the app on the first screen', async () => {
    vi.stubGlobal('navigator', { serial: new FakeSerial() });
    const conn = new Connection();
    await conn.connect('serial');
    expect(conn.status).toBe('idle');
    expect(conn.problem).toMatchObject({ kind: 'cancelled', calm: true });
  });

  it('a device that never answers MCUmgr is a session problem; one unplugged meanwhile is "gone"', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    const silent = new FakeSerialPort(); // nothing on the far end answers
    serial.nextChoice = silent;
    const conn = new Connection();
    const opening = conn.connect('serial');
    await opening;
    expect(conn.status).toBe('idle');
    expect(conn.problem?.kind).toBe('session');
    expect(conn.problem?.message).toMatch(/did not answer MCUmgr/);
    expect(silent.isOpenNow).toBe(false);

    const dying = new FakeSerialPort();
    serial.nextChoice = dying;
    const p = conn.connect('serial');
    await until(() => dying.isOpenNow, 'port open');
    dying.unplug();
    await p;
    expect(conn.problem?.kind).toBe('gone');
    expect(conn.problem?.message).toMatch(/went away/);
  }, 20_000);

  it('a busy port is reported with its remedy', async () => {
    const serial = new FakeSerial();
    vi.stubGlobal('navigator', { serial });
    serial.nextChoice = new FakeSerialPort({ openError: new DOMException('The port is already open.', 'InvalidStateError') });
    const conn = new Connection();
    await conn.connect('serial');
    expect(conn.problem).toMatchObject({ kind: 'busy', calm: false });
    expect(conn.problem?.remedy).toMatch(/another program or browser tab/);
  });

  it('without Web Serial / WebUSB reports unsupported; the virtual device still works', async () => {
    vi.stubGlobal('navigator', {});
    const conn = new Connection();
    expect(conn.serialSupported).toBe(false);
    expect(conn.usbSupported).toBe(false);
    await conn.connect('usb');
    expect(conn.problem?.kind).toBe('unsupported');
    await conn.connect('virtual');
    expect(conn.status).toBe('connected');
    expect(conn.problem).toBeNull();
    expect(conn.infoState?.kind).toBe('done');
    await conn.forget();
    expect(conn.status).toBe('idle');
  });
});

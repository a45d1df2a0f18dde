/**
 * Browser support facts and error-to-remedy mapping shared by the WebSerial and
 * WebUSB links. Browser-only module: reads `navigator` when called, never at import.
 */
import { LinkOpenError, type LinkOpenErrorKind } from './link.ts';

export const SERIAL_SUPPORT =
  'Web Serial works in Chrome, Edge and Opera on desktop, and in Firefox 151 or later. Safari does not support it.';
export const USB_SUPPORT =
  'WebUSB works in Chrome, Edge and Opera on desktop and in Chrome on Android. Firefox and Safari do not support it.';

export const REMEDY = {
  cancelled: 'No device was chosen. Plug the device in and try again, then pick it in the list.',
  serialBusy:
    'The port is already in use by another program or browser tab (a terminal, mcumgr, an IDE serial monitor, or this app in another tab). Close it there and try again.',
  usbBusy:
    'Another program or the operating system driver holds this USB interface. Close other programs using the device, or use "Connect over USB serial" instead.',
  serialPermission:
    'The operating system refused access to the port. On Linux add yourself to the dialout group (sudo usermod -aG dialout $USER, then log out and in); with a snap browser run: sudo snap connect chromium:raw-usb.',
  usbPermission:
    'The operating system refused access to the USB device. On Linux add a udev rule granting your user access to the device (or the plugdev group); with a snap browser run: sudo snap connect chromium:raw-usb. On Windows the interface needs the WinUSB driver.',
  gone: 'The device is no longer connected. Check the cable, plug it back in and try again.',
  failed: 'Unplug the device, plug it back in and try again.',
} as const;

/** `navigator.serial` or `navigator.usb`, when this browser has it. */
export function navigatorApi<T>(name: 'serial' | 'usb'): T | undefined {
  const nav = (globalThis as { navigator?: { serial?: unknown; usb?: unknown } }).navigator;
  return nav?.[name] as T | undefined;
}

/** The error when this browser has no Web Serial or no WebUSB, saying where it works. */
export function unsupportedError(api: 'serial' | 'usb'): LinkOpenError {
  return api === 'serial'
    ? new LinkOpenError('unsupported', 'This browser cannot talk to serial ports.', SERIAL_SUPPORT)
    : new LinkOpenError('unsupported', 'This browser cannot talk to USB devices directly.', USB_SUPPORT);
}

function errName(e: unknown): string {
  return e && typeof e === 'object' && 'name' in e ? String((e as { name: unknown }).name) : '';
}

export function errMessage(e: unknown): string {
  if (e && typeof e === 'object' && 'message' in e) return String((e as { message: unknown }).message);
  return String(e);
}

export function isGoneError(e: unknown): boolean {
  const n = errName(e);
  const m = errMessage(e);
  return n === 'NotFoundError' || /disconnected|device (has been )?lost|no device/i.test(m);
}

function make(kind: LinkOpenErrorKind, message: string, remedy: string, cause: unknown): LinkOpenError {
  return new LinkOpenError(kind, message, remedy, cause);
}

/** Error thrown by navigator.serial.requestPort / navigator.usb.requestDevice. */
export function chooserError(e: unknown, what: 'serial' | 'usb'): LinkOpenError {
  if (e instanceof LinkOpenError) return e;
  const n = errName(e);
  if (n === 'NotFoundError') return make('cancelled', 'No device selected.', REMEDY.cancelled, e);
  if (n === 'SecurityError' || n === 'NotAllowedError')
    return make(
      'permission',
      `The browser blocked the ${what === 'serial' ? 'serial port' : 'USB device'} chooser: ${errMessage(e)}`,
      'Open the chooser from a button click, on a page served over https or localhost, and check that the site is not blocked from using devices in the browser settings.',
      e,
    );
  return make('failed', `Could not show the device chooser: ${errMessage(e)}`, REMEDY.failed, e);
}

/** Error thrown by SerialPort.open. */
export function serialOpenError(e: unknown): LinkOpenError {
  if (e instanceof LinkOpenError) return e;
  const n = errName(e);
  const m = errMessage(e);
  if (n === 'InvalidStateError' || (n === 'NetworkError' && /failed to open/i.test(m)))
    return make('busy', 'The serial port is already in use.', REMEDY.serialBusy, e);
  if (n === 'SecurityError' || n === 'NotAllowedError' || /permission|access denied/i.test(m))
    return make('permission', 'Permission to open the serial port was denied.', REMEDY.serialPermission, e);
  if (isGoneError(e) || n === 'NetworkError') return make('gone', 'The serial device went away.', REMEDY.gone, e);
  return make('failed', `Could not open the serial port: ${m}`, REMEDY.failed, e);
}

/** Error thrown by USBDevice.open / claimInterface / control transfers. */
export function usbOpenError(e: unknown, step: string): LinkOpenError {
  if (e instanceof LinkOpenError) return e;
  const n = errName(e);
  const m = errMessage(e);
  if (n === 'SecurityError' || n === 'NotAllowedError' || /access denied|permission/i.test(m))
    return make('permission', `Permission to use the USB device was denied (${step}).`, REMEDY.usbPermission, e);
  if (isGoneError(e)) return make('gone', 'The USB device went away.', REMEDY.gone, e);
  if (n === 'NetworkError' || n === 'InvalidStateError')
    return make('busy', `The USB device is in use (${step}: ${m}).`, REMEDY.usbBusy, e);
  return make('failed', `Could not ${step}: ${m}`, REMEDY.failed, e);
}

export function hex4(n: number | undefined): string {
  return n === undefined ? '????' : n.toString(16).padStart(4, '0');
}

/** Settle `p` within `ms`; resolves true if it settled (either way), false on timeout. Never rejects. */
export function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(timer));
}

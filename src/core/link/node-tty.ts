/**
 * Serial port / pty link for Node (CLI and tests only).
 *
 * The device is opened non-blocking (so a port without carrier does not hang
 * the open), configured with `stty -F PATH raw -echo <baud>`, and driven
 * through a tty stream (libuv reopens the tty non-blocking; reads and writes
 * never block the event loop). The device going away (USB unplug, the other
 * side of a pty closing: EIO on read) ends the link with {reason: 'lost'}.
 */
import { execFile } from 'node:child_process';
import { close as closeFd, constants as fsc, open as openFd } from 'node:fs';
import { ReadStream } from 'node:tty';
import { LinkOpenError } from './link.ts';
import { SocketLink } from './node-socket.ts';

export interface TtyOptions {
  /** Line rate; default 115200. Ignored by ptys but still set. */
  baudRate?: number;
  /** Skip `stty` (for devices already configured). Default false. */
  skipStty?: boolean;
}

export const DEFAULT_BAUD = 115200;

const STTY_BAUDS = new Set([
  50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000,
  576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000,
]);

/** Map an errno from opening `path` to a typed LinkOpenError with a remedy. Exported for tests. */
export function ttyOpenError(path: string, e: NodeJS.ErrnoException): LinkOpenError {
  switch (e.code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return new LinkOpenError('gone', `${path}: no such device (${e.code})`, 'Check the cable and that the device is powered; list ports with `ls /dev/ttyACM* /dev/ttyUSB*`.', e);
    case 'EACCES':
    case 'EPERM':
      return new LinkOpenError(
        'permission',
        `${path}: permission denied (${e.code})`,
        'Add your user to the dialout group (`sudo usermod -aG dialout $USER`), then log out and back in. Under snap confinement also run `snap connect <app>:raw-usb`.',
        e,
      );
    case 'EBUSY':
      return new LinkOpenError('busy', `${path}: port busy (${e.code})`, 'Close the other program using the port (a serial terminal, ModemManager, another fieldbench) and try again.', e);
    default:
      return new LinkOpenError('failed', `${path}: cannot open (${e.code ?? e.message})`, 'Check the device path and that it is a serial port.', e);
  }
}

function stty(path: string, baud: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('stty', ['-F', path, 'raw', '-echo', String(baud)], { timeout: 5000 }, (err, _out, stderr) => {
      if (!err) return resolve();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        reject(new LinkOpenError('unsupported', 'stty not found', 'Install coreutils (stty) or run on Linux.', err));
      } else {
        const msg = String(stderr || err.message).trim();
        const kind = /permission denied/i.test(msg) ? 'permission' : /no such file|no such device/i.test(msg) ? 'gone' : 'protocol';
        reject(
          new LinkOpenError(
            kind,
            `${path}: cannot configure the port: ${msg}`,
            kind === 'protocol' ? 'The path is not a serial port (stty refused it); choose the device\'s tty.' : 'Check the device is still connected and accessible.',
            err,
          ),
        );
      }
    });
  });
}

export async function openTtyLink(path: string, opts: TtyOptions = {}): Promise<SocketLink> {
  const baud = opts.baudRate ?? DEFAULT_BAUD;
  if (!Number.isInteger(baud) || !STTY_BAUDS.has(baud)) {
    throw new LinkOpenError('failed', `unsupported baud rate ${baud}`, `Use one of ${[...STTY_BAUDS].filter((b) => b >= 9600).join(', ')}.`);
  }
  // a plain descriptor (not a FileHandle, which would close it again when collected)
  const fd = await new Promise<number>((resolve, reject) =>
    openFd(path, fsc.O_RDWR | fsc.O_NOCTTY | fsc.O_NONBLOCK, (err, fd) => (err ? reject(ttyOpenError(path, err)) : resolve(fd))),
  );
  let stream: ReadStream;
  try {
    if (!opts.skipStty) await stty(path, baud);
    // tty.ReadStream is a full duplex net.Socket over the tty handle; libuv
    // reopens the tty non-blocking and owns (and closes) the descriptor from here.
    stream = new ReadStream(fd);
  } catch (e) {
    closeFd(fd, () => {});
    if (e instanceof LinkOpenError) throw e;
    throw new LinkOpenError('protocol', `${path}: not a terminal device (${(e as Error).message})`, 'Choose the serial port (tty) of the device.', e);
  }
  return new SocketLink(stream, path, baud, (why) => `device ${path} went away (${why})`);
}

/**
 * Open a link from a command-line spec (Node only: CLI and tests).
 *   /dev/ttyACM0, /dev/pts/3        serial port or pty (Linux/macOS, configured with stty)
 *   tcp://127.0.0.1:5556            TCP (emulator chardev, network bridge)
 *   udp://192.0.2.7:1337            SMP over UDP (one packet per datagram)
 */
import { LinkOpenError, type Link } from './link.ts';
import { openTcpLink } from './node-tcp.ts';
import { openTtyLink } from './node-tty.ts';
import { openUdpLink } from './node-udp.ts';

export interface NodeLinkOptions {
  baudRate?: number;
  connectTimeoutMs?: number;
}

export async function openNodeLink(spec: string, opts: NodeLinkOptions = {}): Promise<Link> {
  if (/^tcp:\/\//i.test(spec)) return openTcpLink(spec, { connectTimeoutMs: opts.connectTimeoutMs });
  if (/^udp:\/\//i.test(spec)) return openUdpLink(spec);
  if (spec.startsWith('/')) return openTtyLink(spec, { baudRate: opts.baudRate });
  throw new LinkOpenError('unsupported', `unrecognised link ${JSON.stringify(spec)}`, 'Give a serial device path such as /dev/ttyACM0, tcp://host:port, or udp://host:port.');
}

/**
 * TCP link for Node (CLI and tests only): a device, emulator (QEMU serial
 * chardev) or serial-to-network bridge at tcp://host:port.
 */
import { Socket } from 'node:net';
import { LinkOpenError } from './link.ts';
import { parseNetAddress } from './net-address.ts';
import { SocketLink } from './node-socket.ts';

export interface TcpOptions {
  /** Give up connecting after this long; default 5000 ms. */
  connectTimeoutMs?: number;
}

/** Parse "tcp://host:port" (IPv6 as tcp://[::1]:port). Throws LinkOpenError('failed') on a bad spec. */
export function parseTcpSpec(spec: string, opts: { listen?: boolean } = {}): { host: string; port: number } {
  const { host, port } = parseNetAddress(spec, 'tcp', 'Write it as tcp://host:port, e.g. tcp://127.0.0.1:5556 or tcp://[::1]:5556.', opts);
  return { host, port };
}

/** Map a connect error to a typed LinkOpenError. Exported for tests. */
export function tcpOpenError(where: string, e: NodeJS.ErrnoException): LinkOpenError {
  switch (e.code) {
    case 'ECONNREFUSED':
      return new LinkOpenError('gone', `${where}: connection refused — nothing is listening there`, 'Start the device, emulator or bridge first, and check the host and port.', e);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new LinkOpenError('gone', `${where}: host not found (${e.code})`, 'Check the host name.', e);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new LinkOpenError('gone', `${where}: host unreachable (${e.code})`, 'Check the network path to the device and that it is powered.', e);
    case 'EACCES':
    case 'EPERM':
      return new LinkOpenError('permission', `${where}: connection not permitted (${e.code})`, 'A firewall or sandbox blocks the connection.', e);
    default:
      return new LinkOpenError('failed', `${where}: cannot connect (${e.code ?? e.message})`, 'Check the address and that the device accepts TCP connections.', e);
  }
}

export async function openTcpLink(spec: string, opts: TcpOptions = {}): Promise<SocketLink> {
  const { host, port } = parseTcpSpec(spec);
  const where = `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const timeoutMs = opts.connectTimeoutMs ?? 5000;
  const sock = new Socket({ allowHalfOpen: false });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(tcpOpenError(where, Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    }, timeoutMs);
    const onError = (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      reject(tcpOpenError(where, e));
    };
    sock.once('error', onError);
    sock.connect({ host, port }, () => {
      clearTimeout(timer);
      sock.off('error', onError);
      resolve();
    });
  });
  sock.setNoDelay(true);
  return new SocketLink(sock, where, undefined, (why) => `${where} disconnected (${why})`);
}

/**
 * SMP over UDP for Node (CLI and tests only): udp://host:port, as Zephyr's
 * SMP UDP transport (CONFIG_MCUMGR_TRANSPORT_UDP) serves it on port 1337.
 *
 * A datagram link: every write is one datagram and every chunk read is one
 * datagram, so one SMP packet travels per datagram with no framing. Writes
 * larger than the path's payload limit (`datagram.maxPayload`, by default an
 * Ethernet MTU of 1500 less the IP and UDP headers) are refused before they
 * are sent: the session keeps its packets under it. UDP has no connection,
 * so the device going away is noticed when the OS reports the port
 * unreachable (ICMP) after a write: the link is then lost.
 *
 * Also the listening side (`fieldbench device --listen udp://...`): one Link
 * per remote address, served by the reference device.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { lookup } from 'node:dns/promises';
import { LinkOpenError, type DatagramInfo } from './link.ts';
import { LinkClosedError, NodeLink } from './node-socket.ts';
import { parseNetAddress } from './net-address.ts';

/** Ethernet MTU (1500) less the IPv4 (20) or IPv6 (40) header and the UDP header (8). */
export const UDP_PAYLOAD_IPV4 = 1472;
export const UDP_PAYLOAD_IPV6 = 1452;
/** Zephyr's SMP UDP port (CONFIG_MCUMGR_TRANSPORT_UDP_PORT). */
export const SMP_UDP_PORT = 1337;

export interface UdpSpec {
  host: string;
  port: number;
  /** Largest datagram payload, from ?mtu=N (an IP MTU) or the default for the address family. */
  maxPayload?: number;
}

/** Parse "udp://host:port" (IPv6 as udp://[::1]:port; optional ?mtu=N, the path's IP MTU). */
export function parseUdpSpec(spec: string, opts: { listen?: boolean } = {}): UdpSpec {
  const { host, port, url: u, bad } = parseNetAddress(
    spec,
    'udp',
    'Write it as udp://host:port, e.g. udp://127.0.0.1:1337 or udp://[::1]:1337 (optionally ?mtu=1280).',
    { listen: opts.listen, query: true },
  );
  let maxPayload: number | undefined;
  for (const [k, v] of u.searchParams) {
    if (k !== 'mtu') throw bad();
    const mtu = Number(v);
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) {
      throw new LinkOpenError('failed', `bad MTU ${JSON.stringify(v)} in ${spec}`, 'Give the path\'s IP MTU as an integer from 576 to 65535, e.g. ?mtu=1280.');
    }
    maxPayload = mtu - (isIPv6(host) ? 48 : 28);
  }
  return { host, port, ...(maxPayload !== undefined ? { maxPayload } : {}) };
}

/** Errors that mean the other end is not there (ICMP port or host unreachable). */
const LOST = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/**
 * A Link over a dgram socket. `send` transmits one datagram; incoming
 * datagrams are fed with `deliver`. Used by the client (connected socket) and
 * by the listener (one per remote address, sharing the server socket).
 */
export class DatagramLink extends NodeLink {
  readonly datagram: DatagramInfo;

  constructor(
    label: string,
    maxPayload: number,
    private readonly sendDatagram: (d: Uint8Array) => Promise<void>,
    private readonly releaseSocket: () => Promise<void>,
  ) {
    // datagrams queue as they come (the kernel buffer would hold them anyway); count them, not bytes
    super(label, { highWaterMark: 256 });
    this.datagram = { maxPayload };
  }

  /** One datagram from the peer. */
  deliver(d: Uint8Array): void {
    this.enqueue(d);
  }

  protected async send(chunk: Uint8Array): Promise<void> {
    if (chunk.length > this.datagram.maxPayload) {
      // a stream whose write rejects is errored for good: end the link with the reason
      const e = new RangeError(`a ${chunk.length}-byte datagram exceeds the path's ${this.datagram.maxPayload}-byte payload limit (MTU); it was not sent`);
      this.fail(e.message);
      throw e;
    }
    // dgram keeps a reference until the callback; copy so callers may reuse their buffer at once
    try {
      await this.sendDatagram(chunk.slice());
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (LOST.has(code)) this.lose(code);
      if (this.outcome) throw new LinkClosedError(this.outcome);
      throw e;
    }
  }

  protected release(): Promise<void> {
    return this.releaseSocket();
  }

  /** The peer is unreachable (ICMP), or the socket failed. */
  lose(why: string): void {
    this.finish({ reason: 'lost', message: `${this.label}: device unreachable (${why})` });
  }

  fail(message: string): void {
    this.finish({ reason: 'error', message });
  }
}

function closeSocket(sock: Socket): Promise<void> {
  return new Promise((r) => {
    try {
      sock.close(() => r());
    } catch {
      r(); // already closed
    }
  });
}

export interface UdpOptions {
  /** Override the datagram payload limit (tests). */
  maxPayload?: number;
}

/** Open a client link to udp://host:port (a connected socket: only that address's datagrams arrive). */
export async function openUdpLink(spec: string, opts: UdpOptions = {}): Promise<DatagramLink & { localPort: number }> {
  const parsed = parseUdpSpec(spec);
  let address = parsed.host;
  if (!/^[\d.]+$/.test(address) && !isIPv6(address)) {
    try {
      address = (await lookup(address)).address;
    } catch (e) {
      throw new LinkOpenError('gone', `${spec}: host not found (${(e as NodeJS.ErrnoException).code ?? e})`, 'Check the host name.', e);
    }
  }
  const v6 = isIPv6(address);
  const where = `udp://${v6 ? `[${address}]` : address}:${parsed.port}`;
  const sock = createSocket({ type: v6 ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const kind = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission' : e.code === 'EADDRNOTAVAIL' || e.code === 'ENETUNREACH' ? 'gone' : 'failed';
      reject(new LinkOpenError(kind, `${where}: cannot open a UDP socket (${e.code ?? e.message})`, kind === 'gone' ? 'Check the address and the network path to the device.' : 'A firewall or sandbox blocks the socket.', e));
    });
    sock.connect(parsed.port, address, () => resolve());
  });
  sock.removeAllListeners('error');
  const maxPayload = opts.maxPayload ?? parsed.maxPayload ?? (v6 ? UDP_PAYLOAD_IPV6 : UDP_PAYLOAD_IPV4);
  const link = new DatagramLink(
    where,
    maxPayload,
    (d) => new Promise<void>((res, rej) => sock.send(d, (e) => (e ? rej(e) : res()))),
    () => closeSocket(sock),
  ) as DatagramLink & { localPort: number };
  link.localPort = sock.address().port;
  sock.on('message', (m: Buffer) => link.deliver(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)));
  sock.on('error', (e: NodeJS.ErrnoException) => {
    const code = e.code ?? '';
    if (LOST.has(code)) link.lose(code);
    else link.fail(`${where}: ${e.message}`);
  });
  return link;
}

export interface UdpListener {
  /** The bound address as udp://host:port. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Listen on udp://host:port; `onLink` gets one Link per remote address (a new
 * one when a client shows up from a new port, e.g. after a restart).
 */
export async function listenUdp(spec: string, onLink: (link: DatagramLink) => void, opts: UdpOptions = {}): Promise<UdpListener> {
  const parsed = parseUdpSpec(spec, { listen: true });
  const v6 = isIPv6(parsed.host);
  const sock = createSocket({ type: v6 ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', (e: NodeJS.ErrnoException) => reject(new LinkOpenError('failed', `cannot listen on ${spec} (${e.code ?? e.message})`, 'Choose a free port (0 lets the OS choose).', e)));
    sock.bind(parsed.port, parsed.host, () => resolve());
  });
  sock.removeAllListeners('error');
  sock.on('error', () => {
    /* per-client ICMP errors on an unconnected socket are not the listener's concern */
  });
  const maxPayload = opts.maxPayload ?? parsed.maxPayload ?? (v6 ? UDP_PAYLOAD_IPV6 : UDP_PAYLOAD_IPV4);
  const clients = new Map<string, DatagramLink>();
  sock.on('message', (m: Buffer, rinfo: RemoteInfo) => {
    const key = `${rinfo.address}|${rinfo.port}`;
    let link = clients.get(key);
    if (!link) {
      const l = new DatagramLink(
        `udp client ${rinfo.family === 'IPv6' ? `[${rinfo.address}]` : rinfo.address}:${rinfo.port}`,
        maxPayload,
        (d) => new Promise<void>((res, rej) => sock.send(d, rinfo.port, rinfo.address, (e) => (e ? rej(e) : res()))),
        async () => void clients.delete(key),
      );
      link = l;
      clients.set(key, l);
      onLink(l);
    }
    link.deliver(new Uint8Array(m.buffer, m.byteOffset, m.byteLength));
  });
  const port = sock.address().port;
  return {
    url: `udp://${v6 ? `[${parsed.host}]` : parsed.host}:${port}`,
    port,
    async close() {
      for (const l of [...clients.values()]) await l.close();
      await closeSocket(sock);
    },
  };
}

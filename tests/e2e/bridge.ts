/**
 * The Node end of the fake navigator.serial / navigator.usb: a WebSocket server
 * on 127.0.0.1 where every connection from the page is one "cable". By default
 * each cable gets a fresh reference device (`new ReferenceDevice().serve(link)`);
 * with FIELDBENCH_E2E_PEER=tcp://host:port or =/dev/pts/N (a pty, e.g. from
 * socat or a Zephyr native_sim build) the bytes are forwarded to that real peer.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Link, LinkClosed } from '../../src/core/link/link.ts';
import { ReferenceDevice } from '../../src/device/device.ts';

export interface Bridge {
  url: string;
  /** Connections seen so far, by transport ('serial' | 'usb'). */
  connections: { transport: string; baud?: number }[];
  /** Drop every open cable from the device side (the device resets / goes away). */
  dropAll(): void;
  close(): Promise<void>;
}

/** A Link over one WebSocket, as the device sees it. */
function wsLink(ws: WebSocket, label: string): Link {
  let resolveClosed!: (c: LinkClosed) => void;
  const closed = new Promise<LinkClosed>((r) => (resolveClosed = r));
  let done = false;
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const finish = (c: LinkClosed) => {
    if (done) return;
    done = true;
    resolveClosed(c);
    try {
      ctrl.close();
    } catch {
      /* already closed */
    }
  };
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
    },
  });
  ws.on('message', (data: Buffer) => {
    if (!done) ctrl.enqueue(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
  });
  ws.on('close', () => finish({ reason: 'lost', message: 'host closed the cable' }));
  ws.on('error', (e) => finish({ reason: 'error', message: e.message }));
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (done) throw new Error(`${label} is closed`);
      return new Promise<void>((res, rej) => ws.send(chunk.slice(), (err) => (err ? rej(err) : res())));
    },
  });
  return {
    label,
    readable,
    writable,
    closed,
    async close() {
      finish({ reason: 'closed' });
      ws.close();
    },
  };
}

function forward(ws: WebSocket, peer: string): void {
  let out: { write(b: Uint8Array): void; destroy(): void };
  const onData = (b: Buffer) => ws.readyState === ws.OPEN && ws.send(b);
  if (peer.startsWith('tcp://')) {
    const u = new URL(peer);
    const sock: Socket = tcpConnect(Number(u.port), u.hostname);
    sock.on('data', onData);
    sock.on('close', () => ws.close());
    sock.on('error', () => ws.close());
    out = sock;
  } else {
    const rs = createReadStream(peer);
    const wsOut = createWriteStream(peer, { flags: 'r+' });
    rs.on('data', (b) => onData(b as Buffer));
    rs.on('error', () => ws.close());
    out = {
      write: (b) => void wsOut.write(b),
      destroy: () => {
        rs.destroy();
        wsOut.destroy();
      },
    };
  }
  ws.on('message', (data: Buffer) => out.write(data));
  ws.on('close', () => out.destroy());
}

export async function startBridge(opts: { peer?: string } = {}): Promise<Bridge> {
  const peer = opts.peer ?? process.env.FIELDBENCH_E2E_PEER;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((res, rej) => {
    wss.once('listening', res);
    wss.once('error', rej);
  });
  const connections: Bridge['connections'] = [];
  wss.on('connection', (ws, req) => {
    const q = new URL(req.url ?? '/', 'ws://x').searchParams;
    const transport = q.get('transport') ?? 'serial';
    const baud = q.has('baud') ? Number(q.get('baud')) : undefined;
    connections.push({ transport, baud });
    if (peer) forward(ws, peer);
    else void new ReferenceDevice().serve(wsLink(ws, `e2e ${transport} cable`)).catch(() => {});
  });
  const addr = wss.address();
  if (typeof addr !== 'object' || !addr) throw new Error('bridge has no address');
  return {
    url: `ws://127.0.0.1:${addr.port}/`,
    connections,
    dropAll() {
      for (const c of wss.clients) c.terminate();
    },
    close: () =>
      new Promise<void>((res) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => res());
      }),
  };
}

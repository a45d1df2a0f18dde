/**
 * The Node end of the fake navigator.serial / navigator.usb: a WebSocket server
 * on 127.0.0.1 where every connection from the page is one "cable". By default
 * each cable gets a fresh reference device (`new ReferenceDevice().serve(link)`);
 * with FIELDBENCH_E2E_PEER=tcp://host:port or =/dev/pts/N (a pty, e.g. from
 * socat or a Zephyr native_sim build) the bytes are forwarded to that real peer.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import type { Link, LinkClosed } from '../../src/core/link/link.ts';
import { openTcpLink } from '../../src/core/link/node-tcp.ts';
import { openTtyLink } from '../../src/core/link/node-tty.ts';
import { ReferenceDevice } from '../../src/device/device.ts';

export interface Bridge {
  url: string;
  /** Connections seen so far, by transport ('serial' | 'usb'). */
  connections: { transport: string; baud?: number }[];
  /** Drop every open cable from the device side (the device resets / goes away). */
  dropAll(): void;
  /** Serve the next cables with this device (e.g. a provisioned secure device made by the test); null: a fresh plain one each. */
  useDevice(device: ReferenceDevice | null): void;
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

/** Carry bytes between the page's cable and a real peer, through the project's own Node links. */
function forward(ws: WebSocket, peer: string, baud: number | undefined): void {
  const pending: Buffer[] = [];
  let link: Link | null = null;
  let writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  ws.on('message', (data: Buffer) => {
    if (writer) void writer.write(new Uint8Array(data)).catch(() => ws.close());
    else pending.push(data);
  });
  ws.on('close', () => void link?.close());
  const open = peer.startsWith('tcp://') ? openTcpLink(peer) : openTtyLink(peer, { baudRate: baud ?? 115200 });
  open.then(
    async (l) => {
      link = l;
      if (ws.readyState !== ws.OPEN) return void l.close();
      writer = l.writable.getWriter();
      for (const b of pending.splice(0)) void writer.write(new Uint8Array(b)).catch(() => {});
      void l.closed.then(() => ws.close());
      const reader = l.readable.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (ws.readyState === ws.OPEN) ws.send(value);
        }
      } catch {
        /* reported through link.closed */
      }
      ws.close();
    },
    (e: unknown) => {
      console.error(`e2e bridge: cannot reach FIELDBENCH_E2E_PEER ${peer}: ${e instanceof Error ? e.message : String(e)}`);
      ws.close();
    },
  );
}

/**
 * `serve`: who answers a cable (default: a fresh reference device per cable). The fake serial port
 * sends `port=<n>` with every cable, so a bench test can keep one unit per port across reopens
 * (a unit on a jig stays the same unit when the station reconnects after a reset).
 */
export async function startBridge(opts: { peer?: string; serve?: (link: Link, query: URLSearchParams) => void } = {}): Promise<Bridge> {
  const peer = opts.serve ? undefined : (opts.peer ?? process.env.FIELDBENCH_E2E_PEER);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((res, rej) => {
    wss.once('listening', res);
    wss.once('error', rej);
  });
  const connections: Bridge['connections'] = [];
  let fixed: ReferenceDevice | null = null;
  wss.on('connection', (ws, req) => {
    const q = new URL(req.url ?? '/', 'ws://x').searchParams;
    const transport = q.get('transport') ?? 'serial';
    const baud = q.has('baud') ? Number(q.get('baud')) : undefined;
    connections.push({ transport, baud });
    if (opts.serve) opts.serve(wsLink(ws, `e2e ${transport} cable`), q);
    else if (peer) forward(ws, peer, baud);
    else void (fixed ?? new ReferenceDevice()).serve(wsLink(ws, `e2e ${transport} cable`)).catch(() => {});
  });
  const addr = wss.address();
  if (typeof addr !== 'object' || !addr) throw new Error('bridge has no address');
  return {
    url: `ws://127.0.0.1:${addr.port}/`,
    connections,
    dropAll() {
      for (const c of wss.clients) c.terminate();
    },
    useDevice(device) {
      fixed = device;
    },
    close: () =>
      new Promise<void>((res) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => res());
      }),
  };
}

/**
 * A session binds a link, a framing codec and an SMP client, and learns the
 * device's buffer limits (MCUmgr params) before anything else is sent.
 */
import type { Link, LinkClosed } from '../link/link.ts';
import { SmpClient, type LogEvent } from './client.ts';
import { SmpError } from './errors.ts';
import { CONSOLE_LINE_MAX, type Framing, type FramingStats, createDecoder, encodeFrames } from './framing.ts';
import { Op } from './header.ts';
import { concatBytes } from '../base/bytes.ts';

export type { LogEvent } from './client.ts';

export interface SessionOptions {
  framing?: Framing;
  /** Console line length limit of the device (Zephyr: 127). */
  lineMax?: number;
  /** Pause between console lines, for links with no line-rate pacing of their own (pty, TCP). */
  lineGapMs?: number;
  timeoutMs?: number;
  log?: (e: LogEvent) => void;
  logBodies?: boolean;
  /** Buffer limits to assume when the device cannot tell (no params command). */
  fallbackParams?: DeviceParams;
  /** Cap on request packets below what the device reports (fragile devices, e.g. a 16 KiB-RAM nRF51). */
  maxPacket?: number;
  /** Cap on requests in flight below buf_count - 1. */
  window?: number;
  /** First sequence number (default random), for reproducible transcripts. */
  initialSeq?: number;
  /** Skip the params read (for tests of the raw client). */
  skipParams?: boolean;
}

/** Reads the device's MCUmgr buffer limits (the OS group's params command; supplied from above, see groups/session.ts). */
export type ParamsReader = (c: SmpClient) => Promise<{ bufSize: number; bufCount: number }>;

export interface SmpSessionOptions extends SessionOptions {
  /** How to ask the device for its buffer limits; without it the fallback limits are used. */
  readParams?: ParamsReader;
}

export interface DeviceParams {
  bufSize: number;
  bufCount: number;
  /** false when the device did not report them and fallbacks are in use. */
  reported: boolean;
}

export interface SmpSession {
  client: SmpClient;
  params: DeviceParams;
  link: Link;
  framing: Framing;
  stats: FramingStats;
  closed: Promise<LinkClosed>;
  close(): Promise<void>;
}

/** Zephyr's defaults are 384 x 4; when unknown we assume less, so nothing is dropped. */
export const CONSERVATIVE_PARAMS: DeviceParams = { bufSize: 256, bufCount: 2, reported: false };

/**
 * Largest request packet a device with MCUmgr buffers of `bufSize` accepts.
 * Console framing: the 2-byte frame length and 2-byte CRC share the buffer
 * (Zephyr drops bufSize-3 .. bufSize silently). Raw: a request of bufSize
 * desynchronises some builds, so stay one below.
 */
export function maxRequestPacket(framing: Framing, bufSize: number): number {
  return framing === 'console' ? bufSize - 4 : bufSize - 1;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Open an SMP session over `link`. This layer knows no group: the caller
 * passes the params reader (groups/session.ts's openSession does).
 */
export async function openSmpSession(link: Link, opts: SmpSessionOptions = {}): Promise<SmpSession> {
  const framing = opts.framing ?? 'console';
  const lineMax = opts.lineMax ?? CONSOLE_LINE_MAX;
  const lineGapMs = opts.lineGapMs ?? 0;
  const log = opts.log;
  const writer = link.writable.getWriter();
  let sendChain: Promise<void> = Promise.resolve();

  const send = (packet: Uint8Array): Promise<void> => {
    const frames = encodeFrames(framing, packet, lineMax);
    // With no line gap, a packet's lines go down in one write (one USB transfer, one syscall).
    const run =
      lineGapMs > 0
        ? async () => {
            for (let i = 0; i < frames.length; i++) {
              await writer.write(frames[i]);
              await sleep(lineGapMs);
            }
          }
        : () => writer.write(frames.length === 1 ? frames[0] : concatBytes(...frames));
    const p = sendChain.then(run);
    sendChain = p.catch(() => {});
    return p;
  };

  const client = new SmpClient(send, { timeoutMs: opts.timeoutMs, log, logBodies: opts.logBodies, initialSeq: opts.initialSeq });
  const decoder = createDecoder(framing, (p) => client.receive(p), {
    acceptOps: [Op.ReadRsp, Op.WriteRsp],
    onDrop: (reason) => log?.({ type: 'drop', reason }),
    onNoise: log ? (line) => log({ type: 'noise', text: new TextDecoder().decode(line) }) : undefined,
  });

  const reader = link.readable.getReader();
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value) decoder.push(value);
      }
    } catch {
      /* link error: reported through link.closed */
    } finally {
      reader.releaseLock();
    }
  })();

  const closed = link.closed.then((c) => {
    client.fail(c.reason === 'closed' ? 'link closed' : `device disconnected: ${c.message}`);
    return c;
  });
  void pump.then(() => client.fail('link ended'));

  let params: DeviceParams = opts.fallbackParams ?? CONSERVATIVE_PARAMS;
  if (!opts.skipParams && opts.readParams) {
    try {
      const p = await opts.readParams(client);
      params = { bufSize: p.bufSize, bufCount: p.bufCount, reported: true };
    } catch (e) {
      if (e instanceof SmpError && (e.notSupported || e.kind === 'group')) {
        log?.({ type: 'warn', message: `device does not report MCUmgr params; assuming ${params.bufSize} x ${params.bufCount}` });
      } else {
        writer.releaseLock();
        throw e;
      }
    }
  }
  client.setLimits(
    Math.min(maxRequestPacket(framing, params.bufSize), opts.maxPacket ?? Infinity),
    Math.min(params.bufCount - 1, opts.window ?? Infinity),
  );

  return {
    client,
    params,
    link,
    framing,
    stats: decoder.stats,
    closed,
    async close() {
      client.fail('session closed');
      try {
        writer.releaseLock();
      } catch {
        /* pending writes */
      }
      await link.close();
    },
  };
}

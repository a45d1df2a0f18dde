/**
 * A session binds a link, a framing codec and an SMP client, and learns the
 * device's buffer limits (MCUmgr params) before anything else is sent.
 */
import type { Link, LinkClosed } from '../link/link.ts';
import { SmpClient, type LogEvent } from './client.ts';
import { SmpError } from './errors.ts';
import { CONSOLE_LINE_MAX, type Framing, type FramingStats, consolePayloadPerLine, createDecoder, encodeFrames } from './framing.ts';
import { Op } from './header.ts';
import { concatBytes } from '../base/bytes.ts';
import { CONSOLE_RX_LINES, Pacer, type Pacing, type PacingStore } from './pacing.ts';

export type { Pacing, PacingStore } from './pacing.ts';

export type { LogEvent } from './client.ts';

export interface SessionOptions {
  /**
   * How packets travel. Default 'console'. 'auto' finds it: the params read is
   * sent console-framed, then raw, until one is answered (both decoders listen
   * meanwhile). A datagram link (UDP) always uses 'datagram'.
   */
  framing?: Framing | 'auto';
  /** Console line length limit of the device (Zephyr: 127). */
  lineMax?: number;
  /**
   * Fixed pause between console lines. Unset (the default), the session
   * paces itself: it starts with no gap and backs off when the device loses
   * requests (see pacing.ts).
   */
  lineGapMs?: number;
  timeoutMs?: number;
  log?: (e: LogEvent) => void;
  logBodies?: boolean;
  /** Buffer limits to assume when the device cannot tell (no params command). */
  fallbackParams?: DeviceParams;
  /** Cap on request packets below what the device reports (fragile devices); normally found by pacing. */
  maxPacket?: number;
  /** Cap on requests in flight below buf_count - 1; normally found by pacing. */
  window?: number;
  /**
   * Console framing: console lines in flight at most (the UART's line buffers); default
   * CONSOLE_RX_LINES (Zephyr's default). A request always goes when nothing else is in flight.
   */
  rxLines?: number;
  /** First sequence number (default random), for reproducible transcripts. */
  initialSeq?: number;
  /** Skip the params read (for tests of the raw client). */
  skipParams?: boolean;
  /** Remember what pacing worked for this device (`pacingKey`), and start there next time. */
  pacingStore?: PacingStore;
  /** The device's key in pacingStore (its port, or its identity). */
  pacingKey?: string;
  /** Start at this pacing level (overrides the store). */
  pacingLevel?: number;
  /** Reads (and echo) are sent again this many times after a timeout, backing off each time; default 0 (the CLI uses 2). */
  readRetries?: number;
  /** framing 'auto': how long to wait for each probe's answer; default 700 ms (stream), longer when the device boots. */
  probeMs?: number;
  /** framing 'auto': which framing to probe first (default: the remembered one, else console). */
  probeFirst?: 'console' | 'raw';
}

/** Reads the device's MCUmgr buffer limits (the OS group's params command; supplied from above, see groups/session.ts). */
export type ParamsReader = (c: SmpClient, o?: { timeoutMs?: number; retries?: number }) => Promise<{ bufSize: number; bufCount: number }>;

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
  /** The framing in use (found, when 'auto' was asked). */
  framing: Framing;
  /** Whether the framing was found by probing rather than given. */
  framingDetected: boolean;
  stats: FramingStats;
  /** The pacing in use now (it may back off during the session). */
  readonly pacing: Pacing;
  closed: Promise<LinkClosed>;
  close(): Promise<void>;
  /**
   * Buffer limits measured after opening (a device that does not report
   * params, e.g. MCUboot serial recovery before mcumgr params support): they
   * replace the fallbacks, and pacing keeps applying its caps on top.
   */
  measuredParams?(p: { bufSize: number; bufCount: number }): void;
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
  return framing === 'console' ? bufSize - 4 : framing === 'raw' ? bufSize - 1 : bufSize;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Open an SMP session over `link`. This layer knows no group: the caller
 * passes the params reader (groups/session.ts's openSession does).
 */
export async function openSmpSession(link: Link, opts: SmpSessionOptions = {}): Promise<SmpSession> {
  const asked = link.datagram ? 'datagram' : (opts.framing ?? 'console');
  if (link.datagram && opts.framing && opts.framing !== 'datagram' && opts.framing !== 'auto') {
    throw new SmpError('closed', `${link.label} carries one packet per datagram: no ${opts.framing} framing`);
  }
  let framing: Framing = asked === 'auto' ? 'console' : asked;
  const lineMax = opts.lineMax ?? CONSOLE_LINE_MAX;
  const log = opts.log;
  const writer = link.writable.getWriter();
  let sendChain: Promise<void> = Promise.resolve();
  // a copy: measuredParams() updates it in place
  let params: DeviceParams = { ...(opts.fallbackParams ?? CONSERVATIVE_PARAMS) };

  let probing = asked === 'auto';
  const remembered = opts.pacingKey ? opts.pacingStore?.get(opts.pacingKey) : undefined;
  let client!: SmpClient;
  const perLine = consolePayloadPerLine(lineMax);
  /** Console lines a request packet of `bytes` takes (2-byte length and CRC included). */
  const linesOf = (bytes: number) => Math.ceil((bytes + 4) / perLine);
  const applyLimits = () => {
    const p = pacer.pacing;
    const device = Math.min(maxRequestPacket(framing, params.bufSize), opts.maxPacket ?? Infinity, link.datagram?.maxPayload ?? Infinity);
    // the packets ops size themselves: at most p.maxLines console lines (raw, UDP: half the buffer at that step)
    const paced = p.maxLines === Infinity ? Infinity : framing === 'console' ? p.maxLines * perLine - 4 : Math.max(128, Math.floor(device / 2));
    client.setLimits(Math.min(device, paced), Math.min(params.bufCount - 1, opts.window ?? Infinity, p.window), device);
    if (framing === 'console') client.setBudget(linesOf, opts.rxLines ?? CONSOLE_RX_LINES);
    else client.setBudget(() => 1, Infinity);
  };
  const pacer = new Pacer(opts.pacingLevel ?? remembered?.level ?? 0, opts.lineGapMs, (p, why) => {
    applyLimits();
    log?.({ type: 'warn', message: `${why}: pacing the link more carefully (step ${p.level}: ${p.lineGapMs} ms between lines, window ${p.window === Infinity ? 'full' : p.window}, packets ${p.maxLines === Infinity ? 'full size' : `<= ${client.maxPacket} bytes`})` });
  });

  const send = (packet: Uint8Array): Promise<void> => {
    const f = framing;
    const frames = encodeFrames(f, packet, lineMax);
    const gap = f === 'console' ? pacer.pacing.lineGapMs : 0;
    // With no line gap, a packet's lines go down in one write (one USB transfer, one syscall).
    const run =
      gap > 0
        ? async () => {
            for (let i = 0; i < frames.length; i++) {
              await writer.write(frames[i]);
              await sleep(gap);
            }
          }
        : () => writer.write(frames.length === 1 ? frames[0] : concatBytes(...frames));
    const p = sendChain.then(run);
    sendChain = p.catch(() => {});
    return p;
  };

  client = new SmpClient(send, {
    timeoutMs: opts.timeoutMs,
    log,
    logBodies: opts.logBodies,
    initialSeq: opts.initialSeq,
    readRetries: opts.readRetries ?? 0,
    // a probe in the wrong framing is not a loss: only back off once the framing is known
    onLoss: (what) => void (probing || pacer.backOff(what)),
    onReply: () => pacer.ok(),
  });
  const acceptOps: number[] = [Op.ReadRsp, Op.WriteRsp];
  const decoderOpts = {
    acceptOps,
    onDrop: (reason: string) => log?.({ type: 'drop', reason }),
    onNoise: log ? (line: Uint8Array) => log({ type: 'noise', text: new TextDecoder().decode(line) }) : undefined,
  };
  let decoder = createDecoder(framing, (p) => client.receive(p), decoderOpts);
  // While probing, a raw decoder listens too (its drops are expected and not logged).
  let probeDecoder: ReturnType<typeof createDecoder> | null = asked === 'auto' ? createDecoder('raw', (p) => client.receive(p), { acceptOps }) : null;

  const reader = link.readable.getReader();
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value) {
          decoder.push(value);
          probeDecoder?.push(value);
        }
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

  const readParamsOnce = async (timeoutMs?: number) => {
    if (!opts.readParams) throw new SmpError('closed', 'no MCUmgr params reader given');
    const p = await opts.readParams(client, { timeoutMs, retries: 0 });
    params = { bufSize: p.bufSize, bufCount: p.bufCount, reported: true };
  };
  const noParams = (e: unknown) => e instanceof SmpError && (e.notSupported || e.kind === 'group');

  try {
    if (asked === 'auto') {
      // Find the framing: whichever the device answers (even "not supported") is its own.
      const probeMs = opts.probeMs ?? 700;
      const deadline = Date.now() + Math.max(opts.timeoutMs ?? 5000, probeMs * 2);
      const rawFirst = opts.probeFirst ? opts.probeFirst === 'raw' : remembered?.framing === 'raw';
      const order: ('console' | 'raw')[] = rawFirst ? ['raw', 'console'] : ['console', 'raw'];
      let found = false;
      for (let i = 0; !found; i++) {
        framing = order[i % 2];
        // a raw probe leaves an unterminated line in a console device's buffer: end it first
        if (framing === 'console' && i > 0) await writer.write(new Uint8Array([0x0a]));
        try {
          await readParamsOnce(probeMs);
          found = true;
        } catch (e) {
          if (noParams(e)) {
            found = true;
            log?.({ type: 'warn', message: `device does not report MCUmgr params; assuming ${params.bufSize} x ${params.bufCount}` });
          } else if (!(e instanceof SmpError && e.kind === 'timeout') || Date.now() > deadline) {
            throw e instanceof SmpError && e.kind === 'timeout' ? new SmpError('timeout', `no answer in console or raw framing within ${Math.round(Date.now() - deadline + Math.max(opts.timeoutMs ?? 5000, probeMs * 2))} ms`) : e;
          }
        }
      }
      // Which decoder heard it decides (a console probe can be answered late, after the raw one went).
      const rawHeard = probeDecoder!.stats.packets > 0 && decoder.stats.packets === 0;
      framing = rawHeard ? 'raw' : framing === 'raw' && decoder.stats.packets > 0 ? 'console' : framing;
      if (framing === 'raw') decoder = probeDecoder!;
      probeDecoder = null;
      probing = false;
      log?.({ type: 'info', message: `framing: ${framing} (found by probing)` });
    } else if (!opts.skipParams && opts.readParams) {
      try {
        await readParamsOnce();
      } catch (e) {
        if (noParams(e)) {
          log?.({ type: 'warn', message: `device does not report MCUmgr params; assuming ${params.bufSize} x ${params.bufCount}` });
        } else if (e instanceof SmpError && e.kind === 'timeout' && opts.readRetries !== 0) {
          // one more try, paced more carefully (a device that dropped the first line)
          pacer.backOff('no reply to the MCUmgr params read');
          try {
            await readParamsOnce();
          } catch (e2) {
            if (!noParams(e2)) throw e2;
          }
        } else throw e;
      }
    }
  } catch (e) {
    writer.releaseLock();
    throw e;
  }
  applyLimits();

  const remember = () => {
    if (!opts.pacingStore || !opts.pacingKey) return;
    if (!pacer.proven && pacer.history.length === 0) return;
    opts.pacingStore.set(opts.pacingKey, { level: pacer.pacing.level, ...(framing === 'datagram' ? {} : { framing }), at: Date.now() });
  };

  return {
    client,
    params,
    link,
    framing,
    framingDetected: asked === 'auto' && framing !== 'datagram',
    stats: decoder.stats,
    get pacing() {
      return pacer.pacing;
    },
    closed,
    measuredParams(p) {
      params.bufSize = p.bufSize;
      params.bufCount = p.bufCount;
      applyLimits();
    },
    async close() {
      remember();
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

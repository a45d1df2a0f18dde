/** Shared by the CLI verbs that talk to a device: --port, --baud, --framing, --line-gap, --timeout, --verbose. */
import { type Link, LinkOpenError } from '../core/link/link.ts';
import { openNodeLink } from '../core/link/node.ts';
import { SmpError } from '../core/smp/errors.ts';
import type { Framing } from '../core/smp/framing.ts';
import { type LogEvent, type SmpSession, openSession } from '../core/groups/session.ts';
import { MAX_PACING_LEVEL, type PacingStore } from '../core/smp/pacing.ts';
import { type CliIo, type ParsedArgs, UsageError } from './command.ts';
import { filePacingStore } from './pacing-cache.ts';

export const CONNECT_OPTIONS = ['port', 'baud', 'framing', 'line-gap', 'timeout', 'max-packet', 'window', 'wait'];
/** What connect() uses when an option is not given (the help below is built from these). */
export const CONNECT_DEFAULTS = { baud: 115200, timeoutMs: 5000, waitMs: 10000 } as const;
export const CONNECT_USAGE = `  --port PORT       /dev/ttyACM0, /dev/pts/N, tcp://127.0.0.1:PORT or udp://HOST:PORT (required)
  --baud N          serial line rate (default ${CONNECT_DEFAULTS.baud})
  --framing F       console or raw; found by probing when not given (UDP: one packet per datagram)
  --line-gap MS     fix the pause between console lines; by default there is none at first and the
                    tool paces itself, backing off when the device loses requests, and remembers
                    what worked for the port in ~/.cache/fieldbench/pacing.json (not for /dev/pts/N)
  --timeout MS      per-request timeout (default ${CONNECT_DEFAULTS.timeoutMs})
  --wait MS         how long to wait for a device that does not answer yet (booting, or still busy
                    with an interrupted operation) before giving up (default ${CONNECT_DEFAULTS.waitMs})
  --max-packet N    send packets of at most N bytes, below the device's buffer (normally found)
  --window N        keep at most N requests in flight, below buf_count - 1 (normally found)
  --verbose         log every request and reply on stderr`;

export function describeLog(e: LogEvent): string {
  switch (e.type) {
    case 'tx':
    case 'rx':
      return `${e.type} group ${e.group} cmd ${e.id} seq ${e.seq} (${e.bytes} bytes)`;
    case 'drop':
      return `dropped a frame: ${e.reason}`;
    case 'noise':
      return `console: ${e.text}`;
    default:
      return `${e.type}: ${e.message}`;
  }
}

/** Why a device gave no SMP answer, from what the link saw: only causes that fit the evidence. */
export function noAnswerCauses(seen: { bytes: number; noiseLines: number; drops: number; framingGiven?: Framing; datagram: boolean; waitedMs: number }): string {
  const secs = (seen.waitedMs / 1000).toFixed(0);
  if (seen.datagram) {
    return `nothing came back within ${secs} s: the device is not running an SMP UDP server at that address, a firewall drops the datagrams, or it is still busy or booting`;
  }
  if (seen.bytes === 0) {
    return `the device sent nothing within ${secs} s: it is still busy (an interrupted upload finishing), booting or halted, or this is not its SMP port`;
  }
  if (seen.drops > 0) {
    return `it answered with ${seen.drops} damaged frame${seen.drops === 1 ? '' : 's'}: the line loses bytes (baud rate? cable?)`;
  }
  const what = seen.noiseLines > 0 ? `${seen.noiseLines} line${seen.noiseLines === 1 ? '' : 's'} of console text` : `${seen.bytes} bytes`;
  return seen.framingGiven
    ? `it sent ${what} but no SMP frame in ${seen.framingGiven} framing: if it speaks the other framing, leave --framing out to find it; else it has no SMP server on this port (a shell or log console)`
    : `it sent ${what} but no SMP frame in console or raw framing: this port is a shell or log console without an SMP server`;
}

export interface ConnectDeps {
  pacingStore?: PacingStore;
}

export async function connect(args: ParsedArgs, io: CliIo, deps: ConnectDeps = {}): Promise<SmpSession> {
  const port = args.get('port');
  if (!port) throw new UsageError('--port is required');
  const given = args.get('framing') as Framing | undefined;
  if (given !== undefined && given !== 'console' && given !== 'raw') throw new UsageError('--framing must be console or raw');
  const datagram = /^udp:\/\//i.test(port);
  if (datagram && given) throw new UsageError('--framing does not apply to udp://: one SMP packet per datagram');
  const num = (name: string, dflt: number) => {
    const v = args.get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a non-negative number`);
    return n;
  };
  const lineGapMs = args.has('line-gap') ? num('line-gap', 0) : undefined;
  const baudRate = num('baud', CONNECT_DEFAULTS.baud);
  const timeoutMs = num('timeout', CONNECT_DEFAULTS.timeoutMs);
  const waitMs = num('wait', CONNECT_DEFAULTS.waitMs);
  const maxPacket = args.has('max-packet') ? num('max-packet', 0) : undefined;
  const window = args.has('window') ? num('window', 1) : undefined;
  if (maxPacket !== undefined && maxPacket < 64) throw new UsageError('--max-packet must be at least 64');
  if (window !== undefined && window < 1) throw new UsageError('--window must be at least 1');
  const verbose = args.has('verbose');
  const pacingStore = deps.pacingStore ?? filePacingStore();
  const started = Date.now();
  let lastSeen = { bytes: 0, noiseLines: 0, drops: 0 };
  let waitedNote = false;
  for (let attempt = 0; ; attempt++) {
    let link;
    try {
      link = await openNodeLink(port, { baudRate });
    } catch (e) {
      if (e instanceof LinkOpenError) throw new Error(`${e.message}\n${e.remedy}`);
      throw e;
    }
    const seen = { bytes: 0, noiseLines: 0, drops: 0 };
    try {
      return await openSession(countingLink(link, seen), {
        framing: datagram ? undefined : (given ?? 'auto'),
        lineGapMs,
        timeoutMs,
        maxPacket,
        window,
        pacingStore,
        // a pty path is reused by whatever program opens the next one: nothing to remember there
        pacingKey: port.startsWith('/dev/pts/') ? undefined : `${port}${given ? `|${given}` : ''}`,
        probeMs: Math.min(timeoutMs, 1500),
        // A console probe read by a raw device is a bogus header that swallows the raw probe sent soon
        // after (until its input timeout): when a whole probe cycle went unanswered, the next attempt
        // starts with raw (docs/PROTOCOL.md, quirks). The first attempt stays console first (a shell
        // transport takes raw bytes badly).
        ...(attempt % 2 === 1 && !given && !datagram ? { probeFirst: 'raw' as const } : {}),
        readRetries: MAX_PACING_LEVEL,
        log: (e) => {
          if (e.type === 'noise') seen.noiseLines++;
          if (e.type === 'drop') seen.drops++;
          if (verbose) io.err(describeLog(e) + '\n');
        },
      });
    } catch (e) {
      await link.close();
      lastSeen = seen;
      const noAnswer = e instanceof SmpError && e.kind === 'timeout';
      if (!noAnswer) throw new Error(`no SMP session on ${port}: ${(e as Error).message}`);
      if (Date.now() - started < waitMs) {
        if (!waitedNote) {
          io.err(`no answer yet from ${port}; waiting up to ${Math.round(waitMs / 1000)} s for the device (it may be booting or still busy)\n`);
          waitedNote = true;
        }
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      throw new Error(`no SMP answer on ${port}: ${noAnswerCauses({ ...lastSeen, framingGiven: given, datagram, waitedMs: Date.now() - started })}`);
    }
  }
}

/** Count the bytes a link delivers, for a true diagnosis when nothing decodes. */
function countingLink(link: Link, seen: { bytes: number }): Link {
  const readable = link.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        seen.bytes += chunk.length;
        c.enqueue(chunk);
      },
    }),
  );
  return { label: link.label, readable, writable: link.writable, closed: link.closed, close: () => link.close(), baudRate: link.baudRate, datagram: link.datagram };
}

/** Shared by the CLI verbs that talk to a device: --port, --baud, --framing, --line-gap, --timeout, --verbose. */
import { LinkOpenError } from '../core/link/link.ts';
import { openNodeLink } from '../core/link/node.ts';
import type { Framing } from '../core/smp/framing.ts';
import { type LogEvent, type SmpSession, openSession } from '../core/groups/session.ts';
import { type CliIo, type ParsedArgs, UsageError } from './command.ts';

export const CONNECT_OPTIONS = ['port', 'baud', 'framing', 'line-gap', 'timeout', 'max-packet', 'window'];
export const CONNECT_USAGE = `  --port PORT       /dev/ttyACM0, /dev/pts/N, or tcp://127.0.0.1:PORT (required)
  --baud N          serial line rate (default 115200)
  --framing F       console (default) or raw
  --line-gap MS     pause between console lines (default 15 on ptys, which have no line rate of their
                    own and overrun a Zephyr native_sim UART's line buffers; 0 on serial ports and TCP)
  --timeout MS      per-request timeout (default 5000)
  --max-packet N    send packets of at most N bytes, below the device's buffer (fragile devices)
  --window N        keep at most N requests in flight, below buf_count - 1
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

export async function connect(args: ParsedArgs, io: CliIo): Promise<SmpSession> {
  const port = args.get('port');
  if (!port) throw new UsageError('--port is required');
  const framing = (args.get('framing') ?? 'console') as Framing;
  if (framing !== 'console' && framing !== 'raw') throw new UsageError('--framing must be console or raw');
  const num = (name: string, dflt: number) => {
    const v = args.get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a non-negative number`);
    return n;
  };
  const lineGapMs = num('line-gap', port.startsWith('/dev/pts/') ? 15 : 0);
  const baudRate = num('baud', 115200);
  const timeoutMs = num('timeout', 5000);
  const maxPacket = args.has('max-packet') ? num('max-packet', 0) : undefined;
  const window = args.has('window') ? num('window', 1) : undefined;
  if (maxPacket !== undefined && maxPacket < 64) throw new UsageError('--max-packet must be at least 64');
  if (window !== undefined && window < 1) throw new UsageError('--window must be at least 1');
  const verbose = args.has('verbose');
  let link;
  try {
    link = await openNodeLink(port, { baudRate });
  } catch (e) {
    if (e instanceof LinkOpenError) throw new Error(`${e.message}\n${e.remedy}`);
    throw e;
  }
  try {
    return await openSession(link, {
      framing,
      lineGapMs,
      timeoutMs,
      maxPacket,
      window,
      log: verbose ? (e) => io.err(describeLog(e) + '\n') : undefined,
    });
  } catch (e) {
    await link.close();
    throw new Error(`no SMP answer on ${port}: ${(e as Error).message}. Check the framing (--framing raw?) and that nothing else holds the port.`);
  }
}

/**
 * Open an SMP session that starts by reading the device's MCUmgr params (OS
 * group), so the client sizes its requests and window to the device. The
 * session machinery itself is in smp/session.ts, which knows no group.
 */
import type { Link } from '../link/link.ts';
import { openSmpSession, type SessionOptions, type SmpSession } from '../smp/session.ts';
import { readParams } from './os.ts';

export {
  CONSERVATIVE_PARAMS,
  maxRequestPacket,
  type DeviceParams,
  type LogEvent,
  type SessionOptions,
  type SmpSession,
} from '../smp/session.ts';

export function openSession(link: Link, opts: SessionOptions = {}): Promise<SmpSession> {
  return openSmpSession(link, { ...opts, readParams: (c, o) => readParams(c, o) });
}

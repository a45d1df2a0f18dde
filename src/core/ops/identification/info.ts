/**
 * Read what a device is: params, OS and bootloader info, supported groups,
 * firmware slots. An op (outcome.ts): progress states, then one Outcome; the
 * UI and the CLI only render them.
 */
import { type GroupInfo, listGroups } from '../../groups/enum.ts';
import { type ImageSlot, readState } from '../../groups/image.ts';
import { type BootloaderInfo, type OsInfoField, bootloaderInfo, osInfoAll } from '../../groups/os.ts';
import { SmpError } from '../../smp/errors.ts';
import type { DeviceParams, SmpSession } from '../../groups/session.ts';
import { type Op, type Outcome, cancellableSession, contract, done } from '../outcome.ts';

export interface DeviceInfo {
  params: DeviceParams;
  os?: Partial<Record<OsInfoField, string>>;
  bootloader?: BootloaderInfo;
  groups?: GroupInfo[];
  slots?: ImageSlot[];
  /** What could not be read, and why (a stock device may lack some groups). */
  unavailable: { what: string; reason: string }[];
}

/** Progress of the info op; it ends in one Outcome (done: the DeviceInfo). It fails only with the common codes (link, device, internal). */
export type InfoProgress = { kind: 'reading'; what: 'os' | 'bootloader' | 'groups' | 'slots' };
export type InfoFailure = never;
export type InfoState = InfoProgress | Outcome<DeviceInfo, InfoFailure>;

export interface InfoOptions {
  signal?: AbortSignal;
}

export function readDeviceInfo(session: SmpSession, opts: InfoOptions = {}): Op<InfoProgress, DeviceInfo, InfoFailure> {
  return contract(infoBody(cancellableSession(session, opts.signal)), { signal: opts.signal });
}

async function* infoBody(session: SmpSession): AsyncGenerator<InfoState> {
  const c = session.client;
  const info: DeviceInfo = { params: session.params, unavailable: [] };
  const steps: [InfoProgress, () => Promise<void>][] = [
    [
      { kind: 'reading', what: 'os' },
      async () => {
        const r = await osInfoAll(c);
        info.os = r.fields;
        for (const m of r.missing) info.unavailable.push({ what: `os ${m.field}`, reason: m.reason });
      },
    ],
    [{ kind: 'reading', what: 'bootloader' }, async () => void (info.bootloader = await bootloaderInfo(c))],
    [{ kind: 'reading', what: 'groups' }, async () => void (info.groups = await listGroups(c))],
    [{ kind: 'reading', what: 'slots' }, async () => void (info.slots = await readState(c))],
  ];
  for (const [state, run] of steps) {
    yield state;
    try {
      await run();
    } catch (e) {
      // A stock device may lack a group: note it and read on. A lost link or a defect ends the op (contract()).
      if (e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group' || e.kind === 'decode')) {
        info.unavailable.push({ what: state.what, reason: e.message });
        continue;
      }
      throw e;
    }
  }
  yield done(info);
}

/**
 * Read what a device is: params, OS and bootloader info, supported groups,
 * firmware slots. Emits a discriminated union of states (esp-web-tools style):
 * the UI and the CLI only render them.
 */
import { type GroupInfo, listGroups } from '../../groups/enum.ts';
import { type ImageSlot, readState } from '../../groups/image.ts';
import { type BootloaderInfo, type OsInfoField, bootloaderInfo, osInfoAll } from '../../groups/os.ts';
import { SmpError } from '../../smp/errors.ts';
import type { DeviceParams, SmpSession } from '../../groups/session.ts';

export interface DeviceInfo {
  params: DeviceParams;
  os?: Partial<Record<OsInfoField, string>>;
  bootloader?: BootloaderInfo;
  groups?: GroupInfo[];
  slots?: ImageSlot[];
  /** What could not be read, and why (a stock device may lack some groups). */
  unavailable: { what: string; reason: string }[];
}

export type InfoState =
  | { kind: 'reading'; what: 'os' | 'bootloader' | 'groups' | 'slots' }
  | { kind: 'done'; info: DeviceInfo }
  | { kind: 'error'; message: string };

export async function* readDeviceInfo(session: SmpSession): AsyncGenerator<InfoState> {
  const c = session.client;
  const info: DeviceInfo = { params: session.params, unavailable: [] };
  const steps: [InfoState & { kind: 'reading' }, () => Promise<void>][] = [
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
      if (e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group' || e.kind === 'decode')) {
        info.unavailable.push({ what: state.what, reason: e.message });
        continue;
      }
      yield { kind: 'error', message: e instanceof Error ? e.message : String(e) };
      return;
    }
  }
  yield { kind: 'done', info };
}

/** Run the generator to its end (CLI, tests). */
export async function collectDeviceInfo(session: SmpSession, onState?: (s: InfoState) => void): Promise<DeviceInfo> {
  for await (const s of readDeviceInfo(session)) {
    onState?.(s);
    if (s.kind === 'done') return s.info;
    if (s.kind === 'error') throw new Error(s.message);
  }
  throw new Error('device info ended without a result');
}

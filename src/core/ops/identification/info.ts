/**
 * Read what a device is: params, OS and bootloader info, supported groups,
 * firmware slots. An op (outcome.ts): progress states, then one Outcome; the
 * UI and the CLI only render them.
 */
import { type GroupInfo, listGroups } from '../../groups/enum.ts';
import { type ImageSlot, isRecoveryImageList, readState } from '../../groups/image.ts';
import { type BootloaderInfo, INFO_FIELDS, type OsInfoField, bootloaderInfo, osInfo } from '../../groups/os.ts';
import { SmpError } from '../../smp/errors.ts';
import type { DeviceParams, SmpSession } from '../../groups/session.ts';
import { type Op, type Outcome, cancellableSession, contract, done } from '../outcome.ts';

/**
 * What answers: the application's SMP server, or MCUboot's serial recovery
 * (the bootloader's own small server: image list, upload, reset, maybe echo,
 * params and bootloader info; no OS info, no groups list).
 */
export type DeviceMode = 'application' | 'serial-recovery';

export interface DeviceInfo {
  mode: DeviceMode;
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

/** A stock device may lack a group: such errors are noted and reading goes on; a lost link or a defect ends the op. */
const isAbsence = (e: unknown): e is SmpError => e instanceof SmpError && (e.kind === 'rc' || e.kind === 'group' || e.kind === 'decode');

async function* infoBody(session: SmpSession): AsyncGenerator<InfoState> {
  const c = session.client;
  const info: DeviceInfo = { mode: 'application', params: session.params, unavailable: [] };
  const attempt = async (what: string, run: () => Promise<void>): Promise<boolean> => {
    try {
      await run();
      return true;
    } catch (e) {
      if (!isAbsence(e)) throw e;
      info.unavailable.push({ what, reason: e.message });
      return false;
    }
  };

  // One OS info field first: an application answers it; MCUboot's serial recovery has no OS info.
  yield { kind: 'reading', what: 'os' };
  const fields = Object.entries(INFO_FIELDS) as [string, OsInfoField][];
  let firstError: SmpError | undefined;
  try {
    info.os = { [fields[0][1]]: await osInfo(c, fields[0][0]) };
  } catch (e) {
    if (!isAbsence(e)) throw e;
    firstError = e;
  }

  if (firstError?.notSupported) {
    // Serial recovery? Its image list (bs_list) carries no flags, which img_mgmt always sends.
    yield { kind: 'reading', what: 'slots' };
    const listed = await attempt('slots', async () => void (info.slots = await readState(c)));
    if (listed && isRecoveryImageList(info.slots!)) {
      info.mode = 'serial-recovery';
      info.unavailable.push({ what: 'os', reason: `${firstError.message} (MCUboot serial recovery serves no OS info)` });
      yield { kind: 'reading', what: 'bootloader' };
      await attempt('bootloader', async () => void (info.bootloader = await bootloaderInfo(c)));
      yield done(info);
      return;
    }
    // an application without OS info: read on as for any application (slots were just read)
    info.unavailable.push({ what: `os ${fields[0][1]}`, reason: firstError.message });
    await readRest(info, c, fields.slice(1));
    yield { kind: 'reading', what: 'bootloader' };
    await attempt('bootloader', async () => void (info.bootloader = await bootloaderInfo(c)));
    yield { kind: 'reading', what: 'groups' };
    await attempt('groups', async () => void (info.groups = await listGroups(c)));
    yield done(info);
    return;
  }
  if (firstError) info.unavailable.push({ what: `os ${fields[0][1]}`, reason: firstError.message });
  await readRest(info, c, fields.slice(1));
  yield { kind: 'reading', what: 'bootloader' };
  await attempt('bootloader', async () => void (info.bootloader = await bootloaderInfo(c)));
  yield { kind: 'reading', what: 'groups' };
  await attempt('groups', async () => void (info.groups = await listGroups(c)));
  yield { kind: 'reading', what: 'slots' };
  await attempt('slots', async () => void (info.slots = await readState(c)));
  yield done(info);
}

/** The other OS info fields, in parallel within the client's window. */
async function readRest(info: DeviceInfo, c: SmpSession['client'], fields: [string, OsInfoField][]): Promise<void> {
  const results = await Promise.allSettled(fields.map(([letter]) => osInfo(c, letter)));
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') (info.os ??= {})[fields[i][1]] = r.value;
    else if (isAbsence(r.reason)) info.unavailable.push({ what: `os ${fields[i][1]}`, reason: r.reason.message });
    else throw r.reason;
  });
}

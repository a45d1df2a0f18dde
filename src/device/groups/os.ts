/** OS management group on the reference device. */
import { MCUBOOT_MODES } from '../../core/groups/os.ts';
import { OS } from '../../core/protocol/os.ts';
import { Group } from '../../core/smp/header.ts';
import type { ReferenceDevice } from '../device.ts';
import { type Body, MgmtError, RC, type RequestContext } from '../mgmt.ts';

/** Bootloader facts the device reports; the image model sets them. */
export interface BootloaderModel {
  name: string;
  mode: number;
  noDowngrade: boolean;
}

const OS_ERR_INVALID_FORMAT = 2;

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** `bootloader` answers undefined on a device without MCUboot (os bootloader info is then ENOTSUP, as on Zephyr). */
export function osGroup(device: ReferenceDevice, bootloader: () => BootloaderModel | undefined) {
  const o = device.opts;
  const infoLetters: Record<string, () => string> = {
    s: () => 'Zephyr',
    n: () => o.board,
    r: () => `${o.kernelRelease}`,
    v: () => `${o.kernelRelease}-fieldbench`,
    b: () => 'Nov 21 2026 09:00:00',
    m: () => 'arm',
    p: () => 'cortex-m4',
    i: () => `${o.board}/reference`,
    o: () => 'Zephyr',
  };
  return {
    id: Group.OS,
    name: 'os',
    read: {
      [OS.DateTime]: () => {
        const d = new Date(device.now());
        return {
          datetime: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`,
        };
      },
      [OS.Params]: () => {
        if (!o.params) throw new MgmtError(RC.ENOTSUP);
        return { buf_size: o.bufSize, buf_count: o.bufCount };
      },
      [OS.Info]: (b: Body) => {
        const format = typeof b.format === 'string' ? b.format : 's';
        const parts: string[] = [];
        for (const ch of format === 'a' ? 'snrvbmpio' : format) {
          const f = infoLetters[ch];
          if (!f) throw new MgmtError(RC.EINVAL, OS_ERR_INVALID_FORMAT);
          parts.push(f());
        }
        return { output: parts.join(' ') };
      },
      [OS.BootloaderInfo]: (b: Body) => {
        const bl = bootloader();
        if (!bl) throw new MgmtError(RC.ENOTSUP);
        if (b.query === undefined) return { bootloader: bl.name };
        if (b.query === 'mode') return { mode: bl.mode, 'no-downgrade': bl.noDowngrade };
        throw new MgmtError(RC.EINVAL, 3);
      },
    },
    write: {
      [OS.Echo]: (b: Body) => {
        if (typeof b.d !== 'string') throw new MgmtError(RC.EINVAL);
        return { r: b.d };
      },
      [OS.DateTime]: (b: Body, ctx: RequestContext) => {
        if (typeof b.datetime !== 'string') throw new MgmtError(RC.EINVAL);
        const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(b.datetime) ? b.datetime : b.datetime + 'Z');
        if (Number.isNaN(t)) throw new MgmtError(RC.EINVAL, OS_ERR_INVALID_FORMAT);
        // The clock counts seconds since 1970 (as Zephyr's RTC): an earlier time is not representable.
        if (t < 0) throw new MgmtError(RC.EINVAL, OS_ERR_INVALID_FORMAT);
        // A provisioned device decides who may set it (security group: permission, session, trusted floor).
        device.clockGuard?.(t, ctx);
        device.clockOffsetMs = t - Date.now();
        return {};
      },
      [OS.Reset]: (b: Body, ctx: RequestContext) => {
        if (b.boot_mode !== undefined) {
          if (typeof b.boot_mode !== 'number' || !Number.isInteger(b.boot_mode) || b.boot_mode < 0 || b.boot_mode > 255) throw new MgmtError(RC.EINVAL);
          // built without boot mode support, Zephyr skips the key and resets normally
          if (device.opts.serialRecovery && device.opts.serialRecovery.bootModeReset !== false) {
            // Into the bootloader: serial recovery overwrites the primary slot (no test boot, no revert).
            if (b.boot_mode !== 0) device.bootModeGuard?.(b.boot_mode, ctx);
            device.nextBootMode = b.boot_mode;
          }
        }
        // Reply first, then reboot, as Zephyr does (after a short delay).
        setTimeout(() => void device.reboot(), 20);
        return {};
      },
    },
  };
}

export { MCUBOOT_MODES };

/**
 * MCUboot serial recovery on the reference device (boot_serial.c, as the
 * mps2_an385 serial_recovery fixtures show it): a small SMP server of the
 * bootloader that replaces the application's after os reset with boot_mode 1
 * or a boot without a valid image.
 *  - image list (img 0 read): {slot, version, hash} of each valid image, no flags;
 *  - upload (img 1 write): writes the primary slot directly; off 0 (with len)
 *    starts over (no resume, sha ignored); a chunk at another offset than
 *    expected is answered with the expected one; of each chunk but the last
 *    only the part filling whole flash words (`align`) is written; replies are
 *    {rc: 0, off} without `match`;
 *  - os: reset (5) reboots (into the application if it is valid), echo (0)
 *    only when built with it, params (6) and bootloader info (8) only on newer
 *    MCUboot; everything else ENOTSUP;
 *  - one request buffer of `bufSize`; console requests over bufSize - 3 get no reply.
 */
import { IMG } from '../../core/protocol/image.ts';
import { OS } from '../../core/protocol/os.ts';
import { Group } from '../../core/smp/header.ts';
import type { ReferenceDevice } from '../device.ts';
import { type Body, type GroupDef, MgmtError, RC } from '../mgmt.ts';
import { type ImageModel, slotInfoOf } from './image.ts';

export interface SerialRecoveryOptions {
  /** CONFIG_BOOT_SERIAL_MAX_RECEIVE_SIZE (default 1024). */
  bufSize?: number;
  /** Flash write alignment (default 4). */
  align?: number;
  /** Newer MCUboot answers mcumgr params (default false, as MCUboot in Zephyr 4.4.0). */
  params?: boolean;
  /** CONFIG_BOOT_MGMT_ECHO (default false). */
  echo?: boolean;
  /** MCUboot answers os bootloader info (default false). */
  bootloaderInfo?: boolean;
  /** The application honours os reset boot_mode (CONFIG_MCUMGR_GRP_OS_RESET_BOOT_MODE; default true). */
  bootModeReset?: boolean;
}

export class SerialRecovery {
  readonly opts: Required<SerialRecoveryOptions>;
  /** Upload state (RAM: a reset forgets it). */
  private upload: { size: number; off: number } | null = null;
  /** Requests that wrote only part of their chunk. */
  partialWrites = 0;

  constructor(
    readonly device: ReferenceDevice,
    readonly images: ImageModel,
    opts: SerialRecoveryOptions = {},
  ) {
    this.opts = { bufSize: 1024, align: 4, params: false, echo: false, bootloaderInfo: false, bootModeReset: true, ...opts };
  }

  get active(): boolean {
    return this.device.serving?.name === 'serial-recovery';
  }

  enter(): void {
    this.upload = null;
    const limit = this.device.opts.framing === 'console' ? this.opts.bufSize - 3 : this.opts.bufSize;
    this.device.serving = { name: 'serial-recovery', groups: new Map([this.osGroup(), this.imageGroup()].map((g) => [g.id, g])), bufSize: this.opts.bufSize, bufCount: 1, maxRequest: limit };
  }

  leave(): void {
    this.upload = null;
    if (this.active) this.device.serving = null;
  }

  private async list(): Promise<Body> {
    await this.images.ready;
    const images: Body[] = [];
    for (const slot of [0, 1]) {
      const data = this.images.slots[slot]?.data;
      const info = slotInfoOf(data ?? null);
      // bs_list names only images that validate
      if (!data || !info || !(await this.images.verify(data, 0)).ok) continue;
      images.push({ slot, version: info.version, hash: info.hash });
    }
    return { images };
  }

  private async write(b: Body): Promise<Body> {
    await this.images.ready;
    const off = b.off;
    const data = b.data;
    if (typeof off !== 'number' || !(data instanceof Uint8Array)) throw new MgmtError(RC.EINVAL);
    if (off === 0) {
      const len = b.len;
      if (typeof len !== 'number' || len <= 0 || len > this.images.opts.slotSize) throw new MgmtError(RC.EINVAL);
      this.images.slots[0] = { data: new Uint8Array(len).fill(0xff) }; // the primary slot, erased
      this.upload = { size: len, off: 0 };
    } else if (!this.upload || off !== this.upload.off) {
      return { rc: 0, off: this.upload?.off ?? 0 };
    }
    const up = this.upload!;
    if (off + data.length > up.size) throw new MgmtError(RC.EINVAL);
    let take = data.length;
    if (off + take < up.size) take -= take % this.opts.align;
    if (take < data.length) this.partialWrites++;
    this.images.slots[0]!.data.set(data.subarray(0, take), off);
    up.off += take;
    if (up.off === up.size) this.upload = null;
    return { rc: 0, off: up.off };
  }

  private osGroup(): GroupDef {
    const read: GroupDef['read'] = {};
    const write: GroupDef['write'] = {
      [OS.Reset]: () => {
        setTimeout(() => void this.device.reboot(), 20);
        return {};
      },
      1: () => ({}), // console echo control
    };
    if (this.opts.echo) write[OS.Echo] = (b: Body) => ({ r: typeof b.d === 'string' ? b.d : '' });
    if (this.opts.params) read[OS.Params] = () => ({ buf_size: this.opts.bufSize, buf_count: 1 });
    if (this.opts.bootloaderInfo) {
      read[OS.BootloaderInfo] = (b: Body) => (b.query === 'mode' ? { mode: this.images.modeNumber } : { bootloader: 'MCUboot' });
    }
    return { id: Group.OS, name: 'boot_serial os', read, write };
  }

  private imageGroup(): GroupDef {
    return { id: Group.Image, name: 'boot_serial img', read: { [IMG.State]: () => this.list() }, write: { [IMG.Upload]: (b: Body) => this.write(b) } };
  }
}

/** SMP Image management group (group 1), as Zephyr's img_mgmt implements it. */
import type { RequestOptions, SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import { Group } from '../smp/header.ts';

import { IMG } from '../protocol/image.ts';

export { IMG, IMG_ERR, IMAGE_GROUP } from '../protocol/image.ts';

export interface ImageSlot {
  image: number;
  slot: number;
  version: string;
  hash?: Uint8Array;
  /** Flags are undefined when the device does not report them (MCUboot serial recovery). */
  bootable?: boolean;
  pending?: boolean;
  confirmed?: boolean;
  active?: boolean;
  permanent?: boolean;
}

const flag = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);

function parseSlots(r: Record<string, unknown>): ImageSlot[] {
  if (!Array.isArray(r.images)) throw new SmpError('decode', 'image state reply lacks "images"');
  return (r.images as Record<string, unknown>[]).map((s) => ({
    image: typeof s.image === 'number' ? s.image : 0,
    slot: typeof s.slot === 'number' ? s.slot : 0,
    version: typeof s.version === 'string' ? s.version : '?',
    hash: s.hash instanceof Uint8Array ? s.hash : undefined,
    bootable: flag(s.bootable),
    pending: flag(s.pending),
    confirmed: flag(s.confirmed),
    active: flag(s.active),
    permanent: flag(s.permanent),
  }));
}

/**
 * An image list as MCUboot's serial recovery serves it (boot_serial.c bs_list):
 * slot, version and hash only. Zephyr's img_mgmt always reports the flags
 * (bootable, pending, confirmed, active, permanent), and a running application
 * always lists the slot it runs from; an empty list is a blank board in recovery.
 */
export function isRecoveryImageList(slots: ImageSlot[]): boolean {
  return slots.every((s) => s.active === undefined && s.confirmed === undefined && s.pending === undefined && s.bootable === undefined);
}

export async function readState(c: SmpClient, opts?: RequestOptions): Promise<ImageSlot[]> {
  return parseSlots(await c.read(Group.Image, IMG.State, {}, opts));
}

/** Mark an image for test (confirm=false) or confirm it (confirm=true); no hash confirms the running image. */
export async function writeState(c: SmpClient, hash: Uint8Array | undefined, confirm: boolean, opts?: RequestOptions): Promise<ImageSlot[]> {
  const body: Record<string, unknown> = { confirm };
  if (hash) body.hash = hash;
  return parseSlots(await c.write(Group.Image, IMG.State, body, opts));
}

export async function erase(c: SmpClient, slot?: number, opts?: RequestOptions): Promise<void> {
  await c.write(Group.Image, IMG.Erase, slot === undefined ? {} : { slot }, opts);
}

export interface SlotInfo {
  image: number;
  slots: { slot: number; size: number; uploadImageId?: number }[];
  maxImageSize?: number;
}

export async function slotInfo(c: SmpClient, opts?: RequestOptions): Promise<SlotInfo[]> {
  const r = await c.read(Group.Image, IMG.SlotInfo, {}, opts);
  if (!Array.isArray(r.images)) throw new SmpError('decode', 'slot info reply lacks "images"');
  return (r.images as Record<string, unknown>[]).map((i) => ({
    image: typeof i.image === 'number' ? i.image : 0,
    slots: Array.isArray(i.slots)
      ? (i.slots as Record<string, unknown>[]).map((s) => ({
          slot: Number(s.slot ?? 0),
          size: Number(s.size ?? 0),
          uploadImageId: typeof s.upload_image_id === 'number' ? s.upload_image_id : undefined,
        }))
      : [],
    maxImageSize: typeof i.max_image_size === 'number' ? i.max_image_size : undefined,
  }));
}

export interface UploadChunk {
  off: number;
  data: Uint8Array;
  /** First chunk only: total image length, image number, and SHA-256 of the whole image (resume key). */
  len?: number;
  image?: number;
  sha?: Uint8Array;
  upgrade?: boolean;
}

export function uploadBody(ch: UploadChunk): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (ch.off === 0 && ch.image !== undefined) b.image = ch.image;
  if (ch.len !== undefined) b.len = ch.len;
  b.off = ch.off;
  if (ch.sha !== undefined) b.sha = ch.sha;
  if (ch.upgrade !== undefined) b.upgrade = ch.upgrade;
  b.data = ch.data;
  return b;
}

/** Send one upload chunk; returns the offset the device expects next (and `match` on the last chunk if reported). */
export async function uploadChunk(c: SmpClient, ch: UploadChunk, opts?: RequestOptions): Promise<{ off: number; match?: boolean }> {
  const r = await c.write(Group.Image, IMG.Upload, uploadBody(ch), opts);
  if (typeof r.off !== 'number') throw new SmpError('decode', 'upload reply lacks "off"');
  return { off: r.off, match: typeof r.match === 'boolean' ? r.match : undefined };
}

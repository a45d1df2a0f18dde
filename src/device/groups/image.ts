/**
 * Image management group on the reference device: the slot model MCUboot
 * manages. (State read for now; upload, test/confirm, swap and verification
 * come with the firmware update work.)
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { IMG } from '../../core/groups/image.ts';
import { Group } from '../../core/smp/header.ts';
import type { ReferenceDevice } from '../device.ts';
import type { GroupDef } from '../mgmt.ts';

export interface SlotImage {
  data: Uint8Array;
  version: string;
  hash: Uint8Array;
}

export interface ImageModelState {
  mode: number;
  noDowngrade: boolean;
  primary: SlotImage | null;
  secondary: SlotImage | null;
  pending: boolean;
  confirmed: boolean;
  permanent: boolean;
}

export function initialImageState(device: ReferenceDevice): ImageModelState {
  const firmware = new TextEncoder().encode(`fieldbench reference firmware ${device.opts.appVersion}`);
  return {
    mode: 3,
    noDowngrade: false,
    primary: { data: firmware, version: device.opts.appVersion, hash: sha256(firmware) },
    secondary: null,
    pending: false,
    confirmed: true,
    permanent: false,
  };
}

export function imageGroup(state: ImageModelState): GroupDef {
  return {
    id: Group.Image,
    name: 'img_mgmt',
    read: {
      [IMG.State]: () => {
        const images: Record<string, unknown>[] = [];
        if (state.primary) {
          images.push({ image: 0, slot: 0, version: state.primary.version, hash: state.primary.hash, bootable: true, pending: false, confirmed: state.confirmed, active: true, permanent: false });
        }
        if (state.secondary) {
          images.push({ image: 0, slot: 1, version: state.secondary.version, hash: state.secondary.hash, bootable: true, pending: state.pending, confirmed: false, active: false, permanent: state.permanent });
        }
        return { images, splitStatus: 0 };
      },
    },
  };
}

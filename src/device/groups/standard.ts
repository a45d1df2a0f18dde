/** The groups every reference device has, as a stock Zephyr SMP server would. */
import type { ReferenceDevice } from '../device.ts';
import { enumGroup } from './enum.ts';
import { imageGroup, initialImageState } from './image.ts';
import { osGroup } from './os.ts';

export function installStandardGroups(device: ReferenceDevice): void {
  const images = initialImageState(device);
  device.registerGroup(osGroup(device, () => ({ name: 'MCUboot', mode: images.mode, noDowngrade: images.noDowngrade })));
  device.registerGroup(imageGroup(images));
  device.registerGroup(enumGroup(device));
}

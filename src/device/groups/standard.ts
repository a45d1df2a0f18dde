/** The groups every reference device has, as a stock Zephyr SMP server would. */
import type { ReferenceDevice } from '../device.ts';
import { enumGroup } from './enum.ts';
import { ImageModel, type ImageModelOptions, imageGroup } from './image.ts';
import { osGroup } from './os.ts';
import { SerialRecovery } from './recovery.ts';
import { installSettingsGroup } from './settings.ts';

const models = new WeakMap<ReferenceDevice, ImageModel>();
const recoveries = new WeakMap<ReferenceDevice, SerialRecovery>();

/** The serial recovery model of a device built with `serialRecovery`. */
export function serialRecoveryOf(device: ReferenceDevice): SerialRecovery {
  const r = recoveries.get(device);
  if (!r) throw new Error('device has no serial recovery');
  return r;
}

/** The image model (slots, bootloader) of a reference device. */
export function imageModelOf(device: ReferenceDevice): ImageModel {
  const m = models.get(device);
  if (!m) throw new Error('device has no image model');
  return m;
}

/**
 * Reconfigure a device's image model (boot mode, trusted keys, flash timing, ...):
 * the primary slot gets a fresh factory image. Resolves when it is ready.
 */
export function configureImageModel(device: ReferenceDevice, opts: ImageModelOptions): Promise<ImageModel> {
  const m = imageModelOf(device);
  return m.configure(opts).then(() => m);
}

export function installStandardGroups(device: ReferenceDevice): void {
  if (device.opts.image === false) {
    // no MCUboot (native_sim-like): OS (bootloader info ENOTSUP), enum, settings; no image group
    device.registerGroup(osGroup(device, () => undefined));
    device.registerGroup(enumGroup(device));
    if (device.opts.settings) installSettingsGroup(device, device.opts.settings === true ? {} : device.opts.settings);
    return;
  }
  // DeviceOptions may carry image model options under `image` (when the device passes them through).
  const imageOpts = device.opts.image ?? {};
  const images = new ImageModel(device, imageOpts);
  images.ready.catch(() => {
    /* surfaced by the handlers that await it */
  });
  models.set(device, images);
  device.registerGroup(osGroup(device, () => ({ name: 'MCUboot', mode: images.modeNumber, noDowngrade: images.opts.noDowngrade })));
  device.registerGroup(imageGroup(images));
  device.registerGroup(enumGroup(device));
  const settings = device.opts.settings;
  if (settings) installSettingsGroup(device, settings === true ? {} : settings);
  const recovery = device.opts.serialRecovery ? new SerialRecovery(device, images, device.opts.serialRecovery) : null;
  if (recovery) recoveries.set(device, recovery);
  device.onBoot(async () => {
    // MCUboot looks for the recovery request (retention boot mode) before it boots anything
    const mode = device.nextBootMode;
    device.nextBootMode = 0;
    if (recovery && mode === 1) return recovery.enter();
    recovery?.leave();
    await images.boot();
    if (recovery && images.active === -1) recovery.enter(); // no valid image: stay in recovery
  });
  const d = device as ReferenceDevice & { firmware?: unknown; securityCounter?: unknown };
  if ('firmware' in d) {
    d.firmware = () => {
      const r = images.running();
      return r ? [{ version: r.version, sha256: r.hash, signerId: r.signerId, description: 'application (image 0)' }] : [];
    };
  }
  if ('securityCounter' in d) d.securityCounter = () => images.securityCounter;
}

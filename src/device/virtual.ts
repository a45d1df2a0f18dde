/** The virtual device: a reference device on the far end of an in-memory link with a line model. */
import type { Link } from '../core/link/link.ts';
import { type LinkModel, type LinkPair, createLinkPair } from '../core/link/memory.ts';
import { type DeviceOptions, ReferenceDevice } from './device.ts';

export interface VirtualDevice {
  /** The host's end: hand it to openSession. */
  link: Link;
  device: ReferenceDevice;
  pair: LinkPair;
}

/** A USB CDC-ACM device at 115200 baud with ~1 ms USB latency, like a dev board. */
export const DEFAULT_VIRTUAL_MODEL: LinkModel = { baudRate: 115200, latencyMs: 1 };

export function createVirtualDevice(opts: DeviceOptions & { model?: LinkModel; device?: ReferenceDevice } = {}): VirtualDevice {
  const pair = createLinkPair(opts.model ?? DEFAULT_VIRTUAL_MODEL, ['virtual device', 'virtual device (device end)']);
  const device = opts.device ?? new ReferenceDevice(opts);
  void device.serve(pair.b);
  return { link: pair.a, device, pair };
}

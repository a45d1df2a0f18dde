/**
 * State of the update test harness: an in-page virtual device (the reference
 * device on a memory link) whose bootloader trusts the key the test signs
 * with, the session the panel gets, and unplug / plug back for resume tests.
 */
import type { SmpSession } from '../../../src/core/groups/session.ts';
import { openSession } from '../../../src/core/groups/session.ts';
import { ReferenceDevice } from '../../../src/device/device.ts';
import { configureImageModel } from '../../../src/device/groups/standard.ts';
import type { ImageModel } from '../../../src/device/groups/image.ts';
import { type VirtualDevice, createVirtualDevice } from '../../../src/device/virtual.ts';
import type { LibraryFirmware, UpdateOutcome } from '../../../src/ui/update/update.svelte.ts';

export interface StartOptions {
  /** Raw 32-byte Ed25519 public key the bootloader and the panel trust. */
  trustedKey: number[];
  library?: { name: string; bytes: number[]; sha256: string }[];
  /** Flash write time per byte (slows the upload so a test can unplug mid-way). */
  writeUsPerByte?: number;
}

export class UpdateHarness {
  session = $state.raw<SmpSession | null>(null);
  trustedKeys = $state.raw<Uint8Array[]>([]);
  library = $state.raw<LibraryFirmware[]>([]);
  outcomes = $state.raw<UpdateOutcome[]>([]);
  ready = $state(false);
  private device: ReferenceDevice | null = null;
  private model: ImageModel | null = null;
  private vd: VirtualDevice | null = null;

  async start(o: StartOptions): Promise<void> {
    const key = Uint8Array.from(o.trustedKey);
    this.device = new ReferenceDevice({});
    this.model = await configureImageModel(this.device, { trustedKeys: [key], writeUsPerByte: o.writeUsPerByte ?? 0 });
    this.trustedKeys = [key];
    this.library = (o.library ?? []).map((l) => ({ name: l.name, bytes: Uint8Array.from(l.bytes), sha256: l.sha256 }));
    await this.plugBack();
    this.ready = true;
  }

  /** Pull the cable: the link ends as lost, the panel loses its session. */
  unplug(): void {
    this.vd?.pair.unplug('USB cable unplugged');
    this.session = null;
  }

  /** Plug the same device back in and open a new session. */
  async plugBack(): Promise<void> {
    if (!this.device) throw new Error('harness not started');
    this.vd = createVirtualDevice({ device: this.device });
    this.session = await openSession(this.vd.link);
  }

  /** Where the device's interrupted upload stands (bytes it has). */
  deviceUploadOffset(): number {
    return this.model?.upload?.off ?? 0;
  }

}

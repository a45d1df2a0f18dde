/**
 * Image management on the reference device: the slot model MCUboot manages,
 * served through Zephyr's img_mgmt semantics.
 *
 * - Two slots (primary = 0, secondary = 1) of `slotSize` bytes each.
 * - Upload (img_mgmt_upload / img_mgmt_upload_inspect): the first chunk (off 0)
 *   carries len and sha; its header magic is checked, the target slot erased
 *   (flash timing), and an interrupted upload with the same sha is resumed by
 *   answering with the offset already written. A chunk at any other offset than
 *   the expected one is dropped and answered with the expected offset. The last
 *   reply carries `match` (SHA-256 of the received bytes vs `sha`). The upload
 *   state lives in RAM: a reboot forgets it (the next upload starts over).
 * - State read/write: test (pending), confirm (permanent or running image),
 *   Zephyr's flags (pending/confirmed/active/permanent) per swap type.
 * - The bootloader runs at every boot (device.onBoot): it verifies images as
 *   MCUboot does (hash, Ed25519 signature by a trusted key, SEC_CNT against the
 *   stored monotonic counter, optional vendor/class UUIDs, size) and never boots
 *   one that fails. Swap modes swap on a pending upgrade and revert an
 *   unconfirmed test image at the next boot; overwrite mode copies and has no
 *   revert; RAM load boots the highest valid version and has no test/confirm.
 *
 * One file (over 500 lines): the slot model and the handlers that serve it
 * share its state (slots, upload, boot); it is one simulated bootloader.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { sha256Large } from '../../core/base/digest.ts';
import { IMG, IMG_ERR } from '../../core/protocol/image.ts';
import { Group } from '../../core/smp/header.ts';
import { ed25519PublicKey } from '../../core/trust/ed25519.ts';
import { type ImageVerifyReport, verifyImage } from '../../core/trust/mcuboot/verify.ts';
import { TLV, ed25519Spki, parseImage, versionString } from '../../core/trust/mcuboot/parse.ts';
import { signImage } from '../../core/trust/mcuboot/sign.ts';
import { signerIdFor } from '../../core/trust/eat.ts';
import { equalBytes, equalPresentBytes } from '../../core/base/bytes.ts';
import type { ReferenceDevice } from '../device.ts';
import { type Body, type Connection, type GroupDef, MgmtError, RC, type RequestContext } from '../mgmt.ts';


export type BootMode = 'swap-move' | 'swap-scratch' | 'overwrite' | 'ram-load' | 'direct-xip';

/** MCUboot mode numbers as os bootloader info reports them. */
export const BOOT_MODE_NUMBER: Record<BootMode, number> = { 'swap-scratch': 1, overwrite: 2, 'swap-move': 3, 'direct-xip': 4, 'ram-load': 6 };

export interface ImageModelOptions {
  bootMode?: BootMode;
  /** Raw 32-byte Ed25519 public keys the bootloader trusts (in addition to the factory key). */
  trustedKeys?: Uint8Array[];
  /** Seed of the factory signing key that signs the initial image (default: fresh random). */
  factoryKey?: Uint8Array;
  /** A signed image to start with instead of building one (must verify under the trusted keys). */
  initialImage?: Uint8Array;
  /** Security counter of the built initial image, and the stored counter's start (default 1). */
  initialSecurityCounter?: number;
  /** Size of each slot in bytes (default 256 KiB). */
  slotSize?: number;
  /** Flash erase time per 4 KiB sector, ms (default 0). */
  eraseMsPerSector?: number;
  /** Flash write time per byte, microseconds (default 0). */
  writeUsPerByte?: number;
  /** MCUboot downgrade prevention (reported in bootloader info; versions must increase). */
  noDowngrade?: boolean;
  /** Vendor / class UUIDs (16 bytes) the bootloader requires in images (MCUBOOT_UUID_VID/CID). */
  vendorId?: Uint8Array;
  classId?: Uint8Array;
  /**
   * How long an upload stays its connection's while that connection sends nothing for it (ms,
   * default 10 s): after that another connection may start over or resume it (a half-open link
   * must not hold the slot for ever).
   */
  uploadIdleMs?: number;
}

export interface SlotImage {
  /** Bytes as written (image length); erased bytes are 0xff. */
  data: Uint8Array;
}

export interface BootRecord {
  boot: number;
  slot: number;
  version: string;
  hash: Uint8Array;
  securityCounter?: number;
}

export interface BootEvent {
  boot: number;
  event: 'booted' | 'swapped' | 'reverted' | 'copied' | 'rejected' | 'no-bootable-image';
  message: string;
}

const SECTOR = 4096;
const ERASED = 0xff;

interface UploadState {
  slot: number;
  size: number;
  off: number;
  sha: Uint8Array;
}

/** Version and image hash (SHA-256 TLV) of a slot, as img_mgmt_read_info finds them; null if none. */
export function slotInfoOf(data: Uint8Array | null): { version: string; hash: Uint8Array; flags: number; v: number[] } | null {
  if (!data) return null;
  try {
    const img = parseImage(data);
    const h = img.tlvs.find((t) => !t.protected && t.type === TLV.SHA256 && t.length === 32);
    if (!h) return null;
    const v = img.header.version;
    return { version: zephyrVersion(v), hash: h.value.slice(), flags: img.header.flags, v: [v.major, v.minor, v.revision, v.build] };
  } catch {
    return null;
  }
}

/** Zephyr prints versions as maj.min.rev, with .build appended when non-zero. */
function zephyrVersion(v: { major: number; minor: number; revision: number; build: number }): string {
  return `${v.major}.${v.minor}.${v.revision}${v.build ? `.${v.build}` : ''}`;
}

function cmpVersion(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

export class ImageModel {
  opts!: Required<Omit<ImageModelOptions, 'initialImage' | 'factoryKey' | 'vendorId' | 'classId'>> & Pick<ImageModelOptions, 'vendorId' | 'classId'>;
  /** Slot contents (index 0 primary, 1 secondary). */
  slots: (SlotImage | null)[] = [null, null];
  /** Running slot (swap modes: always 0). */
  active = 0;
  /** Swap modes: an upgrade of the secondary slot is requested for the next boot. */
  pending: 'none' | 'test' | 'permanent' = 'none';
  /** Swap modes: the primary runs a test image; the next boot reverts unless confirmed. */
  testBoot = false;
  /** The stored monotonic security counter (never decreases). */
  securityCounter = 0;
  /** Factory signing key's public key (always trusted). */
  factoryPublicKey!: Uint8Array;
  trusted: Uint8Array[] = [];
  upload: UploadState | null = null;
  readonly bootHistory: BootRecord[] = [];
  readonly bootEvents: BootEvent[] = [];
  /**
   * The connection the upload belongs to (it started, resumed or took it over) and when it last
   * sent an upload or erase request. While it is open and not idle, another connection's upload or
   * erase gets EBUSY unless the device authorises a takeover (device.takeoverGuard: the security
   * group's update permission in a session). The last chunk, a reboot or the connection's close ends it.
   */
  holder: { conn: Connection; at: number } | null = null;
  /** Resolves once the initial image is built. */
  ready: Promise<void>;
  private configGen = 0;

  constructor(
    readonly device: ReferenceDevice,
    opts: ImageModelOptions = {},
  ) {
    this.ready = this.configure(opts);
  }

  get mode(): BootMode {
    return this.opts.bootMode;
  }

  get modeNumber(): number {
    return BOOT_MODE_NUMBER[this.opts.bootMode];
  }

  get swapMode(): boolean {
    return this.opts.bootMode === 'swap-move' || this.opts.bootMode === 'swap-scratch';
  }

  /** (Re)initialise: factory image in the primary slot, counter reset. */
  configure(opts: ImageModelOptions): Promise<void> {
    this.opts = {
      bootMode: opts.bootMode ?? 'swap-move',
      trustedKeys: opts.trustedKeys ?? [],
      initialSecurityCounter: opts.initialSecurityCounter ?? 1,
      slotSize: opts.slotSize ?? 256 * 1024,
      eraseMsPerSector: opts.eraseMsPerSector ?? 0,
      writeUsPerByte: opts.writeUsPerByte ?? 0,
      noDowngrade: opts.noDowngrade ?? false,
      vendorId: opts.vendorId,
      classId: opts.classId,
      uploadIdleMs: opts.uploadIdleMs ?? 10_000,
    };
    const gen = ++this.configGen;
    const run = async () => {
      const seed = opts.factoryKey ?? globalThis.crypto.getRandomValues(new Uint8Array(32));
      const factoryPublicKey = await ed25519PublicKey(seed);
      const trusted = [factoryPublicKey, ...this.opts.trustedKeys];
      let image = opts.initialImage;
      if (!image) {
        const body = new Uint8Array(4096);
        const text = new TextEncoder().encode(`fieldbench reference firmware ${this.device.opts.appVersion} for ${this.device.opts.board}`);
        for (let i = 0; i < body.length; i++) body[i] = text[i % text.length] ^ (i >> 8);
        image = (
          await signImage(body, {
            key: seed,
            version: this.device.opts.appVersion,
            headerSize: 32,
            padHeader: true,
            securityCounter: this.opts.initialSecurityCounter,
          })
        ).image;
      }
      const report = await verifyImage(image, { keys: trusted, requireSignature: true, requireSecurityCounter: true, maxImageSize: this.opts.slotSize, vendorId: this.opts.vendorId, classId: this.opts.classId });
      if (!report.ok) throw new Error(`initial image does not verify: ${report.reason}`);
      if (gen !== this.configGen) return; // a later configure() won
      this.factoryPublicKey = factoryPublicKey;
      this.trusted = trusted;
      this.slots = [{ data: image.slice() }, null];
      this.active = 0;
      this.pending = 'none';
      this.testBoot = false;
      this.upload = null;
      this.holder = null;
      this.securityCounter = report.securityCounter ?? this.opts.initialSecurityCounter;
      this.record(0);
    };
    this.ready = run();
    return this.ready;
  }

  /** Verify an image as this device's bootloader does. */
  verify(data: Uint8Array, minCounter = this.securityCounter): Promise<ImageVerifyReport> {
    return verifyImage(data, {
      keys: this.trusted,
      requireSignature: true,
      requireSecurityCounter: true,
      minSecurityCounter: minCounter,
      maxImageSize: this.opts.slotSize,
      vendorId: this.opts.vendorId,
      classId: this.opts.classId,
    });
  }

  /**
   * What the device runs (for attestation). The signer id follows fieldbench's
   * convention (eat.ts signerIdFor): SHA-256 of the raw Ed25519 public key, whose
   * first 8 bytes are the key id the trust bundle names. The image names its key
   * by KEYHASH (SHA-256 of the key's SPKI) or PUBKEY; the device maps that back to
   * the trusted key. An image signed by no trusted key has an all-zero signer id.
   */
  running(): { version: string; hash: Uint8Array; signerId: Uint8Array } | null {
    const s = this.slots[this.active];
    const info = slotInfoOf(s?.data ?? null);
    if (!s || !info) return null;
    let signerId: Uint8Array = new Uint8Array(32);
    try {
      const tlvs = parseImage(s.data).tlvs;
      const kh = tlvs.find((t) => t.type === TLV.KEYHASH && t.length === 32);
      const pk = tlvs.find((t) => t.type === TLV.PUBKEY);
      const key = this.trusted.find(
        (k) => (kh && equalBytes(sha256(ed25519Spki(k)), kh.value)) || (pk && (equalBytes(ed25519Spki(k), pk.value) || equalBytes(k, pk.value))),
      );
      if (key) signerId = ImageModel.signerId(key);
    } catch {
      /* keep zeros */
    }
    return { version: info.version, hash: info.hash, signerId };
  }

  private record(slot: number): void {
    const info = slotInfoOf(this.slots[slot]?.data ?? null);
    if (!info) return;
    let sc: number | undefined;
    try {
      const t = parseImage(this.slots[slot]!.data).tlvs.find((x) => x.type === TLV.SEC_CNT && x.length === 4);
      if (t) sc = new DataView(t.value.buffer, t.value.byteOffset, 4).getUint32(0, true);
    } catch {
      /* none */
    }
    this.bootHistory.push({ boot: this.device.bootCount, slot, version: info.version, hash: info.hash, securityCounter: sc });
  }

  private event(event: BootEvent['event'], message: string): void {
    this.bootEvents.push({ boot: this.device.bootCount, event, message });
  }

  /** Resolves when the bootloader has finished (the application answers nothing before). */
  booted: Promise<void> = Promise.resolve();

  /** Wait until the model is built and not booting. */
  async settled(): Promise<void> {
    await this.ready;
    await this.booted;
  }

  /** Runs at every boot: MCUboot's decision. */
  boot(): Promise<void> {
    const p = this.runBootloader();
    this.booted = p.catch(() => {});
    return p;
  }

  private async runBootloader(): Promise<void> {
    await this.ready;
    this.upload = null; // RAM state
    this.holder = null;
    const mode = this.opts.bootMode;
    if (mode === 'ram-load' || mode === 'direct-xip') {
      // Highest valid version wins; the counter is updated by the image that boots.
      const cands: { slot: number; v: number[]; counter?: number }[] = [];
      for (const slot of [0, 1]) {
        const s = this.slots[slot];
        if (!s) continue;
        const r = await this.verify(s.data);
        const info = slotInfoOf(s.data);
        if (!r.ok || !info) {
          this.event('rejected', `slot ${slot}: ${r.reason}`);
          this.slots[slot] = null;
          continue;
        }
        cands.push({ slot, v: info.v, counter: r.securityCounter });
      }
      cands.sort((a, b) => cmpVersion(b.v, a.v) || b.v[3] - a.v[3]);
      const best = cands[0];
      if (!best) {
        this.event('no-bootable-image', 'no slot holds a valid image: staying in the bootloader');
        this.active = -1;
        return;
      }
      this.active = best.slot;
      if (best.counter !== undefined) this.securityCounter = Math.max(this.securityCounter, best.counter);
      this.event('booted', `booting slot ${best.slot}`);
      this.record(best.slot);
      return;
    }
    if (this.testBoot) {
      // The test image was not confirmed: swap back.
      if (this.swapMode) {
        this.slots = [this.slots[1], this.slots[0]];
        this.event('reverted', 'test image not confirmed: reverted to the previous image');
      }
      this.testBoot = false;
      this.pending = 'none';
    } else if (this.pending !== 'none') {
      const sec = this.slots[1];
      const r = sec ? await this.verify(sec.data) : null;
      const kind = this.pending;
      this.pending = 'none';
      const secInfo = sec ? slotInfoOf(sec.data) : null;
      const primInfo = slotInfoOf(this.slots[0]?.data ?? null);
      if (!sec || !r || !r.ok) {
        this.event('rejected', `image in the secondary slot is not valid: ${r?.reason ?? 'empty slot'}; erased`);
        this.slots[1] = null;
      } else if (this.opts.noDowngrade && secInfo && primInfo && cmpVersion(secInfo.v, primInfo.v) < 0) {
        // MCUBOOT_DOWNGRADE_PREVENTION: an older version never replaces the running one,
        // whatever its security counter says.
        this.event('rejected', `downgrade prevented: ${secInfo.version} is older than the running ${primInfo.version}; erased`);
        this.slots[1] = null;
      } else if (mode === 'overwrite') {
        this.slots = [sec, null];
        this.event('copied', 'secondary image copied to the primary slot (overwrite only: no revert)');
      } else {
        this.slots = [sec, this.slots[0]];
        this.testBoot = kind === 'test';
        this.event('swapped', `swapped in the secondary image (${kind})`);
      }
    }
    // MCUBOOT_VALIDATE_PRIMARY_SLOT: never run an image that fails.
    const prim = this.slots[0];
    const pr = prim ? await this.verify(prim.data, this.testBoot ? this.securityCounter : this.securityCounter) : null;
    if (!prim || !pr || !pr.ok) {
      this.event('no-bootable-image', `primary image is not valid: ${pr?.reason ?? 'empty slot'}: staying in the bootloader`);
      this.active = -1;
      return;
    }
    this.active = 0;
    if (!this.testBoot && pr.securityCounter !== undefined) this.securityCounter = Math.max(this.securityCounter, pr.securityCounter);
    this.event('booted', `booting the primary slot${this.testBoot ? ' (test: reverts unless confirmed)' : ''}`);
    this.record(0);
  }

  private inUse(slot: number): boolean {
    if (slot === this.active) return true;
    if (this.swapMode || this.opts.bootMode === 'overwrite') {
      // the pending upgrade, or the image a test boot would revert to
      if (slot === 1 && (this.pending !== 'none' || this.testBoot)) return true;
    }
    return false;
  }

  private uploadSlot(): number {
    if (this.swapMode || this.opts.bootMode === 'overwrite') return 1;
    return this.active === 0 ? 1 : 0;
  }

  private sectors(n: number): number {
    return Math.ceil(n / SECTOR);
  }

  /**
   * An upload or erase request: it may go on only from the connection the upload belongs to, from
   * any connection once that one closed or went idle, or as an authorised takeover; then the upload
   * is this connection's. Otherwise EBUSY, and nothing changes.
   */
  private claim(ctx?: RequestContext): void {
    if (!ctx) return; // the device's own tooling (stage), not a request
    const h = this.holder;
    const now = Date.now();
    if (h && h.conn !== ctx.connection && h.conn.open && now - h.at < this.opts.uploadIdleMs) {
      if (!this.device.takeoverGuard?.(ctx)) throw new MgmtError(RC.EBUSY, undefined, 'another connection is uploading an image');
    }
    this.holder = { conn: ctx.connection, at: now };
  }

  async handleUpload(b: Body, ctx?: RequestContext): Promise<Body> {
    await this.settled();
    this.claim(ctx);
    const off = b.off;
    const data = b.data;
    if (typeof off !== 'number' || !Number.isInteger(off) || off < 0) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_OFFSET);
    if (!(data instanceof Uint8Array)) throw new MgmtError(RC.EINVAL);
    if (off === 0) {
      if (data.length < 32) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_IMAGE_HEADER);
      const len = b.len;
      if (typeof len !== 'number' || !Number.isInteger(len) || len <= 0) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_LENGTH);
      const magic = (data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) >>> 0;
      if (magic !== 0x96f3b83d) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_IMAGE_HEADER_MAGIC);
      const sha = b.sha instanceof Uint8Array ? b.sha : new Uint8Array(0);
      if (sha.length > 32) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_HASH);
      // Resume an interrupted upload of the same data.
      if (sha.length > 0 && this.upload && equalPresentBytes(this.upload.sha, sha)) return { off: this.upload.off };
      const slot = this.uploadSlot();
      if (this.inUse(slot)) throw new MgmtError(RC.EBADSTATE, IMG_ERR.NO_FREE_SLOT);
      if (len > this.opts.slotSize) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_IMAGE_TOO_LARGE);
      if (b.upgrade === true) {
        const cur = slotInfoOf(this.slots[this.active]?.data ?? null);
        const hv = [data[20], data[21], data[22] | (data[23] << 8)];
        if (cur && cmpVersion(cur.v, hv) >= 0) throw new MgmtError(RC.EBADSTATE, IMG_ERR.CURRENT_VERSION_IS_NEWER);
      }
      this.upload = null;
      // Erase the image area and the trailer sector.
      await this.device.work(this.opts.eraseMsPerSector * (this.sectors(len) + 1));
      this.slots[slot] = { data: new Uint8Array(len).fill(ERASED) };
      this.upload = { slot, size: len, off: 0, sha: sha.slice() };
    } else if (!this.upload || off !== this.upload.off) {
      return { off: this.upload?.off ?? 0 };
    }
    const up = this.upload!;
    if (off + data.length > up.size) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_IMAGE_DATA_OVERRUN);
    if (data.length) {
      await this.device.work((this.opts.writeUsPerByte * data.length) / 1000);
      if (this.upload !== up) return { off: this.upload?.off ?? 0 }; // rebooted meanwhile
      this.slots[up.slot]!.data.set(data, off);
      up.off += data.length;
    }
    if (up.off === up.size) {
      this.upload = null;
      this.holder = null; // nothing in flight any more: the next upload may come from anywhere
      const out: Body = { off: up.off };
      if (up.sha.length === 32) out.match = equalPresentBytes(await sha256Large(this.slots[up.slot]!.data), up.sha);
      return out;
    }
    return { off: up.off };
  }

  stateRead(): Body {
    const images: Body[] = [];
    for (const slot of [0, 1]) {
      const info = slotInfoOf(this.slots[slot]?.data ?? null);
      if (!info) continue;
      const active = slot === this.active;
      let pending = false;
      let confirmed = false;
      let permanent = false;
      if (this.swapMode || this.opts.bootMode === 'overwrite') {
        if (this.testBoot) {
          // swap type REVERT: the other slot is the confirmed one
          confirmed = !active;
        } else if (this.pending === 'test') {
          if (active) confirmed = true;
          else pending = true;
        } else if (this.pending === 'permanent') {
          if (active) confirmed = true;
          else pending = permanent = true;
        } else if (active) confirmed = true;
      } else if (active) confirmed = true;
      // Zephyr names the image only on multi-image builds (CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER > 1)
      images.push({ slot, version: info.version, hash: info.hash, bootable: (info.flags & 0x10) === 0, pending, confirmed, active, permanent });
    }
    return { images, splitStatus: 0 };
  }

  async stateWrite(b: Body): Promise<Body> {
    await this.settled();
    const mode = this.opts.bootMode;
    if (mode === 'ram-load' || mode === 'direct-xip') throw new MgmtError(RC.ENOTSUP);
    const confirm = b.confirm === true;
    const hash = b.hash instanceof Uint8Array ? b.hash : undefined;
    if (b.hash !== undefined && !hash) throw new MgmtError(RC.EINVAL);
    const activeInfo = slotInfoOf(this.slots[this.active]?.data ?? null);
    let slot: number;
    if (!hash) {
      if (!confirm) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_HASH);
      slot = this.active;
    } else {
      const found = [0, 1].find((s) => equalPresentBytes(slotInfoOf(this.slots[s]?.data ?? null)?.hash, hash));
      if (found === undefined) throw new MgmtError(RC.EINVAL, IMG_ERR.HASH_NOT_FOUND);
      slot = found;
    }
    if (slot === this.active) {
      if (!confirm) throw new MgmtError(RC.EBADSTATE, IMG_ERR.IMAGE_SETTING_TEST_TO_ACTIVE_DENIED);
      if (this.testBoot) {
        this.testBoot = false;
        const r = activeInfo ? await this.verify(this.slots[this.active]!.data) : null;
        if (r?.ok && r.securityCounter !== undefined) this.securityCounter = Math.max(this.securityCounter, r.securityCounter);
      }
      return this.stateRead();
    }
    if (this.testBoot) throw new MgmtError(RC.EBADSTATE, IMG_ERR.IMAGE_CONFIRMATION_DENIED);
    if (this.upload && this.upload.slot === slot) throw new MgmtError(RC.EBADSTATE, IMG_ERR.INVALID_IMAGE_HEADER);
    // Overwrite-only has no revert: a test request is as permanent as a confirm.
    this.pending = confirm || mode === 'overwrite' ? 'permanent' : 'test';
    return this.stateRead();
  }

  async erase(b: Body, ctx?: RequestContext): Promise<Body> {
    await this.settled();
    this.claim(ctx);
    const slot = typeof b.slot === 'number' ? b.slot : this.uploadSlot();
    if (slot !== 0 && slot !== 1) throw new MgmtError(RC.EINVAL, IMG_ERR.INVALID_SLOT);
    if (this.slots[slot] && slotInfoOf(this.slots[slot]!.data) && this.inUse(slot)) throw new MgmtError(RC.EBADSTATE, IMG_ERR.NO_FREE_SLOT);
    const size = this.slots[slot]?.data.length ?? 0;
    await this.device.work(this.opts.eraseMsPerSector * this.sectors(size));
    this.slots[slot] = null;
    if (slot === 1) this.pending = 'none';
    this.upload = null;
    return {};
  }

  slotInfoRead(): Body {
    const size = this.opts.slotSize;
    return {
      images: [
        {
          image: 0,
          slots: [
            { slot: 0, size, ...(this.uploadSlot() === 0 ? { upload_image_id: 0 } : {}) },
            { slot: 1, size, ...(this.uploadSlot() === 1 ? { upload_image_id: 0 } : {}) },
          ],
          max_image_size: size,
        },
      ],
    };
  }

  /** Test helper and factory tooling: place bytes in the secondary slot and request an upgrade. */
  async stage(data: Uint8Array, kind: 'test' | 'permanent' = 'test'): Promise<void> {
    await this.ready;
    const slot = this.uploadSlot();
    this.slots[slot] = { data: data.slice() };
    if (this.swapMode || this.opts.bootMode === 'overwrite') this.pending = kind;
  }

  /** Signer identity as attestation reports it: SHA-256 of the raw public key (signerIdFor in eat.ts). */
  static signerId(pub: Uint8Array): Uint8Array {
    return signerIdFor(pub);
  }
}

export function imageGroup(model: ImageModel): GroupDef {
  return {
    id: Group.Image,
    name: 'img_mgmt',
    read: {
      [IMG.State]: async () => {
        await model.settled();
        return model.stateRead();
      },
      [IMG.SlotInfo]: async () => {
        await model.settled();
        return model.slotInfoRead();
      },
    },
    write: {
      [IMG.State]: (b: Body) => model.stateWrite(b),
      [IMG.Upload]: (b: Body, ctx: RequestContext) => model.handleUpload(b, ctx),
      [IMG.Erase]: (b: Body, ctx: RequestContext) => model.erase(b, ctx),
    },
  };
}

export { versionString };

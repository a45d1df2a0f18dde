/**
 * The reference device: the protocol's other half. An SMP server that behaves
 * like a Zephyr device on a UART (line buffers, buffer limits, silent drops of
 * oversized requests, indefinite-length maps, rc 8 for unknown groups, boot log
 * lines) and enforces what a secure device must enforce through its groups.
 *
 * Groups register handlers; the server itself knows only framing and dispatch.
 */
import type { Link } from '../core/link/link.ts';
import { decodeCborObject } from '../core/base/cbor.ts';
import { CONSOLE_LINE_MAX, type Framing, type FramingStats, createDecoder, encodeFrames } from '../core/smp/framing.ts';
import { Op, SMP_HEADER_SIZE, SMP_V2, buildPacket, decodeHeader } from '../core/smp/header.ts';
import { encodeIndefinite } from './cbor-indef.ts';

import { type Arrival, type Body, Connection, type GroupDef, MgmtError, RC, type RequestContext } from './mgmt.ts';
import { installStandardGroups } from './groups/standard.ts';
import type { ImageModelOptions } from './groups/image.ts';
import type { SettingsStoreOptions } from './groups/settings.ts';
import type { SerialRecoveryOptions } from './groups/recovery.ts';

export { MgmtError, RC } from './mgmt.ts';
export type { Arrival, Body, GroupDef, Handler, RequestContext } from './mgmt.ts';
export { Connection } from './mgmt.ts';

export interface DeviceOptions {
  framing?: Framing;
  /** MCUmgr netbuf size: largest request packet accepted (Zephyr default 384). */
  bufSize?: number;
  /** MCUmgr netbuf count (Zephyr default 4). */
  bufCount?: number;
  /** Console line limit (Zephyr 127). */
  lineMax?: number;
  /** UART line buffers (CONFIG_UART_MCUMGR_RX_BUF_COUNT, default 2) and the time to process one line. */
  rxLineBuffers?: number;
  lineProcessMs?: number;
  /** Lines printed on the serial console at boot, like Zephyr's banner. */
  bootLog?: string[];
  /** Does the device support MCUmgr params (os 6)? Zephyr's noparams builds do not. */
  params?: boolean;
  /** Does the device answer enum details with group names? */
  enumDetails?: boolean;
  /** Identity of the OS/board reported by os info. */
  board?: string;
  kernelRelease?: string;
  appVersion?: string;
  /** The MCUboot model: boot mode, trusted keys, flash timing, initial image; false = no MCUboot and no image group (like native_sim). */
  image?: ImageModelOptions | false;
  /** Give the device Zephyr's Settings group (stock configuration), with these options. */
  settings?: boolean | SettingsStoreOptions;
  /**
   * MCUboot serial recovery (groups/recovery.ts): os reset with boot_mode 1
   * (Zephyr's retention boot mode) reboots into it, and so does a boot with no
   * valid image. Needs the image model.
   */
  serialRecovery?: SerialRecoveryOptions;
}

export interface DeviceStats {
  requests: number;
  droppedOversize: number;
  droppedLineOverrun: number;
  droppedNoBuffer: number;
  framing: FramingStats;
}

/** One measured software component (an image in a slot), for attestation. */
export interface FirmwareFact {
  version: string;
  /** SHA-256 of the signed image, as the image's hash TLV states it. */
  sha256: Uint8Array;
  /** SHA-256 of the public key that signed the image. */
  signerId: Uint8Array;
  description?: string;
}

export type DeviceHook = (device: ReferenceDevice) => void | Promise<void>;

export class ReferenceDevice {
  readonly opts: Required<Omit<DeviceOptions, 'bootLog' | 'image' | 'settings' | 'serialRecovery'>> & Pick<DeviceOptions, 'image' | 'settings' | 'serialRecovery'> & { bootLog: string[] };
  readonly groups = new Map<number, GroupDef>();
  readonly stats: DeviceStats;
  /** Monotonic count of boots (persisted across resets). */
  bootCount = 0;
  readonly bootedAt: number;
  private bootTime = Date.now();
  /** The device's clock: an offset from the host clock, set through os datetime (when permitted). */
  clockOffsetMs = 0;
  private readonly bootHooks: DeviceHook[] = [];
  private readonly resetHooks: DeviceHook[] = [];
  private readonly wipeHooks: DeviceHook[] = [];
  private busy = 0;
  private generation = 0;
  /**
   * Another SMP server in place of the application's (MCUboot serial
   * recovery): its groups, its buffer, and the largest request it answers.
   */
  serving: { name: string; groups: Map<number, GroupDef>; bufSize: number; bufCount: number; maxRequest: number } | null = null;
  /** Boot mode for the next boot (Zephyr's retention boot mode: 0 normal, 1 bootloader), set by os reset. */
  nextBootMode = 0;
  /** Connections being served now. */
  readonly connections = new Set<Connection>();
  private connectionCount = 0;
  /** The connection used by direct calls of handle() (tests). */
  private direct: Connection | null = null;
  /** Checks every request before dispatch (interface restrictions); throw MgmtError to refuse. */
  accessGuard: ((group: number, id: number, op: number, arrival: Arrival) => void) | null = null;
  /** What the device runs, for attestation: set by the image model. */
  firmware: () => FirmwareFact[] = () => [];
  /** The device's monotonic security counter (MCUboot's), set by the image model. */
  securityCounter: () => number = () => 0;
  /**
   * A clock write through os datetime: the security group replaces this check when installed
   * (permission and the trusted-time floor). Throw MgmtError to refuse.
   */
  clockGuard: ((newTimeMs: number, ctx: RequestContext) => void) | null = null;
  /**
   * An os reset into another boot mode (1: the bootloader's serial recovery): the security group
   * replaces this check when installed (the update permission in a session). Throw MgmtError to refuse.
   */
  bootModeGuard: ((bootMode: number, ctx: RequestContext) => void) | null = null;
  /**
   * May this request take over an image upload that belongs to another (open, active) connection?
   * Without it, never (EBUSY); the security group answers: the update permission inside a session.
   */
  takeoverGuard: ((ctx: RequestContext) => boolean) | null = null;

  constructor(opts: DeviceOptions = {}) {
    this.opts = {
      framing: opts.framing ?? 'console',
      bufSize: opts.bufSize ?? 384,
      bufCount: opts.bufCount ?? 4,
      lineMax: opts.lineMax ?? CONSOLE_LINE_MAX,
      rxLineBuffers: opts.rxLineBuffers ?? 2,
      lineProcessMs: opts.lineProcessMs ?? 0,
      bootLog: opts.bootLog ?? ['*** Booting Zephyr OS build v4.4.0 ***', '[00:00:00.000,000] <inf> fieldbench_ref: reference device ready'],
      params: opts.params ?? true,
      enumDetails: opts.enumDetails ?? true,
      board: opts.board ?? 'fieldbench_ref',
      kernelRelease: opts.kernelRelease ?? 'v4.4.0',
      appVersion: opts.appVersion ?? '1.0.0',
      image: opts.image,
      settings: opts.settings,
      serialRecovery: opts.serialRecovery,
    };
    this.stats = { requests: 0, droppedOversize: 0, droppedLineOverrun: 0, droppedNoBuffer: 0, framing: undefined as never };
    this.direct = this.newConnection(); // also creates the shared framing stats
    this.bootedAt = Date.now();
    this.bootCount = 1;
    installStandardGroups(this);
  }

  private newConnection(): Connection {
    const conn = new Connection(++this.connectionCount);
    const stats = this.stats.framing;
    conn.decoder = createDecoder(this.opts.framing, (p) => this.onPacket(conn, p), {
      // A frame that declares more than the netbuf can hold is dropped by the device.
      maxPacket: 0xfffd,
      acceptOps: [Op.Read, Op.Write],
      // the reserved versions 2 and 3 reach handle(), which answers them as Zephyr does
      maxVersion: 3,
      stats,
    });
    if (!stats) this.stats.framing = conn.decoder.stats;
    return conn;
  }

  registerGroup(def: GroupDef): void {
    this.groups.set(def.id, def);
  }

  /** Run at every boot (after reset), e.g. MCUboot's swap. */
  onBoot(h: DeviceHook): void {
    this.bootHooks.push(h);
  }

  /** Run when a reset is requested, before the reboot. */
  onReset(h: DeviceHook): void {
    this.resetHooks.push(h);
  }

  /** Run when the device is wiped (security group Wipe): stores of configuration go back to factory values. */
  onWipe(h: DeviceHook): void {
    this.wipeHooks.push(h);
  }

  /** Erase what the groups hold for the owner (configuration stores), as a wipe does. */
  async wipe(): Promise<void> {
    for (const h of this.wipeHooks) await h(this);
  }

  /** Milliseconds since the last boot. */
  uptimeMs(): number {
    return Date.now() - this.bootTime;
  }

  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** Serve one link until it closes; prints the boot log first. Each link is its own connection. */
  async serve(link: Link): Promise<void> {
    const conn = this.newConnection();
    conn.writer = link.writable.getWriter();
    this.connections.add(conn);
    this.printBootLog(conn);
    const reader = link.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value) this.onBytes(conn, value);
      }
    } catch {
      /* link lost */
    } finally {
      conn.open = false;
      this.connections.delete(conn);
      try {
        reader.releaseLock();
        conn.writer.releaseLock();
      } catch {
        /* ignore */
      }
      conn.writer = null;
      conn.state.clear();
    }
  }

  /** Simulated time-consuming work (flash erase/write): the SMP thread is busy meanwhile. */
  async work(ms: number): Promise<void> {
    if (ms <= 0) return;
    this.busy++;
    try {
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      this.busy--;
    }
  }

  /** Reboot: transient state is lost, boot hooks run (e.g. image swap), the banner prints again. */
  async reboot(): Promise<void> {
    for (const h of this.resetHooks) await h(this);
    this.generation++;
    for (const c of this.connections) {
      c.lineQueue = [];
      c.packetQueue = [];
      c.decoder.reset();
      c.state.clear();
    }
    this.direct?.state.clear();
    this.bootCount++;
    this.bootTime = Date.now();
    for (const h of this.bootHooks) await h(this);
    for (const c of this.connections) this.printBootLog(c);
  }

  private printBootLog(conn: Connection): void {
    if (this.opts.framing !== 'console') return;
    const enc = new TextEncoder();
    for (const l of this.opts.bootLog) void this.send(conn, [enc.encode(l + '\r\n')]);
  }

  private onBytes(conn: Connection, data: Uint8Array): void {
    if (this.opts.framing !== 'console' || this.opts.lineProcessMs <= 0) {
      conn.decoder.push(data);
      return;
    }
    // Model the UART's line buffers: a complete line needs a free buffer, else it is lost.
    let start = 0;
    for (let i = 0; i < data.length; i++) {
      if (data[i] === 0x0a) {
        this.acceptLine(conn, data.subarray(start, i + 1));
        start = i + 1;
      }
    }
    if (start < data.length) this.acceptLine(conn, data.subarray(start));
  }

  private acceptLine(conn: Connection, part: Uint8Array): void {
    conn.partialLine.push(part.slice());
    if (part[part.length - 1] !== 0x0a) return;
    const total = conn.partialLine.reduce((n, p) => n + p.length, 0);
    const line = new Uint8Array(total);
    let o = 0;
    for (const p of conn.partialLine) {
      line.set(p, o);
      o += p.length;
    }
    conn.partialLine = [];
    if (conn.lineQueue.length >= this.opts.rxLineBuffers) {
      this.stats.droppedLineOverrun++;
      return;
    }
    conn.lineQueue.push(line);
    void this.drainLines(conn);
  }

  private async drainLines(conn: Connection): Promise<void> {
    if (conn.processingLines) return;
    conn.processingLines = true;
    try {
      while (conn.lineQueue.length) {
        await new Promise((r) => setTimeout(r, this.opts.lineProcessMs));
        const line = conn.lineQueue.shift();
        if (line) conn.decoder.push(line);
      }
    } finally {
      conn.processingLines = false;
    }
  }

  private onPacket(conn: Connection, packet: Uint8Array): void {
    // Measured on Zephyr 4.4.0 (tests/unit/device-vs-zephyr.test.ts): console drops from buf_size-3 on
    // (the frame's length and CRC share the netbuf); raw takes a whole buf_size packet and answers it,
    // with EMSGSIZE when the reply would not fit; over UDP the datagram is the netbuf.
    const limit = this.serving ? this.serving.maxRequest : this.opts.framing === 'console' ? this.opts.bufSize - 4 : this.opts.bufSize;
    if (packet.length > limit) {
      // A real device cannot hold it in a netbuf: silently dropped.
      this.stats.droppedOversize++;
      return;
    }
    if (conn.packetQueue.length >= (this.serving?.bufCount ?? this.opts.bufCount)) {
      this.stats.droppedNoBuffer++;
      return;
    }
    conn.packetQueue.push(packet);
    void this.drainPackets(conn);
  }

  private async drainPackets(conn: Connection): Promise<void> {
    if (conn.processingPackets) return;
    conn.processingPackets = true;
    try {
      while (conn.packetQueue.length) {
        const p = conn.packetQueue[0];
        const gen = this.generation;
        const reply = await this.handle(p, { connection: conn });
        conn.packetQueue.shift();
        // The UART sends in the background while the SMP thread handles the next request.
        if (reply && gen === this.generation && conn.open) void this.sendPacket(conn, reply);
      }
    } finally {
      conn.processingPackets = false;
    }
  }

  /** Dispatch one request packet; returns the reply packet, or null for no reply. */
  async handle(packet: Uint8Array, arrival?: Arrival): Promise<Uint8Array | null> {
    const at: Arrival = arrival ?? { connection: (this.direct ??= this.newConnection()) };
    if (packet.length < SMP_HEADER_SIZE) return null;
    const h = decodeHeader(packet);
    if (h.op !== Op.Read && h.op !== Op.Write) return null;
    if (h.length !== packet.length - SMP_HEADER_SIZE) return null;
    this.stats.requests++;
    const rspOp = h.op === Op.Read ? Op.ReadRsp : Op.WriteRsp;
    if (h.version > SMP_V2 && !this.serving) {
      // Zephyr 4.4 smp.c (smp_handle_single_req): a version above SMP_MCUMGR_VERSION_2 is answered
      // MGMT_ERR_UNSUPPORTED_TOO_NEW before any handler is looked up or the payload decoded, in a
      // header of the highest version it speaks (smp_make_rsp_hdr caps nh_version at 2).
      return buildPacket({ op: rspOp, version: SMP_V2, flags: 0, group: h.group, seq: h.seq, id: h.id }, encodeIndefinite({ rc: RC.UNSUPPORTED_TOO_NEW }));
    }
    const budget = at.replyBudget ?? this.serving?.bufSize ?? this.opts.bufSize;
    const reply = (body: Body) => {
      const payload = encodeIndefinite(body);
      if (SMP_HEADER_SIZE + payload.length > budget) {
        return buildPacket({ op: rspOp, version: h.version, flags: 0, group: h.group, seq: h.seq, id: h.id }, encodeIndefinite({ rc: RC.EMSGSIZE }));
      }
      return buildPacket({ op: rspOp, version: h.version, flags: 0, group: h.group, seq: h.seq, id: h.id }, payload);
    };
    let body: Body;
    try {
      const decoded = h.length === 0 ? {} : decodeCborObject(packet.subarray(SMP_HEADER_SIZE));
      if (!decoded || typeof decoded !== 'object' || Array.isArray(decoded) || decoded instanceof Uint8Array) throw new Error('not a map');
      body = decoded as Body;
    } catch {
      return reply({ rc: RC.EINVAL });
    }
    const group = (this.serving?.groups ?? this.groups).get(h.group);
    const handler = group?.[h.op === Op.Read ? 'read' : 'write']?.[h.id];
    if (!handler) return reply({ rc: RC.ENOTSUP });
    try {
      this.accessGuard?.(h.group, h.id, h.op, at);
      const out = await handler(body, { device: this, op: h.op, group: h.group, id: h.id, seq: h.seq, version: h.version, connection: at.connection, protected: !!at.protected, replyBudget: budget });
      return reply(out);
    } catch (e) {
      if (e instanceof MgmtError) {
        if (e.groupRc !== undefined && h.version === SMP_V2) return reply({ err: { group: e.errGroup ?? h.group, rc: e.groupRc } });
        return reply({ rc: e.groupRc !== undefined ? RC.EUNKNOWN : e.rc });
      }
      return reply({ rc: RC.EUNKNOWN });
    }
  }

  private sendPacket(conn: Connection, packet: Uint8Array): Promise<void> {
    return this.send(conn, encodeFrames(this.opts.framing, packet, this.opts.lineMax));
  }

  private send(conn: Connection, chunks: Uint8Array[]): Promise<void> {
    const w = conn.writer;
    if (!w) return Promise.resolve();
    const p = conn.sendChain.then(async () => {
      for (const c of chunks) await w.write(c);
    });
    conn.sendChain = p.catch(() => {});
    return p.catch(() => {});
  }
}

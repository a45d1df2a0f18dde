/**
 * UI-side connection state (Svelte 5 runes). Opens links through the link
 * modules, hands them to the SMP session and the info op, and records what
 * happens for the page to render. No protocol logic lives here.
 */
import type { Link, LinkClosed } from '../core/link/link.ts';
import { LinkOpenError } from '../core/link/link.ts';
import { REMEDY, navigatorApi } from '../core/link/web-support.ts';
import type { LogEvent, SmpSession } from '../core/groups/session.ts';
import { GROUP_NAMES } from '../core/smp/header.ts';
import type { InfoState } from '../core/ops/identification/info.ts';
/**
 * The SMP session (CBOR), the info op and the op contract load when a device is connected, not
 * before the connect screen (issue 14: initial JavaScript, first usable screen).
 */
const smp = () =>
  Promise.all([import('../core/groups/session.ts'), import('../core/ops/identification/info.ts'), import('../core/ops/outcome.ts')]).then(([s, i, o]) => ({
    openSession: s.openSession,
    readDeviceInfo: i.readDeviceInfo,
    thrownFailure: o.thrownFailure,
  }));
/**
 * The WebSerial and WebUSB links load after the first screen is up (preload()) or at the first
 * connect, whichever comes first; the chooser still opens within the click's user activation.
 */
const linkModules = () => Promise.all([import('../core/link/webserial.ts'), import('../core/link/webusb.ts')]).then(([s, u]) => ({ ...s, ...u }));
type PortEvents = { addEventListener(type: 'connect', f: () => void): void };

export type Transport = 'serial' | 'usb' | 'virtual';
/** Thrown by reconnectForOp: the technician disconnected, so the op stops (it is cancelled, not retried). */
export class DisconnectedByUser extends Error {
  readonly disconnectedByUser = true;
  constructor() {
    super('disconnected by the technician');
    this.name = 'DisconnectedByUser';
  }
}

export type Status = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface Problem {
  kind: LinkOpenError['kind'] | 'session';
  message: string;
  remedy: string;
  /** Cancelled choosers are not failures: show them calmly. */
  calm: boolean;
}

export interface LogLine {
  at: number;
  level: 'info' | 'warn' | 'error' | 'traffic';
  text: string;
}

const MAX_LOG = 500;

export const READING_LABELS: Record<string, string> = {
  os: 'application and OS information',
  bootloader: 'bootloader information',
  groups: 'supported SMP groups',
  slots: 'firmware slots',
};

const OPS = ['read', 'read-rsp', 'write', 'write-rsp'];

function describeLogEvent(e: LogEvent): { level: LogLine['level']; text: string } {
  switch (e.type) {
    case 'tx':
    case 'rx': {
      const group = GROUP_NAMES[e.group] ?? `group ${e.group}`;
      const arrow = e.type === 'tx' ? '→' : '←';
      return { level: 'traffic', text: `${arrow} ${OPS[e.op] ?? `op ${e.op}`} ${group}/${e.id} seq ${e.seq} (${e.bytes} B)` };
    }
    case 'drop':
      return { level: 'warn', text: `Dropped a frame: ${e.reason}` };
    case 'noise':
      return { level: 'traffic', text: `console: ${e.text.trimEnd()}` };
    default:
      return { level: e.type, text: e.message };
  }
}

export class Connection {
  status = $state<Status>('idle');
  transport = $state<Transport | null>(null);
  label = $state('');
  problem = $state<Problem | null>(null);
  infoState = $state<InfoState | null>(null);
  lostReason = $state('');
  log = $state<LogLine[]>([]);
  /** A device of the lost kind was plugged in while disconnected. */
  deviceBack = $state(false);

  readonly serialSupported = navigatorApi('serial') !== undefined;
  readonly usbSupported = navigatorApi('usb') !== undefined;

  private link: Link | null = null;
  /** The open SMP session while connected (for panels that run ops: identity, config, update). */
  session = $state.raw<SmpSession | null>(null);
  private lastFilters: unknown[] | undefined;
  private generation = 0;

  constructor() {
    navigatorApi<PortEvents>('serial')?.addEventListener('connect', () => this.onPlugged('serial'));
    navigatorApi<PortEvents>('usb')?.addEventListener('connect', () => this.onPlugged('usb'));
  }

  /** Load what a connection needs ahead of the first click (called once the first screen is painted). */
  preload(): void {
    void linkModules().catch(() => {});
  }

  private onPlugged(t: Transport): void {
    if (this.transport !== t || (this.status !== 'disconnected' && this.status !== 'closed')) return;
    this.deviceBack = true;
    this.note('info', 'A device was plugged in. Press Reconnect to use it.');
  }

  note(level: LogLine['level'], text: string): void {
    const next = this.log.length >= MAX_LOG ? this.log.slice(this.log.length - MAX_LOG + 1) : this.log.slice();
    next.push({ at: Date.now(), level, text });
    this.log = next;
  }

  clearLog(): void {
    this.log = [];
  }

  /** Line rate for serial links (and SET_LINE_CODING for WebUSB CDC-ACM). */
  baudRate = $state(115200);

  connect(transport: Transport): Promise<void> {
    this.closedByUser = false;
    return this.open(transport, false);
  }

  reconnect(): Promise<void> {
    this.closedByUser = false;
    return this.transport ? this.open(this.transport, true) : Promise.resolve();
  }

  /**
   * Set by Disconnect, cleared when the technician connects again: an op that
   * lost its link (an upload, the wait after a reset) must not reopen a link
   * the technician closed (issue 14 defect 11).
   */
  closedByUser = false;

  /** A reconnect on behalf of a running op: refused after the technician disconnected. */
  async reconnectForOp(): Promise<void> {
    if (this.closedByUser) throw new DisconnectedByUser();
    await this.open(this.transport!, true);
    if (this.closedByUser) throw new DisconnectedByUser();
  }

  private async obtainLink(transport: Transport, again: boolean): Promise<Link> {
    // The DEMO secure device of this page session (same device on reconnect, as if plugged back in).
    if (transport === 'virtual') {
      // Loaded when first used: the virtual device (and its demo authorities) is not in the initial bundle.
      const [{ createVirtualDevice }, { demoKit }] = await Promise.all([import('../device/virtual.ts'), import('../device/demo.ts')]);
      return createVirtualDevice({ device: (await demoKit()).device }).link;
    }
    const { requestSerialLink, reconnectSerialLinks, requestUsbLink, reconnectUsbLinks } = await linkModules();
    if (transport === 'serial') {
      if (!again) return requestSerialLink({ baudRate: this.baudRate });
      const links = await reconnectSerialLinks({ filters: this.lastFilters as never, max: 1, baudRate: this.baudRate });
      return links[0]!;
    }
    if (!again) return requestUsbLink({ baudRate: this.baudRate });
    const links = await reconnectUsbLinks({ filters: this.lastFilters as never, max: 1, baudRate: this.baudRate });
    return links[0]!;
  }

  private async open(transport: Transport, again: boolean): Promise<void> {
    if (this.status === 'connecting') return;
    await this.teardown();
    const gen = ++this.generation;
    this.transport = transport;
    this.status = 'connecting';
    this.problem = null;
    this.infoState = null;
    this.lostReason = '';
    this.deviceBack = false;
    const what = transport === 'serial' ? 'USB serial' : transport === 'usb' ? 'WebUSB' : 'the virtual device';
    this.note('info', again ? `Reconnecting over ${what}…` : `Connecting over ${what}…`);
    let link: Link;
    try {
      link = await this.obtainLink(transport, again);
    } catch (e) {
      this.fail(e, again);
      return;
    }
    this.link = link;
    this.label = link.label;
    this.note('info', `Opened ${link.label}`);
    link.closed.then((c) => this.onClosed(gen, c));
    if (transport !== 'virtual') {
      const { serialFiltersFor, usbFiltersFor } = await linkModules();
      this.lastFilters = serialFiltersFor(link) ?? usbFiltersFor(link) ?? this.lastFilters;
    }
    let session: SmpSession;
    try {
      session = await (await smp()).openSession(link, { log: (e) => this.logEvent(e) });
    } catch (e) {
      if (gen !== this.generation) return;
      // Was the device lost meanwhile? Then say so, rather than blaming MCUmgr.
      const ended = await Promise.race([link.closed, Promise.resolve(null)]);
      this.generation++; // our own close below is not news
      await link.close().catch(() => {});
      if (ended && ended.reason !== 'closed') this.fail(new LinkOpenError('gone', `The device went away: ${ended.message}`, REMEDY.gone), again);
      else this.fail(e, again, 'session');
      return;
    }
    if (gen !== this.generation) {
      await session.close().catch(() => {});
      return;
    }
    this.session = session;
    this.status = 'connected';
    await this.readInfo(session, gen);
  }

  /**
   * Read the device information again on the open session (after an update:
   * the first read after the device's reset saw the new image before it was
   * confirmed; issue 14, defect 4).
   */
  async refreshInfo(): Promise<void> {
    const s = this.session;
    if (!s || s.client.closed || this.status !== 'connected') return;
    await this.readInfo(s, this.generation);
  }

  private async readInfo(session: SmpSession, gen: number): Promise<void> {
    const { readDeviceInfo, thrownFailure } = await smp();
    try {
      for await (const st of readDeviceInfo(session)) {
        if (gen !== this.generation) return;
        this.infoState = st;
        if (st.kind === 'reading') this.note('info', `Reading ${READING_LABELS[st.what] ?? st.what}…`);
        if (st.kind === 'failed') this.note('error', st.reason);
        if (st.kind === 'done') this.note('info', 'Device information read.');
      }
    } catch (e) {
      // The op never throws; this is the loop's own defect guard.
      if (gen !== this.generation) return;
      const f = thrownFailure(e);
      this.infoState = f;
      this.note('error', f.reason);
    }
  }

  private logEvent(e: LogEvent): void {
    const { level, text } = describeLogEvent(e);
    if (text) this.note(level, text);
  }

  private onClosed(gen: number, c: LinkClosed): void {
    if (gen !== this.generation) return;
    if (c.reason === 'closed') {
      this.status = 'closed';
      this.note('info', 'Disconnected.');
      return;
    }
    this.status = 'disconnected';
    this.lostReason = c.message;
    this.note(c.reason === 'lost' ? 'warn' : 'error', `Connection lost: ${c.message}`);
  }

  private fail(e: unknown, again: boolean, kind?: 'session'): void {
    // A failed reconnect stays on the device page (with Reconnect); a failed first connect returns to the start.
    this.status = again ? 'disconnected' : 'idle';
    this.link = null;
    if (e instanceof LinkOpenError) {
      this.problem = { kind: e.kind, message: e.message, remedy: e.remedy, calm: e.kind === 'cancelled' };
      this.note(e.kind === 'cancelled' ? 'info' : 'error', `${e.message} ${e.remedy}`);
    } else {
      const message = e instanceof Error ? e.message : String(e);
      this.problem = {
        kind: kind ?? 'failed',
        message: kind === 'session' ? `The device did not answer MCUmgr requests: ${message}` : message,
        remedy:
          kind === 'session'
            ? 'Check that the firmware enables MCUmgr over this transport (SMP over the UART/USB console) and that the baud rate matches, then try again.'
            : 'Unplug the device, plug it back in and try again.',
        calm: false,
      };
      this.note('error', this.problem.message);
    }
  }

  private async teardown(): Promise<void> {
    const s = this.session;
    const l = this.link;
    this.session = null;
    this.link = null;
    this.generation++;
    if (s) await s.close().catch(() => {});
    if (l) await l.close().catch(() => {});
  }

  async disconnect(): Promise<void> {
    this.closedByUser = true;
    const gen = this.generation;
    await this.teardown();
    if (gen + 1 === this.generation) {
      this.status = 'closed';
      this.note('info', 'Disconnected.');
    }
  }

  /** Back to the first screen. */
  async forget(): Promise<void> {
    await this.teardown();
    this.status = 'idle';
    this.transport = null;
    this.infoState = null;
    this.problem = null;
    this.label = '';
  }
}

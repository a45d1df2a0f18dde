/**
 * The Bench page's state: one tile per port, rendered from the Station's events
 * (src/core/factory/station.ts). The policy (what runs, in which order, what
 * passes) is in core; this only keeps what the tiles show.
 */
import { memoryAllocator, policyDigest } from '../../core/factory/identifiers.ts';
import {
  appendStationEntry, controlLogDownload, dbJournal, stationAuditSigner, stationLogs, syncStationLog, type StationLogSummary,
} from '../../core/factory/station-log.ts';
import type { FieldbenchDB } from '../../core/store/db.ts';
import type { AuditSigner } from '../../core/store/sig.ts';
import { describeStoreError } from '../../core/ops/storage.ts';
import { downloadText } from '../records/download.ts';
import { Station, type StationEvent, type StationPort } from '../../core/factory/station.ts';
import { UNIT_STEPS, type UnitStep } from '../../core/factory/run.ts';
import { linkFromSerialPort, serialApi, serialPortLabel, type SerialPortLike } from '../../core/link/webserial.ts';
import { openSession } from '../../core/groups/session.ts';
import { toHex } from '../../core/base/bytes.ts';
import { keyId } from '../../core/trust/keys.ts';
import type { DemoLine, VirtualJig } from '../../device/demo-line.ts';
import type { LoadedStation, StationFile } from '../../core/factory/station-files.ts';

/** The line the page runs: the demo line (with its virtual units), or a station loaded from files. */
export type ActiveLine = Omit<LoadedStation, 'manufacturer' | 'station'> & {
  manufacturer: LoadedStation['manufacturer'] | DemoLine['manufacturer'];
  station: { signer: LoadedStation['station']['signer'] | DemoLine['station']['signer']; credential: Uint8Array };
  demo?: DemoLine;
};

/** The files the operator picks for a real station (StationFiles, as File objects). */
export interface StationFilePicks {
  profile?: File;
  ownerKey?: File;
  bundle?: File;
  images: File[];
  manufacturerKey?: File;
  manufacturerPassphrase: string;
  stationKey?: File;
  stationPassphrase: string;
}

export type TileState = 'waiting' | 'running' | 'pass' | 'fail' | 'removed';

export interface Tile {
  port: string;
  kind: 'virtual' | 'serial';
  state: TileState;
  unit: number;
  step?: UnitStep;
  /** 0..1 over the whole run. */
  progress: number;
  serial?: string;
  reason?: string;
  ms?: number;
}

const STEP_SHARE = 1 / UNIT_STEPS.length;

export const FILE_NAMES: Record<StationFile, string> = {
  profile: 'Station profile', 'owner-key': 'Owner key', bundle: 'Trust bundle', image: 'Firmware image', 'manufacturer-key': 'Manufacturer key', 'station-key': 'Station key',
};

export const STEP_NAMES: Record<UnitStep, string> = {
  connect: 'Connecting', info: 'Reading the unit', flash: 'Flashing firmware', 'test-boot': 'Test boot', confirm: 'Confirming the image',
  provision: 'Provisioning identity', configure: 'Factory configuration', attest: 'Attestation', label: 'Label', record: 'Recording',
};

/** Where the page keeps what the line records: the app's store and, when trust is loaded, the technician who countersigns. */
export interface BenchDeps {
  db: () => FieldbenchDB | null;
  /** Settles once the store has been opened (or failed to open): a line starts only after it. */
  ready?: () => Promise<unknown>;
  /** Why the store is not open, when it failed. */
  storeError?: () => string;
  technician?: () => AuditSigner | null;
  /** A unit was recorded (the inventory and audit pages reload). */
  onRecorded?: () => void;
}

export class BenchState {
  line = $state<ActiveLine | null>(null);
  lineError = $state('');
  /** Which file a refused station load is about (the form marks it). */
  lineErrorFile = $state<StationFile | null>(null);
  starting = $state(false);
  tiles = $state<Tile[]>([]);
  autoStart = $state(false);
  done = $state(0);
  failed = $state(0);
  /** Units recorded by this page's line since it started. */
  recorded = $state(0);
  /** The control logs the app holds (every station this browser ran), newest first. */
  logs = $state.raw<StationLogSummary[]>([]);
  logError = $state('');
  /** The key id of the running line's station (its control log). */
  stationKid = $state('');
  constructor(private readonly deps: BenchDeps = { db: () => null }) {}
  private station: Station | null = null;
  private readonly jigs = new Map<string, VirtualJig>();
  private readonly serialPorts = new Map<SerialPortLike, string>();
  private readonly replugged = new Map<SerialPortLike, () => void>();
  private nextVirtual = 1;
  private nextSerial = 1;
  private readonly onConnect = (ev: Event) => {
    const port = ((ev as Event & { port?: SerialPortLike }).port ?? ev.target) as SerialPortLike;
    if (!port) return;
    // a known port plugged back in: a new unit on it (the station picks it up); an unknown one joins when auto-start is on
    if (this.serialPorts.has(port)) this.replugged.get(port)?.();
    else if (this.autoStart) this.addSerial(port);
  };

  get manufacturerKid(): string {
    return this.line ? toHex(keyId(this.line.manufacturer.publicKey)) : '';
  }

  get serialAvailable(): boolean {
    return !!serialApi();
  }

  async startDemoLine(): Promise<void> {
    if (this.line || this.starting) return;
    this.starting = true;
    this.lineError = '';
    this.lineErrorFile = null;
    try {
      const { demoLine } = await import('../../device/demo-line.ts');
      const demo = await demoLine();
      await this.start({ profile: demo.profile, image: demo.image, bundle: demo.bundle, manufacturer: demo.manufacturer, station: demo.station, demo });
    } catch (e) {
      this.lineError = `The demo line could not be set up: ${(e as Error).message}`;
    } finally {
      this.starting = false;
    }
  }

  /** A real station from the operator's files: every file checked (core/factory/station-files.ts) before the line starts. */
  async loadStation(f: StationFilePicks): Promise<void> {
    if (this.line || this.starting) return;
    this.lineError = '';
    this.lineErrorFile = null;
    const missing = (
      [
        ['profile', f.profile, 'the station profile'],
        ['owner-key', f.ownerKey, "the owner's public key"],
        ['bundle', f.bundle, 'the trust bundle'],
        ['image', f.images[0], 'the firmware image'],
        ['manufacturer-key', f.manufacturerKey, 'the manufacturer key file'],
        ['station-key', f.stationKey, 'the station key file'],
      ] as const
    ).find(([, file]) => !file);
    if (missing) {
      this.lineErrorFile = missing[0];
      this.lineError = `Choose ${missing[2]}.`;
      return;
    }
    if (!f.manufacturerPassphrase) {
      this.lineErrorFile = 'manufacturer-key';
      this.lineError = 'Give the manufacturer key file’s passphrase.';
      return;
    }
    this.starting = true;
    try {
      const bytes = async (x: File) => new Uint8Array(await x.arrayBuffer());
      const { loadStationFiles } = await import('../../core/factory/station-files.ts');
      const r = await loadStationFiles({
        profile: await bytes(f.profile!),
        ownerKey: await f.ownerKey!.text(),
        bundle: await bytes(f.bundle!),
        images: await Promise.all(f.images.map(bytes)),
        manufacturerKey: await f.manufacturerKey!.text(),
        manufacturerPassphrase: f.manufacturerPassphrase,
        stationKey: await f.stationKey!.text(),
        stationPassphrase: f.stationPassphrase,
      });
      if (!r.ok) {
        this.lineErrorFile = r.file;
        this.lineError = `${FILE_NAMES[r.file]}: ${r.reason}`;
        return;
      }
      await this.start(r.station);
    } catch (e) {
      this.lineError = `The station could not be loaded: ${(e as Error).message}`;
    } finally {
      this.starting = false;
    }
  }

  /** Reload the list of control logs from the store. */
  async refreshLogs(): Promise<void> {
    const db = this.deps.db();
    if (!db) return;
    try {
      this.logs = await stationLogs(db);
    } catch (e) {
      this.logError = `The control logs could not be read: ${describeStoreError(e).message}`;
    }
  }

  /** One control log as a file (json: an audit export `fieldbench audit verify` checks; csv as `bench run` exports). */
  async download(station: string, kind: 'json' | 'csv'): Promise<void> {
    const db = this.deps.db();
    if (!db) return;
    try {
      const f = await controlLogDownload(db, station, kind);
      downloadText(f.name, f.text, f.mime);
    } catch (e) {
      this.logError = `The control log could not be read: ${describeStoreError(e).message}`;
    }
  }

  private async record(signer: AuditSigner, e: Parameters<typeof appendStationEntry>[2]): Promise<void> {
    const db = this.deps.db();
    // no durable record, no recorded unit: the unit fails at its record step
    if (!db) throw new Error('the local records are not open');
    const r = await appendStationEntry(db, signer, e, this.deps.technician?.() ?? undefined);
    this.recorded++;
    this.logError = r.inTrail ? '' : `Unit ${e.device?.serial ?? ''} is in the control log but not yet in the audit trail: ${r.trailError}`;
    this.deps.onRecorded?.();
    void this.refreshLogs();
  }

  private async start(line: ActiveLine): Promise<void> {
    // The identifiers this browser issued under the policy are journaled in the store, so a reload never reissues
    // one: a line clicked before the store is open waits for it, and without the store it does not start at all
    // (an in-memory journal would hand out DEMO-00001 again after a reload).
    await this.deps.ready?.();
    const db = this.deps.db();
    if (!db) {
      // a loaded station's unwrapped keys do not stay in memory for a line that never ran
      if (!line.demo) {
        (line.manufacturer as { forget?: () => void }).forget?.();
        (line.station.signer as { forget?: () => void }).forget?.();
      }
      throw new Error(`${this.deps.storeError?.() || 'The local records are not open'}. A line records every unit and journals every identifier it issues there, so it cannot start without them.`);
    }
    this.line = line;
    const signer = stationAuditSigner(line.station.signer);
    this.stationKid = signer.id.slice('station:'.length);
    const policy = line.profile.identity.policy;
    const allocator = memoryAllocator(policy, dbJournal(db, `identifiers:${policyDigest(policy)}`));
    void syncStationLog(db, this.stationKid, this.deps.technician?.() ?? signer, signer.publicKey)
      .then((r) => {
        if (!r.ok) this.logError = `This station's control log in the store does not verify (${r.code}): ${r.reason}`;
        else if (r.imported) this.deps.onRecorded?.();
      })
      .catch((e) => void (this.logError = describeStoreError(e).message));
    this.station = new Station({
      profile: line.profile,
      image: line.image,
      bundle: line.bundle,
      manufacturer: line.manufacturer,
      station: line.station,
      allocator,
      record: (e) => this.record(signer, e),
      pollMs: 200,
      onEvent: (e) => this.event(e),
    });
    serialApi()?.addEventListener('connect', this.onConnect);
  }

  private tile(port: string): Tile | undefined {
    return this.tiles.find((t) => t.port === port);
  }

  private event(e: StationEvent): void {
    const t = this.tile(e.port);
    if (!t) return;
    switch (e.kind) {
      case 'waiting':
        if (e.for === 'unit') Object.assign(t, { state: 'waiting', step: undefined, progress: 0, reason: undefined, serial: undefined });
        break;
      case 'unit-start':
        Object.assign(t, { state: 'running', unit: e.unit, step: 'connect', progress: 0, serial: undefined, reason: undefined, ms: undefined });
        break;
      case 'unit-state': {
        const s = e.state;
        if (s.kind === 'step') {
          t.step = s.step;
          t.progress = Math.max(t.progress, (UNIT_STEPS.indexOf(s.step) + (s.progress ?? 0)) * STEP_SHARE);
        } else if (s.kind === 'step-done') t.progress = Math.max(t.progress, (UNIT_STEPS.indexOf(s.step) + 1) * STEP_SHARE);
        else if (s.kind === 'identified') t.serial = s.serial;
        break;
      }
      case 'unit-end': {
        const o = e.outcome;
        t.ms = e.ms;
        if (o.kind === 'done') {
          Object.assign(t, { state: 'pass', progress: 1, serial: o.result.serial });
          this.done++;
        } else {
          t.state = 'fail';
          t.reason = o.kind === 'failed' ? o.reason : o.kind === 'cancelled' ? 'cancelled' : `unsupported: ${o.reason}`;
          if (o.kind === 'failed' && o.details?.step) t.step = o.details.step;
          this.failed++;
        }
        break;
      }
      case 'port-done':
        t.state = 'removed';
        break;
    }
  }

  private add(port: StationPort, kind: Tile['kind']): void {
    this.tiles.push({ port: port.name, kind, state: 'waiting', unit: 0, progress: 0 });
    this.station!.add(port);
  }

  async addVirtual(): Promise<void> {
    if (!this.line?.demo || !this.station) return;
    const { virtualJig } = await import('../../device/demo-line.ts');
    const name = `virtual jig ${this.nextVirtual++}`;
    const jig = await virtualJig(this.line.demo, name);
    this.jigs.set(name, jig);
    this.add(jig, 'virtual');
  }

  /** The operator swaps the unit on a virtual jig for a new factory-fresh one. */
  async nextUnit(port: string): Promise<void> {
    const jig = this.jigs.get(port);
    if (!jig) return;
    jig.remove();
    await new Promise((r) => setTimeout(r, 450)); // the port sees the removal, then the new unit
    await jig.insert();
  }

  async requestSerial(): Promise<void> {
    const api = serialApi();
    if (!api || !this.station) return;
    let port: SerialPortLike;
    try {
      port = await api.requestPort();
    } catch {
      return; // the operator closed the chooser
    }
    this.addSerial(port);
  }

  private addSerial(port: SerialPortLike): void {
    if (!this.station || this.serialPorts.has(port)) return;
    const name = `serial ${this.nextSerial++} (${serialPortLabel(port)})`;
    this.serialPorts.set(port, name);
    let gone = false;
    const onGone = () => void (gone = true);
    port.addEventListener?.('disconnect', onGone);
    this.replugged.set(port, () => void (gone = false));
    const sp: StationPort = {
      name,
      // a WebSerial port is present while it is connected (Chrome's `connected`; else until its disconnect event)
      present: async () => !gone && (port as SerialPortLike & { connected?: boolean }).connected !== false,
      connect: async () => {
        if (port.readable) await port.close().catch(() => {});
        const link = await linkFromSerialPort(port, { serial: serialApi() });
        return openSession(link, { timeoutMs: 3000 });
      },
    };
    this.add(sp, 'serial');
  }

  stop(): void {
    this.station?.stop();
    serialApi()?.removeEventListener('connect', this.onConnect);
    // a loaded station's unwrapped keys leave memory with the page
    if (this.line && !this.line.demo) {
      (this.line.manufacturer as { forget?: () => void }).forget?.();
      (this.line.station.signer as { forget?: () => void }).forget?.();
    }
  }
}

/**
 * A factory station: many ports at once, each running one unit after another
 * (runUnit, run.ts). Framework-free: the CLI's `bench run` and the app's Bench
 * page drive it with their own ports (serial paths, TCP addresses, WebSerial
 * ports, memory jigs in tests and benchmarks) and render its events.
 *
 * A port's life: wait until a unit is present -> run it -> wait until it is
 * removed (a unit left on the jig, passed or failed, is never run twice by
 * accident) -> wait for the next one. A unit plugged in after the start is
 * picked up; a port that disappears and comes back is a new unit (its run
 * keeps any identity an earlier, interrupted run gave it: run.ts).
 */
import type { SmpSession } from '../groups/session.ts';
import type { Outcome } from '../ops/outcome.ts';
import { type RunUnitOptions, type UnitFailure, type UnitFailureDetails, type UnitResult, type UnitState, runUnitToEnd } from './run.ts';

export interface StationPort {
  /** Stable name (a path, an address): in every record. */
  name: string;
  /** Is a unit on this port now? Cheap, never throws (false when unsure). */
  present(): Promise<boolean>;
  /** Open a session to the unit on this port. */
  connect(): Promise<SmpSession>;
}

export type UnitOutcome = Outcome<UnitResult, UnitFailure, UnitFailureDetails>;

export type StationEvent =
  | { kind: 'port-added'; port: string }
  | { kind: 'waiting'; port: string; for: 'unit' | 'removal' }
  | { kind: 'unit-start'; port: string; unit: number }
  | { kind: 'unit-state'; port: string; unit: number; state: UnitState }
  | { kind: 'unit-end'; port: string; unit: number; outcome: UnitOutcome; ms: number }
  | { kind: 'port-done'; port: string };

export interface StationSummary {
  done: number;
  failed: number;
  elapsedMs: number;
  /** Units finished (passed or failed) per hour of wall time. */
  unitsPerHour: number;
  /** Passed units per hour of wall time. */
  passedPerHour: number;
}

export interface StationOptions extends Omit<RunUnitOptions, 'port' | 'connect' | 'signal'> {
  /** How often to look for a unit / for its removal (default 500 ms). */
  pollMs?: number;
  /** Each port runs one unit, then is done (tests, a one-shot demo line). */
  once?: boolean;
  /** Stop once this many units have finished (passed or failed). */
  maxUnits?: number;
  signal?: AbortSignal;
  onEvent?: (e: StationEvent) => void;
}

export class Station {
  private readonly ports = new Map<string, Promise<void>>();
  private readonly stopper = new AbortController();
  private readonly started = Date.now();
  private finished = 0;
  done = 0;
  failed = 0;
  private idle: (() => void) | null = null;

  constructor(private readonly opts: StationOptions) {
    opts.signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  /** Start a port's loop (again a no-op for a port already running). */
  add(port: StationPort): void {
    if (this.ports.has(port.name) || this.stopped) return;
    this.emit({ kind: 'port-added', port: port.name });
    const loop = this.loop(port).finally(() => {
      this.ports.delete(port.name);
      this.emit({ kind: 'port-done', port: port.name });
      if (this.ports.size === 0) this.idle?.();
    });
    this.ports.set(port.name, loop);
  }

  has(name: string): boolean {
    return this.ports.has(name);
  }

  /** Stop: running units are cancelled (they end `cancelled`, nothing more is sent), waiting ports end. */
  stop(): void {
    this.stopper.abort();
  }

  /** Resolves when every port's loop has ended (after stop(), or with `once` when each ran its unit). */
  async finish(): Promise<StationSummary> {
    while (this.ports.size > 0) await Promise.allSettled([...this.ports.values()]);
    return this.summary();
  }

  summary(): StationSummary {
    const elapsedMs = Date.now() - this.started;
    const h = elapsedMs / 3600_000;
    return { done: this.done, failed: this.failed, elapsedMs, unitsPerHour: h > 0 ? (this.done + this.failed) / h : 0, passedPerHour: h > 0 ? this.done / h : 0 };
  }

  private emit(e: StationEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      /* a renderer's bug never stops the line */
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((res) => {
      if (this.stopped) return res();
      const t = setTimeout(done, ms);
      const s = this.stopper.signal;
      function done() {
        clearTimeout(t);
        s.removeEventListener('abort', done);
        res();
      }
      s.addEventListener('abort', done, { once: true });
    });
  }

  private async loop(port: StationPort): Promise<void> {
    const poll = this.opts.pollMs ?? 500;
    let unit = 0;
    while (!this.stopped) {
      this.emit({ kind: 'waiting', port: port.name, for: 'unit' });
      while (!this.stopped && !(await port.present().catch(() => false))) await this.sleep(poll);
      if (this.stopped) return;
      unit++;
      this.emit({ kind: 'unit-start', port: port.name, unit });
      const t0 = Date.now();
      // one signal per unit (the station's stop aborts it), so listeners never pile up on one signal
      const unitStop = new AbortController();
      const onStop = () => unitStop.abort();
      this.stopper.signal.addEventListener('abort', onStop, { once: true });
      const outcome = await runUnitToEnd({ ...this.opts, port: port.name, connect: () => port.connect(), signal: unitStop.signal }, (state) =>
        this.emit({ kind: 'unit-state', port: port.name, unit, state }),
      ).finally(() => this.stopper.signal.removeEventListener('abort', onStop));
      if (outcome.kind === 'done') this.done++;
      else if (outcome.kind !== 'cancelled') this.failed++;
      this.finished++;
      this.emit({ kind: 'unit-end', port: port.name, unit, outcome, ms: Date.now() - t0 });
      if (this.opts.maxUnits !== undefined && this.finished >= this.opts.maxUnits) this.stop();
      if (this.opts.once || this.stopped) return;
      this.emit({ kind: 'waiting', port: port.name, for: 'removal' });
      while (!this.stopped && (await port.present().catch(() => false))) await this.sleep(poll);
    }
  }
}

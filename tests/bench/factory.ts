/**
 * The factory line (src/core/factory/run.ts, station.ts): 1, 4, 8 and 16 factory-fresh units in
 * parallel over the memory link model, at 115200 and 921600 baud, a 256 KiB signed image, and
 * realistic flash timing (20 ms per 4 KiB sector erase, 3 µs per byte written, as tests/bench/update.ts;
 * 1 ms one-way USB latency; MCUmgr buffers 2048 x 4). All units of a row start together on one
 * station (one shared identifier allocator, one control log sink).
 *
 * The simulated units run in a worker thread (tests/helpers/device-worker.ts, workerLine): a real
 * unit's key generation, signatures, image hashing and flash work run on the unit, not on the
 * station PC, and with the units in the station's own thread the bench measured the simulation's
 * crypto queueing behind the station's (all N units reach provision, configure and attest at about
 * the same moment). The line model (pacing, latency) stays on the station's side of the cable.
 * FACTORY_DEVICES=same runs them in the station's thread, as before (the comparison in docs/FACTORY.md).
 *
 *   units/hour         N / wall time of the batch
 *   scaling efficiency time per unit alone / time per unit at N (wall(1) / wall(N): 1 = perfect)
 *   CPU per unit       the station's thread's CPU time / N (/proc/thread-self/stat), with the
 *                      devices' worker thread and the whole process beside it
 *   per step           mean ms of each step (where the time goes)
 *
 * FACTORY_BENCH=quick: only 1 and 4 units at 921600 (a smoke run); FACTORY_BAUDS=921600 one baud rate.
 */
import { loadavg } from 'node:os';
import { memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { type UnitResult, UNIT_STEPS, runUnitToEnd } from '../../src/core/factory/run.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { type JigOptions, type DeviceWorker, factoryWorld, makeJig, startDeviceWorker, unitOptions } from '../helpers/factory-world.ts';
import { threadCpuMicros } from '../helpers/thread-cpu.ts';
import type { BenchRow } from './types.ts';

const IMAGE = 256 * 1024;
const FLASH = { eraseMsPerSector: 20, writeUsPerByte: 3 };

export interface FactoryRow {
  baud: number;
  units: number;
  wallMs: number;
  unitsPerHour: number;
  efficiency: number;
  /** The station's CPU per unit (its thread, the devices being in the worker), ms. */
  cpuMsPerUnit: number;
  /** The whole process (station, devices, link model), ms. */
  processCpuMsPerUnit: number;
  /** The worker thread of the simulated devices, ms. */
  deviceCpuMsPerUnit?: number;
  steps: Record<string, number>;
  /** The machine's 1-minute load average when the batch ended (the runs share 2 cores with others). */
  load: number;
}

/** Where the simulated units run: a worker thread (the station measured alone) or the station's own thread. */
export type DeviceThread = 'worker' | 'same';

export async function measure(baud: number, units: number, w: Awaited<ReturnType<typeof factoryWorld>>, worker?: DeviceWorker): Promise<Omit<FactoryRow, 'efficiency'>> {
  const jigOpts: JigOptions = { model: { baudRate: baud, latencyMs: 1 }, ...FLASH, slotSize: 320 * 1024, bufSize: 2048, bufCount: 4, timeoutMs: 5000 };
  const jigs = worker ? await worker.jigs(w, units, jigOpts) : await Promise.all(Array.from({ length: units }, () => makeJig(w, jigOpts)));
  const allocator = memoryAllocator(w.policy);
  const records: AuditInput[] = [];
  const dev0 = await worker?.cpuMicros();
  const thread0 = threadCpuMicros();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const results = await Promise.all(
    jigs.map((jig, i) =>
      runUnitToEnd(unitOptions(w, jig, { port: `jig-${i + 1}`, allocator, records, update: { resetSettleMs: 50, bootTimeoutMs: 20000 } })),
    ),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const thread1 = threadCpuMicros();
  const dev1 = await worker?.cpuMicros();
  const done: UnitResult[] = [];
  for (const r of results) {
    if (r.kind !== 'done') throw new Error(`a unit failed at ${baud} baud x ${units}: ${r.reason}`);
    done.push(r.result);
  }
  if (new Set(done.map((d) => d.serial)).size !== units || records.length !== units) throw new Error('identifiers or records do not add up');
  const steps: Record<string, number> = {};
  for (const s of UNIT_STEPS) steps[s] = done.reduce((a, d) => a + (d.steps.find((x) => x.step === s)?.ms ?? 0), 0) / units;
  const processMs = (cpu.user + cpu.system) / 1000;
  // the station's own CPU: its thread's (the devices are in the worker); with the devices in the same
  // thread only the process figure exists, an upper bound
  const stationMs = worker && thread0 !== undefined && thread1 !== undefined ? (thread1 - thread0) / 1000 : processMs;
  const devicesMs = dev0 !== undefined && dev1 !== undefined ? (dev1 - dev0) / 1000 : undefined;
  return {
    baud,
    units,
    wallMs,
    unitsPerHour: (units * 3600_000) / wallMs,
    cpuMsPerUnit: stationMs / units,
    processCpuMsPerUnit: processMs / units,
    ...(devicesMs !== undefined ? { deviceCpuMsPerUnit: devicesMs / units } : {}),
    steps,
    load: loadavg()[0],
  };
}

export async function factoryTable(quick = process.env.FACTORY_BENCH === 'quick', where: DeviceThread = process.env.FACTORY_DEVICES === 'same' ? 'same' : 'worker'): Promise<FactoryRow[]> {
  const w = await factoryWorld({ imageSize: IMAGE - 512 });
  const worker = where === 'worker' ? await startDeviceWorker() : undefined;
  try {
    const out: FactoryRow[] = [];
    await measure(921600, 1, w, worker); // warm-up (JIT, first-use allocations): not reported
    const bauds = process.env.FACTORY_BAUDS ? process.env.FACTORY_BAUDS.split(',').map(Number) : quick ? [921600] : [115200, 921600];
    for (const baud of bauds) {
      let alone = 0;
      for (const units of quick ? [1, 4] : [1, 4, 8, 16]) {
        let r = await measure(baud, units, w, worker);
        if (units === 1) {
          // time per unit alone: the faster of two runs (a run slowed by another process on the machine
          // would flatter every ratio after it)
          const again = await measure(baud, units, w, worker);
          if (again.wallMs < r.wallMs) r = again;
          alone = r.wallMs;
        }
        out.push({ ...r, efficiency: alone / r.wallMs });
        process.stderr.write(
          `  factory ${baud} baud x ${units} (devices: ${where} thread, load ${loadavg()[0].toFixed(1)}): ${(r.wallMs / 1000).toFixed(1)} s, ${r.unitsPerHour.toFixed(0)} units/h, efficiency ${(alone / r.wallMs).toFixed(3)}, ` +
            `CPU/unit station ${r.cpuMsPerUnit.toFixed(0)} ms, devices ${r.deviceCpuMsPerUnit?.toFixed(0) ?? '-'} ms, process ${r.processCpuMsPerUnit.toFixed(0)} ms; ` +
            `steps ${Object.entries(r.steps).map(([k, v]) => `${k} ${Math.round(v)}`).join(' ')}\n`,
        );
      }
    }
    return out;
  } finally {
    await worker?.close();
  }
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const table = await factoryTable();
  for (const r of table) {
    const tag = `${r.baud} baud x ${String(r.units).padStart(2)}`;
    rows.push({ name: `factory line ${tag}: units per hour`, value: r.unitsPerHour, unit: 'units/h', note: `batch ${(r.wallMs / 1000).toFixed(1)} s, load average ${r.load.toFixed(1)} (2 cores shared: the ratios move with it)` });
    rows.push({ name: `factory line ${tag}: scaling efficiency`, value: r.efficiency, unit: 'ratio', note: 'time per unit alone / at N (goal >= 0.9 at 16)' });
    rows.push({
      name: `factory line ${tag}: station CPU per unit`,
      value: r.cpuMsPerUnit,
      unit: 'ms',
      note: `${r.deviceCpuMsPerUnit !== undefined ? `devices (worker) ${r.deviceCpuMsPerUnit.toFixed(0)} ms, ` : ''}whole process ${r.processCpuMsPerUnit.toFixed(0)} ms`,
    });
    {
      const total = Object.values(r.steps).reduce((a, b) => a + b, 0);
      rows.push({
        name: `factory line ${tag}: time per step`,
        value: total,
        unit: 'ms',
        note: Object.entries(r.steps)
          .filter(([, ms]) => ms >= 1)
          .map(([s, ms]) => `${s} ${Math.round(ms)} (${Math.round((ms * 100) / total)}%)`)
          .join(', '),
      });
    }
  }
  return rows;
}

/**
 * The factory line (src/core/factory/run.ts, station.ts): 1, 4, 8 and 16 factory-fresh units in
 * parallel over the memory link model, at 115200 and 921600 baud, a 256 KiB signed image, and
 * realistic flash timing (20 ms per 4 KiB sector erase, 3 µs per byte written, as tests/bench/update.ts;
 * 1 ms one-way USB latency; MCUmgr buffers 2048 x 4). All units of a row start together on one
 * station (one shared identifier allocator, one control log sink).
 *
 *   units/hour         N / wall time of the batch
 *   scaling efficiency time per unit alone / time per unit at N (wall(1) / wall(N): 1 = perfect)
 *   CPU per unit       process CPU time (user + system) / N: the station AND the N simulated devices
 *                      run in this one thread, so this is an upper bound of the station's own CPU
 *   per step           mean ms of each step (where the time goes)
 *
 * FACTORY_BENCH=quick: only 1 and 4 units at 921600 (a smoke run).
 */
import { memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { type UnitResult, UNIT_STEPS, runUnitToEnd } from '../../src/core/factory/run.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { factoryWorld, makeJig } from '../helpers/factory-world.ts';
import type { BenchRow } from './types.ts';

const IMAGE = 256 * 1024;
const FLASH = { eraseMsPerSector: 20, writeUsPerByte: 3 };

export interface FactoryRow {
  baud: number;
  units: number;
  wallMs: number;
  unitsPerHour: number;
  efficiency: number;
  cpuMsPerUnit: number;
  steps: Record<string, number>;
}

export async function measure(baud: number, units: number, w: Awaited<ReturnType<typeof factoryWorld>>): Promise<Omit<FactoryRow, 'efficiency'>> {
  const jigs = await Promise.all(Array.from({ length: units }, () => makeJig(w, { model: { baudRate: baud, latencyMs: 1 }, ...FLASH, slotSize: 320 * 1024, bufSize: 2048, bufCount: 4, timeoutMs: 5000 })));
  const allocator = memoryAllocator(w.policy);
  const records: AuditInput[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const results = await Promise.all(
    jigs.map((jig, i) =>
      runUnitToEnd({
        port: `jig-${i + 1}`,
        connect: () => jig.connect(),
        profile: w.profile,
        image: w.image,
        bundle: w.bundle,
        manufacturer: w.manufacturer,
        station: { signer: w.stationSigner },
        allocator,
        record: async (e) => void records.push(e),
        update: { resetSettleMs: 50, bootTimeoutMs: 20000 },
      }),
    ),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const done: UnitResult[] = [];
  for (const r of results) {
    if (r.kind !== 'done') throw new Error(`a unit failed at ${baud} baud x ${units}: ${r.reason}`);
    done.push(r.result);
  }
  if (new Set(done.map((d) => d.serial)).size !== units || records.length !== units) throw new Error('identifiers or records do not add up');
  const steps: Record<string, number> = {};
  for (const s of UNIT_STEPS) steps[s] = done.reduce((a, d) => a + (d.steps.find((x) => x.step === s)?.ms ?? 0), 0) / units;
  return { baud, units, wallMs, unitsPerHour: (units * 3600_000) / wallMs, cpuMsPerUnit: (cpu.user + cpu.system) / 1000 / units, steps };
}

export async function factoryTable(quick = process.env.FACTORY_BENCH === 'quick'): Promise<FactoryRow[]> {
  const w = await factoryWorld({ imageSize: IMAGE - 512 });
  const out: FactoryRow[] = [];
  await measure(921600, 1, w); // warm-up (JIT, first-use allocations): not reported
  for (const baud of quick ? [921600] : [115200, 921600]) {
    let alone = 0;
    for (const units of quick ? [1, 4] : [1, 4, 8, 16]) {
      const r = await measure(baud, units, w);
      if (units === 1) alone = r.wallMs;
      out.push({ ...r, efficiency: alone / r.wallMs });
      process.stderr.write(`  factory ${baud} baud x ${units}: ${(r.wallMs / 1000).toFixed(1)} s, ${r.unitsPerHour.toFixed(0)} units/h, efficiency ${(alone / r.wallMs).toFixed(3)}\n`);
    }
  }
  return out;
}

export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const table = await factoryTable();
  for (const r of table) {
    const tag = `${r.baud} baud x ${String(r.units).padStart(2)}`;
    rows.push({ name: `factory line ${tag}: units per hour`, value: r.unitsPerHour, unit: 'units/h', note: `batch ${(r.wallMs / 1000).toFixed(1)} s` });
    rows.push({ name: `factory line ${tag}: scaling efficiency`, value: r.efficiency, unit: 'ratio', note: 'time per unit alone / at N (goal >= 0.9 at 16)' });
    rows.push({ name: `factory line ${tag}: CPU per unit (station + devices)`, value: r.cpuMsPerUnit, unit: 'ms' });
    if (r.units === 1 || r.units === 16) {
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

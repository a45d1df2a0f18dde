/**
 * Faults at every step of a unit's run (src/core/factory/run.ts), injected through the link
 * model (memory cables, tests/helpers/factory-world.ts):
 *
 *   unplug   the cable is pulled and the unit stays away until the operator plugs it back
 *   reset    the unit resets (RAM state lost, the link drops and comes back, as USB re-enumerates)
 *   crash    the station process dies (the run is abandoned; the allocator reopens its journal)
 *
 * at the start of each step, at each provisioning sub-step, and in the middle of the upload.
 * Each case: the faulted run, then the operator's retry on the same unit. Every case must leave
 * the unit either fully provisioned and recorded, or restartable (the retry completes it), with
 * no identifier issued twice (over the whole matrix) and no half-written record (every record
 * is a complete control entry). The matrix is printed (it goes into the closing note).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type RunUnitOptions, type UnitState, runUnit } from '../../src/core/factory/run.ts';
import { type JournaledAllocator, MemoryJournal, memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { type UnitControlRecord, controlEntry } from '../../src/core/factory/control-log.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { equalBytes } from '../../src/core/base/bytes.ts';
import { type FactoryWorld, type Jig, factoryWorld, makeJig, unitOptions } from '../helpers/factory-world.ts';

type Fault = 'unplug' | 'reset' | 'crash';

const POINTS = [
  'connect', 'info', 'flash', 'flash@50%', 'test-boot', 'confirm',
  'provision', 'provision:state', 'provision:begin', 'provision:identifiers', 'provision:issue', 'provision:install', 'provision:readback',
  'configure', 'attest', 'label', 'record',
] as const;

class StationCrash extends Error {}

interface Row {
  point: string;
  fault: Fault;
  board: 'app' | 'blank';
  first: string;
  retry: string;
  identity: string;
  burned: number;
  journal: string;
}

const rows: Row[] = [];
let world: FactoryWorld | undefined;
const journal = new MemoryJournal();
let allocator: JournaledAllocator;
/** Serial each unit holds at the end, for the no-duplicate check over the whole matrix. */
const held: string[] = [];

afterAll(() => {
  if (!rows.length) return;
  const w = (k: keyof Row) => Math.max(String(k).length, ...rows.map((r) => String(r[k]).length));
  const cols: (keyof Row)[] = ['board', 'point', 'fault', 'first', 'retry', 'identity', 'journal', 'burned'];
  const line = (r: Record<string, unknown> | Row) => cols.map((c) => String((r as Record<string, unknown>)[c]).padEnd(w(c))).join(' | ');
  console.log(['', 'FACTORY FAULT MATRIX', line(Object.fromEntries(cols.map((c) => [c, c]))), cols.map((c) => '-'.repeat(w(c))).join('-|-'), ...rows.map(line)].join('\n'));
});

function opts(w: FactoryWorld, jig: Jig, records: AuditInput[], extra: Partial<RunUnitOptions> = {}): RunUnitOptions {
  return unitOptions(w, jig, {
    port: 'jig',
    allocator,
    record: async (e) => {
      controlEntry(e.details as unknown as UnitControlRecord); // throws on an incomplete record
      records.push(e);
    },
    update: { resetSettleMs: 10, bootTimeoutMs: 800 },
    ...extra,
  });
}

async function drive(o: RunUnitOptions, onState?: (s: UnitState) => void | Promise<void>): Promise<Extract<UnitState, { kind: 'done' | 'failed' | 'cancelled' | 'unsupported' }>> {
  let last: UnitState | undefined;
  for await (const s of runUnit(o)) {
    last = s;
    await onState?.(s);
  }
  return last as never;
}

const describeOutcome = (o: { kind: string; code?: string; details?: unknown }) =>
  o.kind === 'done' ? 'done' : `${o.kind} ${o.code ?? ''}@${(o.details as { step?: string } | undefined)?.step ?? '?'}`.trim();

async function runCase(point: (typeof POINTS)[number], fault: Fault, board: 'app' | 'blank' = 'app') {
  const w = (world ??= await factoryWorld({ imageSize: 48 * 1024 }));
  allocator ??= memoryAllocator(w.policy, journal);
  const jig = await makeJig(w, { blank: board === 'blank', timeoutMs: 600 });
  const records: AuditInput[] = [];
  const before = (await allocator.entries()).length;
  let fired = false;
  // after a station crash nothing more of that process reaches the journal or the control log
  let dead = false;
  const live = allocator;
  const processAllocator = {
    allocate: (...a: Parameters<JournaledAllocator['allocate']>) => (dead ? Promise.reject(new StationCrash('dead')) : live.allocate(...a)),
    hold: (...a: Parameters<JournaledAllocator['hold']>) => (dead ? Promise.reject(new StationCrash('dead')) : live.hold(...a)),
    commit: (...a: Parameters<JournaledAllocator['commit']>) => (dead ? Promise.reject(new StationCrash('dead')) : live.commit(...a)),
  };
  const inject = async () => {
    if (fired) return;
    fired = true;
    if (fault === 'unplug') {
      jig.unplugged = true;
      jig.unplug();
    } else if (fault === 'reset') await jig.reset();
    else {
      dead = true;
      throw new StationCrash('the station process died');
    }
  };
  const first = await drive(
    opts(w, jig, records, {
      allocator: processAllocator,
      record: async (e) => {
        if (dead) throw new StationCrash('dead');
        controlEntry(e.details as unknown as UnitControlRecord);
        records.push(e);
      },
      hooks: {
        beforeStep: async (s) => {
          if (s === point) await inject();
        },
      },
    }),
    async (s) => {
      if (point === 'flash@50%' && s.kind === 'step' && s.step === 'flash' && (s.progress ?? 0) >= 0.5) await inject();
    },
  );
  expect(fired, `${point}: the fault was injected`).toBe(true);
  // a crashed station restarts: it reopens its journal (interrupted allocations become failed, never reissued)
  if (fault === 'crash') allocator = memoryAllocator(w.policy, journal);
  jig.replug();
  // after the fault: either fully provisioned and recorded, or a failed record (complete) or none
  if (first.kind === 'done') {
    expect(records.map((r) => r.outcome)).toEqual(['provisioned']);
  } else {
    expect(records.every((r) => r.outcome === 'failed')).toBe(true);
    expect(records).toHaveLength(fault === 'crash' ? 0 : 1);
  }
  const identityAfterFault = jig.security.provisioned ? jig.security.opts.serial : undefined;
  let retry = first;
  if (first.kind !== 'done') {
    retry = await drive(opts(w, jig, records));
    expect(retry, `${point}/${fault}: the retry completes the unit: ${JSON.stringify(retry).slice(0, 600)}`).toMatchObject({ kind: 'done' });
  }
  if (retry.kind !== 'done') throw new Error('unreachable');
  // the unit is what its record says: the profile's image, confirmed; the identity recorded
  expect(equalBytes(jig.device.firmware()[0].sha256, w.imageHash)).toBe(true);
  expect(jig.security.opts.serial).toBe(retry.result.serial);
  expect(records.filter((r) => r.outcome === 'provisioned')).toHaveLength(1);
  if (identityAfterFault) expect(retry.result.serial, 'an identity the unit holds is kept').toBe(identityAfterFault);
  held.push(retry.result.serial);
  expect(new Set(held).size, 'no identifier issued twice').toBe(held.length);
  const entries = await allocator.entries();
  const mine = entries.slice(before);
  rows.push({
    point,
    fault,
    board,
    first: describeOutcome(first as never),
    retry: first.kind === 'done' ? '-' : 'done',
    identity: retry.result.kept ? `kept ${retry.result.serial}` : `new ${retry.result.serial}`,
    burned: mine.filter((e) => e.ids?.serial !== retry.result.serial).length,
    journal: mine.find((e) => e.ids?.serial === retry.result.serial)?.status ?? '-',
  });
  // every identifier this case allocated is committed: provisioned to this unit, or failed (never reissued)
  expect(mine.every((e) => e.status === 'provisioned' || e.status === 'failed')).toBe(true);
  // the unit's serial was allocated exactly once, in this case; 'failed' only when the unit stored its
  // certificate but the station never saw the read-back (the retry kept it; the control log records it)
  expect(mine.filter((e) => e.ids?.serial === retry.result.serial)).toHaveLength(1);
  const own = mine.find((e) => e.ids?.serial === retry.result.serial)!;
  if (own.status === 'failed') expect(['provision:readback'], `${point}: journal says failed`).toContain(point);
}

describe('faults at every step of a unit run', () => {
  for (const fault of ['unplug', 'reset'] as const) {
    for (const point of POINTS) {
      it(`${fault} at ${point}`, async () => {
        await runCase(point, fault);
      }, 30_000);
    }
  }
  for (const point of ['provision:identifiers', 'provision:issue', 'provision:install', 'provision:readback', 'configure', 'record'] as const) {
    it(`station crash at ${point}`, async () => {
      await runCase(point, 'crash');
    }, 30_000);
  }
  for (const fault of ['unplug', 'reset'] as const) {
    for (const point of ['flash', 'flash@50%', 'test-boot'] as const) {
      it(`blank board (serial recovery): ${fault} at ${point}`, async () => {
        await runCase(point, fault, 'blank');
      }, 30_000);
    }
  }

  it('the control log sink failing (disk full): the unit fails at record with the reason, and the retry records it once', async () => {
    const w = (world ??= await factoryWorld({ imageSize: 48 * 1024 }));
    allocator ??= memoryAllocator(w.policy, journal);
    const jig = await makeJig(w);
    const records: AuditInput[] = [];
    const o = await drive(opts(w, jig, records, { record: async () => Promise.reject(new Error('ENOSPC: no space left on device')) }));
    expect(o).toMatchObject({ kind: 'failed', code: 'record', retryable: true });
    expect(o.kind === 'failed' && o.reason).toMatch(/ENOSPC.*and the failure could not be recorded/);
    const r = await drive(opts(w, jig, records));
    expect(r).toMatchObject({ kind: 'done', result: { kept: true } });
    expect(records.map((x) => x.outcome)).toEqual(['provisioned']);
    if (r.kind === 'done') held.push(r.result.serial);
    expect(new Set(held).size).toBe(held.length);
  });
});

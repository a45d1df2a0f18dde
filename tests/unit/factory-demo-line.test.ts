/**
 * The app's demo line (src/device/demo-line.ts), as README's demo section runs it on the Bench
 * page: eight virtual factory-fresh units on one Station at once, every one provisioned and
 * recorded, no identifier twice.
 */
import { describe, expect, it } from 'vitest';
import { memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { Station } from '../../src/core/factory/station.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { demoLine, virtualJig } from '../../src/device/demo-line.ts';

describe('the demo line', () => {
  it('runs eight virtual units at once to provisioned, each recorded once', async () => {
    const line = await demoLine();
    const records: AuditInput[] = [];
    const serials: string[] = [];
    const station = new Station({
      profile: line.profile,
      image: line.image,
      bundle: line.bundle,
      manufacturer: line.manufacturer,
      station: line.station,
      allocator: memoryAllocator(line.profile.identity.policy),
      record: async (e) => void records.push(e),
      once: true,
      pollMs: 50,
      onEvent: (e) => {
        if (e.kind === 'unit-end' && e.outcome.kind === 'done') serials.push(e.outcome.result.serial);
      },
    });
    for (let i = 1; i <= 8; i++) station.add(await virtualJig(line, `virtual jig ${i}`));
    const s = await station.finish();
    expect(s).toMatchObject({ done: 8, failed: 0 });
    expect(new Set(serials).size).toBe(8);
    expect(records).toHaveLength(8);
  }, 120_000);
});

/**
 * The Bench page's state (src/ui/bench/bench.svelte.ts) over a fake IndexedDB.
 * CI found the race: "Start demo line" clicked before the app's store had
 * opened journaled the issued identifiers in memory only, so after a reload
 * the next line issued DEMO-00001 again. A line now waits for the store and
 * does not start without it.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type FieldbenchDB } from '../../src/core/store/db.ts';
import { BenchState } from '../../src/ui/bench/bench.svelte.ts';

const dbs: FieldbenchDB[] = [];
const benches: BenchState[] = [];
afterEach(() => {
  for (const b of benches.splice(0)) b.stop();
  for (const d of dbs.splice(0)) d.close();
});

/** A page whose store opens `delayMs` after it is created (as the app opens it after the first paint). */
function page(name: string, delayMs: number): BenchState {
  let db: FieldbenchDB | null = null;
  const ready = new Promise<void>((resolve) =>
    setTimeout(() => {
      void openStore({ name }).then((d) => {
        dbs.push(d);
        db = d;
        resolve();
      });
    }, delayMs),
  );
  const b = new BenchState({ db: () => db, ready: () => ready });
  benches.push(b);
  return b;
}

async function passOne(b: BenchState): Promise<string> {
  await b.addVirtual();
  const t = b.tiles[b.tiles.length - 1];
  for (let i = 0; i < 600 && t.state !== 'pass' && t.state !== 'fail'; i++) await new Promise((r) => setTimeout(r, 50));
  expect(t.state, t.reason).toBe('pass');
  return t.serial!;
}

describe('Bench line and the store', () => {
  it('a line started before the store is open journals its identifiers there: the page after a reload goes on from them', { timeout: 90_000 }, async () => {
    const name = `bench-state-${process.pid}-a`;
    const first = page(name, 300);
    await first.startDemoLine();
    expect(first.lineError).toBe('');
    expect(await passOne(first)).toBe('DEMO-00001');
    first.stop();
    // the reload: a new page over the same store, a new demo line (new keys, same identifier policy)
    const second = page(name, 0);
    await second.startDemoLine();
    expect(await passOne(second)).toBe('DEMO-00002');
  });

  it('without the store a line does not start, and says why', async () => {
    const b = new BenchState({ db: () => null, ready: async () => undefined, storeError: () => 'The local records could not be opened: QuotaExceededError' });
    benches.push(b);
    await b.startDemoLine();
    expect(b.line).toBeNull();
    expect(b.lineError).toContain('QuotaExceededError');
    expect(b.lineError).toContain('cannot start without them');
  });
});

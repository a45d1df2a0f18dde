export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

/** Operations per second of `fn`, after a warm-up, over at least `minMs`. */
export async function opsPerSec(fn: () => unknown, minMs = 400): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < minMs) {
    await fn();
    n++;
    t = performance.now();
  }
  return Math.round((n * 1000) / (t - t0));
}

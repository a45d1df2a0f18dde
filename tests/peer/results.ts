/**
 * What each live test found, for the fixture x verb matrix
 * (tests/peer/matrix.ts writes tests/golden/peer/MATRIX.md from it): with
 * FIELDBENCH_LIVE_RESULTS=FILE every live test appends one JSON line
 * {fixture, verb, ok, kibs?, note?, error?}. Nothing is written without it.
 */
import { appendFileSync } from 'node:fs';

export type LiveVerb = 'info' | 'echo' | 'flash' | 'recovery flash' | 'udp';

export interface LiveResult {
  fixture: string;
  verb: LiveVerb;
  ok: boolean;
  /** Measured throughput, where the verb moves data (image upload, UDP echo). */
  kibs?: number;
  note?: string;
  error?: string;
  at: string;
}

export function recordLiveResult(r: Omit<LiveResult, 'at'>): void {
  const file = process.env.FIELDBENCH_LIVE_RESULTS;
  if (!file) return;
  appendFileSync(file, JSON.stringify({ ...r, at: new Date().toISOString() }) + '\n');
}

/** Run one live cell: record pass (with what it measured) or fail (with the first line of the error), and rethrow. */
export async function liveCell(fixture: string, verb: LiveVerb, fn: () => Promise<{ kibs?: number; note?: string } | void>): Promise<void> {
  try {
    const r = (await fn()) ?? {};
    recordLiveResult({ fixture, verb, ok: true, ...r });
  } catch (e) {
    recordLiveResult({ fixture, verb, ok: false, error: String((e as Error)?.message ?? e).split('\n')[0].slice(0, 200) });
    throw e;
  }
}

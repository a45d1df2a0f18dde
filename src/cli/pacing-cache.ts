/**
 * The CLI's memory of what pacing worked for each device: a small JSON file in
 * the user's cache directory ($FIELDBENCH_CACHE_DIR, else $XDG_CACHE_HOME/fieldbench,
 * else ~/.cache/fieldbench), keyed by the port (and framing) the device was
 * reached on. Losing the file costs only a few slow requests the next time.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { PacingMemory, PacingStore } from '../core/smp/pacing.ts';
import { MAX_PACING_LEVEL } from '../core/smp/pacing.ts';

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FIELDBENCH_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fieldbench');
}

/** Entries older than this are forgotten (the device may have new firmware). */
const MAX_AGE_MS = 30 * 86400_000;
const MAX_ENTRIES = 200;

function valid(v: unknown): v is PacingMemory {
  if (!v || typeof v !== 'object') return false;
  const m = v as Record<string, unknown>;
  return (
    Number.isInteger(m.level) && (m.level as number) >= 0 && (m.level as number) <= MAX_PACING_LEVEL &&
    typeof m.at === 'number' && (m.framing === undefined || m.framing === 'console' || m.framing === 'raw')
  );
}

export function filePacingStore(dir = cacheDir()): PacingStore & { file: string } {
  const file = join(dir, 'pacing.json');
  const load = (): Record<string, PacingMemory> => {
    try {
      const raw = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
      const out: Record<string, PacingMemory> = {};
      for (const [k, v] of Object.entries(raw)) if (valid(v) && Date.now() - v.at < MAX_AGE_MS) out[k] = v;
      return out;
    } catch {
      return {}; // missing or damaged: start fast again
    }
  };
  return {
    file,
    get: (key) => load()[key],
    set(key, value) {
      const all = load();
      all[key] = value;
      const keep = Object.entries(all).sort((a, b) => b[1].at - a[1].at).slice(0, MAX_ENTRIES);
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, JSON.stringify(Object.fromEntries(keep), null, 1) + '\n');
        renameSync(tmp, file);
      } catch {
        /* a read-only home: pacing is found again next time */
      }
    },
  };
}

/**
 * Pacing, found rather than guessed: a session starts fast (whole packets in
 * one write, the device's full window and buffer) and backs off one step each
 * time the device shows it lost something (a request that got no reply, a
 * reply that arrived garbled). What worked is remembered for that device
 * (a PacingStore, e.g. a small per-user cache file in the CLI), so the next
 * session starts there.
 *
 * The steps, from fastest (0) to most careful:
 *   0  no gap between console lines, full window, full packets
 *   1  one request in flight (window 1)
 *   2  2 ms between console lines
 *   3  5 ms between lines
 *   4  15 ms between lines
 *   5  30 ms between lines
 * (Packet size is not lowered yet: the upload engine sizes its chunks once per
 * pipeline; --max-packet caps it by hand.)
 * Datagram links (UDP) have no lines: only the window and packet size change.
 */

export interface Pacing {
  /** Ladder step, 0 = fastest. */
  level: number;
  /** Pause after each console line (0: a packet's lines go down in one write). */
  lineGapMs: number;
  /** Cap on requests in flight (Infinity: the device's buf_count - 1). */
  window: number;
  /** Cap on request packet size (Infinity: what the device's buffer takes). */
  maxPacket: number;
}

export const PACING_LADDER: readonly Pacing[] = [
  { level: 0, lineGapMs: 0, window: Infinity, maxPacket: Infinity },
  { level: 1, lineGapMs: 0, window: 1, maxPacket: Infinity },
  { level: 2, lineGapMs: 2, window: 1, maxPacket: Infinity },
  { level: 3, lineGapMs: 5, window: 1, maxPacket: Infinity },
  { level: 4, lineGapMs: 15, window: 1, maxPacket: Infinity },
  { level: 5, lineGapMs: 30, window: 1, maxPacket: Infinity },
];
export const MAX_PACING_LEVEL = PACING_LADDER.length - 1;

/** What a store remembers about one device. */
export interface PacingMemory {
  level: number;
  framing?: 'console' | 'raw';
  /** ms since the epoch, when it was last confirmed. */
  at: number;
}

/** Where pacing that worked is remembered between sessions (per device key). */
export interface PacingStore {
  get(key: string): PacingMemory | undefined;
  set(key: string, value: PacingMemory): void;
}

/** An in-memory store (tests, the browser app within one page load). */
export function memoryPacingStore(): PacingStore & { entries: Map<string, PacingMemory> } {
  const entries = new Map<string, PacingMemory>();
  return { entries, get: (k) => entries.get(k), set: (k, v) => void entries.set(k, v) };
}

export class Pacer {
  private current: Pacing;
  /** Consecutive successful replies at the current level. */
  private good = 0;
  /** Levels already raised in this session, with why (for logs and tests). */
  readonly history: { level: number; why: string }[] = [];

  constructor(
    start = 0,
    /** The user fixed the line gap (--line-gap): only window and packet size may change. */
    private readonly fixedGapMs?: number,
    private readonly onChange?: (p: Pacing, why: string) => void,
  ) {
    this.current = this.at(Math.max(0, Math.min(MAX_PACING_LEVEL, Math.floor(start))));
  }

  private at(level: number): Pacing {
    const p = PACING_LADDER[level];
    return this.fixedGapMs === undefined ? p : { ...p, lineGapMs: this.fixedGapMs };
  }

  get pacing(): Pacing {
    return this.current;
  }

  /** The device lost something: one step more careful. Returns false when already at the last step. */
  backOff(why: string): boolean {
    this.good = 0;
    if (this.current.level >= MAX_PACING_LEVEL) return false;
    this.current = this.at(this.current.level + 1);
    this.history.push({ level: this.current.level, why });
    this.onChange?.(this.current, why);
    return true;
  }

  /** A reply arrived whole. */
  ok(): void {
    this.good++;
  }

  /** Enough replies at this level to trust it (what is remembered for the device). */
  get proven(): boolean {
    return this.good >= 4;
  }
}

/**
 * Pacing, found rather than guessed: a session starts fast (whole packets in
 * one write, the device's full window and buffer) and backs off one step each
 * time the device shows it lost something (a request that got no reply, a
 * reply that arrived garbled). What worked is remembered for that device
 * (a PacingStore, e.g. a small per-user cache file in the CLI), so the next
 * session starts there.
 *
 * Where it starts is what the device reports (MCUmgr params): packets up to its
 * buf_size, buf_count - 1 requests in flight; and, over console framing, no more
 * lines in flight than a Zephyr UART transport surely holds while it is busy
 * (CONSOLE_RX_LINES: CONFIG_UART_MCUMGR_RX_BUF_COUNT's default, which no device
 * reports), so a multi-line packet goes alone and one-line requests go two at a time.
 *
 * The steps, from fastest (0) to most careful:
 *   0  no gap between console lines, the device's window and packets
 *   1  one request in flight (window 1)
 *   2  packets ops can size (upload chunks, chunked transfers) of at most 2
 *      console lines (182 bytes; half the buffer on raw and UDP links), so a
 *      packet never outnumbers the UART's line buffers
 *   3  5 ms between console lines
 *   4  15 ms between lines
 *   5  30 ms between lines
 * A request that cannot be split (an echo of a given text) still goes whole up
 * to the device's buffer, with the gap of its step.
 * Datagram links (UDP) have no lines: only the window and packet size change.
 */

export interface Pacing {
  /** Ladder step, 0 = fastest. */
  level: number;
  /** Pause after each console line (0: a packet's lines go down in one write). */
  lineGapMs: number;
  /** Cap on requests in flight (Infinity: the device's buf_count - 1). */
  window: number;
  /** Cap on the packets ops size themselves, in console lines (Infinity: what the device's buffer takes). */
  maxLines: number;
}

/** Zephyr's CONFIG_UART_MCUMGR_RX_BUF_COUNT default: the line buffers a UART SMP transport has. */
export const CONSOLE_RX_LINES = 2;

export const PACING_LADDER: readonly Pacing[] = [
  { level: 0, lineGapMs: 0, window: Infinity, maxLines: Infinity },
  { level: 1, lineGapMs: 0, window: 1, maxLines: Infinity },
  { level: 2, lineGapMs: 0, window: 1, maxLines: CONSOLE_RX_LINES },
  { level: 3, lineGapMs: 5, window: 1, maxLines: CONSOLE_RX_LINES },
  { level: 4, lineGapMs: 15, window: 1, maxLines: CONSOLE_RX_LINES },
  { level: 5, lineGapMs: 30, window: 1, maxLines: CONSOLE_RX_LINES },
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

/**
 * Order of pipelined pushes of one chain (docs/HUB.md, "Pipelined pushes").
 *
 * A pusher may send its next batch before the hub has answered the one
 * before, so that the hub verifies batch k+1 (on a worker) while it stores
 * batch k. Such a push names, in its query, where it sits in the chain:
 * `after` (the hash its first entry links to) and `last` (its last entry's
 * hash). The hub then stores it only after the push whose `last` is its
 * `after` has stored, or failed: then this one is refused as
 * 'predecessor-failed' (the pusher asks for the head and resumes), without a
 * gap being recorded on the source.
 *
 * A push takes its position when it arrives (before its body is read and its
 * signature checked: requests that arrive in order keep their order), scoped
 * to the credential it presents: one caller's declarations never hold up
 * another's pushes. A request that presents someone else's credential but
 * fails to authenticate ends 'void' and holds up nobody. The declarations only order the work: the
 * verified batch must match them (checked in ingest), and the database's own
 * chain check (src/hub/ingest.ts) stays the authority.
 */
import { HubError } from './errors.ts';

export type Ending = 'stored' | 'refused' | 'void';

export interface ChainTurn {
  /** Resolves when the predecessor (if any is in flight) has stored; throws 'predecessor-failed' when it was refused. */
  turn(): Promise<void>;
  /** A predecessor is in flight (declared before this push and not yet ended). */
  readonly behind: boolean;
  /** Resolves when the predecessor has begun its storage transaction (holding its chain lock), or has ended. */
  predecessorBegan(): Promise<void>;
  /** This push's storage transaction holds its chain lock (src/hub/ingest.ts): a successor may start its own. */
  began(): void;
  /** This push's transaction holds every registry row it writes: a successor beside it may touch the registry. */
  registered(): void;
  /** Resolves true once the predecessor has registered (or ended); false after `ms` without. */
  predecessorRegistered(ms: number): Promise<boolean>;
  /**
   * How this push ended, for its successor: 'stored' (committed: go on),
   * 'refused' (its content was refused: so is the successor's), or 'void'
   * (it was not the caller's push: its signature did not verify; the
   * successor goes on, and the database's chain check decides).
   */
  done(how: Ending): void;
}

const HEX64 = /^[0-9a-f]{64}$/;

interface Slot {
  ended: Promise<Ending>;
  began: Promise<void>;
  registered: Promise<void>;
  over: boolean;
}

export class ChainOrder {
  private readonly tails = new Map<string, Slot>();

  /** Pushes waiting for or holding a position (for tests and status). */
  get size(): number {
    return this.tails.size;
  }

  /** Parse and validate a push's declared position; undefined when it declares none. */
  static declared(q: URLSearchParams): { after: string; last: string } | undefined {
    const after = q.get('after');
    const last = q.get('last');
    if (after === null && last === null) return undefined;
    if (!after || !last || !HEX64.test(after) || !HEX64.test(last)) {
      throw new HubError('bad-request', 'a pipelined push names ?after=<64 hex>&last=<64 hex>: the hash its first entry follows and its last entry\'s hash');
    }
    return { after, last };
  }

  enter(caller: string, pos: { after: string; last: string }): ChainTurn {
    const before = this.tails.get(`${caller}:${pos.after}`);
    const key = `${caller}:${pos.last}`;
    let settle!: (how: Ending) => void;
    let start!: () => void;
    let reg!: () => void;
    const mine: Slot = { ended: new Promise<Ending>((r) => (settle = r)), began: new Promise<void>((r) => (start = r)), registered: new Promise<void>((r) => (reg = r)), over: false };
    this.tails.set(key, mine);
    return {
      turn: async () => {
        if (before && (await before.ended) === 'refused') {
          throw new HubError('predecessor-failed', 'the push this one follows was refused, so this one was not stored: ask the hub for the chain\'s head and push from there', 409);
        }
      },
      get behind() {
        return !!before && !before.over;
      },
      predecessorBegan: async () => {
        if (before) await Promise.race([before.began, before.ended]);
      },
      began: () => start(),
      registered: () => reg(),
      predecessorRegistered: async (ms) => {
        if (!before) return true;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
        try {
          return await Promise.race([before.registered.then(() => true), before.ended.then(() => true), late]);
        } finally {
          clearTimeout(timer);
        }
      },
      done: (how) => {
        if (mine.over) return;
        mine.over = true;
        settle(how);
        start();
        reg();
        if (this.tails.get(key) === mine) this.tails.delete(key);
      },
    };
  }
}

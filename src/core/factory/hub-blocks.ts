/**
 * A station allocator fed by the fleet hub's identifier blocks (src/hub/blocks.ts): the hub hands
 * each station blocks of units (indices of the profile's identifier policy: serial, DevEUI and MAC
 * of unit k together) that no other station gets; the station allocates offline inside its block
 * (a journaledAllocator limited to it, identifiers.ts) and takes the next block when one runs out
 * (ahead of time, when `lowWater` units are left, so a short outage of the hub stops nothing).
 *
 * The ledger (a JournalStore of its own, lines `<json>\t<sha256/8>` as the identifier journal):
 *   {t:'h', v:1, digest, station}          the policy digest and the station name
 *   {t:'r', request, units, at}            a block is about to be asked for, with this request id
 *   {t:'g', request, block, at}            the hub granted it (an IdentifierBlock of this policy)
 * A request is journaled BEFORE it goes to the hub and the grant after it came back, so a restart
 * between the two asks again with the SAME request id and the hub answers the SAME block (it keeps
 * one block per request id): a restart never takes a second block for one request, never loses
 * one, and every block keeps its own identifier journal, so nothing is reissued inside a block.
 * A torn last ledger line is cut off: a torn request was never sent; a torn grant is asked again.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import {
  type AllocatedIds,
  type AllocationEntry,
  type AllocationResult,
  AllocatorError,
  checkBlock,
  compilePolicy,
  type CompiledPolicy,
  type IdentifierBlock,
  type IdentifierPolicy,
  type JournalStore,
  type JournaledAllocator,
  journaledAllocator,
  type AllocatorOptions,
  type ChipClaim,
  type CertifiedChip,
} from './identifiers.ts';

/** Ask the hub for a block of `units` (POST /v1/blocks {station, request, units}); the same request id gets the same block. */
export type BlockSource = (req: { station: string; request: string; units: number }) => Promise<IdentifierBlock>;

export interface HubAllocatorOptions {
  station: string;
  /** The ledger of blocks taken. */
  ledger: JournalStore;
  /** The identifier journal of one block (a new, empty store for a new block). */
  blockJournal: (block: IdentifierBlock) => JournalStore;
  source: BlockSource;
  /** Units per block asked for. */
  units: number;
  /** Ask for the next block when this many units are left (default: a quarter of a block). */
  lowWater?: number;
  /** 32 hex digits (a fresh random request id by default). */
  requestId?: () => string;
  now?: () => number;
  /** Chip UIDs known held from elsewhere (the station's control log): given to every block's journal. */
  certified?: AllocatorOptions['certified'];
  /** Events for the station's log: a block asked for, granted, or a failed request (kept for the next allocate). */
  onEvent?: (e: { kind: 'requested' | 'granted'; request: string; block?: IdentifierBlock } | { kind: 'request-failed'; request: string; reason: string }) => void;
}

export interface HubAllocator extends JournaledAllocator {
  /** The blocks taken so far (journaled), in order. */
  blocks(): Promise<IdentifierBlock[]>;
  /** Take the next block now (a station's start, before its first unit); AllocatorError 'exhausted' when the hub gives none. */
  takeBlock(): Promise<void>;
}

type Ledger = { t: 'h'; v: 1; digest: string; station: string } | { t: 'r'; request: string; units: number; at: number } | { t: 'g'; request: string; block: IdentifierBlock; at: number };

const te = new TextEncoder();
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const encode = (r: Ledger) => {
  const j = JSON.stringify(r);
  return `${j}\t${hex(sha256(te.encode(j))).slice(0, 8)}`;
};
function decode(line: string): Ledger | undefined {
  const tab = line.lastIndexOf('\t');
  if (tab < 0) return undefined;
  const j = line.slice(0, tab);
  if (hex(sha256(te.encode(j))).slice(0, 8) !== line.slice(tab + 1)) return undefined;
  try {
    const r = JSON.parse(j) as Ledger;
    return r && typeof r === 'object' && ['h', 'r', 'g'].includes(r.t) ? r : undefined;
  } catch {
    return undefined;
  }
}

const randomRequest = () => hex(globalThis.crypto.getRandomValues(new Uint8Array(16)));

interface Held {
  block: IdentifierBlock;
  alloc: JournaledAllocator;
}

/** The allocator (see the module comment). Opens its ledger on the first call. */
export function hubAllocator(policy: IdentifierPolicy, opts: HubAllocatorOptions): HubAllocator {
  const c: CompiledPolicy = compilePolicy(policy);
  if (!Number.isSafeInteger(opts.units) || opts.units < 1) throw new AllocatorError('invalid-block', 'units per block must be a positive integer');
  const lowWater = Math.max(0, Math.min(opts.lowWater ?? Math.ceil(opts.units / 4), opts.units));
  const now = opts.now ?? Date.now;
  const held: Held[] = [];
  /** A request journaled but not granted yet (asked again with the same id). */
  let pending: { request: string; units: number } | undefined;
  let opened: Promise<void> | undefined;
  let inFlight: Promise<void> | undefined;
  let closed = false;
  /** allocate() calls, one after the other (many ports share the allocator); commits go straight to their block. */
  let chain: Promise<unknown> = Promise.resolve();

  const write = async (r: Ledger) => {
    try {
      await opts.ledger.append(encode(r));
    } catch (e) {
      throw new AllocatorError('journal-io', `could not write the block ledger: ${(e as Error).message}`);
    }
  };

  const holdBlock = (block: IdentifierBlock): Held => {
    checkBlock(c, block);
    if (block.policy === undefined) throw new AllocatorError('invalid-block', `block ${block.id} does not name the policy it was cut from`);
    for (const h of held) {
      if (block.start < h.block.start + h.block.count && h.block.start < block.start + block.count) {
        throw new AllocatorError('invalid-block', `block ${block.id} [${block.start}, ${block.start + block.count}) overlaps block ${h.block.id} this station already holds`);
      }
    }
    const h = { block, alloc: journaledAllocator(policy, { journal: opts.blockJournal(block), block, now, ...(opts.certified ? { certified: opts.certified } : {}) }) };
    held.push(h);
    return h;
  };

  async function open(): Promise<void> {
    let lines: string[];
    try {
      ({ lines } = await opts.ledger.open());
    } catch (e) {
      if (e instanceof AllocatorError) throw e;
      throw new AllocatorError('journal-io', `could not open the block ledger: ${(e as Error).message}`);
    }
    if (lines.length === 0) {
      await write({ t: 'h', v: 1, digest: c.digest, station: opts.station });
      return;
    }
    for (let n = 0; n < lines.length; n++) {
      const r = decode(lines[n]);
      if (!r) {
        if (n === lines.length - 1) break; // torn: a request never sent, or a grant asked again below
        throw new AllocatorError('journal-corrupt', `block ledger record ${n + 1} is damaged; refusing to guess which blocks this station holds`);
      }
      if (n === 0) {
        if (r.t !== 'h') throw new AllocatorError('journal-corrupt', 'the block ledger has no header');
        if (r.digest !== c.digest) throw new AllocatorError('journal-mismatch', `this block ledger belongs to another identifier policy (${r.digest}, this one is ${c.digest})`);
        if (r.station !== opts.station) throw new AllocatorError('journal-mismatch', `this block ledger belongs to station ${r.station}, not ${opts.station}`);
        continue;
      }
      if (r.t === 'r') {
        if (pending) throw new AllocatorError('journal-corrupt', `block ledger record ${n + 1}: a second request before ${pending.request} was granted`);
        pending = { request: r.request, units: r.units };
      } else if (r.t === 'g') {
        if (!pending || pending.request !== r.request) throw new AllocatorError('journal-corrupt', `block ledger record ${n + 1}: a grant for request ${r.request}, which was not asked for`);
        pending = undefined;
        holdBlock(r.block);
      } else throw new AllocatorError('journal-corrupt', `block ledger record ${n + 1}: a second header`);
    }
  }

  const ready = () =>
    (opened ??= open().catch(async (e) => {
      await opts.ledger.close().catch(() => undefined);
      throw e;
    }));

  /** Ask for the next block (the pending request again, or a new one); one at a time. */
  const takeBlock = (): Promise<void> =>
    (inFlight ??= (async () => {
      try {
        if (!pending) {
          pending = { request: (opts.requestId ?? randomRequest)(), units: opts.units };
          await write({ t: 'r', request: pending.request, units: pending.units, at: now() });
        }
        const p = pending;
        opts.onEvent?.({ kind: 'requested', request: p.request });
        let block: IdentifierBlock;
        try {
          block = await opts.source({ station: opts.station, request: p.request, units: p.units });
        } catch (e) {
          const reason = (e as Error)?.message ?? String(e);
          opts.onEvent?.({ kind: 'request-failed', request: p.request, reason });
          throw new AllocatorError('exhausted', `no identifiers left in this station's blocks and the hub gave no new block: ${reason}`);
        }
        if (block.count !== p.units) throw new AllocatorError('invalid-block', `the hub answered request ${p.request} with ${block.count} units, not the ${p.units} asked for`);
        holdBlock(block);
        await write({ t: 'g', request: p.request, block: { id: block.id, start: block.start, count: block.count, ...(block.policy ? { policy: block.policy } : {}) }, at: now() });
        pending = undefined;
        opts.onEvent?.({ kind: 'granted', request: p.request, block });
      } finally {
        inFlight = undefined;
      }
    })());

  const remainingOf = async () => {
    let n = 0;
    for (const h of held) n += await h.alloc.remaining();
    return n;
  };

  const owner = (index: number) => held.find((h) => index >= h.block.start && index < h.block.start + h.block.count);

  /** Claims being certified now (allocated, not yet committed), across every block. */
  const claimed = new Map<number, { uid: string; key: string; serial: string; unit: string }>();
  const brief = (k: string) => k.slice(0, 16);
  /** A chip UID held by another key in a block other than `target` (or being certified now in any block): refused. */
  async function crossBlock(target: Held, c: { uid: string; key: string; replaces?: string }, isHeld: boolean): Promise<void> {
    for (const [i, cl] of claimed) {
      if (owner(i) !== target && cl.uid === c.uid && cl.key !== c.key) {
        throw new AllocatorError('duplicate-uid', `chip UID ${c.uid} is being certified right now as serial ${cl.serial} (${cl.unit.split(' ')[0]}, key ${brief(cl.key)}…) for another device key (${brief(c.key)}…): a clone or a reused board on two ports; not provisioned`);
      }
    }
    for (const g of held) {
      if (g === target) continue;
      const other = (await g.alloc.certifiedChips()).find((x) => x.uid === c.uid && x.key !== c.key && x.key !== c.replaces);
      if (!other) continue;
      const where = `${new Date(other.at).toISOString().replace(/\.\d{3}Z$/, 'Z')}${other.unit ? ` (${other.unit})` : ''}`;
      throw new AllocatorError(
        'duplicate-uid',
        isHeld
          ? `chip UID ${c.uid} is also certified as serial ${other.serial} on ${where} for another device key (${brief(other.key)}…, this unit holds ${brief(c.key)}…): two units with one chip UID, a clone or a reused board`
          : `chip UID ${c.uid} was already certified as serial ${other.serial} on ${where} for another device key (${brief(other.key)}…, this unit offers ${brief(c.key)}…): a clone or a reused board; not provisioned`,
      );
    }
  }

  return {
    policy: c,
    allocate(unit: string, chip?: ChipClaim) {
      const p = chain.then(async () => {
        if (closed) throw new AllocatorError('closed', 'this allocator was closed');
        await ready();
        for (;;) {
          for (const h of held) {
            if ((await h.alloc.remaining()) === 0) continue;
            // each block's journal knows its own claims and holders; the other blocks' are checked here
            if (chip) await crossBlock(h, { uid: chip.uid, key: chip.key, replaces: chip.replaces }, false);
            const ids = await h.alloc.allocate(unit, chip);
            if (chip) claimed.set(ids.index, { uid: chip.uid, key: chip.key, serial: ids.serial, unit });
            // the next block before this one runs out (a failure is retried by the next call)
            if ((await remainingOf()) <= lowWater && !inFlight) void takeBlock().catch(() => undefined);
            return ids;
          }
          await takeBlock();
        }
      });
      chain = p.catch(() => undefined);
      return p;
    },
    async commit(ids: AllocatedIds, result: AllocationResult, detail?: string) {
      await ready();
      const h = ids && typeof ids === 'object' ? owner(ids.index) : undefined;
      if (!h) throw new AllocatorError('unknown-allocation', `these identifiers (${ids && ids.serial}) are in no block this station holds`);
      await h.alloc.commit(ids, result, detail);
      claimed.delete(ids.index);
    },
    async hold(chip) {
      await ready();
      // the block that issued the serial (or the newest one) journals it; the others are checked first
      let h: Held | undefined;
      for (const g of held) if ((await g.alloc.entries()).some((e) => e.ids?.serial === chip?.serial)) h = g;
      h ??= held[held.length - 1];
      if (!h) throw new AllocatorError('exhausted', 'this station holds no block yet');
      await crossBlock(h, { uid: chip.uid, key: chip.key }, true);
      return h.alloc.hold(chip);
    },
    async certifiedChips(): Promise<CertifiedChip[]> {
      await ready();
      const out: CertifiedChip[] = [];
      for (const h of held) out.push(...(await h.alloc.certifiedChips()));
      return out;
    },
    async entries(): Promise<AllocationEntry[]> {
      await ready();
      const out: AllocationEntry[] = [];
      for (const h of held) out.push(...(await h.alloc.entries()));
      return out;
    },
    async remaining() {
      await ready();
      return remainingOf();
    },
    async blocks() {
      await ready();
      return held.map((h) => ({ ...h.block }));
    },
    async takeBlock() {
      await ready();
      await takeBlock();
    },
    async close() {
      if (closed) return;
      closed = true;
      await chain;
      await inFlight?.catch(() => undefined);
      for (const h of held) await h.alloc.close();
      if (opened) await opts.ledger.close();
    },
  };
}

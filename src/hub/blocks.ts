/**
 * Identifier blocks: the hub owns the fleet's identifier pools (serial
 * numbers, DevEUIs, MACs: the station's IdentifierPolicy shape, see
 * src/core/factory/identifiers.ts) and hands each station a block that no
 * other station gets. A station then allocates offline inside its block.
 *
 * Non-overlap: one UPDATE ... SET next = next + count WHERE next + count - 1
 * <= last RETURNING moves the pool's cursor atomically (PostgreSQL row lock),
 * so concurrent requests get disjoint ranges. A retried request (same
 * request id) gets the block it was already given, not a second one.
 */
import { compilePolicy, type IdentifierBlock, type IdentifierPolicy } from '../core/factory/identifiers.ts';
import type { HubDb, Sql } from './db.ts';
import { HubError } from './errors.ts';

export type BlockKind = 'serial' | 'devEui' | 'mac';
const WIDTH: Record<Exclude<BlockKind, 'serial'>, number> = { devEui: 16, mac: 12 };

/** The pools, as configured (IdentifierPolicy shape). */
export interface PoolPolicy {
  serial?: { pattern: string; first: number; last: number };
  devEui?: { first: string; count: number };
  mac?: { first: string; count: number };
}

/** A granted block, in the same shape: a station's policy for its block. */
export interface GrantedBlock {
  id: number;
  station: string;
  serial?: { pattern: string; first: number; last: number };
  devEui?: { first: string; count: number };
  mac?: { first: string; count: number };
  /**
   * For a `units` request: the station allocator's block (src/core/factory/identifiers.ts
   * IdentifierBlock: indices [start, start + count) of the hub's policy, named by its digest),
   * to give to blockAllocator(policy, block) as it is.
   */
  block?: IdentifierBlock;
}

export interface BlockRequest {
  station: string;
  /** 32 hex digits chosen by the station: a retry with the same id returns the same block. */
  request: string;
  serial?: number;
  devEui?: number;
  mac?: number;
  /** Units: a block of the policy's indices (serial, DevEUI and MAC of each unit together) for a station allocator. */
  units?: number;
}

const hexToBig = (h: string, w: number, what: string): bigint => {
  const t = h.toLowerCase().replace(/[:\-\s]/g, '');
  if (!new RegExp(`^[0-9a-f]{${w}}$`).test(t)) throw new HubError('config', `${what} must be ${w} hex digits`, 500);
  return BigInt('0x' + t);
};
const bigToHex = (b: bigint, w: number) => b.toString(16).padStart(w, '0');

/** Create the pools from the policy (existing pools keep their cursor; their bounds must not shrink below it). */
export async function configurePools(db: HubDb, p: PoolPolicy): Promise<void> {
  const rows: { kind: BlockKind; first: bigint; last: bigint; pattern: string | null }[] = [];
  if (p.serial) {
    if (!Number.isSafeInteger(p.serial.first) || !Number.isSafeInteger(p.serial.last) || p.serial.first > p.serial.last || p.serial.first < 0) {
      throw new HubError('config', 'identifier policy: serial.first..serial.last must be a non-empty range of non-negative integers', 500);
    }
    rows.push({ kind: 'serial', first: BigInt(p.serial.first), last: BigInt(p.serial.last), pattern: p.serial.pattern });
  }
  for (const k of ['devEui', 'mac'] as const) {
    const x = p[k];
    if (!x) continue;
    if (!Number.isSafeInteger(x.count) || x.count < 1) throw new HubError('config', `identifier policy: ${k}.count must be a positive integer`, 500);
    const f = hexToBig(x.first, WIDTH[k], `identifier policy: ${k}.first`);
    const l = f + BigInt(x.count) - 1n;
    if (l >= 1n << BigInt(WIDTH[k] * 4)) throw new HubError('config', `identifier policy: ${k} range runs past the largest ${k}`, 500);
    rows.push({ kind: k, first: f, last: l, pattern: null });
  }
  for (const r of rows) {
    await db.query(
      `INSERT INTO block_pools (kind, first, last, next, pattern) VALUES ($1, $2::numeric, $3::numeric, $2::numeric, $4)
       ON CONFLICT (kind) DO UPDATE SET last = excluded.last, pattern = excluded.pattern WHERE block_pools.first = excluded.first`,
      [r.kind, r.first.toString(), r.last.toString(), r.pattern],
    );
  }
}

function toGranted(rows: { id: string; kind: BlockKind; first: string; count: string; station: string; pattern: string | null }[]): GrantedBlock {
  const g: GrantedBlock = { id: Math.min(...rows.map((r) => Number(r.id))), station: rows[0].station };
  for (const r of rows) {
    const first = BigInt(r.first);
    const count = BigInt(r.count);
    if (r.kind === 'serial') g.serial = { pattern: r.pattern ?? '{n}', first: Number(first), last: Number(first + count - 1n) };
    else g[r.kind] = { first: bigToHex(first, WIDTH[r.kind]), count: Number(count) };
  }
  return g;
}

export async function grantBlock(db: HubDb, req: BlockRequest, keyId: string): Promise<GrantedBlock> {
  if (!req || typeof req !== 'object') throw new HubError('bad-request', 'give {station, request, serial?, devEui?, mac?}');
  if (typeof req.station !== 'string' || !req.station || req.station.length > 128) throw new HubError('bad-request', 'station must be the station\'s name (1..128 characters)');
  if (typeof req.request !== 'string' || !/^[0-9a-f]{32}$/.test(req.request)) throw new HubError('bad-request', 'request must be 32 hex digits the station chooses (a retry reuses it)');
  if (req.units !== undefined) {
    if (req.serial !== undefined || req.devEui !== undefined || req.mac !== undefined) throw new HubError('bad-request', 'ask for units, or for serial / devEui / mac counts, not both');
    if (!Number.isSafeInteger(req.units) || req.units < 1 || req.units > 10_000_000) throw new HubError('bad-request', 'units must be a count of 1..10000000');
    return grantUnits(db, req, keyId);
  }
  const want: [BlockKind, number][] = [];
  for (const k of ['serial', 'devEui', 'mac'] as const) {
    const n = req[k];
    if (n === undefined) continue;
    if (!Number.isSafeInteger(n) || n < 1 || n > 10_000_000) throw new HubError('bad-request', `${k} must be a count of 1..10000000`);
    want.push([k, n]);
  }
  if (!want.length) throw new HubError('bad-request', 'ask for at least one of serial, devEui, mac (a count)');
  return db.transaction(async (tx: Sql) => {
    const select = `SELECT b.id, b.kind, b.first::text AS first, b.count::text AS count, b.station, p.pattern FROM blocks b JOIN block_pools p ON p.kind = b.kind WHERE b.request = $1`;
    // a retry: the same blocks again (one request id per kind, suffixed)
    const reqIds = want.map(([k]) => `${req.request}:${k}`);
    const prior = await tx.query<{ id: string; kind: BlockKind; first: string; count: string; station: string; pattern: string | null }>(
      `${select.replace('b.request = $1', 'b.request = ANY($1::text[])')} ORDER BY b.kind`,
      [reqIds],
    );
    if (prior.length) return toGranted(prior);
    const rows = [];
    for (let i = 0; i < want.length; i++) {
      const [k, n] = want[i];
      // lock every pool (in kind order, as grantUnits does): a kind's cursor never falls behind a unit block
      await tx.query('SELECT kind FROM block_pools ORDER BY kind FOR UPDATE');
      const got = await tx.query<{ first: string; pattern: string | null }>(
        `UPDATE block_pools SET next = next + $2::numeric WHERE kind = $1 AND next + $2::numeric - 1 <= last RETURNING (next - $2::numeric)::text AS first, pattern`,
        [k, n],
      );
      if (!got.length) {
        const pool = await tx.query<{ left: string }>('SELECT (last - next + 1)::text AS left FROM block_pools WHERE kind = $1', [k]);
        if (!pool.length) throw new HubError('not-found', `the hub has no ${k} pool configured; its operator starts it with --identifiers FILE`, 404);
        throw new HubError('exhausted', `the ${k} pool has ${pool[0].left} identifiers left, fewer than the ${n} asked for; ask for fewer or have the operator extend the pool`, 409);
      }
      const ins = await tx.query<{ id: string }>('INSERT INTO blocks (kind, first, count, station, key_id, request) VALUES ($1, $2::numeric, $3::numeric, $4, $5, $6) RETURNING id', [
        k, got[0].first, n, req.station, keyId, reqIds[i],
      ]);
      rows.push({ id: ins[0].id, kind: k, first: got[0].first, count: String(n), station: req.station, pattern: got[0].pattern });
    }
    return toGranted(rows);
  });
}

interface PoolRow {
  kind: BlockKind;
  first: string;
  last: string;
  next: string;
  pattern: string | null;
}

/** The identifier policy the pools make (the station's IdentifierPolicy), or undefined without a serial pool. */
export function poolsPolicy(pools: PoolRow[]): IdentifierPolicy | undefined {
  const by = new Map(pools.map((p) => [p.kind, p]));
  const s = by.get('serial');
  if (!s || !s.pattern) return undefined;
  const p: IdentifierPolicy = { serial: { pattern: s.pattern, first: Number(s.first), last: Number(s.last) } };
  for (const k of ['devEui', 'mac'] as const) {
    const r = by.get(k);
    if (r) p[k] = { first: bigToHex(BigInt(r.first), WIDTH[k]), count: Number(BigInt(r.last) - BigInt(r.first) + 1n) };
  }
  return p;
}

/**
 * A block of units: indices [start, start + count) of the pools' policy, so
 * unit k of the block has serial first+k, DevEUI first+k and MAC first+k
 * together, as the station's allocator derives them. start is past every
 * pool's cursor (what per-kind blocks took), and every cursor moves past the
 * block, so unit blocks and per-kind blocks never overlap either.
 */
async function grantUnits(db: HubDb, req: BlockRequest, keyId: string): Promise<GrantedBlock> {
  const n = req.units!;
  const reqId = `${req.request}:units`;
  return db.transaction(async (tx: Sql) => {
    const pools = await tx.query<PoolRow>('SELECT kind, first::text AS first, last::text AS last, next::text AS next, pattern FROM block_pools ORDER BY kind FOR UPDATE');
    const policy = poolsPolicy(pools);
    if (!policy) throw new HubError('not-found', 'the hub has no serial pool with a pattern: its operator starts it with --identifiers FILE (the station\'s identifier policy)', 404);
    let compiled;
    try {
      compiled = compilePolicy(policy);
    } catch (e) {
      throw new HubError('config', `the hub's identifier pools are not a valid station policy: ${(e as Error).message}`, 500);
    }
    const granted = (start: number, id: string): GrantedBlock => {
      const first = compiled.at(start);
      const g: GrantedBlock = { id: Number(id), station: req.station, block: { id: `hub-${id}`, start, count: n, policy: compiled.digest } };
      g.serial = { pattern: policy.serial.pattern, first: policy.serial.first + start, last: policy.serial.first + start + n - 1 };
      if (first.devEui) g.devEui = { first: first.devEui, count: n };
      if (first.mac) g.mac = { first: first.mac, count: n };
      return g;
    };
    const prior = await tx.query<{ id: string; first: string; count: string }>(`SELECT id, first::text AS first, count::text AS count FROM blocks WHERE request = $1`, [reqId]);
    if (prior.length) {
      if (Number(prior[0].count) !== n) throw new HubError('bad-request', `request ${req.request} was already used for ${prior[0].count} units; a retry asks for the same count`);
      return granted(Number(prior[0].first), prior[0].id);
    }
    let start = 0;
    for (const p of pools) if (p.kind === 'serial' || p.kind === 'devEui' || p.kind === 'mac') start = Math.max(start, Number(BigInt(p.next) - BigInt(p.first)));
    if (start + n > compiled.capacity) {
      throw new HubError('exhausted', `the policy has ${Math.max(0, compiled.capacity - start)} units left, fewer than the ${n} asked for; ask for fewer or have the operator extend the pools`, 409);
    }
    for (const p of pools) {
      await tx.query('UPDATE block_pools SET next = greatest(next, first + $2::numeric) WHERE kind = $1', [p.kind, String(start + n)]);
    }
    const ins = await tx.query<{ id: string }>(`INSERT INTO blocks (kind, first, count, station, key_id, request) VALUES ('units', $1::numeric, $2::numeric, $3, $4, $5) RETURNING id`, [start, n, req.station, keyId, reqId]);
    return granted(start, ins[0].id);
  });
}

export async function listBlocks(db: Sql): Promise<{ kind: string; first: string; count: number; station: string; granted: string }[]> {
  const r = await db.query<{ kind: BlockKind; first: string; count: string; station: string; granted: Date | string }>(
    'SELECT kind, first::text AS first, count::text AS count, station, granted FROM blocks ORDER BY kind, first',
  );
  return r.map((x) => ({
    kind: x.kind,
    first: x.kind === 'serial' || (x.kind as string) === 'units' ? x.first : bigToHex(BigInt(x.first), WIDTH[x.kind]),
    count: Number(x.count),
    station: x.station,
    granted: new Date(x.granted).toISOString(),
  }));
}

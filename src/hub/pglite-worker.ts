/**
 * Worker thread of openPglite (src/hub/db.ts): the hub's embedded PostgreSQL
 * (PGlite) runs here, so its SQL runs beside the hub's main thread (HTTP,
 * registry JavaScript) instead of on it.
 *
 * The main thread keeps the order (one query at a time; a transaction is
 * exclusive: src/hub/db.ts queues every use); this thread runs what it is
 * sent, in order, and answers each message by its id:
 *   {id, op: 'query', text, params, encoded?} -> {id, fields, rows} | {id, err}
 *   {id, op: 'begin'}                 -> {id, fields: [], rows: []} once BEGIN ran, then
 *                                        the transaction's queries come as 'query' with tx: true
 *   {id, op: 'end', commit}           -> the same, once COMMIT (or ROLLBACK) ran
 *   {id, op: 'close'}                 -> the same, once PGlite closed cleanly
 * Transactions run in PGlite's own transaction(), so BEGIN/COMMIT/ROLLBACK
 * and its checks are the same as in one thread. Errors cross as their message
 * and PostgreSQL's fields (code, detail, constraint, ...), not their
 * parameters (a push's parameter is its whole body).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PGlite, Transaction } from '@electric-sql/pglite';

export type PgliteRequest =
  | { id: number; op: 'query'; text: string; params?: unknown[]; tx?: boolean; encoded?: number[] }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; commit: boolean }
  | { id: number; op: 'close' };

/** An error as it crosses the thread: its message, name and PostgreSQL's fields. */
export interface PgliteErrorData {
  message: string;
  name: string;
  fields: Record<string, string | number>;
}

/**
 * A result as it crosses: the column names once and each row as an array
 * (a structured clone of objects writes every key again for every row); the
 * main thread makes the objects, as PGlite does (Object.fromEntries).
 */
export interface Rows {
  fields: string[];
  rows: unknown[][];
}

const NONE: Rows = { fields: [], rows: [] };

export type PgliteReply = ({ id: number } & Rows) | { id: number; err: PgliteErrorData } | { ready: true } | { openFailed: PgliteErrorData };

/** Everything of an error worth carrying: string and number fields, except what echoes the parameters back. */
export function errorData(e: unknown): PgliteErrorData {
  if (typeof e !== 'object' || e === null) return { message: String(e), name: 'Error', fields: {} };
  const err = e as Record<string, unknown>;
  const fields: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(err)) {
    if (k === 'params' || k === 'queryOptions' || k === 'message' || k === 'stack' || k === 'name') continue;
    if (typeof v === 'string' || typeof v === 'number') fields[k] = v;
  }
  const name = typeof err.name === 'string' ? err.name : 'Error';
  // Emscripten's file-system errors (ErrnoError) carry an errno and no message
  const message = typeof err.message === 'string' ? err.message : `${name}${typeof err.errno === 'number' ? ` (errno ${err.errno})` : ''}`;
  return { message, name, fields };
}

/**
 * Long text and json parameters (a push's body, the registry's rows) arrive
 * already encoded: the main thread sends them as UTF-8 bytes (transferred,
 * not copied; their indices in `encoded`), and they go to PostgreSQL as those
 * bytes in the binary format, which for text, varchar and json is the same
 * bytes. PGlite's text path would measure and encode each string in
 * JavaScript, character by character, twice, on this thread. A parameter of
 * any other type gets its text back (decoded) and PGlite's own serializer.
 */
class EncodedText {
  constructor(readonly bytes: Uint8Array) {}
  toString(): string {
    return new TextDecoder().decode(this.bytes);
  }
}
const TEXT_OIDS = new Set([25, 114, 1043]); // text, json, varchar
let encodedSerializers: Record<number, (x: unknown) => unknown> | undefined;
function serializersFor(pg: PGlite): Record<number, (x: unknown) => unknown> {
  if (encodedSerializers) return encodedSerializers;
  const own = pg.serializers as Record<number, ((x: unknown) => string) | undefined>;
  const out: Record<number, (x: unknown) => unknown> = {};
  for (const oid of new Set([...Object.keys(own).map(Number), ...TEXT_OIDS])) {
    const fallback = own[oid] ?? ((x: unknown) => String(x));
    out[oid] = TEXT_OIDS.has(oid) ? (x) => (x instanceof EncodedText ? x.bytes : fallback(x)) : (x) => fallback(x instanceof EncodedText ? x.toString() : x);
  }
  // (types without a serializer call toString(), which EncodedText answers with its text)
  return (encodedSerializers = out);
}

const port = parentPort;
const data = (workerData ?? {}) as { fieldbenchPglite?: boolean; dataDir?: string };
// only in the thread db.ts started for it (a test runner's own worker threads have a parentPort too)
if (port && data.fieldbenchPglite) {
  const { dataDir } = data;
  const ROLLBACK = Symbol('rollback');
  let pg: PGlite | undefined;
  let tx: Transaction | undefined;
  let endTx: ((commit: boolean) => void) | undefined;
  let txDone: Promise<void> | undefined;
  const reply = (m: PgliteReply) => port.postMessage(m);

  const handle = async (m: PgliteRequest): Promise<Rows> => {
    if (!pg) throw new Error('PGlite is not open');
    switch (m.op) {
      case 'query': {
        const on = m.tx ? tx : pg;
        if (!on) throw new Error('no transaction is open');
        let params = m.params;
        if (m.encoded?.length) {
          params = [...params!];
          for (const i of m.encoded) params[i] = new EncodedText(params[i] as Uint8Array);
        }
        // (PGlite's types say a serializer returns a string; its bind also takes bytes, sent as binary)
        const r = await on.query<unknown[]>(m.text, params as never[], { rowMode: 'array', ...(m.encoded?.length ? { serializers: serializersFor(pg) as never } : {}) });
        return { fields: r.fields.map((f) => f.name), rows: r.rows };
      }
      case 'begin': {
        if (tx) throw new Error('a transaction is already open');
        let begun!: () => void;
        const started = new Promise<void>((r) => (begun = r));
        let failed: ((e: unknown) => void) | undefined;
        const notStarted = new Promise<never>((_, reject) => (failed = reject));
        txDone = pg
          .transaction(async (t) => {
            tx = t;
            failed = undefined;
            const commit = await new Promise<boolean>((r) => {
              endTx = r;
              begun();
            });
            if (!commit) throw ROLLBACK;
          })
          .finally(() => {
            tx = undefined;
            endTx = undefined;
          });
        // BEGIN itself failing rejects the begin message
        txDone.catch((e) => failed?.(e));
        await Promise.race([started, notStarted]);
        return NONE;
      }
      case 'end': {
        if (!endTx || !txDone) throw new Error('no transaction is open');
        const done = txDone;
        txDone = undefined;
        endTx(m.commit);
        try {
          await done;
        } catch (e) {
          if (e !== ROLLBACK) throw e;
        }
        return NONE;
      }
      case 'close': {
        const p = pg;
        pg = undefined;
        await p.close();
        return NONE;
      }
    }
  };

  // In order, one at a time (the main thread sends one at a time anyway).
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (m: PgliteRequest) => {
    chain = chain.then(() =>
      handle(m).then(
        (r) => reply({ id: m.id, ...r }),
        (e: unknown) => reply({ id: m.id, err: errorData(e) }),
      ),
    );
  });

  (async () => {
    const { PGlite } = await import('@electric-sql/pglite');
    pg = dataDir ? await PGlite.create({ dataDir }) : await PGlite.create();
  })().then(
    () => reply({ ready: true }),
    (e: unknown) => reply({ openFailed: errorData(e) }),
  );
}

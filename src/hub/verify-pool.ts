/**
 * A small pool of worker threads for the CPU half of ingest (src/hub/batch.ts:
 * JSON parse, hash of every entry, chain links, Ed25519), so that the main
 * thread keeps serving requests and talking to the database meanwhile. On a
 * 2-core machine one worker plus the main thread (plus PostgreSQL) fill it.
 *
 * The worker script is src/hub/verify-worker.ts: from the sources it is
 * started through tsx's loader; in the built CLI it is
 * dist-cli/hub-verify-worker.mjs (scripts/build-cli.mjs). When no worker can
 * start, or size is 0, batches are prepared in the calling thread: slower,
 * never different. A worker that dies fails only the batches it held (the
 * caller sees 'internal' and retries) and is replaced.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { errorOf, prepareBatch, type BatchFailure, type PreparedBatch } from './batch.ts';
import { workerSource } from './worker-source.ts';

export interface VerifyPool {
  /** Worker threads running (0: batches are prepared in this thread). */
  readonly threads: number;
  /** Resolves when the workers have started (or failed to): the number running. */
  ready(): Promise<number>;
  run(input: unknown, verify: 'chain' | 'every'): Promise<PreparedBatch & { threadId: number }>;
  close(): Promise<void>;
}

interface Pending {
  resolve: (v: PreparedBatch & { threadId: number }) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  w: Worker;
  ready: Promise<boolean>;
  pending: Map<number, Pending>;
}

type Reply = { id: number; threadId: number } & ({ ok: PreparedBatch } | { fail: BatchFailure } | { crash: string });


export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export function createVerifyPool(size = defaultWorkers(), log: (line: string) => void = () => undefined): VerifyPool {
  const src = size > 0 ? workerSource('verify-worker.ts', 'hub-verify-worker.mjs') : undefined;
  if (size > 0 && !src) log('[hub] verification worker script not found: batches are verified on the main thread');
  const slots: Slot[] = [];
  let nextId = 1;
  let broken = !src;
  let closed = false;

  const spawn = (): Slot => {
    const w = src!.eval ? new Worker(src!.eval, { eval: true }) : new Worker(src!.file);
    w.unref();
    const pending = new Map<number, Pending>();
    let started = false;
    const slot: Slot = {
      w,
      pending,
      ready: new Promise<boolean>((resolve) => {
        w.on('message', (m: Reply | { ready: true }) => {
          if ('ready' in m) {
            started = true;
            resolve(true);
            return;
          }
          const p = pending.get(m.id);
          if (!p) return;
          pending.delete(m.id);
          if (!pending.size) w.unref();
          if ('ok' in m) p.resolve({ ...m.ok, threadId: m.threadId });
          else if ('fail' in m) p.reject(errorOf(m.fail));
          else p.reject(new Error(`verification worker failed: ${m.crash}`));
        });
        const gone = (why: string) => {
          if (!started) {
            broken = true;
            log(`[hub] verification worker did not start (${why}): batches are verified on the main thread`);
          }
          resolve(false);
          for (const p of pending.values()) p.reject(new Error(`verification worker stopped (${why})`));
          pending.clear();
          const i = slots.indexOf(slot);
          if (i >= 0) slots.splice(i, 1);
        };
        w.on('error', (e) => gone((e as Error).message));
        w.on('exit', (code) => gone(`exit ${code}`));
      }),
    };
    slots.push(slot);
    return slot;
  };

  if (!broken) for (let i = 0; i < size; i++) spawn();

  const run = async (input: unknown, verify: 'chain' | 'every'): Promise<PreparedBatch & { threadId: number }> => {
      if (closed) throw new Error('the verification pool is closed');
      if (broken) return { ...(await prepareBatch(input, verify)), threadId: 0 };
      while (slots.length < size) spawn();
      // the least busy worker
      const slot = slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
      if (!(await slot.ready)) return run(input, verify);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.w.ref();
        slot.w.postMessage({ id, input, verify });
      });
  };

  return {
    get threads() {
      return broken ? 0 : slots.length;
    },
    run,
    async ready() {
      while (!broken && !closed && slots.length < size) spawn();
      await Promise.all(slots.map((s) => s.ready));
      return broken ? 0 : slots.length;
    },
    async close() {
      closed = true;
      await Promise.all(slots.splice(0).map((s) => s.w.terminate()));
    },
  };
}

let shared: VerifyPool | undefined;

/** One pool per process, shared by every hub it runs (tests start many). */
export function sharedVerifyPool(): VerifyPool {
  shared ??= createVerifyPool();
  return shared;
}

/**
 * Worker thread of src/hub/verify-pool.ts: runs prepareBatch (src/hub/batch.ts)
 * on the batches the main thread posts, and posts back the prepared batch
 * (its typed arrays transferred) or the refusal.
 */
import { parentPort, threadId } from 'node:worker_threads';
import { failureOf, prepareBatch } from './batch.ts';

interface Task {
  id: number;
  input: unknown;
  verify: 'chain' | 'every';
}

const port = parentPort;
if (port) {
  port.on('message', (t: Task) => {
    prepareBatch(t.input, t.verify).then(
      (ok) => port.postMessage({ id: t.id, ok, threadId }, [ok.keyOf.buffer, ok.signerOf.buffer, ok.times.buffer, ok.seqs.buffer] as ArrayBuffer[]),
      (e: unknown) => {
        const fail = failureOf(e);
        port.postMessage(fail ? { id: t.id, fail, threadId } : { id: t.id, crash: String((e as Error)?.stack ?? e), threadId });
      },
    );
  });
  port.postMessage({ ready: true, threadId });
}

/**
 * A pusher on its own thread, for the hub bench (tests/bench/hub.ts): it
 * pushes one trail through HubClient as an app or station would, from
 * outside the hub's event loop (a real pusher is another machine; here it
 * still shares this machine's cores, and its CPU time is counted).
 * Messages: in {url, id, seed, credential, entries, batch, pipeline}, then
 * 'go'; out 'ready', then {accepted, requests} or {error}.
 */
import { parentPort } from 'node:worker_threads';
import { HubClient } from '../../src/core/sync/client.ts';
import { seedSigner } from '../../src/core/store/sig.ts';
import type { AuditExportEntry } from '../../src/core/store/audit.ts';

export interface PusherJob {
  url: string;
  id: string;
  seed: Uint8Array;
  credential: Uint8Array;
  entries: AuditExportEntry[];
  batch: number;
  pipeline: number;
}

const port = parentPort;
if (port) {
  let job: PusherJob | undefined;
  let client: HubClient | undefined;
  port.on('message', async (m: PusherJob | 'go') => {
    if (m !== 'go') {
      job = m;
      client = new HubClient({ url: m.url, credential: m.credential, signer: await seedSigner(m.id, m.seed), batch: m.batch, pipeline: m.pipeline });
      port.postMessage('ready');
      return;
    }
    try {
      const r = await client!.push({ entries: job!.entries });
      port.postMessage({ accepted: r.accepted, requests: r.requests });
    } catch (e) {
      port.postMessage({ error: String((e as Error)?.message ?? e) });
    }
  });
}

/**
 * Issue 14, defects 4 and 8, in core: an applied configuration gives the
 * inventory its sequence; a refused artifact says "rejected" once.
 */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { recordConfig } from '../../src/core/ops/configuration/record.ts';
import type { ConfigRunState } from '../../src/core/ops/configuration/restore.ts';
import { putArtifact } from '../../src/core/store/artifacts.ts';
import { openStore } from '../../src/core/store/db.ts';

describe('job records', () => {
  it('an applied signed configuration sets the inventory configuration sequence; a failed one does not', () => {
    const done = { kind: 'done', result: { sequence: 4, digest: new Uint8Array(32) } } as unknown as ConfigRunState;
    expect(recordConfig(done, { op: 'apply', device: { serial: 'SN-1' }, time: 5 }).inventory).toMatchObject({ serial: 'SN-1', seen: 5, configSeq: 4 });
    const failed = { kind: 'failed', code: 'device', by: 'device', reason: 'refused', retryable: false } as unknown as ConfigRunState;
    expect(recordConfig(failed, { op: 'apply', device: { serial: 'SN-1' }, time: 5 }).inventory).not.toHaveProperty('configSeq');
  });

  it('a refused artifact names the refusal once, without the raw code', async () => {
    const db = await openStore({ name: `job-records-${Math.random()}` });
    const err = await putArtifact(db, 'firmware', new Uint8Array([1, 2, 3]), () => ({ ok: false, code: 'bad-signature', reason: 'the firmware image was rejected: its signature does not verify' })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg.match(/rejected/g)?.length).toBe(1);
    expect(msg).not.toContain('bad-signature');
    const err2 = await putArtifact(db, 'firmware', new Uint8Array([1, 2, 3]), () => ({ ok: false, code: 'bad-signature', reason: 'its signature does not verify' })).catch((e: Error) => e);
    expect((err2 as Error).message).toBe('the firmware was rejected: its signature does not verify');
    db.close();
  });
});

/** The wire tests' fixture: one `fieldbench device --listen` process per test file (vitest only). */
import { afterAll, beforeAll } from 'vitest';
import { SEC } from '../../src/core/protocol/security.ts';
import { Op } from '../../src/core/smp/header.ts';
import { type ListeningDevice, startListeningDevice } from './listen-device.ts';
import { GROUP, type RawSmp, rawSmp } from './raw-session.ts';

/**
 * A listening device for one test file (started before, stopped after), its identity key, and raw
 * connections to it that are closed at the end.
 */
export function useListeningDevice(extra: string[] = []): { readonly dev: ListeningDevice; readonly devicePub: Uint8Array; conn(): Promise<RawSmp> } {
  let dev: ListeningDevice | undefined;
  let devicePub: Uint8Array | undefined;
  const open: RawSmp[] = [];
  const conn = async () => {
    const c = await rawSmp(dev!.addr);
    open.push(c);
    return c;
  };
  beforeAll(async () => {
    dev = await startListeningDevice(extra);
    devicePub = (await (await conn()).request(Op.Read as 0, GROUP, SEC.Identity)).pub as Uint8Array;
  }, 30000);
  afterAll(() => {
    for (const c of open) c.close();
    dev?.stop();
  });
  return {
    get dev() {
      return dev!;
    },
    get devicePub() {
      return devicePub!;
    },
    conn,
  };
}

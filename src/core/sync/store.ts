/** Where the app keeps its sync state: the `sync` table of the local records (one row, id 'hub'). */
import { storeWrite, type FieldbenchDB } from '../store/db.ts';
import type { SyncSaved, SyncStore } from './engine.ts';

export function dexieSyncStore(db: FieldbenchDB): SyncStore {
  return {
    async load() {
      const r = await db.sync.get('hub');
      return r?.state as Partial<SyncSaved> | undefined;
    },
    async save(state) {
      await storeWrite('saving the sync state', () => db.sync.put({ id: 'hub', state: JSON.parse(JSON.stringify(state)) as Record<string, unknown> }));
    },
  };
}

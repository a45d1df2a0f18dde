/** The enumeration management group (10): which groups a device supports. */
import { defineGroup } from './define.ts';

export const ENUM_GROUP = defineGroup({
  name: 'enum mgmt',
  id: 10,
  commands: { Count: 0, List: 1, Single: 2, Details: 3 },
  errors: {
    Unknown: { rc: 1, text: 'unknown' },
    TooManyGroupEntries: { rc: 2, text: 'too many group entries' },
    InsufficientHeap: { rc: 3, text: 'insufficient heap' },
    IndexTooLarge: { rc: 4, text: 'index too large' },
  },
});

/** Command ids by name. */
export const ENUM = ENUM_GROUP.commands;

/** The OS management group (0), as Zephyr's os_mgmt defines it. */
import { defineGroup } from './define.ts';

export const OS_GROUP = defineGroup({
  name: 'os mgmt',
  id: 0,
  commands: { Echo: 0, TaskStat: 2, MemPool: 3, DateTime: 4, Reset: 5, Params: 6, Info: 7, BootloaderInfo: 8 },
  errors: {
    Unknown: { rc: 1, text: 'unknown' },
    InvalidFormat: { rc: 2, text: 'invalid format' },
    QueryNotRecognised: { rc: 3, text: 'query not recognised' },
    RtcNotSet: { rc: 4, text: 'RTC not set' },
    RtcCommandFailed: { rc: 5, text: 'RTC command failed' },
    QueryResponseValueNotSupported: { rc: 6, text: 'query response value not supported' },
  },
});

/** Command ids by name. */
export const OS = OS_GROUP.commands;

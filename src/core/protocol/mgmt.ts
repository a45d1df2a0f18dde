/**
 * MCUmgr's own result codes (MGMT_ERR_*, the v1 `rc` of every group), as
 * Zephyr's mgmt_defines.h defines them. The client names them in errors
 * (smp/errors.ts) and the reference device answers with them (device/mgmt.ts).
 */
import { defineGroup } from './define.ts';

export const MGMT = defineGroup({
  name: 'mgmt',
  id: -1,
  commands: {},
  errors: {
    EUNKNOWN: { rc: 1, text: 'EUNKNOWN: unknown error' },
    ENOMEM: { rc: 2, text: 'ENOMEM: device out of memory' },
    EINVAL: { rc: 3, text: 'EINVAL: invalid argument' },
    ETIMEOUT: { rc: 4, text: 'ETIMEOUT: operation timed out on the device' },
    ENOENT: { rc: 5, text: 'ENOENT: no such entry' },
    EBADSTATE: { rc: 6, text: 'EBADSTATE: device in a state that does not allow this' },
    EMSGSIZE: { rc: 7, text: 'EMSGSIZE: response too large for the device buffer' },
    ENOTSUP: { rc: 8, text: 'ENOTSUP: not supported by this device' },
    ECORRUPT: { rc: 9, text: 'ECORRUPT: corrupt data' },
    EBUSY: { rc: 10, text: 'EBUSY: device busy' },
    EACCESSDENIED: { rc: 11, text: 'EACCESSDENIED: access denied' },
    UNSUPPORTED_TOO_OLD: { rc: 12, text: 'UNSUPPORTED_TOO_OLD: protocol version too old for the device' },
    UNSUPPORTED_TOO_NEW: { rc: 13, text: 'UNSUPPORTED_TOO_NEW: protocol version too new for the device' },
    EPERUSER: { rc: 256, text: 'EPERUSER: application-specific error' },
  },
});

/** MGMT_ERR rc by name (0 is success). */
export const MGMT_RC = { EOK: 0, ...MGMT.rc } as const;

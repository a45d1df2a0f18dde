/** The settings management group (3), as Zephyr's settings_mgmt defines it. */
import { defineGroup } from './define.ts';

export const SETTINGS_GROUP_DEF = defineGroup({
  name: 'settings mgmt',
  id: 3,
  commands: { ReadWrite: 0, Delete: 1, Commit: 2, LoadSave: 3 },
  errors: {
    Unknown: { rc: 1, text: 'unknown settings error' },
    KeyTooLong: { rc: 2, text: 'setting name too long for the device' },
    KeyNotFound: { rc: 3, text: 'no such setting' },
    ReadNotSupported: { rc: 4, text: 'the setting cannot be read' },
    RootKeyNotFound: { rc: 5, text: 'no settings handler for this name (unknown subtree)' },
    WriteNotSupported: { rc: 6, text: 'the setting cannot be written' },
    DeleteNotSupported: { rc: 7, text: 'the setting cannot be deleted' },
    /** Zephyr 4.x: settings_save failed (seen on the native_sim smp_server fixture). */
    SaveNotSupported: { rc: 8, text: 'the device could not save its settings (no writable settings storage)' },
  },
});

export const SETTINGS_GROUP = SETTINGS_GROUP_DEF.id;
export const SETTINGS_GROUP_NAME = SETTINGS_GROUP_DEF.name;
/** Command ids by name. */
export const SETTINGS = SETTINGS_GROUP_DEF.commands;
/** Error rc by name. */
export const SETTINGS_ERR = SETTINGS_GROUP_DEF.rc;

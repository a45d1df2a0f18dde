/**
 * Settings management group (3) on the reference device, with a settings store
 * that keeps Zephyr's three layers apart:
 *
 *   runtime    the handlers' RAM values: write (settings_runtime_set) changes them,
 *              read (settings_runtime_get) returns them;
 *   effective  what the application uses: commit (settings_commit) copies runtime here;
 *   persisted  flash: save (settings_save) copies runtime here; delete removes a name;
 *              load (settings_load) and every boot copy it into runtime and commit.
 *
 * Names are "<root>/<key>"; only registered roots have a handler (else
 * ROOT_KEY_NOT_FOUND; delete goes to storage directly and answers KEY_NOT_FOUND
 * for an absent name, as Zephyr 4.4's smp_server does), and a root with a key list answers KEY_NOT_FOUND for
 * other keys. Limits follow Zephyr's Kconfig: names shorter than nameLen (32)
 * and reads capped at valueLen (32 by default), then reported as max_size.
 * An optional access hook (CONFIG_MCUMGR_GRP_SETTINGS_ACCESS_HOOK) can refuse
 * any access, e.g. on a device whose configuration must be signed.
 */
import { SETTINGS, SETTINGS_ERR, SETTINGS_GROUP, SETTINGS_GROUP_NAME } from '../../core/protocol/settings.ts';
import type { ReferenceDevice } from '../device.ts';
import { type Body, type GroupDef, MgmtError, RC } from '../mgmt.ts';

export type SettingsAccess = 'read' | 'write' | 'delete' | 'commit' | 'load' | 'save';

export interface SettingsStoreOptions {
  /** CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN (names must be shorter). Default 32. */
  nameLen?: number;
  /** CONFIG_MCUMGR_GRP_SETTINGS_VALUE_LEN. Default 32, Zephyr's default. */
  valueLen?: number;
  /** Largest value a handler accepts on write. Default 64. */
  maxValue?: number;
  /** Registered subtrees and, optionally, the keys their handler knows. Default: {fb: any key}. */
  roots?: Record<string, string[] | '*'>;
  /** Factory values (persisted). */
  initial?: Record<string, Uint8Array>;
  /** Access hook: throw MgmtError to refuse. */
  access?: (access: SettingsAccess, name?: string) => void;
  /** Tests: called between the names written by save; may reboot the device there. */
  saveStep?: (name: string) => void | Promise<void>;
}

export class SettingsStore {
  runtime = new Map<string, Uint8Array>();
  effective = new Map<string, Uint8Array>();
  /** Persisted records; save writes a new generation and flips to it (like NVS/FCB's append + newest wins). */
  private persisted = new Map<string, Uint8Array>();
  readonly opts: Required<Omit<SettingsStoreOptions, 'access' | 'saveStep' | 'initial'>> & Pick<SettingsStoreOptions, 'access' | 'saveStep'>;
  commits = 0;

  constructor(
    private readonly device: ReferenceDevice,
    opts: SettingsStoreOptions = {},
  ) {
    this.opts = {
      nameLen: opts.nameLen ?? 32,
      valueLen: opts.valueLen ?? 32,
      maxValue: opts.maxValue ?? 64,
      roots: opts.roots ?? { fb: '*' },
      access: opts.access,
      saveStep: opts.saveStep,
    };
    for (const [k, v] of Object.entries(opts.initial ?? {})) this.persisted.set(k, v.slice());
    this.load();
    device.onBoot(() => this.load());
    // A wipe leaves the factory values only: nothing the owner or a technician wrote survives it.
    device.onWipe(() => {
      this.persisted = new Map(Object.entries(opts.initial ?? {}).map(([k, v]) => [k, v.slice()]));
      this.load();
    });
  }

  /** The persisted values (tests: what survives a reset). */
  persistedSnapshot(): Map<string, Uint8Array> {
    return new Map([...this.persisted].map(([k, v]) => [k, v.slice()]));
  }

  /** settings_load: storage -> runtime, then commit. */
  load(): void {
    this.runtime = new Map([...this.persisted].map(([k, v]) => [k, v.slice()]));
    this.commit();
  }

  commit(): void {
    this.effective = new Map([...this.runtime].map(([k, v]) => [k, v.slice()]));
    this.commits++;
  }

  /** settings_save: every runtime value is written; a reset part-way keeps the previous generation. */
  async save(): Promise<void> {
    const gen = this.device.bootCount;
    const next = new Map(this.persisted);
    for (const [k, v] of this.runtime) {
      await this.opts.saveStep?.(k);
      if (this.device.bootCount !== gen) throw new MgmtError(RC.EBADSTATE);
      next.set(k, v.slice());
    }
    this.persisted = next;
  }

  /** Check a name: length, root handler, key. Throws the group error Zephyr would answer. */
  private check(name: unknown): string {
    if (typeof name !== 'string' || name.length === 0) throw new MgmtError(RC.EINVAL);
    if (new TextEncoder().encode(name).length >= this.opts.nameLen) throw new MgmtError(RC.EINVAL, SETTINGS_ERR.KeyTooLong);
    const slash = name.indexOf('/');
    const root = slash < 0 ? name : name.slice(0, slash);
    const key = slash < 0 ? '' : name.slice(slash + 1);
    const keys = Object.hasOwn(this.opts.roots, root) ? this.opts.roots[root] : undefined;
    if (keys === undefined) throw new MgmtError(RC.EINVAL, SETTINGS_ERR.RootKeyNotFound);
    if (keys !== '*' && !keys.includes(key)) throw new MgmtError(RC.ENOENT, SETTINGS_ERR.KeyNotFound);
    return name;
  }

  groupDef(): GroupDef {
    const s = this;
    return {
      id: SETTINGS_GROUP,
      name: SETTINGS_GROUP_NAME,
      read: {
        [SETTINGS.ReadWrite]: (b: Body) => {
          const name = s.check(b.name);
          let max = s.opts.valueLen;
          let limited = false;
          if (b.max_size !== undefined) {
            if (typeof b.max_size !== 'number' || !Number.isInteger(b.max_size) || b.max_size < 0) throw new MgmtError(RC.EINVAL);
            if (b.max_size > s.opts.valueLen) limited = true;
            else max = b.max_size;
          }
          s.opts.access?.('read', name);
          const v = s.runtime.get(name);
          if (!v) throw new MgmtError(RC.ENOENT, SETTINGS_ERR.KeyNotFound);
          // The handler's h_get fills at most the buffer it is given.
          const out: Body = { val: v.subarray(0, Math.min(v.length, max)) };
          if (limited) out.max_size = s.opts.valueLen;
          return out;
        },
        [SETTINGS.LoadSave]: () => {
          s.opts.access?.('load');
          s.load();
          return {};
        },
      },
      write: {
        [SETTINGS.ReadWrite]: (b: Body) => {
          const name = s.check(b.name);
          if (!(b.val instanceof Uint8Array)) throw new MgmtError(RC.EINVAL);
          s.opts.access?.('write', name);
          if (b.val.length > s.opts.maxValue) throw new MgmtError(RC.EINVAL, SETTINGS_ERR.Unknown);
          s.runtime.set(name, b.val.slice());
          return {};
        },
        [SETTINGS.Delete]: (b: Body) => {
          // settings_delete goes to storage without a handler lookup (Zephyr 4.4: an absent name is KEY_NOT_FOUND).
          if (typeof b.name !== 'string' || b.name.length === 0) throw new MgmtError(RC.EINVAL);
          const name = b.name;
          if (new TextEncoder().encode(name).length >= s.opts.nameLen) throw new MgmtError(RC.EINVAL, SETTINGS_ERR.KeyTooLong);
          s.opts.access?.('delete', name);
          if (!s.persisted.has(name)) throw new MgmtError(RC.ENOENT, SETTINGS_ERR.KeyNotFound);
          s.persisted.delete(name);
          return {};
        },
        [SETTINGS.Commit]: () => {
          s.opts.access?.('commit');
          s.commit();
          return {};
        },
        [SETTINGS.LoadSave]: async () => {
          s.opts.access?.('save');
          await s.save();
          return {};
        },
      },
    };
  }
}

/**
 * Give a reference device the Settings group (stock Zephyr devices built with
 * CONFIG_MCUMGR_GRP_SETTINGS have it). Returns the store for inspection.
 */
export function installSettingsGroup(device: ReferenceDevice, opts: SettingsStoreOptions = {}): SettingsStore {
  const store = new SettingsStore(device, opts);
  device.registerGroup(store.groupDef());
  return store;
}

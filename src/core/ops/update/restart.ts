/**
 * Restart a device, normally or into its bootloader (Zephyr os_mgmt reset with
 * boot_mode 1, which MCUboot reads through the retention boot mode and then
 * serves serial recovery). A device built without boot mode support skips the
 * key and restarts its application: with `reconnect`, the op looks at what
 * answers afterwards and says so instead of claiming success.
 */
import { isRecoveryImageList, readState } from '../../groups/image.ts';
import { reset } from '../../groups/os.ts';
import type { SmpSession } from '../../groups/session.ts';
import { SmpError } from '../../smp/errors.ts';
import { sleep } from './engine.ts';
import { type Op, type Outcome, contract, done, failed } from '../outcome.ts';

export type BootTarget = 'normal' | 'bootloader';
export type RestartProgress = { kind: 'resetting' } | { kind: 'waiting-for-device' };
export type RestartFailure = 'reset-refused' | 'boot-mode-ignored' | 'no-return';
export interface RestartResult {
  target: BootTarget;
  /** What answers after the restart, when it was checked (reconnect given). */
  mode?: 'application' | 'serial-recovery';
  message: string;
}
export type RestartOutcome = Outcome<RestartResult, RestartFailure>;

export interface RestartOptions {
  target?: BootTarget;
  force?: boolean;
  signal?: AbortSignal;
  /** Open a new session once the device is back, to check where it booted. */
  reconnect?: () => Promise<SmpSession>;
  /** Wait before reconnecting (default 1000 ms) and how long to keep trying (default 15000 ms). */
  settleMs?: number;
  bootTimeoutMs?: number;
}

/** The boot_mode value Zephyr's os_mgmt reset takes for the bootloader (BOOT_MODE_TYPE_BOOTLOADER). */
export const BOOT_MODE_BOOTLOADER = 1;

export function restartDevice(session: SmpSession, opts: RestartOptions = {}): Op<RestartProgress, RestartResult, RestartFailure> {
  return contract(restartBody(session, opts), { signal: opts.signal });
}

async function* restartBody(session: SmpSession, opts: RestartOptions): AsyncGenerator<RestartProgress | RestartOutcome> {
  const target = opts.target ?? 'normal';
  yield { kind: 'resetting' };
  try {
    await reset(session.client, { force: opts.force, timeoutMs: 3000, signal: opts.signal, ...(target === 'bootloader' ? { bootMode: BOOT_MODE_BOOTLOADER } : {}) });
  } catch (e) {
    // some devices reset before their reply leaves
    if (!(e instanceof SmpError && (e.kind === 'timeout' || e.kind === 'closed'))) {
      const why = e instanceof SmpError && e.notSupported ? 'the device does not support a reset with a boot mode' : (e as Error).message;
      yield failed('reset-refused', target === 'bootloader' ? `could not restart into the bootloader: ${why}` : `reset refused: ${why}`, { retryable: false, by: 'device' });
      return;
    }
  }
  if (!opts.reconnect) {
    yield done({ target, message: target === 'bootloader' ? 'restart into the bootloader requested (not checked: no reconnect)' : 'reset requested' });
    return;
  }
  yield { kind: 'waiting-for-device' };
  await session.close().catch(() => {});
  await sleep(opts.settleMs ?? 1000, opts.signal);
  const deadline = Date.now() + (opts.bootTimeoutMs ?? 15000);
  let last: unknown;
  while (Date.now() < deadline && !opts.signal?.aborted) {
    let s: SmpSession | undefined;
    try {
      s = await opts.reconnect();
      const slots = await readState(s.client, { timeoutMs: 2000 });
      const mode = isRecoveryImageList(slots) ? 'serial-recovery' : 'application';
      if (target === 'bootloader' && mode !== 'serial-recovery') {
        yield failed('boot-mode-ignored', 'the device restarted into its application: it does not support a reset into the bootloader (Zephyr CONFIG_MCUMGR_GRP_OS_RESET_BOOT_MODE with retention boot mode, and MCUboot CONFIG_BOOT_SERIAL_BOOT_MODE)', { retryable: false, by: 'device' });
        return;
      }
      yield done({ target, mode, message: mode === 'serial-recovery' ? 'the device is in MCUboot serial recovery' : 'the device restarted into its application' });
      return;
    } catch (e) {
      last = e;
      await sleep(300, opts.signal);
    } finally {
      await s?.close().catch(() => {});
    }
  }
  yield failed('no-return', `the device did not answer after the restart: ${(last as Error)?.message ?? 'cancelled'}`, { retryable: true });
}

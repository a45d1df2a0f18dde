/**
 * Browser storage status for the records: persistence (so the browser does
 * not evict the inventory and audit trail under storage pressure), usage and
 * quota, and plain-language messages for quota / full-disk failures.
 *
 * Framework-free; takes the StorageManager (navigator.storage) as a parameter
 * so it can be tested without a browser.
 */
import { isQuotaError, StoreFullError } from '../store/db.ts';

/** The parts of navigator.storage used here. */
export interface StorageLike {
  persisted?: () => Promise<boolean>;
  persist?: () => Promise<boolean>;
  estimate?: () => Promise<{ usage?: number; quota?: number }>;
}

export type StorageLevel = 'ok' | 'low' | 'full' | 'unknown';

export interface StorageStatus {
  supported: boolean;
  persisted: boolean | null;
  usage: number | null;
  quota: number | null;
  /** usage / quota, 0..1 */
  fraction: number | null;
  level: StorageLevel;
  message: string;
}

/** Above this share of the quota the user is warned; at/above FULL writes are expected to fail. */
export const LOW_FRACTION = 0.8;
export const FULL_FRACTION = 0.98;

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

export function classify(usage: number | null, quota: number | null): { fraction: number | null; level: StorageLevel; message: string } {
  if (usage === null || quota === null || !(quota > 0)) {
    return { fraction: null, level: 'unknown', message: 'This browser does not report how much storage is used.' };
  }
  const fraction = Math.min(1, usage / quota);
  const what = `${formatBytes(usage)} of ${formatBytes(quota)} used (${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)}%)`;
  if (fraction >= FULL_FRACTION) return { fraction, level: 'full', message: `Storage is full: ${what}. New records cannot be saved; export and remove old artifacts or backups.` };
  if (fraction >= LOW_FRACTION) return { fraction, level: 'low', message: `Storage is nearly full: ${what}. Export and remove old artifacts or backups soon.` };
  return { fraction, level: 'ok', message: what };
}

/** Current status; never throws (a failing estimate reads as unknown). */
export async function readStorageStatus(storage: StorageLike | undefined): Promise<StorageStatus> {
  if (!storage) {
    return { supported: false, persisted: null, usage: null, quota: null, fraction: null, level: 'unknown', message: 'This browser has no storage manager: records may be evicted.' };
  }
  let persisted: boolean | null = null;
  try {
    if (storage.persisted) persisted = await storage.persisted();
  } catch {
    persisted = null;
  }
  let usage: number | null = null;
  let quota: number | null = null;
  try {
    if (storage.estimate) {
      const e = await storage.estimate();
      usage = typeof e.usage === 'number' ? e.usage : null;
      quota = typeof e.quota === 'number' ? e.quota : null;
    }
  } catch {
    /* unknown */
  }
  return { supported: true, persisted, usage, quota, ...classify(usage, quota) };
}

/**
 * Ask for persistent storage. The browser may grant it silently, ask the
 * user, or refuse; the answer is reported, never thrown.
 */
export async function requestPersistence(storage: StorageLike | undefined): Promise<{ granted: boolean; message: string }> {
  if (!storage?.persist) return { granted: false, message: 'This browser cannot keep storage persistent: records may be evicted when the disk is short of space.' };
  try {
    const granted = await storage.persist();
    return granted
      ? { granted, message: 'Storage is persistent: the browser will not evict the records on its own.' }
      : {
          granted,
          message:
            'The browser did not grant it: it decides by its own rules, for example once the app is installed or bookmarked.',
        };
  } catch (e) {
    return { granted: false, message: `Asking for persistent storage failed: ${(e as Error).message}` };
  }
}

/** A message for any failure of a records write, with quota / full disk named as such. */
export function describeStoreError(e: unknown): { full: boolean; message: string } {
  if (e instanceof StoreFullError) return { full: true, message: e.message };
  if (isQuotaError(e)) return { full: true, message: new StoreFullError('the change').message };
  const m = e instanceof Error ? e.message : String(e);
  return { full: false, message: m };
}

/**
 * Pure display helpers for the update panel (no runes, no DOM): sizes, rates,
 * times, hashes, and the step list of the test -> reset -> confirm flow
 * derived from the UpdateState kinds the op has emitted.
 */
import type { UpdateState } from '../../core/ops/update/update.ts';
import type { ImageSlot } from '../../core/groups/image.ts';
import { toHex } from '../../core/base/bytes.ts';

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '—';
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** Time left: "measuring…" until the op has a rate. */
export function formatEta(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return 'measuring…';
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(s % 60).padStart(2, '0')} s`;
}

export function hexOf(b: Uint8Array | undefined, max = 64): string {
  if (!b) return '';
  const h = toHex(b);
  return h.length > max ? `${h.slice(0, max)}…` : h;
}

export function percent(sent: number, total: number): number {
  return total > 0 ? Math.min(100, Math.floor((sent * 100) / total)) : 0;
}

/** A slot flag as the device reported it; undefined means the device did not say (e.g. serial recovery). */
export function flagText(v: boolean | undefined): 'yes' | 'no' | 'not reported' {
  return v === undefined ? 'not reported' : v ? 'yes' : 'no';
}

export const SLOT_FLAGS = ['active', 'confirmed', 'pending', 'bootable', 'permanent'] as const satisfies readonly (keyof ImageSlot)[];

export type StepId = 'upload' | 'verify' | 'test' | 'reset' | 'wait' | 'confirm' | 'done';
export type StepStatus = 'todo' | 'active' | 'done' | 'failed' | 'skipped';

export const STEP_LABELS: Record<StepId, string> = {
  upload: 'Uploading',
  verify: 'Checking the device lists the image',
  test: 'Testing: marking the image for a test boot',
  reset: 'Resetting the device',
  wait: 'Waiting for the device',
  confirm: 'Confirming the new image',
  done: 'Done',
};

const ORDER: StepId[] = ['upload', 'verify', 'test', 'reset', 'wait', 'confirm', 'done'];

function stepOf(s: UpdateState, afterUpload: boolean): StepId | null {
  switch (s.kind) {
    case 'uploading':
    case 'resumed':
      return 'upload';
    case 'verifying':
      return 'verify';
    case 'testing':
      return 'test';
    case 'resetting':
      return 'reset';
    case 'waiting-for-device':
      return afterUpload ? 'wait' : 'upload'; // during the upload it means the link was lost
    case 'confirming':
      return 'confirm';
    case 'done':
      return 'done';
    default:
      return null;
  }
}

/**
 * Status of each step, from the states seen so far (in order). The step of
 * the latest state is active (or failed, when the op ended in an error or
 * was cancelled there); steps before it are done; a confirm step never
 * reached before done is skipped (test-only, permanent, or no test/confirm).
 */
export function stepStatuses(states: readonly UpdateState[]): { id: StepId; label: string; status: StepStatus; note?: string }[] {
  let current: StepId | null = null;
  let afterUpload = false;
  let testNote: string | undefined;
  const seen = new Set<StepId>();
  for (const s of states) {
    if (s.kind === 'verifying') afterUpload = true;
    if (s.kind === 'testing') testNote = s.note;
    const id = stepOf(s, afterUpload);
    if (id) {
      current = id;
      seen.add(id);
    }
  }
  const last = states.at(-1);
  const ended = last?.kind === 'failed' || last?.kind === 'cancelled' || last?.kind === 'unsupported';
  const at = current ? ORDER.indexOf(current) : -1;
  return ORDER.map((id, i) => {
    let status: StepStatus = 'todo';
    if (i < at) status = seen.has(id) || id === 'upload' ? 'done' : 'skipped';
    else if (i === at) status = id === 'done' ? 'done' : ended ? 'failed' : 'active';
    if (id === 'test' && last?.kind === 'done' && !seen.has('test')) status = 'skipped';
    // The note only when it says more than the label (the usual "marking the image for a test boot" is the label).
    const note = id === 'test' && testNote && !STEP_LABELS[id].includes(testNote) ? testNote : undefined;
    return { id, label: STEP_LABELS[id], status, note };
  });
}

/** Display values and diffs of settings and signed configurations (secrets shown only as sealed). */
import { toHex } from '../../base/bytes.ts';
import { type SignedConfig, decodeConfigUnverified } from '../../trust/signed-config.ts';
import { type ConfigSchema, isSecretField } from './schema.ts';
import type { ConfigChanges, ConfigDiff, CurrentConfig, DisplayValue } from './read.ts';

// ---------------------------------------------------------------- display and diff

function display(v: unknown): DisplayValue {
  if (v instanceof Uint8Array) return `h'${toHex(v)}'`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  return JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? `h'${toHex(x)}'` : x));
}

export function same(a: unknown, b: unknown): boolean {
  return display(a) === display(b);
}

/** Display form of a set of settings; secret fields show as hidden, never their value. */
export function displaySettings(settings: Record<string, unknown>, schema?: ConfigSchema): Record<string, DisplayValue> {
  const out: Record<string, DisplayValue> = {};
  for (const [k, v] of Object.entries(settings)) out[k] = isSecretField(schema, k) ? 'secret (not shown)' : display(v);
  return out;
}

export function sealedLabel(n: number): DisplayValue {
  return `sealed (${n} bytes)`;
}

/** The key under which the sealed secrets slot shows in a diff. */
export const SECRETS_KEY = '(sealed secrets)';

/** Changes between two display maps. */
export function diffDisplay(before: Record<string, DisplayValue>, after: Record<string, DisplayValue>): ConfigChanges {
  const changes: ConfigChanges = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const k of Object.keys(after).sort()) {
    if (!Object.hasOwn(before, k)) changes.added.push({ key: k, value: after[k] });
    else if (before[k] !== after[k]) changes.changed.push({ key: k, from: before[k], to: after[k] });
    else changes.unchanged++;
  }
  for (const k of Object.keys(before).sort()) if (!Object.hasOwn(after, k)) changes.removed.push({ key: k, value: before[k] });
  return changes;
}

/** Diff two sets of settings (secret fields are compared but never shown). */
export function diffSettings(a: Record<string, unknown>, b: Record<string, unknown>, schema?: ConfigSchema): ConfigChanges {
  const before = displaySettings(a, schema);
  const after = displaySettings(b, schema);
  for (const k of Object.keys(after)) {
    if (isSecretField(schema, k) && Object.hasOwn(a, k)) {
      // Same mask on both sides: show "changed" when the hidden values differ.
      if (!same(a[k], b[k])) after[k] = 'secret (changed, not shown)';
    }
  }
  return diffDisplay(before, after);
}

export function currentDisplay(c: CurrentConfig, schema?: ConfigSchema): Record<string, DisplayValue> {
  const d = displaySettings(c.settings, schema);
  if (c.secretsSealed) d[SECRETS_KEY] = 'sealed';
  for (const h of c.hidden) d[h] = 'secret (not read)';
  return d;
}

/** Diff of a device's current configuration and a signed configuration. */
export function diffAgainst(current: CurrentConfig, next: Pick<SignedConfig, 'settings' | 'secrets'>, schema?: ConfigSchema): ConfigDiff {
  const before = currentDisplay(current, schema);
  const after = displaySettings(next.settings, schema);
  if (next.secrets) after[SECRETS_KEY] = sealedLabel(next.secrets.length);
  // Secrets a stock device holds unread stay as they are.
  for (const h of current.hidden) if (!Object.hasOwn(after, h)) after[h] = before[h];
  return { before, after, changes: diffDisplay(before, after) };
}

/** Diff of two signed configurations (decoded without verification: display only). */
export function diffSignedConfigs(a: Uint8Array, b: Uint8Array, schema?: ConfigSchema): ConfigDiff & { from: number; to: number } {
  const ca = decodeConfigUnverified(a);
  const cb = decodeConfigUnverified(b);
  const before = displaySettings(ca.settings, schema);
  if (ca.secrets) before[SECRETS_KEY] = sealedLabel(ca.secrets.length);
  const after = displaySettings(cb.settings, schema);
  if (cb.secrets) after[SECRETS_KEY] = sealedLabel(cb.secrets.length);
  return { before, after, changes: diffDisplay(before, after), from: ca.sequence, to: cb.sequence };
}

export function formatChanges(c: ConfigChanges): string {
  const lines: string[] = [];
  for (const x of c.added) lines.push(`  + ${x.key} = ${x.value}`);
  for (const x of c.changed) lines.push(`  ~ ${x.key}: ${x.from} -> ${x.to}`);
  for (const x of c.removed) lines.push(`  - ${x.key} (was ${x.value})`);
  if (!lines.length) lines.push('  (no changes)');
  if (c.unchanged) lines.push(`  (${c.unchanged} unchanged)`);
  return lines.join('\n');
}

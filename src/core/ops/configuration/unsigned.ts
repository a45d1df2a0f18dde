/**
 * Stock devices (no security group, Zephyr's Settings group): settings written
 * unsigned, only with an explicit confirmation, and the result says so. Secret
 * fields are never sent: a stock device has no key to seal them to.
 */
import { SecurityGroup, secErrorName } from '../../groups/security.ts';
import { commitSettings, describeSettingsError, saveSettings, writeSetting } from '../../groups/settings.ts';
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import type { SettingValue } from '../../trust/signed-config.ts';
import { type ConfigSchema, type SchemaIssue, encodeSettingValue, formatIssues, isSecretField, settingsKeyOf, validateSettings } from './schema.ts';
import { currentDisplay, diffSettings, displaySettings, same } from './diff.ts';
import { type ConfigChanges, type ConfigDiff, type ConfigFailure, ConfigureError, type CurrentConfig, readStockSettings, UNSIGNED_NOTE } from './read.ts';
import { MGMT_RC } from '../../protocol/mgmt.ts';

// ---------------------------------------------------------------- stock devices (unsigned)

export type UnsignedState =
  | { kind: 'checking' }
  | { kind: 'diff'; diff: ConfigDiff; unsigned: true }
  | { kind: 'writing'; written: number; total: number; name: string }
  | { kind: 'committing' }
  | { kind: 'saving' }
  | { kind: 'written'; unsigned: true; note: typeof UNSIGNED_NOTE; changes: ConfigChanges; saved: boolean }
  | { kind: 'error'; code: ConfigFailure; reason: string; by: 'tool' | 'device'; issues?: SchemaIssue[] };

/**
 * Write settings to a stock device through Zephyr's Settings group: no
 * signature, no sequence, no replay protection, so it needs
 * `confirmUnsigned: true` and every result says so. Values are checked
 * against the schema; secret fields are refused (the device has no key to
 * seal them to, and they would cross the link in cleartext). Writes go to
 * RAM, then commit, then save (persist), and are read back.
 */
export async function* writeUnsignedSettings(
  session: SmpSession,
  values: Record<string, SettingValue>,
  opts: { schema: ConfigSchema; confirmUnsigned: boolean; save?: boolean; group?: SecurityGroup | null; confirm?: (diff: ConfigDiff) => Promise<boolean> },
): AsyncGenerator<UnsignedState> {
  yield { kind: 'checking' };
  if (opts.confirmUnsigned !== true) {
    yield { kind: 'error', code: 'unsigned-not-confirmed', reason: `${UNSIGNED_NOTE}: anyone on this link could write it too. Confirm explicitly (confirmUnsigned / --confirm-unsigned) to write anyway.`, by: 'tool' };
    return;
  }
  const schema = opts.schema;
  const secrets = Object.keys(values).filter((k) => isSecretField(schema, k));
  if (secrets.length) {
    yield {
      kind: 'error',
      code: 'secrets',
      reason: `${secrets.join(', ')} ${secrets.length > 1 ? 'are' : 'is'} secret: this device has no security group, hence no key to seal secrets to, and they are never sent in cleartext`,
      by: 'tool',
    };
    return;
  }
  const issues = validateSettings(schema, values, { partial: true });
  if (issues.length) {
    yield { kind: 'error', code: 'schema', reason: `not written: ${formatIssues(issues)}`, by: 'tool', issues };
    return;
  }
  let current: CurrentConfig;
  try {
    current = await readStockSettings(session.client, schema);
  } catch (e) {
    yield { kind: 'error', code: e instanceof ConfigureError ? e.code : 'device', reason: (e as Error).message, by: 'device' };
    return;
  }
  const after = { ...current.settings, ...values };
  const diff: ConfigDiff = { before: currentDisplay(current, schema), after: { ...displaySettings(after, schema), ...Object.fromEntries(current.hidden.map((h) => [h, 'secret (not read)'])) }, changes: diffSettings(current.settings, after, schema) };
  yield { kind: 'diff', diff, unsigned: true };
  if (opts.confirm && !(await opts.confirm(diff))) {
    yield { kind: 'error', code: 'cancelled', reason: 'not written: the technician did not confirm', by: 'tool' };
    return;
  }
  const names = Object.keys(values);
  let written = 0;
  for (const name of names) {
    const key = settingsKeyOf(schema, name);
    yield { kind: 'writing', written, total: names.length, name };
    try {
      await writeSetting(session.client, key, encodeSettingValue(schema.fields[name], name, values[name]));
    } catch (e) {
      yield { kind: 'error', code: (e instanceof SmpError && e.kind === 'rc' && e.rc === MGMT_RC.EACCESSDENIED) || secErrorName(e) ? 'access-denied' : 'device', reason: `${name} not written: ${describeSettingsError(e, key)}`, by: 'device' };
      return;
    }
    written++;
  }
  yield { kind: 'writing', written, total: names.length, name: '' };
  yield { kind: 'committing' };
  try {
    await commitSettings(session.client);
  } catch (e) {
    yield { kind: 'error', code: 'device', reason: `written but not committed: ${describeSettingsError(e)}`, by: 'device' };
    return;
  }
  const save = opts.save !== false;
  if (save) {
    yield { kind: 'saving' };
    try {
      await saveSettings(session.client);
    } catch (e) {
      yield { kind: 'error', code: 'device', reason: `applied but not saved (lost at the next reset): ${describeSettingsError(e)}`, by: 'device' };
      return;
    }
  }
  try {
    const back = await readStockSettings(session.client, schema);
    const wrong = names.filter((n) => !same(back.settings[n], values[n]));
    if (wrong.length) {
      yield { kind: 'error', code: 'device', reason: `the device reads back different values for ${wrong.join(', ')}`, by: 'device' };
      return;
    }
  } catch (e) {
    yield { kind: 'error', code: 'device', reason: `written, but could not be read back: ${(e as Error).message}`, by: 'device' };
    return;
  }
  yield { kind: 'written', unsigned: true, note: UNSIGNED_NOTE, changes: diff.changes, saved: save };
}

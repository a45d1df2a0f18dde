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
import { type ConfigChanges, type ConfigDiff, type ConfigFailure, type ConfigFailureDetails, ConfigureError, type CurrentConfig, configFailed, readStockSettings, UNSIGNED_NOTE } from './read.ts';
import { type Op, type Outcome, cancellableSession, cancelled, contract, done } from '../outcome.ts';
import { MGMT_RC } from '../../protocol/mgmt.ts';

// ---------------------------------------------------------------- stock devices (unsigned)

export type UnsignedProgress =
  | { kind: 'checking' }
  | { kind: 'diff'; diff: ConfigDiff; unsigned: true }
  | { kind: 'writing'; written: number; total: number; name: string }
  | { kind: 'committing' }
  | { kind: 'saving' };

/** What a done unsigned write leaves (always marked unsigned, with the note saying what that means). */
export interface UnsignedResult {
  unsigned: true;
  note: typeof UNSIGNED_NOTE;
  changes: ConfigChanges;
  saved: boolean;
}

export type UnsignedOutcome = Outcome<UnsignedResult, ConfigFailure, ConfigFailureDetails>;
export type UnsignedState = UnsignedProgress | UnsignedOutcome;

/**
 * Write settings to a stock device through Zephyr's Settings group: no
 * signature, no sequence, no replay protection, so it needs
 * `confirmUnsigned: true` and every result says so. Values are checked
 * against the schema; secret fields are refused (the device has no key to
 * seal them to, and they would cross the link in cleartext). Writes go to
 * RAM, then commit, then save (persist), and are read back.
 */
export interface UnsignedOptions {
  schema: ConfigSchema;
  confirmUnsigned: boolean;
  save?: boolean;
  group?: SecurityGroup | null;
  confirm?: (diff: ConfigDiff) => Promise<boolean>;
  signal?: AbortSignal;
}

export function writeUnsignedSettings(session: SmpSession, values: Record<string, SettingValue>, opts: UnsignedOptions): Op<UnsignedProgress, UnsignedResult, ConfigFailure, ConfigFailureDetails> {
  return contract(unsignedBody(cancellableSession(session, opts.signal), values, opts), { signal: opts.signal });
}

async function* unsignedBody(session: SmpSession, values: Record<string, SettingValue>, opts: UnsignedOptions): AsyncGenerator<UnsignedState> {
  yield { kind: 'checking' };
  if (opts.confirmUnsigned !== true) {
    yield configFailed('unsigned-not-confirmed', `${UNSIGNED_NOTE}: anyone on this link could write it too. Confirm explicitly (confirmUnsigned / --confirm-unsigned) to write anyway.`, 'tool');
    return;
  }
  const schema = opts.schema;
  const secrets = Object.keys(values).filter((k) => isSecretField(schema, k));
  if (secrets.length) {
    yield configFailed('secrets', `${secrets.join(', ')} ${secrets.length > 1 ? 'are' : 'is'} secret: this device has no security group, hence no key to seal secrets to, and they are never sent in cleartext`, 'tool');
    return;
  }
  const issues = validateSettings(schema, values, { partial: true });
  if (issues.length) {
    yield configFailed('schema', `not written: ${formatIssues(issues)}`, 'tool', issues);
    return;
  }
  let current: CurrentConfig;
  try {
    current = await readStockSettings(session.client, schema);
  } catch (e) {
    if (e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout')) throw e; // the link: the contract's 'link'
    yield configFailed(e instanceof ConfigureError ? e.code : 'device', (e as Error).message, 'device');
    return;
  }
  const after = { ...current.settings, ...values };
  const diff: ConfigDiff = { before: currentDisplay(current, schema), after: { ...displaySettings(after, schema), ...Object.fromEntries(current.hidden.map((h) => [h, 'secret (not read)'])) }, changes: diffSettings(current.settings, after, schema) };
  yield { kind: 'diff', diff, unsigned: true };
  if (opts.confirm && !(await opts.confirm(diff))) {
    yield cancelled('not written: the technician did not confirm');
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
      yield configFailed((e instanceof SmpError && e.kind === 'rc' && e.rc === MGMT_RC.EACCESSDENIED) || secErrorName(e) ? 'access-denied' : 'device', `${name} not written: ${describeSettingsError(e, key)}`, 'device');
      return;
    }
    written++;
  }
  yield { kind: 'writing', written, total: names.length, name: '' };
  yield { kind: 'committing' };
  try {
    await commitSettings(session.client);
  } catch (e) {
    yield configFailed('device', `written but not committed: ${describeSettingsError(e)}`, 'device');
    return;
  }
  const save = opts.save !== false;
  if (save) {
    yield { kind: 'saving' };
    try {
      await saveSettings(session.client);
    } catch (e) {
      yield configFailed('device', `applied but not saved (lost at the next reset): ${describeSettingsError(e)}`, 'device');
      return;
    }
  }
  try {
    const back = await readStockSettings(session.client, schema);
    const wrong = names.filter((n) => !same(back.settings[n], values[n]));
    if (wrong.length) {
      yield configFailed('device', `the device reads back different values for ${wrong.join(', ')}`, 'device');
      return;
    }
  } catch (e) {
    yield configFailed('device', `written, but could not be read back: ${(e as Error).message}`, 'device');
    return;
  }
  yield done({ unsigned: true, note: UNSIGNED_NOTE, changes: diff.changes, saved: save });
}

/**
 * Configuration schemas of device models: a small JSON-schema-like
 * description (types, ranges, enums, required fields, string patterns,
 * secret fields) from which the UI generates a form, with which the tool and
 * the reference device validate settings, and which says how each field is
 * stored in a stock device's Zephyr settings tree (name and byte encoding).
 *
 * Secret fields never travel as cleartext settings of a signed configuration:
 * they go into its sealed slot (sealed to the device's X25519 key, seal.ts).
 */
import type { SettingValue, Settings } from '../../trust/signed-config.ts';
import { seal } from '../../trust/seal.ts';
import { FieldbenchError } from '../../base/errors.ts';

export type FieldType = 'integer' | 'string' | 'boolean' | 'enum' | 'bytes';

export interface FieldSchema {
  type: FieldType;
  title?: string;
  description?: string;
  /** integer: inclusive range. */
  minimum?: number;
  maximum?: number;
  /** string / bytes: inclusive length range (UTF-8 bytes for strings). */
  minLength?: number;
  maxLength?: number;
  /** string: a regular expression the whole value must match. */
  pattern?: string;
  /** Human wording of the pattern, for messages ("lowercase letters, digits and '-'"). */
  patternHint?: string;
  /** enum: allowed values. */
  enum?: string[];
  /** Sealed to the device; never shown, logged or stored in cleartext. */
  secret?: boolean;
  default?: SettingValue;
  /** Name in the device's Zephyr settings tree (stock devices); default `<settingsRoot>/<field>`. */
  settingsKey?: string;
}

export interface ConfigSchema {
  model: string;
  version: number;
  /** Zephyr settings subtree of the model's application (e.g. "fb"). */
  settingsRoot: string;
  fields: Record<string, FieldSchema>;
  required?: string[];
  /** Allow settings the schema does not name (default false). */
  additional?: boolean;
}

export interface SchemaIssue {
  field: string;
  message: string;
}

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

/** The reference device model's configuration. */
export const FIELDBENCH_REF_SCHEMA: ConfigSchema = {
  model: 'fieldbench-ref',
  version: 1,
  settingsRoot: 'fb',
  fields: {
    interval: { type: 'integer', title: 'Reporting interval (s)', minimum: 1, maximum: 3600, default: 60 },
    name: { type: 'string', title: 'Device name', minLength: 1, maxLength: 32, pattern: '^[a-z0-9][a-z0-9-]*$', patternHint: "lowercase letters, digits and '-', starting with a letter or digit" },
    mode: { type: 'enum', title: 'Operating mode', enum: ['normal', 'eco', 'maintenance'], default: 'normal' },
    wifi_ssid: { type: 'string', title: 'Wi-Fi network', minLength: 1, maxLength: 32 },
    wifi_psk: { type: 'string', title: 'Wi-Fi passphrase', minLength: 8, maxLength: 63, secret: true },
    'rotate.devEui': { type: 'string', title: 'New LoRaWAN DevEUI (needs rotate-keys)', pattern: '^[0-9a-fA-F]{16}$', patternHint: '16 hex digits', settingsKey: 'fb/dev_eui' },
  },
  required: ['interval'],
};

const SCHEMAS: Record<string, ConfigSchema> = { [FIELDBENCH_REF_SCHEMA.model]: FIELDBENCH_REF_SCHEMA };

/** The schema of a device model, if the tool knows it. */
export function schemaForModel(model: string): ConfigSchema | undefined {
  return Object.hasOwn(SCHEMAS, model) ? SCHEMAS[model] : undefined;
}

export function isSecretField(schema: ConfigSchema | undefined, name: string): boolean {
  return !!schema && Object.hasOwn(schema.fields, name) && schema.fields[name].secret === true;
}

function describeValue(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** Check one value against its field; returns a message or null. Secret values are never quoted. */
export function checkField(f: FieldSchema, v: unknown): string | null {
  const show = (x: unknown) => (f.secret ? 'the value' : describeValue(x));
  switch (f.type) {
    case 'integer':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) return `must be a whole number, got ${show(v)}`;
      if (f.minimum !== undefined && v < f.minimum) return `must be at least ${f.minimum}, got ${v}`;
      if (f.maximum !== undefined && v > f.maximum) return `must be at most ${f.maximum}, got ${v}`;
      return null;
    case 'boolean':
      return typeof v === 'boolean' ? null : `must be true or false, got ${show(v)}`;
    case 'enum':
      if (typeof v !== 'string' || !(f.enum ?? []).includes(v)) return `must be one of ${(f.enum ?? []).join(', ')}, got ${show(v)}`;
      return null;
    case 'bytes': {
      if (!(v instanceof Uint8Array)) return `must be bytes, got ${show(v)}`;
      if (f.minLength !== undefined && v.length < f.minLength) return `must be at least ${f.minLength} bytes, got ${v.length}`;
      if (f.maxLength !== undefined && v.length > f.maxLength) return `must be at most ${f.maxLength} bytes, got ${v.length}`;
      return null;
    }
    case 'string': {
      if (typeof v !== 'string') return `must be text, got ${show(v)}`;
      const n = te.encode(v).length;
      if (f.minLength !== undefined && n < f.minLength) return f.minLength === 1 ? 'must not be empty' : `must be at least ${f.minLength} characters, got ${n}`;
      if (f.maxLength !== undefined && n > f.maxLength) return `must be at most ${f.maxLength} characters, got ${n}`;
      if (f.pattern !== undefined) {
        let re: RegExp;
        try {
          re = new RegExp(f.pattern, 'u');
        } catch {
          return `cannot be checked: the schema's pattern is invalid`;
        }
        if (!re.test(v)) return `must be ${f.patternHint ?? `text matching ${f.pattern}`}, got ${show(v)}`;
      }
      return null;
    }
  }
}

export interface ValidateOptions {
  /** Names of secret fields carried in the sealed slot (they count as present for `required`). */
  sealed?: string[];
  /** Only check the fields that are present (a partial change of a stock device). */
  partial?: boolean;
  /** Secret fields may appear in `settings` (the values of an unsigned stock-device write). */
  allowSecretValues?: boolean;
}

/** Validate settings against a schema: every problem, each with a clear message. */
export function validateSettings(schema: ConfigSchema, settings: Record<string, unknown>, opts: ValidateOptions = {}): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  const sealed = new Set(opts.sealed ?? []);
  for (const [name, v] of Object.entries(settings)) {
    if (!Object.hasOwn(schema.fields, name)) {
      if (!schema.additional) issues.push({ field: name, message: `${name}: not a setting of model ${schema.model}` });
      continue;
    }
    const f = schema.fields[name];
    if (f.secret && !opts.allowSecretValues) {
      issues.push({ field: name, message: `${name} is secret: it must be sealed to the device, not sent in cleartext` });
      continue;
    }
    const m = checkField(f, v);
    if (m) issues.push({ field: name, message: `${name}: ${m}` });
  }
  if (!opts.partial) {
    for (const name of schema.required ?? []) {
      if (!Object.hasOwn(settings, name) && !sealed.has(name)) issues.push({ field: name, message: `${name} is required` });
    }
  }
  return issues;
}

/** Validate secrets (the plaintext before sealing). Messages never quote the values. */
export function validateSecrets(schema: ConfigSchema, secrets: Record<string, unknown>): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  for (const [name, v] of Object.entries(secrets)) {
    const f = Object.hasOwn(schema.fields, name) ? schema.fields[name] : undefined;
    if (!f) issues.push({ field: name, message: `${name}: not a setting of model ${schema.model}` });
    else if (!f.secret) issues.push({ field: name, message: `${name} is not a secret field; put it in the settings` });
    else {
      const m = checkField(f, v);
      if (m) issues.push({ field: name, message: `${name}: ${m}` });
    }
  }
  return issues;
}

export function formatIssues(issues: SchemaIssue[]): string {
  return issues.map((i) => i.message).join('; ');
}

/**
 * Split form values into cleartext settings and secrets sealed to the device
 * (the owner signs the result with issueConfig). Empty secret inputs are left out.
 */
export function sealFormValues(
  schema: ConfigSchema,
  values: Record<string, SettingValue | undefined>,
  deviceEncKey: Uint8Array,
): { settings: Settings; secrets?: Uint8Array; sealedNames: string[]; issues: SchemaIssue[] } {
  const settings: Settings = {};
  const plain: Record<string, SettingValue> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || (v === '' && isSecretField(schema, k))) continue;
    if (isSecretField(schema, k)) plain[k] = v;
    else settings[k] = v;
  }
  const sealedNames = Object.keys(plain);
  const issues = [...validateSettings(schema, settings, { sealed: sealedNames }), ...validateSecrets(schema, plain)];
  if (issues.length) return { settings, sealedNames, issues };
  const secrets = sealedNames.length ? seal(plain, deviceEncKey) : undefined;
  return { settings, secrets, sealedNames, issues };
}

/** Form input (text) to a typed value; returns an issue message for text that is not of the field's type. */
export function parseFieldInput(f: FieldSchema, input: string | number): { value: SettingValue } | { error: string } {
  // A number input's bound value is a number (or '' when empty): read it as the text it shows.
  const text = typeof input === 'number' ? (Number.isFinite(input) ? String(input) : '') : input;
  switch (f.type) {
    case 'integer': {
      const t = text.trim();
      if (!/^-?\d+$/.test(t)) return { error: 'must be a whole number' };
      const n = Number(t);
      return Number.isSafeInteger(n) ? { value: n } : { error: 'is out of range' };
    }
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(text.trim())) return { value: true };
      if (/^(false|0|no|off)$/i.test(text.trim())) return { value: false };
      return { error: 'must be true or false' };
    case 'bytes': {
      const t = text.replace(/[\s:]/g, '');
      if (!/^([0-9a-fA-F]{2})*$/.test(t)) return { error: 'must be hex bytes' };
      return { value: Uint8Array.from({ length: t.length / 2 }, (_, i) => parseInt(t.slice(i * 2, i * 2 + 2), 16)) };
    }
    default:
      return { value: text };
  }
}

// ------------------------------------------------ stock devices: Zephyr settings values

/** The device's settings name of a field. */
export function settingsKeyOf(schema: ConfigSchema, field: string): string {
  const f = schema.fields[field];
  return f?.settingsKey ?? `${schema.settingsRoot}/${field}`;
}

export class SettingValueError extends FieldbenchError<'setting-value'> {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('setting-value', message);
    this.name = 'SettingValueError';
  }
}

/**
 * Bytes of a value as a Zephyr application keeps it in its settings tree:
 * integers as int32 little-endian, booleans as one byte, text as UTF-8,
 * bytes as they are.
 */
export function encodeSettingValue(f: FieldSchema, name: string, v: unknown): Uint8Array {
  const problem = checkField(f, v);
  if (problem) throw new SettingValueError(name, `${name}: ${problem}`);
  switch (f.type) {
    case 'integer': {
      const n = v as number;
      if (n < -0x80000000 || n > 0x7fffffff) throw new SettingValueError(name, `${name}: does not fit a 32-bit setting`);
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, n, true);
      return b;
    }
    case 'boolean':
      return Uint8Array.of(v ? 1 : 0);
    case 'bytes':
      return (v as Uint8Array).slice();
    default:
      return te.encode(v as string);
  }
}

export function decodeSettingValue(f: FieldSchema, name: string, b: Uint8Array): SettingValue {
  switch (f.type) {
    case 'integer':
      if (b.length !== 4) throw new SettingValueError(name, `${name}: device holds ${b.length} bytes, expected a 4-byte integer`);
      return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
    case 'boolean':
      if (b.length !== 1 || b[0] > 1) throw new SettingValueError(name, `${name}: device holds ${b.length} bytes, expected one byte 0 or 1`);
      return b[0] === 1;
    case 'bytes':
      return b.slice();
    default:
      try {
        return td.decode(b);
      } catch {
        throw new SettingValueError(name, `${name}: device holds bytes that are not UTF-8 text`);
      }
  }
}

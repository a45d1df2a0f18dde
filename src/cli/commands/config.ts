/**
 * Configuration verbs: config get, config apply (signed, or --unsigned on a
 * stock device with --confirm-unsigned), config diff. ('config sign' is the
 * owner's verb, in trust.ts.)
 */
import { findSecurityGroup } from '../../core/ops/identification/identify.ts';
import { authenticateTechnician } from '../../core/ops/access/login.ts';
import { type ConfigSchema, parseFieldInput, schemaForModel } from '../../core/ops/configuration/schema.ts';
import { type ConfigDiff, type ConfigureState, readCurrentConfig } from '../../core/ops/configuration/read.ts';
import { type UnsignedState, writeUnsignedSettings } from '../../core/ops/configuration/unsigned.ts';
import { applySignedConfig } from '../../core/ops/configuration/apply.ts';
import { diffAgainst, diffSignedConfigs, formatChanges } from '../../core/ops/configuration/diff.ts';
import type { SettingValue } from '../../core/trust/signed-config.ts';
import { decodeConfigUnverified } from '../../core/trust/signed-config.ts';
import { verifyBundle } from '../../core/trust/bundle.ts';
import { ed25519Sign } from '../../core/trust/ed25519.ts';
import type { SmpSession } from '../../core/groups/session.ts';
import { toHex } from '../../core/base/bytes.ts';
import { type CliCommand, type CliIo, type ParsedArgs, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs } from '../command.ts';
import { CONNECT_OPTIONS, CONNECT_USAGE, connect } from '../connect.ts';
import { InputError, readEd25519Private, readEd25519Public, readInput } from '../files.ts';
import { jsonReplacer } from './device.ts';
import { recordConfig } from '../../core/ops/configuration/record.ts';
import { isOutcome, type OutcomeKind } from '../../core/ops/outcome.ts';
import { decodeCredentialUnverified } from '../../core/trust/credential.ts';
import { RECORDS_OPTIONS, RECORDS_USAGE, writeRecords } from '../records.ts';
import { type CliLogin, LOGIN_OPTIONS, READ_LOGIN_USAGE, loadOptionalLogin } from '../login.ts';

export interface ConfigDeps {
  connect: (args: ParsedArgs, io: CliIo) => Promise<SmpSession>;
  /** Ask the technician to confirm the diff (default: a y/N prompt when stdin is a terminal, else no). */
  confirm?: (io: CliIo, question: string) => Promise<boolean>;
}

function schemaArg(args: ParsedArgs, fallbackModel?: string): ConfigSchema {
  const model = args.get('model') ?? fallbackModel ?? 'fieldbench-ref';
  const s = schemaForModel(model);
  if (!s) throw new UsageError(`no configuration schema for model ${model}`);
  return s;
}

async function defaultConfirm(io: CliIo, question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  io.err(`${question} [y/N] `);
  const line = await new Promise<string>((res) => {
    process.stdin.setEncoding('utf8');
    process.stdin.once('data', (d) => res(String(d)));
  });
  process.stdin.pause();
  return /^y(es)?$/i.test(line.trim());
}

function printDiff(io: CliIo, diff: ConfigDiff, title: string): void {
  io.err(`${title}\n${formatChanges(diff.changes)}\n`);
}

/** The op's outcome (ops end in exactly one: outcome.ts); a run that yielded none is a defect, recorded as such. */
function outcomeOf<S extends ConfigureState | UnsignedState>(last: S | undefined): Extract<S, { kind: OutcomeKind }> {
  if (last && isOutcome(last)) return last as Extract<S, { kind: OutcomeKind }>;
  return { kind: 'failed', code: 'internal', reason: 'the operation ended without an outcome', retryable: false, by: 'tool' } as Extract<S, { kind: OutcomeKind }>;
}

/** The technician a credential names (for the record's signer), without trusting it: the device checked it. */
function credentialTechnician(credential: Uint8Array): string | undefined {
  try {
    return decodeCredentialUnverified(credential).technicianId;
  } catch {
    return undefined;
  }
}

function describeState(s: ConfigureState | UnsignedState): string | null {
  switch (s.kind) {
    case 'checking': return 'checking';
    case 'backing-up': return 'backing up the current configuration';
    case 'authenticating': return 'logging in';
    case 'committing': return 'committing';
    case 'saving': return 'saving';
    default: return null;
  }
}

/** What the device holds; a device with the security group is logged in to first when the login options were given. */
async function readPrivateConfig(session: SmpSession, login: CliLogin | null, schema: ConfigSchema | undefined) {
  const group = await findSecurityGroup(session);
  if (group && login) await login.authenticate(group, 'configure');
  return readCurrentConfig(session, { group, schema });
}

export function configCommands(deps: ConfigDeps = { connect }): Record<string, CliCommand> {
  const ask = deps.confirm ?? defaultConfirm;

  const get: CliCommand = {
    summary: 'read the configuration a device holds (signed, or a stock device\'s settings)',
    usage: `usage: fieldbench config get --port PORT [--model M] [--json] [--credential FILE --key FILE --bundle FILE --owner-key FILE]\n${CONNECT_USAGE}\n  --model M         schema for a stock device's settings (default fieldbench-ref)\n${READ_LOGIN_USAGE}`,
    async run(argv, io) {
      const args = parseArgs(argv, { booleans: ['json', 'verbose'], known: [...CONNECT_OPTIONS, 'model', ...LOGIN_OPTIONS] });
      if (args.positional.length) throw new UsageError(`unexpected argument ${args.positional[0]}`);
      const login = await loadOptionalLogin(args, io);
      if (typeof login === 'string') {
        io.err(`config get: ${login}\n`);
        return EXIT_REJECTED;
      }
      const session = await deps.connect(args, io);
      try {
        const cur = await readPrivateConfig(session, login, schemaArg(args));
        if (args.has('json')) io.out(JSON.stringify(cur, jsonReplacer, 2) + '\n');
        else {
          const head = cur.source === 'signed' ? `signed configuration #${cur.sequence} (sha256 ${toHex(cur.digest!)})` : cur.source === 'settings' ? 'settings (not signed on this device)' : 'no configuration applied';
          io.out(head + '\n');
          for (const [k, v] of Object.entries(cur.settings)) io.out(`  ${k.padEnd(18)} ${JSON.stringify(v, jsonReplacer)}\n`);
          if (cur.secretsSealed) io.out(`  ${'(secrets)'.padEnd(18)} sealed\n`);
          for (const h of cur.hidden) io.out(`  ${h.padEnd(18)} secret (not read)\n`);
        }
        return EXIT_OK;
      } catch (e) {
        io.err(`config get: ${(e as Error).message}\n`);
        return EXIT_REJECTED;
      } finally {
        login?.seed.fill(0);
        await session.close();
      }
    },
  };

  const apply: CliCommand = {
    summary: 'apply an owner-signed configuration (or, on a stock device, unsigned settings with --confirm-unsigned)',
    usage:
      `usage: fieldbench config apply FILE --port PORT --key TECH.pem --credential FILE --bundle FILE --owner-key OWNER.pub.pem [--yes] [--json]\n` +
      `       fieldbench config apply --unsigned KEY=VALUE... --port PORT --confirm-unsigned [--model M] [--yes]\n${CONNECT_USAGE}\n` +
      `  --yes             apply without asking after the diff\n` +
      `  exit 0 applied, 1 rejected (reason on stderr), 2 bad usage or unreadable input`,
    async run(argv, io) {
      const args = parseArgs(argv, {
        booleans: ['json', 'verbose', 'yes', 'unsigned', 'confirm-unsigned'],
        known: [...CONNECT_OPTIONS, ...RECORDS_OPTIONS, 'key', 'credential', 'bundle', 'owner-key', 'model', 'held-sequence'],
      });
      try {
        if (args.has('unsigned')) return await applyUnsigned(args, io);
        return await applySigned(args, io);
      } catch (e) {
        if (e instanceof InputError) {
          io.err(`config apply: ${e.message}\n`);
          return EXIT_USAGE;
        }
        throw e;
      }
    },
  };

  async function applyUnsigned(args: ParsedArgs, io: CliIo): Promise<number> {
    if (!args.positional.length) throw new UsageError('give at least one KEY=VALUE');
    const schema = schemaArg(args);
    const values: Record<string, SettingValue> = {};
    for (const kv of args.positional) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new UsageError(`expected KEY=VALUE, got ${kv}`);
      const k = kv.slice(0, eq);
      const f = Object.hasOwn(schema.fields, k) ? schema.fields[k] : undefined;
      if (!f) throw new UsageError(`${k} is not a setting of model ${schema.model} (known: ${Object.keys(schema.fields).join(', ')})`);
      const p = parseFieldInput(f, kv.slice(eq + 1));
      if ('error' in p) throw new UsageError(`${k} ${p.error}`);
      values[k] = p.value;
    }
    const session = await deps.connect(args, io);
    try {
      const yes = args.has('yes');
      let last: UnsignedState | undefined;
      for await (const s of writeUnsignedSettings(session, values, {
        schema,
        confirmUnsigned: args.has('confirm-unsigned'),
        group: await findSecurityGroup(session),
        confirm: async (diff) => {
          printDiff(io, diff, 'changes (UNSIGNED: this device does not verify its configuration):');
          return yes || ask(io, 'write these unsigned settings?');
        },
      })) {
        last = s;
        const d = describeState(s);
        if (d && args.has('verbose')) io.err(d + '\n');
      }
      const o = outcomeOf(last);
      await writeRecords(args, io, [recordConfig(o, { op: 'write', source: 'command line' }).audit]);
      if (o.kind === 'done') {
        io.out(args.has('json') ? JSON.stringify(o, jsonReplacer, 2) + '\n' : `written and ${o.result.saved ? 'saved' : 'committed'}: ${o.result.note}\n`);
        return EXIT_OK;
      }
      io.err(`not written${o.kind === 'failed' ? ` (${o.code}, by the ${o.by ?? 'tool'})` : ''}: ${o.reason}\n`);
      return EXIT_REJECTED;
    } finally {
      await session.close();
    }
  }

  async function applySigned(args: ParsedArgs, io: CliIo): Promise<number> {
    if (args.positional.length !== 1) throw new UsageError('give exactly one signed configuration FILE');
    if (args.has('confirm-unsigned')) throw new UsageError('--confirm-unsigned goes with --unsigned');
    const signed = await readInput(io, args.positional[0], 'configuration');
    const credential = await readInput(io, args.require('credential'), 'credential');
    const bundleBytes = await readInput(io, args.require('bundle'), 'trust bundle');
    const ownerKey = await readEd25519Public(io, args.require('owner-key'), { what: 'owner key', publicOnly: true });
    const seed = await readEd25519Private(io, args.require('key'), 'technician key');
    const held = args.get('held-sequence');
    if (held !== undefined && !/^\d+$/.test(held)) throw new UsageError('--held-sequence must be a number');
    const b = await verifyBundle(bundleBytes, { ownerKeys: [ownerKey] });
    if (!b.ok) {
      io.err(`trust bundle rejected (${b.code}): ${b.reason}\n`);
      seed.fill(0);
      return EXIT_REJECTED;
    }
    const session = await deps.connect(args, io);
    try {
      const group = await findSecurityGroup(session);
      if (!group) {
        io.err('this device has no security group: it cannot verify signed configurations. For a stock device use --unsigned KEY=VALUE... --confirm-unsigned\n');
        return EXIT_REJECTED;
      }
      const identity = await group.identity();
      const yes = args.has('yes');
      let last: ConfigureState | undefined;
      for await (const s of applySignedConfig(session, signed, {
        bundle: b.value,
        heldSequence: held === undefined ? undefined : Number(held),
        deviceIdentity: identity,
        group,
        authenticate: async (g) => await authenticateTechnician(g, identity.devicePublicKey, credential, (m) => ed25519Sign(m, seed), { bundle: b.value, bundleBytes, permission: 'configure', device: identity }),
        backup: async (cur) => {
          io.err(`backup: the device held ${cur.source === 'signed' ? `configuration #${cur.sequence}` : 'no configuration'}${cur.digest ? ` (sha256 ${toHex(cur.digest)})` : ''}\n`);
        },
        confirm: async (diff) => {
          printDiff(io, diff, `configuration #${decodeConfigUnverified(signed).sequence} for ${identity.serial}:`);
          return yes || ask(io, 'apply it?');
        },
      })) {
        last = s;
        const d = describeState(s);
        if (d && args.has('verbose')) io.err(d + '\n');
      }
      const o = outcomeOf(last);
      await writeRecords(args, io, [recordConfig(o, { op: 'apply', source: args.positional[0], device: { serial: identity.serial, devicePublicKey: toHex(identity.devicePublicKey) } }).audit], {
        seed,
        technician: credentialTechnician(credential),
      });
      if (o.kind === 'done') {
        io.out(args.has('json') ? JSON.stringify(o, jsonReplacer, 2) + '\n' : `applied configuration #${o.result.sequence} (sha256 ${toHex(o.result.digest)})${o.result.bundlePushed !== undefined ? `; the device now holds trust bundle v${o.result.bundlePushed}` : ''}\n`);
        return EXIT_OK;
      }
      if (o.kind === 'cancelled') io.err(`${o.reason}${!process.stdin.isTTY ? ' (re-run with --yes to apply)' : ''}\n`);
      else if (o.kind === 'failed') io.err(`rejected (${o.code}, by the ${o.by ?? 'tool'}): ${o.reason}\n`);
      else io.err(`${o.reason}\n`);
      return EXIT_REJECTED;
    } finally {
      seed.fill(0);
      await session.close();
    }
  }

  const diff: CliCommand = {
    summary: 'compare two signed configurations, or one with what a device holds (--port)',
    usage: `usage: fieldbench config diff A B [--json]\n       fieldbench config diff A --port PORT [--json]\n${CONNECT_USAGE}`,
    async run(argv, io) {
      const args = parseArgs(argv, { booleans: ['json', 'verbose'], known: [...CONNECT_OPTIONS, 'model', ...LOGIN_OPTIONS] });
      const n = args.positional.length;
      if (!(n === 2 && !args.has('port')) && !(n === 1 && args.has('port'))) throw new UsageError('give two configurations, or one and --port');
      try {
        const a = await readInput(io, args.positional[0], 'configuration');
        let result: ConfigDiff & { from?: number; to?: number };
        let schema: ConfigSchema | undefined;
        try {
          const ca = decodeConfigUnverified(a);
          schema = ca.target.kind === 'model' ? schemaForModel(ca.target.model) : schemaForModel(args.get('model') ?? 'fieldbench-ref');
        } catch (e) {
          throw new InputError(`${args.positional[0]} is not a signed configuration: ${(e as Error).message}`);
        }
        if (n === 2) {
          const b = await readInput(io, args.positional[1], 'configuration');
          try {
            result = diffSignedConfigs(a, b, schema);
          } catch (e) {
            throw new InputError(`${args.positional[1]} is not a signed configuration: ${(e as Error).message}`);
          }
        } else {
          const login = await loadOptionalLogin(args, io);
          if (typeof login === 'string') throw new Error(login);
          const session = await deps.connect(args, io);
          try {
            const cur = await readPrivateConfig(session, login, schema);
            const c = decodeConfigUnverified(a);
            result = { ...diffAgainst(cur, c, schema), from: cur.sequence, to: c.sequence };
          } finally {
            login?.seed.fill(0);
            await session.close();
          }
        }
        io.out(args.has('json') ? JSON.stringify(result, null, 2) + '\n' : `#${result.from ?? '?'} -> #${result.to ?? '?'}\n${formatChanges(result.changes)}\n`);
        return EXIT_OK;
      } catch (e) {
        if (e instanceof InputError) {
          io.err(`config diff: ${e.message}\n`);
          return EXIT_USAGE;
        }
        io.err(`config diff: ${(e as Error).message}\n`);
        return EXIT_REJECTED;
      }
    },
  };

  return { 'config get': get, 'config apply': apply, 'config diff': diff };
}

export const commands: Record<string, CliCommand> = configCommands();

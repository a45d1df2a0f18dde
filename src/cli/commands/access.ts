/**
 * fieldbench interfaces / wipe — logical access to the device's interfaces
 * (list; open, restrict or disable with the `interfaces` permission) and the
 * authorised wipe (typed confirmation, `wipe` permission). Both run the core
 * ops (core/ops/access/interfaces.ts, core/ops/data-protection/wipe.ts) and
 * write their record to the records log.
 */
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, type ParsedArgs, UsageError, parseArgs } from '../command.ts';
import { CONNECT_OPTIONS, CONNECT_USAGE, connect } from '../connect.ts';
import { InputError } from '../files.ts';
import { LOGIN_OPTIONS, LOGIN_USAGE, loadLogin } from '../login.ts';
import { RECORDS_OPTIONS, RECORDS_USAGE, writeRecords } from '../records.ts';
import type { SmpSession } from '../../core/groups/session.ts';
import { FieldbenchError } from '../../core/base/errors.ts';
import { runOp } from '../../core/ops/outcome.ts';
import { INTERFACE_STATE_WORDS, type InterfaceChange, type InterfaceState, parseInterfaceChange, readInterfaces, setInterfaces } from '../../core/ops/access/interfaces.ts';
import { wipeDevice } from '../../core/ops/data-protection/wipe.ts';
import { interfacesRecord, rotateRecord, wipeRecord } from '../../core/ops/record.ts';
import { ROTATION_WORDS, type RotationTarget, newRotationValue, parseRotationValue, rotateDevice } from '../../core/ops/identification/rotate.ts';
import { toHex } from '../../core/base/bytes.ts';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';

export interface AccessDeps {
  connect: (args: ParsedArgs, io: CliIo) => Promise<SmpSession>;
  /** Ask for a line of text (the wipe's typed serial); null when there is no terminal to ask on. */
  prompt?: (io: CliIo, question: string) => Promise<string | null>;
}

async function terminalPrompt(io: CliIo, question: string): Promise<string | null> {
  if (!process.stdin.isTTY) return null;
  io.err(question);
  const line = await new Promise<string>((res) => {
    process.stdin.setEncoding('utf8');
    process.stdin.once('data', (d) => res(String(d)));
  });
  process.stdin.pause();
  return line.replace(/\r?\n$/, '');
}

function formatInterfaces(list: Record<string, string>): string {
  const w = Math.max(4, ...Object.keys(list).map((k) => k.length));
  return Object.entries(list)
    .map(([k, v]) => `  ${k.padEnd(w)}  ${v.padEnd(13)}  ${INTERFACE_STATE_WORDS[v as InterfaceState] ?? ''}`.trimEnd())
    .join('\n');
}

async function withSession<T>(deps: AccessDeps, args: ParsedArgs, io: CliIo, fn: (s: SmpSession) => Promise<T>): Promise<T> {
  const session = await deps.connect(args, io);
  try {
    return await fn(session);
  } finally {
    await session.close().catch(() => undefined);
  }
}

function guarded(verb: string, spec: { booleans: string[]; known: string[] }, run: (args: ParsedArgs, io: CliIo) => Promise<number>) {
  return async (argv: string[], io: CliIo): Promise<number> => {
    try {
      const args = parseArgs(argv, { booleans: ['verbose', ...spec.booleans], known: [...CONNECT_OPTIONS, ...RECORDS_OPTIONS, ...spec.known] });
      if (args.positional.length) throw new UsageError(`unexpected argument ${args.positional[0]}`);
      return await run(args, io);
    } catch (e) {
      if (e instanceof InputError) {
        io.err(`fieldbench ${verb}: ${e.message}\n`);
        return EXIT_USAGE;
      }
      throw e;
    }
  };
}

export function accessCommands(deps: AccessDeps = { connect }): Record<string, CliCommand> {
  const prompt = deps.prompt ?? terminalPrompt;

  const interfaces: CliCommand = {
    summary: "list a device's interfaces; open, restrict or disable them (--set NAME=STATE, interfaces permission)",
    usage: `usage: fieldbench interfaces --port PORT [--json] [options]
       fieldbench interfaces --port PORT --set NAME=STATE [--set NAME=STATE ...] --credential FILE --key FILE
                             --bundle FILE --owner-key FILE [--yes] [--json] [options]

Lists the device's interfaces (SMP over serial, shell, debug, ...) and their
states: open (anyone on the link), authenticated (only after a technician
login), disabled. With --set, logs in (the credential needs the interfaces
permission; the device checks it again) and changes them. Disabling
smp_serial cuts off SMP over the serial link, this one included: it needs --yes.
Every change is recorded.

  --set NAME=STATE    STATE is open, authenticated or disabled; repeatable
  --yes               allow disabling smp_serial
  --json              print {interfaces, before, changed}
${LOGIN_USAGE}
${RECORDS_USAGE}
${CONNECT_USAGE}

exit status: 0 listed or changed, 1 refused (reason on stderr), 2 bad usage`,
    run: guarded('interfaces', { booleans: ['json', 'yes'], known: ['set', ...LOGIN_OPTIONS] }, async (args, io) => {
      let changes: InterfaceChange[];
      try {
        changes = args.all('set').map(parseInterfaceChange);
      } catch (e) {
        if (e instanceof FieldbenchError) throw new UsageError(e.message);
        throw e;
      }
      if (changes.some((c) => c.name === 'smp_serial' && c.state === 'disabled') && !args.has('yes')) {
        throw new UsageError('disabling smp_serial ends SMP over the serial link (this one too, when it is serial): add --yes if that is what you want');
      }
      if (changes.length === 0) {
        return withSession(deps, args, io, async (s) => {
          const o = await runOp(readInterfaces(s));
          if (o.kind !== 'done') {
            io.err(`fieldbench interfaces: ${o.reason}\n`);
            return EXIT_REJECTED;
          }
          io.out(args.has('json') ? JSON.stringify({ interfaces: o.result.interfaces }, null, 2) + '\n' : formatInterfaces(o.result.interfaces) + '\n');
          return EXIT_OK;
        });
      }
      const login = await loadLogin(args, io);
      if (typeof login === 'string') {
        io.err(`fieldbench interfaces: ${login}\n`);
        return EXIT_REJECTED;
      }
      try {
        return await withSession(deps, args, io, async (s) => {
          const o = await runOp(setInterfaces(s, changes, { authenticate: (g) => login.authenticate(g, 'interfaces') }));
          await writeRecords(args, io, [interfacesRecord(o).audit], { seed: login.seed, technician: login.technician });
          if (o.kind !== 'done') {
            io.err(`fieldbench interfaces: ${o.reason}${o.kind === 'failed' ? ` (${o.code})` : ''}\n`);
            return EXIT_REJECTED;
          }
          const r = o.result;
          if (args.has('json')) io.out(JSON.stringify(r, null, 2) + '\n');
          else {
            io.out(formatInterfaces(r.interfaces) + '\n');
            io.out(r.changed?.length ? `changed: ${r.changed.map((c) => `${c.name} ${c.from} -> ${c.to}`).join(', ')}\n` : 'nothing to change: the interfaces were already so\n');
          }
          return EXIT_OK;
        });
      } finally {
        login.seed.fill(0);
      }
    }),
  };

  const wipe: CliCommand = {
    summary: "authorised wipe: erase a device's configuration and sealed secrets (typed serial, wipe permission)",
    usage: `usage: fieldbench wipe --port PORT --credential FILE --key FILE --bundle FILE --owner-key FILE
                  [--confirm SERIAL] [--json] [options]

Erases the configuration the device holds and the secrets sealed to it. The
device keeps its identity (certificate and keys: it still proves who it is and
can be redeployed), the highest configuration sequence it ever applied (old
configurations cannot be replayed onto it), its trusted time floor and its
security event log. You must type the device's serial (or give it with
--confirm SERIAL); the credential needs the wipe permission, and the device
checks it again. The wipe is recorded.

  --confirm SERIAL    the device's serial, typed (without it you are asked)
  --json              print {serial, erasedSequence, erased, kept}
${LOGIN_USAGE}
${RECORDS_USAGE}
${CONNECT_USAGE}

exit status: 0 wiped, 1 refused or not confirmed (reason on stderr), 2 bad usage`,
    run: guarded('wipe', { booleans: ['json'], known: ['confirm', ...LOGIN_OPTIONS] }, async (args, io) => {
      const given = args.get('confirm');
      const login = await loadLogin(args, io);
      if (typeof login === 'string') {
        io.err(`fieldbench wipe: ${login}\n`);
        return EXIT_REJECTED;
      }
      try {
        return await withSession(deps, args, io, async (s) => {
          const o = await runOp(
            wipeDevice(s, {
              authenticate: (g) => login.authenticate(g, 'wipe'),
              confirm: async (serial, model) => {
                if (given !== undefined) return given;
                const typed = await prompt(io, `This erases the configuration and secrets of ${model} ${serial}. Type its serial to wipe it: `);
                if (typed === null) io.err('fieldbench wipe: no terminal to confirm on: give the serial with --confirm SERIAL\n');
                return typed === null || typed.trim() === '' ? null : typed;
              },
            }),
          );
          await writeRecords(args, io, [wipeRecord(o).audit], { seed: login.seed, technician: login.technician });
          if (o.kind !== 'done') {
            io.err(`fieldbench wipe: ${o.reason}${o.kind === 'failed' ? ` (${o.code})` : ''}\n`);
            return EXIT_REJECTED;
          }
          const r = o.result;
          if (args.has('json')) io.out(JSON.stringify(r, null, 2) + '\n');
          else io.out(`wiped ${r.serial}: erased ${r.erased.join(' and ')}${r.erasedSequence ? ` (configuration #${r.erasedSequence})` : ''}; kept ${r.kept.join(', ')}\n`);
          return EXIT_OK;
        });
      } finally {
        login.seed.fill(0);
      }
    }),
  };

  const rotate: CliCommand = {
    summary: "rotate a device's DevEUI or network key (rotate-keys permission, signed receipt)",
    usage: `usage: fieldbench rotate --dev-eui HEX --port PORT --credential FILE --key FILE --bundle FILE --owner-key FILE [--yes] [--json] [options]
       fieldbench rotate --app-key --key-out FILE --port PORT --credential FILE --key FILE --bundle FILE --owner-key FILE [--yes] [--json] [options]

Replaces the device's LoRaWAN DevEUI (16 hex digits, as the network operator
assigned it) or its LoRaWAN network key (AppKey: a fresh random key is made
here and written to --key-out, readable by you only, before it is sent). The
new value travels inside the authenticated session, encrypted; the credential
needs the rotate-keys permission and the device checks it again. The device
answers with a receipt signed by its identity key, checked here and kept in
the record; a key itself is never recorded, only its key id. The identity key
and the sealing key are bound by the certificate: replacing those is
re-provisioning, not rotation.

  --dev-eui HEX       the new DevEUI
  --app-key           rotate the network key (needs --key-out)
  --key-out FILE      where the new network key is written (hex); must not exist
  --yes               do not ask for confirmation
  --json              print {serial, what, old, new, receiptSig, receiptSha256}
${LOGIN_USAGE}
${RECORDS_USAGE}
${CONNECT_USAGE}

exit status: 0 rotated, 1 refused or not confirmed (reason on stderr), 2 bad usage`,
    run: guarded('rotate', { booleans: ['json', 'yes', 'app-key'], known: ['dev-eui', 'key-out', ...LOGIN_OPTIONS] }, async (args, io) => {
      const devEui = args.get('dev-eui');
      if ((devEui !== undefined) === args.has('app-key')) throw new UsageError('give exactly one of --dev-eui HEX or --app-key');
      const what: RotationTarget = devEui !== undefined ? 'dev-eui' : 'app-key';
      let value: Uint8Array;
      try {
        value = what === 'dev-eui' ? parseRotationValue(what, devEui!) : newRotationValue(what);
      } catch (e) {
        if (e instanceof FieldbenchError) throw new UsageError(e.message);
        throw e;
      }
      const keyOut = args.get('key-out');
      if (what === 'app-key' && !keyOut) throw new UsageError('--app-key needs --key-out FILE: the new key must be kept for the network server');
      if (what === 'dev-eui' && keyOut) throw new UsageError('--key-out is for --app-key only');
      const login = await loadLogin(args, io);
      if (typeof login === 'string') {
        io.err(`fieldbench rotate: ${login}\n`);
        return EXIT_REJECTED;
      }
      try {
        if (keyOut) {
          try {
            await writeFile(resolve(io.cwd, keyOut), toHex(value) + '\n', { flag: 'wx', mode: 0o600 });
          } catch (e) {
            io.err(`fieldbench rotate: cannot write the new key to ${keyOut}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
            return EXIT_USAGE;
          }
        }
        return await withSession(deps, args, io, async (s) => {
          const o = await runOp(
            rotateDevice(s, {
              what,
              value,
              authenticate: (g) => login.authenticate(g, 'rotate-keys'),
              confirm: async (c) => {
                if (args.has('yes')) return true;
                const from = c.old ? ` ${c.old}` : '';
                const typed = await prompt(io, `Rotate the ${ROTATION_WORDS[c.what]} of ${c.model} ${c.serial}${from ? ` from${from}` : ''} to ${c.what === 'app-key' ? `a new key (id ${c.new})` : c.new}? Type yes: `);
                if (typed === null) io.err('fieldbench rotate: no terminal to confirm on: add --yes\n');
                return typed !== null && typed.trim().toLowerCase() === 'yes';
              },
            }),
          );
          await writeRecords(args, io, [rotateRecord(o).audit], { seed: login.seed, technician: login.technician });
          if (o.kind !== 'done') {
            io.err(`fieldbench rotate: ${o.reason}${o.kind === 'failed' ? ` (${o.code})` : ''}\n`);
            if (keyOut) io.err(`fieldbench rotate: the device still uses its old key; ${keyOut} holds a key that was not installed\n`);
            return EXIT_REJECTED;
          }
          const r = o.result;
          if (args.has('json')) io.out(JSON.stringify(r, null, 2) + '\n');
          else if (r.what === 'dev-eui') io.out(`rotated the DevEUI of ${r.serial}: ${r.old || '(none)'} -> ${r.new}; receipt signed by the device\n`);
          else io.out(`rotated the network key of ${r.serial}: key id ${r.old || '(none)'} -> ${r.new}; the new key is in ${keyOut}; receipt signed by the device\n`);
          return EXIT_OK;
        });
      } finally {
        login.seed.fill(0);
        value.fill(0);
      }
    }),
  };

  return { interfaces, wipe, rotate };
}

export const commands: Record<string, CliCommand> = accessCommands();

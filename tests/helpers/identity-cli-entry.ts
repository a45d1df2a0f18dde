/**
 * Process entry for the identity CLI tests while src/cli/main.ts does not list
 * these verbs yet: the same dispatch main() does, for identify/attest/events.
 * Run as: node tests/helpers/identity-cli-entry.mjs <verb> ...
 */
import { UsageError } from '../../src/cli/command.ts';
import { commands } from '../../src/cli/commands/identity.ts';

const [verb, ...rest] = process.argv.slice(2);
const cmd = commands[verb];
const io = { out: (t: string) => void process.stdout.write(t), err: (t: string) => void process.stderr.write(t), cwd: process.cwd() };
if (!cmd) {
  io.err(`unknown verb ${verb}\n`);
  process.exitCode = 2;
} else {
  try {
    process.exitCode = await cmd.run(rest, io);
  } catch (e) {
    io.err(`fieldbench: ${(e as Error).message}\n${e instanceof UsageError ? cmd.usage + '\n' : ''}`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  }
}

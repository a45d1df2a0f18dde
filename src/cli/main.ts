/** fieldbench CLI: gathers the verbs of every area and dispatches. */
import { type CliCommand, type CliIo, EXIT_USAGE, UsageError } from './command.ts';
import { InputError } from './files.ts';
import { commands as attestCommands } from './commands/attest.ts';
import { commands as auditCommands } from './commands/audit.ts';
import { commands as configCommands } from './commands/config.ts';
import { commands as deviceCommands } from './commands/device.ts';
import { commands as flashCommands } from './commands/flash.ts';
import { commands as identityCommands } from './commands/identity.ts';
import { commands as imageCommands } from './commands/image.ts';
import { commands as hubCommands } from './commands/hub.ts';
import { commands as trustCommands } from './commands/trust.ts';

const areas: Record<string, CliCommand>[] = [deviceCommands, configCommands, flashCommands, identityCommands, imageCommands, trustCommands, attestCommands, auditCommands, hubCommands];

export function allCommands(): Map<string, CliCommand> {
  const m = new Map<string, CliCommand>();
  for (const a of areas) for (const [k, v] of Object.entries(a)) m.set(k, v);
  return m;
}

function help(cmds: Map<string, CliCommand>): string {
  const names = [...cmds.keys()].sort();
  const w = Math.max(...names.map((n) => n.length));
  return [
    'fieldbench: manage IoT devices securely over MCUmgr SMP',
    '',
    'usage: fieldbench <verb> [options]   (fieldbench <verb> --help for details)',
    '',
    ...names.map((n) => `  ${n.padEnd(w)}  ${cmds.get(n)!.summary}`),
    '',
    'exit status: 0 accepted or done, 1 rejected (reason on stderr), 2 bad usage or unreadable input',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo = nodeIo()): Promise<number> {
  const cmds = allCommands();
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    io.out(help(cmds) + '\n');
    return argv.length === 0 ? EXIT_USAGE : 0;
  }
  // Verbs are one or two words ("info", "image verify").
  let cmd: CliCommand | undefined;
  let rest: string[] = [];
  if (argv.length >= 2 && cmds.has(`${argv[0]} ${argv[1]}`)) {
    cmd = cmds.get(`${argv[0]} ${argv[1]}`);
    rest = argv.slice(2);
  } else if (cmds.has(argv[0])) {
    cmd = cmds.get(argv[0]);
    rest = argv.slice(1);
  }
  if (!cmd) {
    const sub = [...cmds.keys()].filter((k) => k.startsWith(argv[0] + ' '));
    io.err(`fieldbench: unknown verb ${JSON.stringify(argv.slice(0, 2).join(' '))}${sub.length ? `; did you mean one of: ${sub.join(', ')}` : ''}\nRun 'fieldbench help' for the list.\n`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(cmd.usage + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`fieldbench: ${e.message}\n${cmd.usage}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof InputError) {
      io.err(`fieldbench: ${e.message}\n`);
      return EXIT_USAGE;
    }
    io.err(`fieldbench: ${(e as Error)?.message ?? e}\n`);
    return 1;
  }
}

/** `fieldbench ... | head` closes our stdout early: that is not an error. */
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

export function nodeIo(): CliIo {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    cwd: process.cwd(),
  };
}

/**
 * fieldbench CLI: finds the verb and runs it. The verbs of each area live in
 * src/cli/commands/<area>.ts and are loaded only when one of them runs, so
 * `fieldbench help` and every verb start without loading the others.
 *
 * Built (dist-cli/, scripts/build-cli.mjs), the verb index (names, summaries,
 * usage) is read from dist-cli/verbs.json, which the build writes from the
 * same `commands` records; from the sources (tests, tsx) every area is loaded
 * to build it.
 */
import { readFileSync } from 'node:fs';
import { type CliCommand, type CliIo, EXIT_USAGE, InputError, UsageError } from './command.ts';

/** Each area's verbs, loaded on demand (one chunk per area in the built CLI). */
export const AREAS = {
  device: () => import('./commands/device.ts'),
  bench: () => import('./commands/bench.ts'),
  config: () => import('./commands/config.ts'),
  flash: () => import('./commands/flash.ts'),
  identity: () => import('./commands/identity.ts'),
  image: () => import('./commands/image.ts'),
  trust: () => import('./commands/trust.ts'),
  attest: () => import('./commands/attest.ts'),
  audit: () => import('./commands/audit.ts'),
  hub: () => import('./commands/hub.ts'),
  access: () => import('./commands/access.ts'),
  factory: () => import('./commands/factory.ts'),
} satisfies Record<string, () => Promise<{ commands: Record<string, CliCommand> }>>;

export type Area = keyof typeof AREAS;

/** What `help` and `<verb> --help` need, without loading the verb. */
export interface VerbEntry {
  area: Area;
  summary: string;
  usage: string;
}

/** The verb index of the built CLI (written next to it by the build), or null when running from the sources. */
function builtIndex(): Map<string, VerbEntry> | null {
  if (!import.meta.url.endsWith('/dist-cli/main.mjs')) return null;
  try {
    const j = JSON.parse(readFileSync(new URL('./verbs.json', import.meta.url), 'utf8')) as Record<string, VerbEntry>;
    return new Map(Object.entries(j));
  } catch {
    return null;
  }
}

/** Every verb, by name, from each area's own `commands` record (loads every area). */
export async function allCommands(): Promise<Map<string, CliCommand & { area: Area }>> {
  const m = new Map<string, CliCommand & { area: Area }>();
  for (const [area, load] of Object.entries(AREAS) as [Area, (typeof AREAS)[Area]][]) {
    const { commands } = await load();
    for (const [k, v] of Object.entries(commands)) {
      if (m.has(k)) throw new Error(`verb ${k} is defined by both ${m.get(k)!.area} and ${area}`);
      m.set(k, { ...v, area });
    }
  }
  return m;
}

/** The verb index: the built one, else made from the loaded areas. */
export async function verbIndex(): Promise<Map<string, VerbEntry>> {
  const built = builtIndex();
  if (built) return built;
  const m = new Map<string, VerbEntry>();
  for (const [k, v] of await allCommands()) m.set(k, { area: v.area, summary: v.summary, usage: v.usage });
  return m;
}

async function loadCommand(name: string, entry: VerbEntry): Promise<CliCommand> {
  const { commands } = await AREAS[entry.area]();
  const c = (commands as Record<string, CliCommand>)[name];
  if (!c) throw new Error(`verb ${name} is indexed under ${entry.area} but that area does not define it (rebuild the CLI: npm run build:cli)`);
  return c;
}

function help(cmds: Map<string, VerbEntry>): string {
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
  const cmds = await verbIndex();
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    io.out(help(cmds) + '\n');
    return argv.length === 0 ? EXIT_USAGE : 0;
  }
  // Verbs are one or two words ("info", "image verify").
  let name: string | undefined;
  let rest: string[] = [];
  if (argv.length >= 2 && cmds.has(`${argv[0]} ${argv[1]}`)) {
    name = `${argv[0]} ${argv[1]}`;
    rest = argv.slice(2);
  } else if (cmds.has(argv[0])) {
    name = argv[0];
    rest = argv.slice(1);
  }
  const entry = name === undefined ? undefined : cmds.get(name);
  if (!name || !entry) {
    const sub = [...cmds.keys()].filter((k) => k.startsWith(argv[0] + ' '));
    io.err(`fieldbench: unknown verb ${JSON.stringify(argv.slice(0, 2).join(' '))}${sub.length ? `; did you mean one of: ${sub.join(', ')}` : ''}\nRun 'fieldbench help' for the list.\n`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(entry.usage + '\n');
    return 0;
  }
  const cmd = await loadCommand(name, entry);
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

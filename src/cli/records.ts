/**
 * The CLI's records: every device verb appends its audit entry (made by the
 * op's record function in core, the same one the app uses) to a records log
 * (format: src/core/store/records-log.ts; entries exactly as the app's audit
 * export), so a bench's or a technician's CLI work leaves a trail the app can
 * import and `fieldbench audit verify --records DIR` can check.
 *
 * Where: `--records DIR`, else $XDG_DATA_HOME/fieldbench, else
 * ~/.local/share/fieldbench. `--records off` records nothing (and says so).
 *
 * Which key signs:
 *  - a verb given the technician's key (`--key`, e.g. config apply) signs
 *    with it: the entry's technician is the credential's technician when a
 *    credential is given, else `technician:<key id>`;
 *  - otherwise the per-user records key DIR/records-key.pem (Ed25519,
 *    created on first use, mode 0600; its public key beside it as
 *    records-key.pub.pem), technician `records:<user>@<host>`. It proves
 *    which installation wrote the log, not which person: give --key for that.
 *
 * Crash safety: one append = one write of whole lines, then fsync (and the
 * directory is fsynced when the file is created). Appends are serialised by
 * a lock file (DIR/records.jsonl.lock). A torn last line (a crash mid-write)
 * is never dropped silently: the next append moves its bytes to
 * records.jsonl.torn-<time>, truncates the log to its last whole line,
 * appends an entry `op: "records", outcome: "torn-tail"` naming the saved
 * file and its SHA-256, and says so on stderr; `audit verify` reports a torn
 * tail until then.
 */
import { chmod, mkdir, open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir, hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { type AuditInput, type AuditExportEntry, auditRecordToExport, chainEntries } from '../core/store/audit.ts';
import { RECORDS_FILE, RECORDS_HEADER, parseRecordsLog } from '../core/store/records-log.ts';
import { type AuditSigner, keyIdHex, seedSigner } from '../core/store/sig.ts';
import { fromHex, toHex } from '../core/base/bytes.ts';
import { ed25519PublicKey } from '../core/trust/ed25519.ts';
import { parsePem, privateKeyPem, publicKeyPem } from '../core/trust/keys.ts';
import type { CliIo, ParsedArgs } from './command.ts';

export const RECORDS_KEY = 'records-key.pem';
export const RECORDS_PUB = 'records-key.pub.pem';
export const RECORDS_USAGE = '  --records DIR         where the records log is kept (default $XDG_DATA_HOME/fieldbench or ~/.local/share/fieldbench; "off": none)';
export const RECORDS_OPTIONS = ['records'];

export class RecordsError extends Error {
  constructor(
    readonly code: 'unreadable' | 'not-records' | 'malformed' | 'locked' | 'write' | 'key',
    message: string,
  ) {
    super(message);
    this.name = 'RecordsError';
  }
}

type Env = Record<string, string | undefined>;

/** The records folder for these arguments, or null for `--records off`. */
export function recordsDir(args: Pick<ParsedArgs, 'get'> | null, io: Pick<CliIo, 'cwd'> & { env?: Env }): string | null {
  const env = io.env ?? process.env;
  const given = args?.get('records');
  if (given !== undefined) return given === 'off' ? null : resolve(io.cwd, given);
  if (env.FIELDBENCH_RECORDS) return env.FIELDBENCH_RECORDS === 'off' ? null : resolve(io.cwd, env.FIELDBENCH_RECORDS);
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'fieldbench');
}

function who(): string {
  let user = 'user';
  try {
    user = userInfo().username || user;
  } catch {
    /* no passwd entry */
  }
  return `${user}@${hostname()}`;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch {
    /* some filesystems cannot fsync a directory */
  } finally {
    await fh.close();
  }
}

/** The per-user records key of `dir`: read it, or create it (0600, public key beside it). */
export async function recordsKey(dir: string): Promise<{ seed: Uint8Array; publicKey: Uint8Array; path: string; created: boolean }> {
  const path = join(dir, RECORDS_KEY);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const text = await readFile(path, 'utf8');
      const k = parsePem(text);
      if (k.kind !== 'ed25519-private') throw new RecordsError('key', `${path} is not an Ed25519 private key`);
      const st = await stat(path);
      if ((st.mode & 0o077) !== 0) throw new RecordsError('key', `${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
      return { seed: k.seed, publicKey: await ed25519PublicKey(k.seed), path, created: false };
    } catch (e) {
      if (e instanceof RecordsError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new RecordsError('key', `cannot read the records key ${path}: ${code ?? (e as Error).message}`);
    }
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const publicKey = await ed25519PublicKey(seed);
    try {
      await writeFile(path, privateKeyPem(seed), { mode: 0o600, flag: 'wx' });
      await chmod(path, 0o600);
      await writeFile(join(dir, RECORDS_PUB), publicKeyPem(publicKey), { mode: 0o644 });
      await fsyncPath(dir);
      return { seed, publicKey, path, created: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process made it first: read theirs
      throw new RecordsError('key', `cannot create the records key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  throw new RecordsError('key', `cannot read or create the records key ${path}`);
}

export interface SignerChoice {
  /** The technician's Ed25519 seed (from --key), when the verb has it. */
  seed?: Uint8Array;
  /** The technician's id (from the credential), when known. */
  technician?: string;
}

/** Who signs this verb's records: the technician's key when given, else the per-user records key. */
export async function recordsSigner(dir: string, choice: SignerChoice = {}): Promise<{ signer: AuditSigner; describe: string }> {
  if (choice.seed) {
    const pub = await ed25519PublicKey(choice.seed);
    const id = choice.technician ?? `technician:${keyIdHex(pub)}`;
    return { signer: await seedSigner(id, choice.seed.slice()), describe: `technician key ${keyIdHex(pub)} (${id})` };
  }
  const k = await recordsKey(dir);
  return { signer: await seedSigner(`records:${who()}`, k.seed), describe: `records key ${keyIdHex(k.publicKey)} (${k.path})` };
}

async function lock(path: string, timeoutMs = 10_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => unlink(path).catch(() => {});
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RecordsError('write', `cannot lock ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      // A lock left by a process that died: its owner's pid is gone, or it is old.
      try {
        const st = await stat(path);
        const pid = Number(await readFile(path, 'utf8'));
        let alive = true;
        if (Number.isSafeInteger(pid) && pid > 0) {
          try {
            process.kill(pid, 0);
          } catch (k) {
            alive = (k as NodeJS.ErrnoException).code === 'EPERM';
          }
        }
        if (!alive || Date.now() - st.mtimeMs > 60_000) {
          await unlink(path).catch(() => {});
          continue;
        }
      } catch {
        continue;
      }
      if (Date.now() > deadline) throw new RecordsError('locked', `the records log is locked by another process (${path})`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

export interface AppendResult {
  file: string;
  entries: AuditExportEntry[];
  /** Set when a torn last line was found and moved aside. */
  torn?: { savedAs: string; bytes: number; sha256: string };
  signedBy: string;
}

/**
 * Append audit entries to DIR/records.jsonl: lock, read the head, move a torn
 * tail aside (recorded), chain and sign, write whole lines, fsync, unlock.
 */
export async function appendRecords(dir: string, inputs: AuditInput[], choice: SignerChoice = {}): Promise<AppendResult> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, RECORDS_FILE);
  const { signer, describe } = await recordsSigner(dir, choice);
  const unlock = await lock(`${file}.lock`);
  try {
    let text: string;
    let created = false;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new RecordsError('unreadable', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      text = '';
      created = true;
    }
    const all: AuditInput[] = [];
    let torn: AppendResult['torn'];
    let head: { seq: number; hash: Uint8Array } | null = null;
    if (!created) {
      const p = parseRecordsLog(text);
      if (!p.ok) throw new RecordsError(p.code, `${file}: ${p.reason}; nothing was appended`);
      if (p.torn) {
        const bytes = new TextEncoder().encode(p.torn.text);
        const savedAs = `${file}.torn-${Date.now()}`;
        await writeFile(savedAs, bytes, { mode: 0o600, flag: 'wx' });
        await fsyncPath(savedAs);
        const fh = await open(file, 'r+');
        try {
          await fh.truncate(p.completeBytes);
          await fh.sync();
        } finally {
          await fh.close();
        }
        torn = { savedAs, bytes: bytes.length, sha256: toHex(sha256(bytes)) };
        if (p.completeBytes === 0) created = true;
        else all.push({ op: 'records', outcome: 'torn-tail', details: { line: p.torn.line, bytes: bytes.length, sha256: torn.sha256, savedAs: savedAs.split('/').pop()! } });
      }
      const last = p.entries.at(-1);
      if (last) {
        if (!Number.isSafeInteger(last.seq) || typeof last.hash !== 'string' || !/^[0-9a-f]{64}$/.test(last.hash)) {
          throw new RecordsError('malformed', `${file}: the last entry has no usable seq and hash; nothing was appended (run fieldbench audit verify --records ${dir})`);
        }
        head = { seq: last.seq, hash: fromHex(last.hash) };
      }
    }
    all.push(...inputs);
    const recs = await chainEntries(all, signer, head);
    const entries = recs.map(auditRecordToExport);
    const lines = (created ? RECORDS_HEADER + '\n' : '') + entries.map((e) => JSON.stringify(e) + '\n').join('');
    try {
      const fh = await open(file, 'a', 0o600);
      try {
        await fh.write(lines);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (created) await fsyncPath(dir);
    } catch (e) {
      throw new RecordsError('write', `cannot append to ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return { file, entries: entries.slice(entries.length - inputs.length), torn, signedBy: describe };
  } finally {
    await unlock();
  }
}

/**
 * Record a verb's entries and tell the user on stderr where (and when the
 * records could not be written, why: the verb's own exit status stands).
 * `--records off` records nothing.
 */
export async function writeRecords(args: Pick<ParsedArgs, 'get'> | null, io: CliIo & { env?: Env }, inputs: AuditInput[], choice: SignerChoice = {}): Promise<AppendResult | null> {
  const dir = recordsDir(args, io);
  if (!dir || inputs.length === 0) return null;
  try {
    const r = await appendRecords(dir, inputs, choice);
    if (r.torn) io.err(`records: the last line of ${r.file} was an unfinished append (${r.torn.bytes} bytes); it was moved to ${r.torn.savedAs} and recorded\n`);
    return r;
  } catch (e) {
    io.err(`records: NOT recorded (${e instanceof RecordsError ? e.code : 'write'}): ${(e as Error).message}\n`);
    return null;
  }
}

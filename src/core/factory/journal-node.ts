/**
 * The identifier journal on disk (Node): `<dir>/identifiers.jsonl`, appended
 * and fsync'd before each allocation returns, guarded by `<dir>/identifiers.lock`
 * (created exclusively; holds pid and host). A lock left by a dead process on
 * this host is taken over; a live one is refused (journal-locked). With hub
 * blocks (fileHubAllocator): `<dir>/hub-blocks.jsonl` and one
 * `<dir>/identifiers-<block>.jsonl` per block, each with its lock.
 *
 * The station also knows the chip UIDs in the control log it signs
 * (`<records>/records.jsonl`): `fileAllocator(..., { controlLog: DIR })` reads the
 * units it certified from there too, so a journal started afresh (or kept
 * elsewhere) still refuses a clone of a unit the log names.
 */
import { closeSync, fsyncSync, openSync, readFileSync, writeSync, unlinkSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { type HubAllocator, type HubAllocatorOptions, hubAllocator } from './hub-blocks.ts';
import { AllocatorError, journaledAllocator, type CertifiedChip, type IdentifierBlock, type IdentifierPolicy, type JournalStore, type JournaledAllocator } from './identifiers.ts';
import { RECORDS_FILE, parseRecordsLog } from '../store/records-log.ts';
import { controlRows } from './control-log.ts';

export const JOURNAL_FILE = 'identifiers.jsonl';
export const LOCK_FILE = 'identifiers.lock';
/** The ledger of hub blocks a station took (fileHubAllocator). */
export const HUB_LEDGER = 'hub-blocks';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some platforms cannot fsync a directory; the file's own fsync still holds
  }
}

function takeLock(path: string): void {
  const me = JSON.stringify({ pid: process.pid, host: hostname() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, me);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new AllocatorError('journal-io', `cannot create the journal lock ${path}: ${(e as Error).message}`);
    }
    let holder: { pid?: number; host?: string } = {};
    try {
      holder = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      // unreadable or half-written lock: treat as held (a process may be writing it right now)
    }
    const stale = typeof holder.pid === 'number' && holder.host === hostname() && holder.pid !== process.pid && !alive(holder.pid);
    if (!stale || attempt > 0) {
      throw new AllocatorError('journal-locked', `the identifier journal is in use by ${holder.pid ? `process ${holder.pid} on ${holder.host}` : 'another process'} (${path}); one station process per journal`);
    }
    try {
      unlinkSync(path);
    } catch {
      // someone else removed it first; retry the exclusive create
    }
  }
}

/** File-backed JournalStore in `dir` (created if missing): `<name>.jsonl`, locked by `<name>.lock`. */
export function fileJournal(dir: string, name = 'identifiers'): JournalStore & { readonly path: string } {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name) || name.startsWith('.')) throw new AllocatorError('journal-io', `not a journal name: ${JSON.stringify(name)}`);
  const path = join(dir, `${name}.jsonl`);
  const lock = join(dir, `${name}.lock`);
  let fh: FileHandle | undefined;
  let locked = false;
  return {
    path,
    async open() {
      mkdirSync(dir, { recursive: true });
      takeLock(lock);
      locked = true;
      fh = await openFile(path, 'a+', 0o600);
      const { size } = await fh.stat();
      const buf = Buffer.alloc(size);
      if (size) await fh.read(buf, 0, size, 0);
      const keep = buf.lastIndexOf(0x0a) + 1;
      const torn = keep !== size;
      if (torn) {
        await fh.truncate(keep);
        await fh.sync();
      }
      if (size === 0) fsyncDir(dir);
      const body = buf.subarray(0, keep).toString('utf8');
      return { lines: body ? body.slice(0, -1).split('\n') : [], torn };
    },
    async append(line: string) {
      if (!fh) throw new AllocatorError('closed', 'journal not open');
      await fh.write(line + '\n');
      await fh.datasync();
    },
    async close() {
      await fh?.close();
      fh = undefined;
      if (locked) {
        try {
          unlinkSync(lock);
        } catch {
          // already gone
        }
        locked = false;
      }
    },
  };
}

/**
 * The chip UIDs a control log (records log in `dir`) names as certified: every unit entry that got
 * through provisioning (chip UID, device key, serial and certificate digest recorded), passed or
 * failed later. No log: none. A log that cannot be read stops the station (it would forget clones).
 */
export async function controlLogChips(dir: string): Promise<CertifiedChip[]> {
  const path = join(dir, RECORDS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new AllocatorError('journal-io', `cannot read the control log ${path}: ${(e as Error).message}`);
  }
  if (text.length === 0) return [];
  const p = parseRecordsLog(text);
  if (!p.ok) throw new AllocatorError('journal-corrupt', `the control log ${path} cannot be read (line ${p.line}: ${p.reason}): the station would not know which chip UIDs it certified`);
  return controlRows(p.entries)
    .filter((r) => r.ueid && r.devicePublicKey && r.serial && r.certificateDigest)
    .map((r) => ({ uid: r.ueid!, key: r.devicePublicKey!, serial: r.serial!, at: r.time, unit: r.port, source: 'control-log' as const }));
}

/**
 * An allocator journaled in the station data folder `dir` (optionally limited to a hub block);
 * with `controlLog`, it also knows the chip UIDs certified in that records log.
 */
export function fileAllocator(policy: IdentifierPolicy, dir: string, block?: IdentifierBlock, opts: { controlLog?: string } = {}): JournaledAllocator {
  const log = opts.controlLog;
  return journaledAllocator(policy, { journal: fileJournal(dir), block, ...(log ? { certified: () => controlLogChips(log) } : {}) });
}

/**
 * A station allocator fed by the fleet hub's blocks (hub-blocks.ts), journaled in `dir`: the ledger
 * `hub-blocks.jsonl` and one identifier journal per block, `identifiers-<block id>.jsonl`.
 */
export function fileHubAllocator(policy: IdentifierPolicy, dir: string, opts: Omit<HubAllocatorOptions, 'ledger' | 'blockJournal' | 'certified'> & { controlLog?: string }): HubAllocator {
  const { controlLog, ...rest } = opts;
  return hubAllocator(policy, {
    ...rest,
    ...(controlLog ? { certified: () => controlLogChips(controlLog) } : {}),
    ledger: fileJournal(dir, HUB_LEDGER),
    blockJournal: (b) => fileJournal(dir, `identifiers-${b.id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80)}`),
  });
}

/**
 * fieldbench audit verify — check an exported audit trail, or the CLI's own
 * records log (--records DIR, or a records.jsonl file), offline.
 *
 * Exit: 0 intact; 1 tampered (the entry is named on stderr); 2 bad usage,
 * unreadable file, a file that is not an audit export, or an unusable key.
 */
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs, type CliCommand, type CliIo } from '../command.ts';
import { InputError, readEd25519Public, readText } from '../files.ts';
import { verifyAuditExport } from '../../core/store/audit.ts';
import { RECORDS_FILE, RECORDS_FORMAT, verifyRecordsLog } from '../../core/store/records-log.ts';
import { keyIdHex } from '../../core/store/sig.ts';
import { join } from 'node:path';
import { RECORDS_PUB, recordsDir } from '../records.ts';

const usage = `usage: fieldbench audit verify FILE [--key TECHNICIAN.pem]... [--expect-head SEQ:HASH]
       fieldbench audit verify --records DIR [--key ...]

Checks an audit export (format fieldbench-audit), or the records log the CLI
writes (DIR/records.jsonl, format fieldbench-records; FILE may be such a log
too): every entry's hash, the chain, the sequence numbers and each technician
signature. A break is named (entry index and seq) as deleted, reordered,
inserted, modified, bad-signature or malformed; a log's unfinished last line
as torn.

  --records DIR         the CLI's records folder (where device verbs write
                        them: their --records DIR, else $XDG_DATA_HOME/fieldbench
                        or ~/.local/share/fieldbench); its records key
                        (DIR/records-key.pub.pem) is trusted too

  --key FILE            a trusted technician public key (Ed25519 PEM; a
                        private key PEM is accepted and its public half used).
                        Repeatable. Without --key only internal consistency is
                        checked: anyone could have written a consistent file.
  --expect-head SEQ:HASH  the head recorded elsewhere (e.g. printed at export
                        time); catches entries cut off the end with head rewritten.

exit status: 0 intact, 1 tampered (entry named on stderr), 2 bad usage or unreadable input`;

const verify: CliCommand = {
  summary: 'verify an exported audit trail (chain, sequence, technician signatures)',
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    let args;
    try {
      args = parseArgs(argv, { known: ['key', 'expect-head', 'records'] });
      if (args.has('records') ? args.positional.length > 1 : args.positional.length !== 1) throw new UsageError('give exactly one audit export FILE, or --records [DIR]');
    } catch (e) {
      if (e instanceof UsageError) {
        io.err(`fieldbench audit verify: ${e.message}\n${usage}\n`);
        return EXIT_USAGE;
      }
      throw e;
    }
    let expectedHead: { seq: number; hash: string } | undefined;
    const eh = args.get('expect-head');
    if (eh !== undefined) {
      const m = /^(\d+):([0-9a-fA-F]{64})$/.exec(eh);
      if (!m) {
        io.err(`fieldbench audit verify: --expect-head must be SEQ:HASH (HASH = 64 hex digits)\n`);
        return EXIT_USAGE;
      }
      expectedHead = { seq: Number(m[1]), hash: m[2].toLowerCase() };
    }
    const dir = args.has('records') ? recordsDir(args, io) : null;
    if (args.has('records') && !dir) throw new UsageError('--records off: there is no records log to verify');
    const file = dir ? join(dir, RECORDS_FILE) : args.positional[0];
    let text: string;
    let keys: Uint8Array[] | undefined;
    try {
      text = await readText(io, file);
      const keyFiles = args.all('key');
      if (keyFiles.length) keys = await Promise.all(keyFiles.map((k) => readEd25519Public(io, k, { what: 'technician key' })));
      if (dir) {
        // the folder's own records key signs the entries of verbs run without --key
        const own = await readEd25519Public(io, join(dir, RECORDS_PUB), { what: 'records key' }).catch(() => undefined);
        if (own) keys = [...(keys ?? []), own];
      }
    } catch (e) {
      if (e instanceof InputError) {
        io.err(`fieldbench audit verify: ${e.message}\n`);
        return EXIT_USAGE;
      }
      throw e;
    }
    if (text.startsWith(`{"format":"${RECORDS_FORMAT}"`)) return reportLog(io, file, await verifyRecordsLog(text, keys, { expectedHead }), keys);
    const v = await verifyAuditExport(text, keys, { expectedHead });
    if (!v.ok) {
      if (v.index < 0) {
        io.err(`fieldbench audit verify: ${file} is not a readable audit export: ${v.reason}\n`);
        return EXIT_USAGE;
      }
      const where = `entry ${v.index}${v.seq !== undefined ? ` (seq ${v.seq})` : ''}`;
      io.err(`TAMPERED: ${file}: ${where}: ${v.code}: ${v.reason}\n`);
      return EXIT_REJECTED;
    }
    const lines = [
      `intact: ${file}: ${v.count} entr${v.count === 1 ? 'y' : 'ies'}${v.head ? `, head seq ${v.head.seq} ${v.head.hash}` : ''}`,
      `signed by: ${v.signers.length ? v.signers.join(', ') : '(no entries)'}`,
      keys
        ? `authenticated: every entry is signed by one of ${keys.length} trusted key(s) (${keys.map(keyIdHex).join(', ')})`
        : 'NOT authenticated: no --key given, so only internal consistency was checked',
    ];
    io.out(lines.join('\n') + '\n');
    return EXIT_OK;
  },
};

function reportLog(io: CliIo, file: string, v: Awaited<ReturnType<typeof verifyRecordsLog>>, keys: Uint8Array[] | undefined): number {
  if (!v.ok) {
    if (v.code === 'not-records' || (v.code === 'malformed' && v.line === 1)) {
      io.err(`fieldbench audit verify: ${file} is not a readable records log: ${v.reason}\n`);
      return EXIT_USAGE;
    }
    io.err(`${v.code === 'torn' ? 'TORN' : 'TAMPERED'}: ${file}: line ${v.line}${v.seq !== undefined ? ` (seq ${v.seq})` : ''}: ${v.code}: ${v.reason}\n`);
    return EXIT_REJECTED;
  }
  io.out(
    [
      `intact: ${file}: ${v.count} entr${v.count === 1 ? 'y' : 'ies'}${v.head ? `, head seq ${v.head.seq} ${v.head.hash}` : ''}`,
      `signed by: ${v.signers.length ? v.signers.join(', ') : '(no entries)'}; technicians: ${v.technicians.join(', ') || '(none)'}`,
      keys && v.authenticated
        ? `authenticated: every entry is signed by one of ${keys.length} trusted key(s) (${keys.map(keyIdHex).join(', ')})`
        : 'NOT authenticated: no trusted key given, so only internal consistency was checked',
    ].join('\n') + '\n',
  );
  return EXIT_OK;
}

export const commands: Record<string, CliCommand> = {
  'audit verify': verify,
};

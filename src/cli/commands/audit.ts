/**
 * fieldbench audit verify — check an exported audit trail, or the CLI's own
 * records log (--records DIR, or a records.jsonl file), offline.
 * fieldbench report — one device's job report (PDF or JSON) from such a trail,
 * and `report verify`, which checks a report against a trail (ops/job/report.ts).
 *
 * Exit: 0 intact; 1 tampered (the entry is named on stderr); 2 bad usage,
 * unreadable file, a file that is not an audit export, or an unusable key.
 */
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs, type CliCommand, type CliIo } from '../command.ts';
import { InputError, readEd25519Public, readInput, readText } from '../files.ts';
import { verifyAuditExport } from '../../core/store/audit.ts';
import { RECORDS_FILE, RECORDS_FORMAT, logAsExport, parseRecordsLog, verifyRecordsLog } from '../../core/store/records-log.ts';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { buildJobReport, ReportError, stepName, verifyJobReport, type JobReport } from '../../core/ops/job/report.ts';
import { localDateTime } from '../../core/trust/attestation-words.ts';
import type { AuditExport } from '../../core/store/audit.ts';
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

// ------------------------------------------------------------------ report

const TRAIL_USAGE = `  FILE                  an audit export (the app's Audit trail page: Export) or a
                        records log (records.jsonl)
  --records DIR         the CLI's records folder instead of FILE (its records key
                        DIR/records-key.pub.pem is trusted too)
  --key FILE            a trusted technician public key (Ed25519 PEM); repeatable.
                        Without it only the trail's integrity is checked.`;

const reportUsage = `usage: fieldbench report (FILE | --records DIR) (--serial SN | --device-key HEX) [--key TECH.pub.pem]...
                        [--since SEQ] [--until SEQ] [--out REPORT.pdf | REPORT.json] [--force] [--json]

One device's job report from a saved audit trail, the same report the app shows
(Device page: Job report): identity and label check, attestation in words,
firmware and configuration before and after, overrides, technician, times, and
the audit entries (hash) that prove each item. The trail is verified first; a
tampered trail gives no report. The job: the device's entries after its last
finished job (or, when the trail ends at a Finish, that finished job); --since
and --until narrow it by seq.

${TRAIL_USAGE}
  --serial SN | --device-key HEX   the device (its serial, or its identity key as 64 hex)
  --out FILE            write the PDF (.pdf; the report is embedded in it) or the JSON (.json)
  --json                print the report as JSON (else a summary in words)

Check a report later with: fieldbench report verify REPORT FILE

exit status: 0 report made, 1 no report (tampered trail, no entry for the device), 2 bad usage or unreadable input`;

const reportVerifyUsage = `usage: fieldbench report verify REPORT.pdf|REPORT.json (FILE | --records DIR) [--key TECH.pub.pem]...

Rebuilds the report from the trail (which must verify) for the same device and
entries, and compares every item and every entry hash with REPORT.

${TRAIL_USAGE}

exit status: 0 the report matches the trail, 1 it does not (what differs on stderr), 2 bad usage or unreadable input`;

/** The trail (FILE or --records DIR) as an audit export, and the keys to trust. */
async function readTrail(args: ReturnType<typeof parseArgs>, io: CliIo, file: string | undefined): Promise<{ trail: AuditExport; keys?: Uint8Array[]; name: string; note?: string }> {
  const dir = args.has('records') ? recordsDir(args, io) : null;
  if (args.has('records') && !dir) throw new UsageError('--records off: there is no records log');
  const path = dir ? join(dir, RECORDS_FILE) : file;
  if (!path) throw new UsageError('give the audit trail: FILE or --records DIR');
  const text = await readText(io, path);
  let keys: Uint8Array[] | undefined;
  const keyFiles = args.all('key');
  if (keyFiles.length) keys = await Promise.all(keyFiles.map((k) => readEd25519Public(io, k, { what: 'technician key' })));
  if (dir) {
    const own = await readEd25519Public(io, join(dir, RECORDS_PUB), { what: 'records key' }).catch(() => undefined);
    if (own) keys = [...(keys ?? []), own];
  }
  if (text.startsWith(`{"format":"${RECORDS_FORMAT}"`)) {
    const p = parseRecordsLog(text);
    if (!p.ok) throw new InputError(`${path} is not a readable records log: ${p.reason}`);
    return { trail: logAsExport(p.entries), keys, name: path, note: p.torn ? `${path}: its last line is an append that did not finish; the ${p.entries.length} entries before it are used` : undefined };
  }
  let trail: AuditExport;
  try {
    trail = JSON.parse(text) as AuditExport;
  } catch (e) {
    throw new InputError(`${path} is not an audit export (not JSON: ${(e as Error).message})`);
  }
  return { trail, keys, name: path };
}

function seqArg(args: ReturnType<typeof parseArgs>, name: string): number | undefined {
  const v = args.get(name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be an entry seq (a whole number)`);
  return Number(v);
}

/** The report in words, for the terminal. */
export function reportText(r: JobReport): string {
  const l: string[] = [];
  l.push(`Job report: ${r.device.serial ?? r.device.ids.devicePublicKey ?? 'device'}${r.status === 'partial' ? ' (PARTIAL: the job is not finished)' : ''}`);
  l.push(`${r.verdict.headline}${r.verdict.reason && r.verdict.reason !== `${r.verdict.headline}.` ? `: ${r.verdict.reason}` : ''}`);
  l.push(`identity: ${r.device.identity}${r.device.model ? `, model ${r.device.model}` : ''}${r.device.keyFingerprint ? `, key fingerprint ${r.device.keyFingerprint}` : ''}`);
  l.push(`label: ${r.device.label.result}${r.device.label.entered ? ` (entered: ${r.device.label.entered})` : ''}`);
  l.push(`attestation: ${r.attestation ? r.attestation.verdict : 'not attested'}`);
  for (const c of r.attestation?.claims ?? []) l.push(`  ${c.label}: ${c.value}`);
  l.push(`firmware: ${r.firmware.words}`);
  l.push(`configuration: ${r.configuration.words}`);
  for (const o of r.overrides) l.push(`override: ${o.text}; reason: ${o.reason} (entry #${o.seq})`);
  l.push(`steps: ${r.steps.map((s) => `${stepName(s.step)} ${s.words}`).join(', ')}`);
  l.push(`technician: ${r.technicians.map((t) => `${t.id} (key ${t.keyId})`).join(', ')}`);
  if (r.started !== undefined) l.push(`started: ${localDateTime(r.started)}${r.finished !== undefined ? `, finished: ${localDateTime(r.finished)}` : ''}`);
  l.push('entries:');
  for (const e of r.entries) l.push(`  #${e.seq} ${e.hash} ${localDateTime(e.time)} ${e.what}`);
  if (r.covers) l.push(`covers the trail up to entry #${r.covers.seq} ${r.covers.hash}`);
  l.push(r.trail.authenticated ? 'authenticated: every entry of the trail is signed by a trusted key' : 'NOT authenticated: no --key given, so only the trail\'s integrity was checked');
  return l.join('\n') + '\n';
}

const report: CliCommand = {
  summary: "one device's job report (PDF or JSON) from a saved audit trail",
  usage: reportUsage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const args = parseArgs(argv, { booleans: ['json', 'force'], known: ['key', 'records', 'serial', 'device-key', 'since', 'until', 'out'] });
    if (args.positional.length > (args.has('records') ? 0 : 1)) throw new UsageError('give one audit trail FILE, or --records DIR');
    const serial = args.get('serial');
    const key = args.get('device-key');
    if (!serial && !key) throw new UsageError('name the device: --serial SN or --device-key HEX');
    if (key !== undefined && !/^[0-9a-fA-F]{64}$/.test(key)) throw new UsageError('--device-key is the identity key as 64 hex digits');
    const out = args.get('out');
    if (out !== undefined && !/\.(pdf|json)$/i.test(out)) throw new UsageError('--out names a .pdf or a .json file');
    const since = seqArg(args, 'since');
    const until = seqArg(args, 'until');
    const t = await readTrail(args, io, args.positional[0]);
    if (t.note) io.err(`fieldbench report: ${t.note}\n`);
    let r: JobReport;
    try {
      r = await buildJobReport(t.trail, { device: { serial, devicePublicKey: key?.toLowerCase() }, since, until, trustedKeys: t.keys });
    } catch (e) {
      if (e instanceof ReportError) {
        io.err(`fieldbench report: ${t.name}: ${e.message}\n`);
        return e.code === 'malformed' ? EXIT_USAGE : EXIT_REJECTED;
      }
      throw e;
    }
    if (out) {
      let data: Uint8Array | string;
      if (/\.pdf$/i.test(out)) {
        const { reportPdf } = await import('../../core/ops/job/report-pdf.ts');
        data = await reportPdf(r);
      } else data = JSON.stringify(r, null, 1) + '\n';
      try {
        await writeFile(resolve(io.cwd, out), data, { mode: 0o644, flag: args.has('force') ? 'w' : 'wx' });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new InputError(code === 'EEXIST' ? `${out} exists; refusing to overwrite it (use --force)` : `cannot write ${out}: ${code ?? (e as Error).message}`);
      }
    }
    if (args.has('json')) io.out(JSON.stringify(r) + '\n');
    else if (out) io.out(`wrote ${out}: ${r.verdict.headline}${r.status === 'partial' ? ' (partial report)' : ''}, ${r.entries.length} entries, covers #${r.covers?.seq} ${r.covers?.hash}\n`);
    else io.out(reportText(r));
    return EXIT_OK;
  },
};

const reportVerify: CliCommand = {
  summary: 'check a job report (PDF or JSON) against the audit trail it came from',
  usage: reportVerifyUsage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const args = parseArgs(argv, { known: ['key', 'records'] });
    const want = args.has('records') ? 1 : 2;
    if (args.positional.length !== want) throw new UsageError('give the REPORT and the audit trail FILE (or --records DIR)');
    const [reportFile, trailFile] = args.positional;
    const bytes = await readInput(io, reportFile, 'report');
    let doc: unknown;
    if (new TextDecoder().decode(bytes.subarray(0, 5)) === '%PDF-') {
      const { readReportPdf } = await import('../../core/ops/job/report-pdf.ts');
      try {
        doc = await readReportPdf(bytes);
      } catch (e) {
        throw new InputError(`${reportFile} is not a readable PDF: ${(e as Error).message}`);
      }
      if (doc === null) {
        io.err(`fieldbench report verify: ${reportFile} carries no fieldbench job report (no job-report.json attachment)\n`);
        return EXIT_REJECTED;
      }
    } else {
      try {
        doc = JSON.parse(new TextDecoder().decode(bytes));
      } catch (e) {
        throw new InputError(`${reportFile} is neither a PDF nor JSON (${(e as Error).message})`);
      }
    }
    const t = await readTrail(args, io, trailFile);
    const problem = await verifyJobReport(doc, t.trail, { trustedKeys: t.keys });
    if (problem) {
      io.err(`DOES NOT MATCH: ${reportFile}: ${problem}\n`);
      return EXIT_REJECTED;
    }
    const r = doc as JobReport;
    io.out(`matches: ${reportFile} is the report of ${t.name} for ${r.device.serial ?? r.device.ids.devicePublicKey} (entries #${r.entries[0].seq}..#${r.covers?.seq}, last ${r.covers?.hash})${t.keys ? '; every entry signed by a trusted key' : '; NOT authenticated: no --key given'}\n`);
    return EXIT_OK;
  },
};

export const commands: Record<string, CliCommand> = {
  'audit verify': verify,
  report,
  'report verify': reportVerify,
};

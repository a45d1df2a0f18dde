/**
 * fieldbench flash IMAGE --port PORT --key PUB.pem [--key ...] [--no-confirm] [--json]
 *
 * Verified firmware update: preflight (signature, version, security counter,
 * model, slot), pipelined resumable upload, test boot, confirm. Prints the
 * preflight report and progress; exit 0 done, 1 refused or failed (reason on
 * stderr), 2 bad usage or unreadable input.
 */
import { toHex } from '../../core/base/bytes.ts';
import { type PreflightReport } from '../../core/ops/update/preflight.ts';
import { type UpdateOutcome, type UpdateState, updateFirmware } from '../../core/ops/update/update.ts';
import { recordUpdate } from '../../core/ops/update/record.ts';
import { isOutcome } from '../../core/ops/outcome.ts';
import { RECORDS_OPTIONS, RECORDS_USAGE, writeRecords } from '../records.ts';
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs } from '../command.ts';
import { CONNECT_OPTIONS, CONNECT_USAGE, connect } from '../connect.ts';
import { InputError, readEd25519Public, readFirmware, readInput } from '../files.ts';
import { type TrustBundle, verifyBundle } from '../../core/trust/bundle.ts';

const MARK: Record<string, string> = { pass: 'ok  ', fail: 'FAIL', warn: 'warn', skip: 'skip' };

export function formatPreflight(r: PreflightReport): string {
  const lines = [`Preflight: ${r.ok ? 'image accepted' : 'REFUSED'} (${r.image.size} bytes${r.image.version ? `, version ${r.image.version}` : ''})`];
  for (const c of r.checks) lines.push(`  [${MARK[c.result]}] ${c.name.padEnd(16)} ${c.reason}`);
  const d = r.device;
  lines.push(`  device runs ${d.activeVersion ?? '?'}; bootloader ${d.bootModeName ?? 'mode unknown'}; ${r.chunkSize} image bytes per request`);
  return lines.join('\n') + '\n';
}

function jsonReplacer(_k: string, v: unknown): unknown {
  return v instanceof Uint8Array ? toHex(v) : v;
}

function describe(s: UpdateState): string | null {
  switch (s.kind) {
    case 'resumed':
      return `resuming the upload at byte ${s.from} (the device kept what it had)`;
    case 'serial-recovery':
      return `warning: ${s.note}`;
    case 'verifying':
      return 'upload complete; checking the device lists the image';
    case 'testing':
      return s.skipped ? `test skipped: ${s.note}` : (s.note ?? 'marking the image for test');
    case 'resetting':
      return 'resetting the device';
    case 'waiting-for-device':
      return 'waiting for the device';
    case 'confirming':
      return 'new image is running and is the verified one: confirming';
    default:
      return null;
  }
}

const flash: CliCommand = {
  summary: 'verified firmware update: preflight, resumable upload, test boot, confirm',
  usage: `usage: fieldbench flash IMAGE --port PORT (--key PUB.pem ... | --bundle FILE --owner-key OWNER.pub.pem) [options]
  IMAGE             signed MCUboot image (.bin, or .hex)
  --key PUB.pem     trusted firmware signing public key (Ed25519, PEM); repeat for several
  --bundle FILE     trust bundle: its firmware keys are trusted, and the image must be listed in it
                    for this model, version, security counter and signer (mix-and-match, rollback)
  --owner-key PEM   owner public key the bundle must verify under (repeatable)
  --model NAME      the device's model, compared with the bundle's entry for the image
  --allow-stale     use an expired bundle (shown as stale; the preflight still says so)
  --no-confirm      leave the new image running as a test: it reverts at the next reboot unless confirmed
  --json            print the preflight report and the outcome as JSON
${RECORDS_USAGE}
${CONNECT_USAGE}`,
  async run(argv, io) {
    const args = parseArgs(argv, {
      booleans: ['json', 'verbose', 'no-confirm', 'allow-stale'],
      known: [...CONNECT_OPTIONS, ...RECORDS_OPTIONS, 'key', 'bundle', 'owner-key', 'model'],
    });
    if (args.positional.length !== 1) throw new UsageError('give exactly one IMAGE');
    const keyPaths = args.all('key');
    if (keyPaths.length === 0 && !args.has('bundle')) {
      throw new UsageError('--key or --bundle is required: an image is only uploaded if it verifies under a trusted key');
    }
    if (args.has('bundle') && !args.has('owner-key')) throw new UsageError('--bundle needs --owner-key: a bundle is used only once it verifies');
    if (!args.has('port')) throw new UsageError('--port is required');
    const json = args.has('json');
    let image: Uint8Array;
    let keys: Uint8Array[];
    let bundle: TrustBundle | undefined;
    try {
      image = (await readFirmware(io, args.positional[0])).data;
      keys = [];
      for (const p of keyPaths) keys.push(await readEd25519Public(io, p, { what: 'firmware signing key', publicOnly: true }));
      if (args.has('bundle')) {
        const owners: Uint8Array[] = [];
        for (const p of args.all('owner-key')) owners.push(await readEd25519Public(io, p, { what: 'owner key', publicOnly: true }));
        const v = await verifyBundle(await readInput(io, args.require('bundle'), 'trust bundle'), { ownerKeys: owners, allowStale: args.has('allow-stale') });
        if (!v.ok) {
          io.err(`fieldbench flash: trust bundle refused: ${v.reason}\n`);
          return EXIT_REJECTED;
        }
        bundle = v.value;
      }
    } catch (e) {
      if (e instanceof InputError) {
        io.err(`fieldbench flash: ${e.message}\n`);
        return EXIT_USAGE;
      }
      throw e;
    }

    const session = await connect(args, io);
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once('SIGINT', onSigint);
    let current = session;
    let report: PreflightReport | undefined;
    let outcome: UpdateOutcome | undefined;
    let lastProgress = 0;
    const tty = !json && (process.stderr as { isTTY?: boolean }).isTTY === true;
    try {
      for await (const s of updateFirmware(session, image, {
        trustedKeys: keys,
        bundle,
        deviceModel: args.has('model') ? { name: args.get('model') } : undefined,
        confirm: args.has('no-confirm') ? 'test-only' : 'test-then-confirm',
        signal: ac.signal,
        reconnect: async () => (current = await connect(args, io)),
      })) {
        if (isOutcome(s)) outcome = s as UpdateOutcome;
        if (s.kind === 'preflight') {
          report = s.report;
          if (!json) io.out(formatPreflight(s.report));
          continue;
        }
        if (json) continue;
        if (s.kind === 'uploading') {
          const now = Date.now();
          if (now - lastProgress < (tty ? 200 : 2000) && s.sent < s.total) continue;
          lastProgress = now;
          const pct = ((s.sent / s.total) * 100).toFixed(1);
          const rate = s.bytesPerSecond ? `${(s.bytesPerSecond / 1024).toFixed(1)} KiB/s` : '';
          const eta = Number.isFinite(s.etaMs) && s.sent < s.total ? `, ${Math.ceil(s.etaMs / 1000)} s left` : '';
          io.err(`${tty ? '\r' : ''}uploading ${s.sent}/${s.total} bytes (${pct}%) ${rate}${eta}${tty ? '   ' : '\n'}`);
          if (tty && s.sent === s.total) io.err('\n');
          continue;
        }
        const text = describe(s);
        if (text) io.err(text + '\n');
      }
    } finally {
      process.removeListener('SIGINT', onSigint);
      await current.close().catch(() => {});
      if (current !== session) await session.close().catch(() => {});
    }
    // the op always ends in one outcome (outcome.ts); the record is made from it by core's rule
    const o: UpdateOutcome = outcome ?? { kind: 'failed', code: 'internal', reason: 'the update ended without an outcome', retryable: false };
    await writeRecords(args, io, [recordUpdate(o, { name: args.positional[0], report: report ?? null }).audit]);
    if (json) {
      io.out(JSON.stringify({ ok: o.kind === 'done', preflight: report, outcome: o }, jsonReplacer, 2) + '\n');
    } else if (o.kind === 'done') {
      io.out(`done: ${o.result.message} (sha256 ${toHex(o.result.hash)})\n`);
    }
    if (o.kind !== 'done') {
      io.err(`fieldbench flash: ${o.kind === 'failed' ? `${o.reason} [${o.code}]` : o.reason}\n`);
      return EXIT_REJECTED;
    }
    return EXIT_OK;
  },
};

export const commands: Record<string, CliCommand> = { flash };

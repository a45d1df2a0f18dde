/**
 * fieldbench flash IMAGE --port PORT --key PUB.pem [--key ...] [--no-confirm] [--json]
 *
 * Verified firmware update: preflight (signature, version, security counter,
 * model, slot), pipelined resumable upload, test boot, confirm. Prints the
 * preflight report and progress; exit 0 done, 1 refused or failed (reason on
 * stderr), 2 bad usage or unreadable input.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { toHex } from '../../core/smp/bytes.ts';
import { type PreflightReport, type UpdateState, updateFirmware } from '../../core/ops/update.ts';
import { IhexError } from '../../core/trust/ihex.ts';
import { KeyFormatError, parsePem } from '../../core/trust/keys.ts';
import { readFirmwareFile } from '../../core/trust/mcuboot.ts';
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs } from '../command.ts';
import { CONNECT_OPTIONS, CONNECT_USAGE, connect } from '../connect.ts';

class InputError extends Error {}

async function readInput(io: CliIo, path: string): Promise<Uint8Array> {
  try {
    const b = await readFile(resolve(io.cwd, path));
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

async function readPublicKey(io: CliIo, path: string): Promise<Uint8Array> {
  let k;
  try {
    k = parsePem(new TextDecoder().decode(await readInput(io, path)));
  } catch (e) {
    if (e instanceof KeyFormatError) throw new InputError(`${path}: ${e.message}`);
    throw e;
  }
  if (k.kind === 'ed25519-public') return k.publicKey;
  if (k.kind === 'ed25519-private') throw new InputError(`${path} is a private key: give the firmware signer's PUBLIC key (openssl pkey -in ${path} -pubout)`);
  throw new InputError(`${path}: ${k.kind} keys cannot verify MCUboot Ed25519 images`);
}

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
  usage: `usage: fieldbench flash IMAGE --port PORT --key PUB.pem [--key PUB.pem ...] [--no-confirm] [--json] [options]
  IMAGE             signed MCUboot image (.bin, or .hex)
  --key PUB.pem     trusted firmware signing public key (Ed25519, PEM); repeat for several
  --no-confirm      leave the new image running as a test: it reverts at the next reboot unless confirmed
  --json            print the preflight report and the outcome as JSON
${CONNECT_USAGE}`,
  async run(argv, io) {
    const args = parseArgs(argv, { booleans: ['json', 'verbose', 'no-confirm'], known: [...CONNECT_OPTIONS, 'key'] });
    if (args.positional.length !== 1) throw new UsageError('give exactly one IMAGE');
    const keyPaths = args.all('key');
    if (keyPaths.length === 0) throw new UsageError('--key is required: an image is only uploaded if it verifies under a trusted key');
    if (!args.has('port')) throw new UsageError('--port is required');
    const json = args.has('json');
    let image: Uint8Array;
    let keys: Uint8Array[];
    try {
      const path = args.positional[0];
      const raw = await readInput(io, path);
      try {
        image = readFirmwareFile(path, raw).data;
      } catch (e) {
        if (e instanceof IhexError) throw new InputError(`${path}: ${e.message}`);
        throw e;
      }
      keys = [];
      for (const p of keyPaths) keys.push(await readPublicKey(io, p));
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
    let last: UpdateState | undefined;
    let lastProgress = 0;
    const tty = !json && (process.stderr as { isTTY?: boolean }).isTTY === true;
    try {
      for await (const s of updateFirmware(session, image, {
        trustedKeys: keys,
        confirm: args.has('no-confirm') ? 'test-only' : 'test-then-confirm',
        signal: ac.signal,
        reconnect: async () => (current = await connect(args, io)),
      })) {
        last = s;
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
    const ok = last?.kind === 'done';
    if (json) {
      io.out(JSON.stringify({ ok, preflight: report, result: last }, jsonReplacer, 2) + '\n');
    } else if (last?.kind === 'done') {
      io.out(`done: ${last.message} (sha256 ${toHex(last.hash)})\n`);
    }
    if (!ok) {
      const why = last?.kind === 'error' || last?.kind === 'cancelled' ? last.message : 'update ended without a result';
      io.err(`fieldbench flash: ${why}\n`);
      return EXIT_REJECTED;
    }
    return EXIT_OK;
  },
};

export const commands: Record<string, CliCommand> = { flash };

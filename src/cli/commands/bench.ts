/**
 * fieldbench bench run: a factory line on this PC. Every port runs units
 * concurrently (src/core/factory/station.ts, one unit = src/core/factory/run.ts);
 * a live dashboard (a line per port, readable from a metre away) or, with
 * --json, one JSON object per line for a manufacturing execution system.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { toHex } from '../../core/base/bytes.ts';
import type { SmpSession } from '../../core/groups/session.ts';
import { fileAllocator, fileHubAllocator } from '../../core/factory/journal-node.ts';
import type { HubAllocator } from '../../core/factory/hub-blocks.ts';
import { AllocatorError, type IdentifierBlock } from '../../core/factory/identifiers.ts';
import { decodeCredentialUnverified } from '../../core/trust/credential.ts';
import { HubClient } from '../../core/sync/client.ts';
import { seedSigner } from '../../core/store/sig.ts';
import { type LabelData, labelSvg, labelTemplate, labelZpl } from '../../core/factory/label.ts';
import { type VerifiedProfile, verifyProfile } from '../../core/factory/profile.ts';
import { UNIT_STEPS, type UnitStep } from '../../core/factory/run.ts';
import { Station, type StationEvent, type StationPort, type StationSummary } from '../../core/factory/station.ts';
import { verifyBundle } from '../../core/trust/bundle.ts';
import { ed25519PublicKey } from '../../core/trust/ed25519.ts';
import { keyId } from '../../core/trust/keys.ts';
import { memorySigner, type Signer } from '../../core/trust/signer.ts';
import type { AuditInput } from '../../core/store/audit.ts';
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, InputError, type ParsedArgs, UsageError, parseArgs } from '../command.ts';
import { connect } from '../connect.ts';
import { signerFromArgs, signerOptionNames, signerUsage } from '../signer-options.ts';
import { readEd25519Private, readEd25519Public, readInput, readText } from '../files.ts';
import { appendRecords } from '../records.ts';
import { jsonReplacer } from './device.ts';

const usage = `usage: fieldbench bench run PROFILE --port PORT [--port PORT ...] [--ports FILE] --records DIR
         --owner-key OWNER.pub.pem --bundle BUNDLE --image IMAGE.bin
         (--manufacturer-key FILE | --pkcs11 MODULE ...) --station-key STATION.pem [--credential FILE]
         [--journal DIR] [--hub URL [--block-units N] [--station NAME]] [--labels DIR] [--once] [--units N]
         [--json] [--baud N] [--timeout MS]

Runs the station profile on every port at once: connect, info, flash the profile's image
(application mode or MCUboot serial recovery), test boot, confirm, provision the identity
over the wire (identifiers from the journal, only after the unit proved its keys),
apply the factory configuration, attest (must be trusted, on the profile's image),
label, record (one entry per unit, signed with the station key, in DIR/records.jsonl).

  PROFILE                 the owner-signed station profile (refused unsigned, expired or altered)
  --port PORT             /dev/ttyACM0, tcp://127.0.0.1:PORT, ... ; a pattern such as
                          '/dev/ttyACM*' or '/dev/serial/by-path/*' is watched: new ports join
  --ports FILE            more ports (or patterns), one per line (# comments)
  --records DIR           the control log (DIR/records.jsonl); verify it with
                          fieldbench audit verify --records DIR --key STATION.pub.pem
  --owner-key PUB.pem     the owner key that signs the profile and the bundle (repeatable)
  --bundle FILE           the owner's trust bundle (manufacturer and firmware anchors)
  --image FILE            the signed image the profile names (checked against its digest)
${signerUsage('manufacturer-key', 'manufacturer key (issues the identities)')}
  --station-key FILE      the station's own key: signs the control log and logs in to units
                          (the profile's station credential names it)
  --credential FILE       the station's technician credential (default: the profile's)
  --journal DIR           where the identifier journal is kept (default: the records DIR)
  --hub URL               take identifier blocks from the fleet hub (or FIELDBENCH_HUB), signed with
                          the station key and credential (which must permit 'sync'): a block is
                          journaled (DIR/hub-blocks.jsonl), used offline, and the next one is taken
                          before it runs out; a restart never takes or reissues one twice
  --block-units N         units per block (default 100)
  --station NAME          the station's name at the hub (default: the credential's technician id)
  --labels DIR            where labels go as SVG and ZPL (default DIR/labels)
  --once                  each port runs one unit, then the command ends
  --units N               end after N units (passed or failed)
  --json                  one JSON object per line (events, then a summary) instead of the dashboard

A unit left on its port after its run is not run again; unplug it and plug in the next.
exit status: 0 every unit passed, 1 a unit failed, 2 bad usage or unusable input`;

const KNOWN = ['port', 'ports', 'records', 'owner-key', 'bundle', 'image', ...signerOptionNames('manufacturer-key'), 'station-key', 'credential', 'journal', 'hub', 'block-units', 'station', 'labels', 'units', 'baud', 'timeout', 'framing', 'poll'];

/**
 * The manufacturer key as a Signer. THE one place the station chooses where that key lives:
 * a passphrase-wrapped key file or an HSM through PKCS#11 (src/cli/signer-options.ts: the
 * key never in clear on disk; a clear PEM file is accepted with a warning, held in memory
 * only and zeroed at the end).
 */
export async function manufacturerSigner(args: ParsedArgs, io: CliIo): Promise<Signer & { forget(): void; describe: string }> {
  const s = await signerFromArgs(args, io, { keyOption: 'manufacturer-key', what: 'manufacturer key' });
  if (!s) throw new UsageError('the manufacturer key is required: --manufacturer-key FILE (a wrapped key file) or --pkcs11 MODULE ... (an HSM): the key that issues the identity certificates');
  return Object.assign(s, { forget: () => s.close() });
}

function isPattern(p: string): boolean {
  return /[*?[]/.test(p) && !/^(tcp|udp):\/\//i.test(p);
}

function patternRegex(glob: string): RegExp {
  let re = '';
  for (const ch of glob) re += ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : /[\\^$.|+(){}[\]]/.test(ch) ? `\\${ch}` : ch;
  return new RegExp(`^${re}$`);
}

/** Paths matching a pattern whose wildcards are in the last component. */
async function expand(pattern: string): Promise<string[]> {
  const dir = dirname(pattern);
  if (isPattern(dir)) throw new UsageError(`port pattern ${pattern}: wildcards only in the last part of the path`);
  const re = patternRegex(basename(pattern));
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => re.test(n)).map((n) => join(dir, n)).sort();
}

function tcpPresent(addr: string): Promise<boolean> {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/i.exec(addr);
  if (!m) return Promise.resolve(false);
  const host = m[1].replace(/^\[|\]$/g, '');
  return new Promise((res) => {
    const s = new Socket();
    const done = (v: boolean) => {
      s.destroy();
      res(v);
    };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.connect(Number(m[2]), host, () => done(true));
  });
}

function nodePort(name: string, args: ParsedArgs, io: CliIo, notes: (port: string, text: string) => void): StationPort {
  const portArgs: ParsedArgs = {
    ...args,
    positional: [],
    get: (k) => (k === 'port' ? name : k === 'wait' ? (args.get('wait') ?? '3000') : args.get(k)),
    has: (k) => (k === 'port' || k === 'wait' ? true : args.has(k)),
    all: (k) => (k === 'port' ? [name] : args.all(k)),
    require: (k) => (k === 'port' ? name : args.require(k)),
  };
  const quiet: CliIo = { cwd: io.cwd, out: (t) => notes(name, t.trim()), err: (t) => notes(name, t.trim()) };
  return {
    name,
    present: async () => (/^tcp:\/\//i.test(name) ? tcpPresent(name) : /^udp:\/\//i.test(name) ? true : existsSync(name)),
    connect: (): Promise<SmpSession> => connect(portArgs, quiet),
  };
}

// ---------------------------------------------------------------- the dashboard

const C = { reset: '\x1b[0m', bold: '\x1b[1m', green: '\x1b[42;30;1m', red: '\x1b[41;97;1m', blue: '\x1b[44;97;1m', grey: '\x1b[90m' };

interface PortView {
  port: string;
  unit: number;
  serial?: string;
  step?: UnitStep;
  progress?: number;
  verdict: 'waiting' | 'running' | 'PASS' | 'FAIL' | 'remove';
  reason?: string;
  lastVerdict?: 'PASS' | 'FAIL';
}

function bar(p: number | undefined, width = 20): string {
  if (p === undefined) return ' '.repeat(width + 5);
  const n = Math.max(0, Math.min(width, Math.round(p * width)));
  return `[${'█'.repeat(n)}${'·'.repeat(width - n)}] ${String(Math.round(p * 100)).padStart(3)}%`.padEnd(width + 7).slice(0, width + 7);
}

/** The dashboard's text: one line per port, a footer (exported for tests). */
export function dashboard(views: PortView[], s: StationSummary, colour = true): string {
  const paint = (code: string, t: string) => (colour ? `${code}${t}${C.reset}` : t);
  const w = Math.max(8, ...views.map((v) => v.port.length));
  const lines = views.map((v) => {
    const stepNo = v.step ? `${UNIT_STEPS.indexOf(v.step) + 1}/${UNIT_STEPS.length}` : '';
    const verdict =
      v.verdict === 'PASS'
        ? paint(C.green, '  PASS  ')
        : v.verdict === 'FAIL'
          ? paint(C.red, '  FAIL  ')
          : v.verdict === 'running'
            ? paint(C.blue, ' RUNNING ')
            : v.verdict === 'remove'
              ? paint(C.bold, v.lastVerdict === 'FAIL' ? paint(C.red, ' FAIL: REMOVE ') : paint(C.green, ' PASS: REMOVE '))
              : paint(C.grey, ' waiting for a unit ');
    const step = v.step ? `${stepNo} ${v.step}`.padEnd(15) : ''.padEnd(15);
    const tail = v.reason && (v.verdict === 'FAIL' || v.lastVerdict === 'FAIL') ? `  ${v.reason.slice(0, 100)}` : '';
    return `${v.port.padEnd(w)}  #${String(v.unit).padEnd(3)} ${(v.serial ?? '').padEnd(14)} ${step} ${bar(v.verdict === 'running' ? (v.progress ?? 0) : v.verdict === 'waiting' ? undefined : 1)} ${verdict}${tail}`;
  });
  const mins = Math.floor(s.elapsedMs / 60000);
  const secs = Math.floor((s.elapsedMs % 60000) / 1000);
  lines.push('');
  lines.push(
    `${paint(C.bold, `DONE ${s.done}`)}   ${s.failed ? paint(C.red, ` FAILED ${s.failed} `) : 'FAILED 0'}   ${paint(C.bold, `${Math.round(s.passedPerHour)} units/hour`)}   ${mins}:${String(secs).padStart(2, '0')} elapsed   ${views.length} port${views.length === 1 ? '' : 's'}`,
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------- the verb

/**
 * Identifier blocks from the fleet hub (--hub): requests signed with the station's key and its
 * owner-signed credential (as every `fieldbench hub` verb), the ledger and each block's journal in
 * `dir` (core/factory/hub-blocks.ts: journaled before use, worked offline, the next block taken
 * before one runs out; a restart asks again with the same request id and gets the same block).
 */
async function hubBlockAllocator(
  args: ParsedArgs,
  o: { url: string; profile: VerifiedProfile; credential?: Uint8Array; stationSeed: Uint8Array; dir: string; controlLog?: string; onEvent: (e: Record<string, unknown>) => void },
): Promise<HubAllocator> {
  const credential = o.credential ?? o.profile.stationCredential;
  if (!credential) throw new InputError('--hub needs the station credential (--credential, or the profile\'s): the hub checks it');
  let technician: string;
  try {
    technician = decodeCredentialUnverified(credential).technicianId;
  } catch (e) {
    throw new InputError(`the station credential is unreadable: ${(e as Error).message}`);
  }
  const unitsArg = args.get('block-units') ?? '100';
  const units = Number(unitsArg);
  if (!Number.isSafeInteger(units) || units < 1 || units > 1_000_000) throw new UsageError('--block-units must be a count of 1..1000000');
  const station = args.get('station') ?? technician;
  const client = new HubClient({ url: o.url, credential, signer: await seedSigner(station, o.stationSeed) });
  return fileHubAllocator(o.profile.identity.policy, o.dir, {
    station,
    units,
    ...(o.controlLog ? { controlLog: o.controlLog } : {}),
    source: async (req) => {
      const g = (await client.block(req)) as { block?: IdentifierBlock };
      if (!g.block) throw new Error('the hub answered without a block of units');
      return g.block;
    },
    onEvent: (e) => o.onEvent({ event: `hub-block-${e.kind}`, request: e.request, ...('block' in e && e.block ? { block: e.block } : {}), ...('reason' in e ? { reason: e.reason } : {}) }),
  });
}

const run: CliCommand = {
  summary: 'run a factory line: flash, provision, configure, attest, label and record units on many ports at once',
  usage,
  async run(argv, io) {
    const args = parseArgs(argv, { booleans: ['json', 'once', 'verbose'], known: KNOWN });
    if (args.positional.length !== 1) throw new UsageError('give exactly one PROFILE');
    const recordsDir = resolve(io.cwd, args.require('records'));
    const json = args.has('json');
    const unitsArg = args.get('units');
    const maxUnits = unitsArg === undefined ? undefined : Number(unitsArg);
    if (maxUnits !== undefined && (!Number.isInteger(maxUnits) || maxUnits < 1)) throw new UsageError('--units must be a positive integer');
    const pollArg = Number(args.get('poll') ?? 500);
    if (!Number.isFinite(pollArg) || pollArg < 20) throw new UsageError('--poll must be at least 20 ms');

    // ports: --port (repeatable) and --ports FILE; patterns are watched
    const specs = [...args.all('port')];
    if (args.has('ports')) {
      const text = await readText(io, args.require('ports'), 'port list');
      for (const line of text.split(/\r?\n/)) {
        const l = line.replace(/#.*/, '').trim();
        if (l) specs.push(l);
      }
    }
    if (specs.length === 0) throw new UsageError('give at least one --port (or --ports FILE)');
    if (new Set(specs).size !== specs.length) throw new UsageError(`a port is given twice: ${specs.find((p, i) => specs.indexOf(p) !== i)}`);

    // what the station trusts and may do
    const ownerFiles = args.all('owner-key');
    if (ownerFiles.length === 0) throw new UsageError('--owner-key is required: the owner key the profile must be signed by');
    const ownerKeys = await Promise.all(ownerFiles.map((f) => readEd25519Public(io, f, { what: 'owner key' })));
    const profileBytes = await readInput(io, args.positional[0], 'station profile');
    const pv = await verifyProfile(profileBytes, { ownerKeys });
    if (!pv.ok) {
      io.err(`fieldbench bench run: station profile refused (${pv.code}): ${pv.reason}\n`);
      return EXIT_REJECTED;
    }
    const profile: VerifiedProfile = pv.value;
    const bv = await verifyBundle(await readInput(io, args.require('bundle'), 'trust bundle'), { ownerKeys });
    if (!bv.ok) {
      io.err(`fieldbench bench run: trust bundle refused (${bv.code}): ${bv.reason}\n`);
      return EXIT_REJECTED;
    }
    const image = await readInput(io, args.require('image'), 'firmware image');
    const stationSeed = await readEd25519Private(io, args.require('station-key'), 'station key');
    const stationPub = await ed25519PublicKey(stationSeed);
    const credential = args.has('credential') ? await readInput(io, args.require('credential'), 'station credential') : undefined;
    if (!credential && !profile.stationCredential && (profile.configuration || Object.keys(profile.tests.interfaces).length)) {
      throw new InputError('the profile has no station credential and none was given (--credential): the station cannot log in to apply the configuration');
    }
    const manufacturer = await manufacturerSigner(args, io);
    if (toHex(keyId(manufacturer.publicKey)) !== toHex(profile.manufacturerKid)) {
      manufacturer.forget();
      io.err(`fieldbench bench run: the manufacturer key ${toHex(keyId(manufacturer.publicKey))} is not the one the profile names (${toHex(profile.manufacturerKid)})\n`);
      return EXIT_REJECTED;
    }
    const template = labelTemplate(profile.label && Object.keys(profile.label).length ? profile.label : undefined);
    const labelsDir = resolve(io.cwd, args.get('labels') ?? join(recordsDir, 'labels'));
    await mkdir(recordsDir, { recursive: true, mode: 0o700 });
    const journalDir = resolve(io.cwd, args.get('journal') ?? recordsDir);
    const hubUrl = args.get('hub') ?? (args.has('block-units') || args.has('station') ? process.env.FIELDBENCH_HUB : undefined);
    if ((args.has('block-units') || args.has('station')) && !hubUrl) throw new UsageError('--block-units and --station go with --hub URL');
    let hubEvents: ((e: Record<string, unknown>) => void) | undefined;
    const allocator = hubUrl
      ? await hubBlockAllocator(args, { url: hubUrl, profile, credential, stationSeed, dir: journalDir, controlLog: recordsDir, onEvent: (e) => hubEvents?.(e) })
      : fileAllocator(profile.identity.policy, journalDir, undefined, { controlLog: recordsDir });
    try {
      // the journal, and the chip UIDs of the control log this station signs (the clone check);
      // opens the journal now: a locked or damaged journal stops here, before any unit; with a hub, the first block is taken now
      if ((await allocator.remaining()) === 0 && hubUrl) await (allocator as HubAllocator).takeBlock();
    } catch (e) {
      await allocator.close().catch(() => undefined);
      if (e instanceof AllocatorError) {
        io.err(`fieldbench bench run: no identifiers (${e.code}): ${e.message}\n`);
        return EXIT_REJECTED;
      }
      throw e;
    }

    // the control log: one writer at a time (appendRecords locks the file too)
    let chain: Promise<unknown> = Promise.resolve();
    const stationId = `station:${toHex(keyId(stationPub))}`;
    const record = (entry: AuditInput) => {
      const p = chain.then(() => appendRecords(recordsDir, [entry], { seed: stationSeed, technician: stationId }));
      chain = p.catch(() => undefined);
      return p.then(() => undefined);
    };
    const label = async (d: LabelData) => {
      await mkdir(labelsDir, { recursive: true });
      const name = d.serial.replace(/[^A-Za-z0-9._-]/g, '_');
      await writeFile(join(labelsDir, `${name}.svg`), labelSvg(d, template));
      await writeFile(join(labelsDir, `${name}.zpl`), labelZpl(d, template));
    };

    // output
    const views = new Map<string, PortView>();
    const log = (o: Record<string, unknown>) => io.out(JSON.stringify({ time: new Date().toISOString(), ...o }, jsonReplacer) + '\n');
    const tty = !json && (process.stdout as { isTTY?: boolean }).isTTY === true;
    hubEvents = (e) => {
      const b = e.block as IdentifierBlock | undefined;
      if (json) log(e);
      else if (!tty || e.event === 'hub-block-request-failed') {
        io.err(`hub: ${String(e.event).replace('hub-block-', 'block ')} (request ${e.request})${b ? `: ${b.id}, units [${b.start}, ${b.start + b.count})` : ''}${e.reason ? `: ${e.reason}` : ''}\n`);
      }
    };
    let render: (() => void) | undefined;
    let closeRender: (() => void) | undefined;
    if (tty) {
      const { createLogUpdate } = await import('log-update');
      const lu = createLogUpdate(process.stdout, { showCursor: false });
      let pending = false;
      render = () => {
        if (pending) return;
        pending = true;
        setTimeout(() => {
          pending = false;
          lu(dashboard([...views.values()], station.summary()));
        }, 100);
      };
      const tick = setInterval(() => render?.(), 1000);
      closeRender = () => {
        clearInterval(tick);
        lu(dashboard([...views.values()], station.summary()));
        lu.done();
      };
    }
    const lastProgress = new Map<string, number>();
    const onEvent = (e: StationEvent) => {
      const v = views.get(e.port) ?? { port: e.port, unit: 0, verdict: 'waiting' as const };
      views.set(e.port, v);
      switch (e.kind) {
        case 'waiting':
          if (e.for === 'unit') Object.assign(v, { verdict: 'waiting', step: undefined, progress: undefined, serial: undefined });
          else v.verdict = 'remove';
          if (json) log({ event: 'waiting', port: e.port, for: e.for });
          break;
        case 'unit-start':
          Object.assign(v, { unit: e.unit, verdict: 'running', step: undefined, progress: 0, serial: undefined, reason: undefined });
          if (json) log({ event: 'unit-start', port: e.port, unit: e.unit });
          else if (!tty) io.out(`${e.port}: unit ${e.unit} started\n`);
          break;
        case 'unit-state': {
          const s = e.state;
          if (s.kind === 'step') {
            v.step = s.step;
            v.progress = s.progress !== undefined ? s.progress : (UNIT_STEPS.indexOf(s.step) + 0.5) / UNIT_STEPS.length;
            if (json) {
              const key = `${e.port}|${s.step}`;
              const p = s.progress === undefined ? -1 : Math.floor(s.progress * 10);
              if (lastProgress.get(key) !== p) {
                lastProgress.set(key, p);
                log({ event: 'step', port: e.port, unit: e.unit, step: s.step, ...(s.progress !== undefined ? { progress: Math.round(s.progress * 1000) / 1000 } : {}), ...(s.note ? { note: s.note } : {}) });
              }
            }
          } else if (s.kind === 'step-done') {
            if (json) log({ event: 'step-done', port: e.port, unit: e.unit, step: s.step, outcome: s.outcome, ms: s.ms, ...(s.note ? { note: s.note } : {}) });
          } else if (s.kind === 'identified') {
            v.serial = s.serial;
            if (json) log({ event: 'identified', port: e.port, unit: e.unit, serial: s.serial, devEui: s.devEui, mac: s.mac, kept: s.kept });
          }
          break;
        }
        case 'unit-end': {
          const o = e.outcome;
          v.verdict = o.kind === 'done' ? 'PASS' : 'FAIL';
          v.lastVerdict = v.verdict;
          v.progress = 1;
          if (o.kind === 'done') v.serial = o.result.serial;
          else v.reason = o.reason;
          if (json) {
            log(
              o.kind === 'done'
                ? { event: 'unit-end', port: e.port, unit: e.unit, verdict: 'provisioned', serial: o.result.serial, devEui: o.result.devEui, mac: o.result.mac, certificateDigest: o.result.certificateDigest, ms: e.ms, steps: o.result.steps }
                : { event: 'unit-end', port: e.port, unit: e.unit, verdict: o.kind === 'cancelled' ? 'cancelled' : 'failed', ...(o.kind === 'failed' ? { code: o.code, step: o.details?.step, serial: o.details?.serial, retryable: o.retryable } : {}), reason: o.reason, ms: e.ms },
            );
          } else if (!tty) io.out(o.kind === 'done' ? `${e.port}: PASS ${o.result.serial} (${(e.ms / 1000).toFixed(1)} s)\n` : `${e.port}: FAIL ${o.reason}\n`);
          break;
        }
        case 'port-added':
          if (json) log({ event: 'port-added', port: e.port });
          break;
        case 'port-done':
          break;
      }
      render?.();
    };
    const notes = (port: string, text: string) => {
      if (text && args.has('verbose')) io.err(`${port}: ${text}\n`);
    };
    const station = new Station({
      profile,
      image,
      bundle: bv.value,
      manufacturer,
      station: { signer: memorySigner(stationSeed), ...(credential ? { credential } : {}) },
      allocator,
      record,
      label,
      pollMs: pollArg,
      once: args.has('once'),
      maxUnits,
      onEvent,
    });
    const stop = () => station.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);

    // add the ports; patterns are rescanned while the line runs
    const patterns = specs.filter(isPattern);
    const addMatching = async () => {
      for (const s of specs) {
        const names = isPattern(s) ? await expand(s) : [s];
        for (const n of names) if (!station.has(n) && !(args.has('once') && views.has(n))) station.add(nodePort(n, args, io, notes));
      }
    };
    await addMatching();
    let scan: ReturnType<typeof setInterval> | undefined;
    if (patterns.length && !args.has('once')) scan = setInterval(() => void addMatching().catch(() => {}), Math.max(1000, pollArg));
    if (views.size === 0 && patterns.length && args.has('once')) throw new InputError(`no port matches ${patterns.join(', ')}`);
    const summary = await station.finish();
    if (scan) clearInterval(scan);
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    closeRender?.();
    manufacturer.forget();
    stationSeed.fill(0);
    await chain;
    await allocator.close();
    const totals = { done: summary.done, failed: summary.failed, elapsedMs: summary.elapsedMs, unitsPerHour: Math.round(summary.passedPerHour) };
    if (json) log({ event: 'summary', ...totals, records: join(recordsDir, 'records.jsonl') });
    else io.out(`${summary.done} provisioned, ${summary.failed} failed, ${totals.unitsPerHour} units/hour; control log ${join(recordsDir, 'records.jsonl')}\n`);
    return summary.failed === 0 && summary.done > 0 ? EXIT_OK : EXIT_REJECTED;
  },
};

export const commands: Record<string, CliCommand> = { 'bench run': run };

/**
 * fieldbench identify / attest / events — device identity, attestation and
 * the security event log, live over SMP.
 *
 * The trust bundle (owner-signed) supplies the manufacturer roots, the
 * firmware reference measurements and the revocations. It is only trusted
 * when it verifies under an owner public key given with --owner-key: the CLI
 * keeps no key store of its own, so the owner key (distributed out of band at
 * enrolment) is passed on each call.
 */
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, EXIT_USAGE, type ParsedArgs, UsageError, parseArgs } from '../command.ts';
import { CONNECT_OPTIONS, CONNECT_USAGE, connect } from '../connect.ts';
import { InputError, readEd25519Public, readInput } from '../files.ts';
import { type DeviceLabel, type IdentifyResult, identifyDevice, parseLabelCode } from '../../core/ops/identification/identify.ts';
import { attestDevice, readSecurityEvents } from '../../core/ops/state-awareness/attest.ts';
import { type Failed, type Cancelled, runOp } from '../../core/ops/outcome.ts';
import type { SecurityEvent } from '../../core/groups/security.ts';
import type { SmpSession } from '../../core/groups/session.ts';
import { type TrustBundle, verifyBundle } from '../../core/trust/bundle.ts';
import { claimsToJson, type Appraisal } from '../../core/trust/eat.ts';
import { keyId } from '../../core/trust/keys.ts';
import { toHex } from '../../core/base/bytes.ts';
import { attestRecord, eventsRecord, identifiers, identifyRecord } from '../../core/ops/record.ts';
import { RECORDS_OPTIONS, RECORDS_USAGE, writeRecords } from '../records.ts';
import { LOGIN_OPTIONS, READ_LOGIN_USAGE, loadOptionalLogin } from '../login.ts';

const BUNDLE_USAGE = `  --bundle FILE     the owner-signed trust bundle (manufacturer roots, firmware
                    reference measurements, revocations)
  --owner-key FILE  owner public key (Ed25519 PEM) the bundle must be signed by;
                    repeatable (key rollover). Required: an unverified bundle is
                    never used. --allow-stale accepts an expired bundle (warned).`;

/** Verified bundle, or a rejection message. */
async function loadBundle(args: ParsedArgs, io: CliIo, verb: string): Promise<TrustBundle | string> {
  if (!args.has('owner-key')) throw new UsageError('--owner-key OWNER.pem is required: the trust bundle is used only if it verifies under the owner key');
  const bytes = await readInput(io, args.require('bundle'));
  const keys = [];
  for (const p of args.all('owner-key')) keys.push(await readEd25519Public(io, p, { what: 'owner key' }));
  const b = await verifyBundle(bytes, { ownerKeys: keys, allowStale: args.has('allow-stale') });
  if (!b.ok) return `trust bundle rejected (${b.code}): ${b.reason}`;
  if (b.value.stale) io.err(`fieldbench ${verb}: warning: the trust bundle has expired; roots, revocations and reference values may be out of date\n`);
  return b.value;
}

function labelFrom(args: ParsedArgs): DeviceLabel | undefined {
  const code = args.get('label-code');
  const label: DeviceLabel = code !== undefined ? parseLabelCode(code) : {};
  if (args.has('label-serial')) label.serial = args.get('label-serial');
  if (args.has('label-mac')) label.mac = args.get('label-mac');
  if (args.has('label-deveui')) label.devEui = args.get('label-deveui');
  return Object.values(label).some((v) => v !== undefined && v !== '') ? label : undefined;
}

const iso = (s: number) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

export function identityJson(r: IdentifyResult): Record<string, unknown> {
  const p = r.presented;
  const c = r.certificate;
  return {
    verified: r.verified,
    badges: r.badges,
    checks: r.checks,
    device: {
      serial: p.serial,
      model: p.model,
      hwRev: p.hwRev,
      devicePublicKey: toHex(p.devicePublicKey),
      keyId: toHex(keyId(p.devicePublicKey)),
      ueid: p.ueid && toHex(p.ueid),
      mac: p.mac && toHex(p.mac),
      devEui: p.devEui && toHex(p.devEui),
    },
    certificate: c ? { certSerial: toHex(c.certSerial), issuer: toHex(c.issuer), notBefore: iso(c.notBefore), notAfter: iso(c.notAfter) } : null,
    label: r.label ?? null,
  };
}

function formatIdentity(r: IdentifyResult): string {
  const p = r.presented;
  const lines = [`device ${p.serial} (${p.model} ${p.hwRev})`, `badges: ${r.badges.join(', ')}`];
  for (const c of r.checks) lines.push(`  [${c.result}] ${c.check}: ${c.detail}`);
  lines.push(`  device key ${toHex(p.devicePublicKey)} (kid ${toHex(keyId(p.devicePublicKey))})`);
  if (p.ueid) lines.push(`  UEID ${toHex(p.ueid)}`);
  if (p.mac) lines.push(`  MAC ${toHex(p.mac)}`);
  if (p.devEui) lines.push(`  DevEUI ${toHex(p.devEui)}`);
  if (r.certificate) lines.push(`  certificate ${toHex(r.certificate.certSerial)} by ${toHex(r.certificate.issuer)}, valid ${iso(r.certificate.notBefore)} to ${iso(r.certificate.notAfter)}`);
  return lines.join('\n') + '\n';
}

function problems(r: IdentifyResult): string {
  return r.checks.filter((c) => c.result === 'fail').map((c) => `${c.check}: ${c.detail}`).join('; ');
}

async function withSession<T>(args: ParsedArgs, io: CliIo, fn: (s: SmpSession) => Promise<T>): Promise<T> {
  const session = await connect(args, io);
  try {
    return await fn(session);
  } finally {
    await session.close().catch(() => undefined);
  }
}

function guarded(verb: string, run: (args: ParsedArgs, io: CliIo) => Promise<number>, spec: { booleans: string[]; known: string[] }) {
  return async (argv: string[], io: CliIo): Promise<number> => {
    try {
      const args = parseArgs(argv, { booleans: ['verbose', ...spec.booleans], known: [...CONNECT_OPTIONS, ...RECORDS_OPTIONS, ...spec.known] });
      if (args.positional.length) throw new UsageError(`unexpected argument ${args.positional[0]}`);
      return await run(args, io);
    } catch (e) {
      if (e instanceof InputError) {
        io.err(`fieldbench ${verb}: ${e.message}\n`);
        return EXIT_USAGE;
      }
      throw e;
    }
  };
}

const identify: CliCommand = {
  summary: 'verify who a device is: manufacturer certificate, proof of possession, label',
  usage: `usage: fieldbench identify --port PORT --bundle FILE --owner-key OWNER.pem
         [--label-serial S] [--label-mac MAC] [--label-deveui EUI] [--label-code TEXT] [--json] [options]

Reads the device's identity, verifies its identity certificate against the
manufacturer roots and revocations in the trust bundle, checks that the
certificate names exactly the key and identifiers the device presents, has
the device sign a fresh random nonce (proof of possession), and compares the
physical label with what the device reports.

${BUNDLE_USAGE}
  --label-serial S  serial printed on the device label (also --label-mac,
                    --label-deveui); --label-code takes a scanned label code
                    (plain serial, "SN: ..; MAC: ..", or LoRaWAN "LW:D0:...")
  --json            print {verified, badges, checks, device, certificate, label}
${RECORDS_USAGE}
${CONNECT_USAGE}

The CLI has no inventory, so duplicates are not checked here (the app does).

exit status: 0 verified (and label matches, if given), 1 unverified / label
mismatch / not supported / bundle rejected (reasons on stderr), 2 bad usage or unreadable input`,
  run: guarded(
    'identify',
    async (args, io) => {
      const label = labelFrom(args);
      const bundle = await loadBundle(args, io, 'identify');
      if (typeof bundle === 'string') {
        io.err(`fieldbench identify: ${bundle}\n`);
        return EXIT_REJECTED;
      }
      const r = await withSession(args, io, (s) => runOp(identifyDevice(s, { bundle, label })));
      // every run leaves its record (core's rule: ops/record.ts), whatever its outcome
      await writeRecords(args, io, [identifyRecord(r).audit]);
      if (r.kind === 'unsupported') {
        io.err(`fieldbench identify: ${r.reason}\n`);
        return EXIT_REJECTED;
      }
      if (r.kind !== 'done') return failure(io, 'identify', r);
      const id = r.result;
      io.out(args.has('json') ? JSON.stringify(identityJson(id), null, 2) + '\n' : formatIdentity(id));
      const fails = problems(id);
      if (id.verified && !fails) return EXIT_OK;
      io.err(`fieldbench identify: ${id.badges.join(', ')}: ${fails}\n`);
      return EXIT_REJECTED;
    },
    { booleans: ['json', 'allow-stale'], known: ['bundle', 'owner-key', 'label-serial', 'label-mac', 'label-deveui', 'label-code'] },
  ),
};

/** A run that ended failed or cancelled, on stderr: the reason and its code. */
function failure(io: CliIo, verb: string, o: Failed | Cancelled): number {
  io.err(`fieldbench ${verb}: ${o.reason} (${o.kind === 'failed' ? o.code : 'cancelled'})\n`);
  return EXIT_REJECTED;
}

function appraisalJson(a: Appraisal, nonce: Uint8Array): Record<string, unknown> {
  return { verdict: a.verdict, reasons: a.reasons, claims: a.claims ? claimsToJson(a.claims) : null, nonce: toHex(nonce) };
}

const attest: CliCommand = {
  summary: "appraise a device's live attestation (fresh nonce) against the trust bundle",
  usage: `usage: fieldbench attest --port PORT --bundle FILE --owner-key OWNER.pem [--strict] [--json] [options]

Identifies the device first (its key must come from a verified identity
certificate and a proof of possession), then sends a fresh random nonce,
fetches the signed attestation token and appraises it: signature, nonce,
lifecycle, debug state, firmware measurements against the bundle's reference
values, revocations, published configurations, interfaces, failed logins.

${BUNDLE_USAGE}
  --strict          a 'warning' verdict exits 1 (default: exit 0, warnings on stderr)
  --json            print {verdict, reasons, claims, nonce}
${RECORDS_USAGE}
${CONNECT_USAGE}

exit status: 0 trusted (or warning, warnings on stderr), 1 untrusted / warning
with --strict / identity not verified / not supported / bundle rejected, 2 bad usage or unreadable input`,
  run: guarded(
    'attest',
    async (args, io) => {
      const bundle = await loadBundle(args, io, 'attest');
      if (typeof bundle === 'string') {
        io.err(`fieldbench attest: ${bundle}\n`);
        return EXIT_REJECTED;
      }
      return withSession(args, io, async (s) => {
        const ido = await runOp(identifyDevice(s, { bundle }));
        if (ido.kind !== 'done' || !ido.result.verified) await writeRecords(args, io, [identifyRecord(ido).audit]);
        if (ido.kind === 'unsupported') {
          io.err(`fieldbench attest: ${ido.reason}\n`);
          return EXIT_REJECTED;
        }
        if (ido.kind !== 'done') return failure(io, 'attest', ido);
        const id = ido.result;
        if (!id.verified || !id.devicePublicKey) {
          io.err(`fieldbench attest: the device's identity is not verified, so its token cannot be appraised: ${problems(id)}\n`);
          return EXIT_REJECTED;
        }
        const r = await runOp(attestDevice(s, { bundle, devicePublicKey: id.devicePublicKey, groupId: id.groupId }));
        await writeRecords(args, io, [attestRecord(r, { device: identifiers(id) }).audit]);
        if (r.kind === 'unsupported') {
          io.err(`fieldbench attest: ${r.reason}\n`);
          return EXIT_REJECTED;
        }
        if (r.kind !== 'done') return failure(io, 'attest', r);
        const a = r.result.appraisal;
        if (args.has('json')) io.out(JSON.stringify(appraisalJson(a, r.result.nonce), null, 2) + '\n');
        else {
          io.out(`device ${id.presented.serial}: ${a.verdict}\n`);
          for (const x of a.reasons) io.out(`  [${x.result}] ${x.check}: ${x.detail}\n`);
          if (a.claims) for (const c of a.claims.softwareComponents) io.out(`  component ${c.measurementType ?? '?'} ${c.version ?? ''} ${toHex(c.measurementValue)}\n`);
        }
        if (a.verdict === 'trusted') return EXIT_OK;
        const bad = a.reasons.filter((x) => x.result === (a.verdict === 'untrusted' ? 'fail' : 'warn'));
        io.err(`fieldbench attest: ${a.verdict}: ${bad.map((x) => `${x.check}: ${x.detail}`).join('; ')}\n`);
        return a.verdict === 'warning' && !args.has('strict') ? EXIT_OK : EXIT_REJECTED;
      });
    },
    { booleans: ['json', 'allow-stale', 'strict'], known: ['bundle', 'owner-key'] },
  ),
};

function formatEvent(e: SecurityEvent): string {
  return `#${String(e.n).padEnd(6)} boot ${String(e.boot).padEnd(3)} +${(e.uptimeMs / 1000).toFixed(3).padStart(10)} s  ${e.type.padEnd(16)} ${e.detail}`;
}

const events: CliCommand = {
  summary: "read a device's security event log (monotonic counter, paged)",
  usage: `usage: fieldbench events --port PORT [--from N] [--max N] [--json] [options]

Reads the security event log (logins and failures, lockouts, configuration
applied or rejected, interface changes, wipes, attestations) page by page.
The event log is the device's own account, not signed evidence.

  --from N          first event counter to read (default: the oldest kept)
  --max N           stop after N events (default 5000)
  --json            print {events, next, last, truncated}
${READ_LOGIN_USAGE}
${RECORDS_USAGE}
${CONNECT_USAGE}

exit status: 0 read, 1 not supported or refused (reason on stderr), 2 bad usage`,
  run: guarded(
    'events',
    async (args, io) => {
      const int = (name: string) => {
        const v = args.get(name);
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer`);
        return n;
      };
      const from = int('from');
      const max = int('max');
      const login = await loadOptionalLogin(args, io);
      if (typeof login === 'string') {
        io.err(`fieldbench events: ${login}\n`);
        return EXIT_REJECTED;
      }
      try {
        return await withSession(args, io, async (s) => {
          const o = await runOp(readSecurityEvents(s, { from, max, authenticate: login ? (g) => login.authenticate(g, 'attest') : undefined }));
          await writeRecords(args, io, [eventsRecord(o).audit], login ? { seed: login.seed, technician: login.technician } : undefined);
          if (o.kind === 'unsupported') {
            io.err(`fieldbench events: ${o.reason}\n`);
            return EXIT_REJECTED;
          }
          if (o.kind !== 'done') return failure(io, 'events', o);
          const r = o.result;
          if (args.has('json')) io.out(JSON.stringify({ events: r.events, next: r.next, last: r.last, truncated: r.truncated }, null, 2) + '\n');
          else {
            for (const e of r.events) io.out(formatEvent(e) + '\n');
            io.out(`${r.events.length} event(s); last counter ${r.last}${r.truncated ? `; more from --from ${r.next}` : ''}\n`);
          }
          return EXIT_OK;
        });
      } finally {
        login?.seed.fill(0);
      }
    },
    { booleans: ['json'], known: ['from', 'max', ...LOGIN_OPTIONS] },
  ),
};

export const commands: Record<string, CliCommand> = { identify, attest, events };

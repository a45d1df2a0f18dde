/**
 * fieldbench hub: run the fleet hub, and talk to one (push, pull, status,
 * duplicates, lookup, drift, block, bundle). docs/HUB.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, parseArgs, UsageError } from '../command.ts';
import { InputError, readEd25519Private, readEd25519Public, readInput, readText } from '../files.ts';
import { HubClient, HubRequestError } from '../../core/sync/client.ts';
import { seedSigner } from '../../core/store/sig.ts';
import type { AuditExport } from '../../core/store/audit.ts';

const CONNECT = `  --hub URL             the hub (https://..., or http://127.0.0.1:PORT)
  --credential FILE     your owner-signed technician credential (.cbor)
  --key FILE            your technician private key (Ed25519 PEM)`;

const serveUsage = `usage: fieldbench hub --listen HOST:PORT (--data DIR | --database postgres://...) --owner-key OWNER.pem [--bundle BUNDLE.cbor]
                      [--identifiers POLICY.json] [--cors ORIGIN]... [--verify chain|every]
Runs the fleet hub (plain HTTP: put TLS in front of it; docs/HUB.md).
  --listen HOST:PORT    address to listen on (port 0: any free port; the URL is printed)
  --data DIR            embedded PostgreSQL (PGlite) in DIR (created when missing)
  --database URL        a PostgreSQL server instead
  --owner-key FILE      the owner's public key (pinned; signs bundles and credentials)
  --bundle FILE         the owner-signed trust bundle (needed on first start; newer ones via 'hub bundle')
  --identifiers FILE    identifier pools to hand out in blocks: {"serial":{"pattern","first","last"},
                        "devEui":{"first","count"},"mac":{"first","count"}}
  --cors ORIGIN         allow the app served from ORIGIN to call the hub from the browser (repeatable)
  --verify MODE         chain (default): links + each signer's newest signature per push; every: all signatures`;

async function client(io: CliIo, a: ReturnType<typeof parseArgs>): Promise<HubClient> {
  const url = a.get('hub') ?? process.env.FIELDBENCH_HUB;
  if (!url) throw new UsageError('give --hub URL (or set FIELDBENCH_HUB)');
  const credential = await readInput(io, a.require('credential'), 'credential');
  const seed = await readEd25519Private(io, a.require('key'), 'technician key');
  const signer = await seedSigner('cli', seed);
  return new HubClient({ url, credential, signer });
}

function report(io: CliIo, e: unknown): number {
  if (e instanceof HubRequestError) {
    io.err(`fieldbench hub: refused (${e.code}): ${e.message}\n`);
    return EXIT_REJECTED;
  }
  throw e;
}

const json = (io: CliIo, v: unknown) => io.out(JSON.stringify(v, null, 2) + '\n');

function verb(summary: string, usage: string, known: string[], fn: (io: CliIo, a: ReturnType<typeof parseArgs>) => Promise<number>, booleans: string[] = []): CliCommand {
  return {
    summary,
    usage,
    async run(argv, io) {
      const a = parseArgs(argv, { known: ['hub', 'credential', 'key', ...known], booleans });
      try {
        return await fn(io, a);
      } catch (e) {
        return report(io, e);
      }
    },
  };
}

export const commands: Record<string, CliCommand> = {
  hub: {
    summary: 'run the fleet hub (records, fleet registry, identifier blocks)',
    usage: serveUsage,
    async run(argv, io) {
      const a = parseArgs(argv, { known: ['listen', 'data', 'database', 'owner-key', 'bundle', 'identifiers', 'cors', 'verify'] });
      if (a.positional.length) throw new UsageError(`unexpected ${JSON.stringify(a.positional[0])}: did you mean 'fieldbench hub ${a.positional[0]} ...'?`);
      const listen = /^(.+):(\d{1,5})$/.exec(a.require('listen'));
      if (!listen) throw new UsageError('--listen must be HOST:PORT, e.g. 127.0.0.1:8640');
      if (!a.get('data') && !a.get('database')) throw new UsageError('give --data DIR (embedded) or --database postgres://...');
      if (a.get('data') && a.get('database')) throw new UsageError('give --data or --database, not both');
      const verify = a.get('verify') ?? 'chain';
      if (verify !== 'chain' && verify !== 'every') throw new UsageError('--verify is chain or every');
      const owner = await readEd25519Public(io, a.require('owner-key'), { what: 'owner key' });
      const bundle = a.get('bundle') ? await readInput(io, a.get('bundle')!, 'trust bundle') : undefined;
      const policy = a.get('identifiers') ? parsePolicy(await readText(io, a.get('identifiers')!, 'identifier policy'), a.get('identifiers')!) : undefined;
      const { openHubDb } = await import('../../hub/db.ts');
      const { HubTrust } = await import('../../hub/trust.ts');
      const { startHub } = await import('../../hub/server.ts');
      const { configurePools } = await import('../../hub/blocks.ts');
      const data = a.get('data') ? resolve(io.cwd, a.get('data')!) : undefined;
      if (data) await mkdir(data, { recursive: true });
      const db = await openHubDb({ database: a.get('database'), data });
      const trust = await HubTrust.open(db, [owner], bundle);
      if (policy) await configurePools(db, policy);
      const hub = await startHub({ db, trust, cors: a.all('cors'), verify }, { host: listen[1].replace(/^\[|\]$/g, ''), port: Number(listen[2]) });
      io.out(`fieldbench hub listening on ${hub.url} (${db.kind}${data ? ` in ${data}` : ''}, bundle version ${trust.bundle.version})\n`);
      await new Promise<void>((done) => {
        const stop = () => void hub.close().then(() => db.close()).then(done, done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return EXIT_OK;
    },
  },
  'hub push': verb(
    'push an audit trail or station control log to the hub (resumes; never duplicates)',
    `usage: fieldbench hub push FILE --hub URL --credential FILE --key FILE [--with CREDENTIAL]...
Pushes the records in FILE (an audit export or control log); only what the hub lacks is sent.
${CONNECT}
  --with FILE           the credential of another technician who signed entries in FILE (repeatable)`,
    ['with'],
    async (io, a) => {
      const file = a.positional[0];
      if (!file) throw new UsageError('give the FILE to push');
      let trail: AuditExport;
      try {
        trail = JSON.parse(new TextDecoder().decode(await readInput(io, file, 'records')));
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw new InputError(`${file}: not JSON (${(e as Error).message})`);
      }
      if (!trail || !Array.isArray(trail.entries)) throw new InputError(`${file}: not an audit export or control log (no entries)`);
      const others = await Promise.all(a.all('with').map((p) => readInput(io, p, 'credential')));
      const c = await client(io, a);
      const r = await c.push(trail, others);
      io.out(`pushed ${file}: ${r.accepted} new, ${r.duplicates} already held; hub head seq ${r.head?.seq ?? 0}; source ${r.source}\n`);
      return EXIT_OK;
    },
  ),
  'hub pull': verb(
    "pull the hub's held trust bundle into a folder (the app's library imports it)",
    `usage: fieldbench hub pull --out DIR --hub URL --credential FILE --key FILE\n${CONNECT}\n  --out DIR             where to write bundle.cbor`,
    ['out'],
    async (io, a) => {
      const c = await client(io, a);
      const out = resolve(io.cwd, a.require('out'));
      const b = await c.request<{ version: number; bundle: string }>('GET', '/v1/bundle');
      await mkdir(out, { recursive: true });
      await writeFile(resolve(out, 'bundle.cbor'), Buffer.from(b.bundle, 'base64'));
      io.out(`wrote ${resolve(out, 'bundle.cbor')} (bundle version ${b.version})\n`);
      return EXIT_OK;
    },
  ),
  'hub status': verb('what the hub holds: sources, entries, devices, collisions, drift; your permissions', `usage: fieldbench hub status --hub URL --credential FILE --key FILE [--json]\n${CONNECT}`, [], async (io, a) => {
    const c = await client(io, a);
    const s = await c.status();
    if (a.has('json')) json(io, s);
    else {
      io.out(`hub ${s.storage}, bundle version ${s.bundleVersion}: ${s.sources} sources, ${s.entries} entries, ${s.devices} devices, ${s.collisions} collisions, ${s.drift} drift flags, ${s.problems} sources with a gap or fork\n`);
      if (Number(s.problems) > 0 && (s.caller as { permissions: string[] }).permissions.includes('fleet')) {
        const src = (await c.sources()).sources as { label: string; source: string; problem: Record<string, unknown> | null }[];
        for (const x of src.filter((y) => y.problem)) io.out(`  ${x.label} ${x.source.slice(0, 16)}: ${JSON.stringify(x.problem)}\n`);
      }
    }
    return EXIT_OK;
  }, ['json']),
  'hub duplicates': verb(
    'fleet-wide duplicate identifiers and cloned keys, with the sources that saw each side',
    `usage: fieldbench hub duplicates --hub URL --credential FILE --key FILE [--json]\n${CONNECT}\nExit status 1 when there is any collision.`,
    [],
    async (io, a) => {
      const c = await client(io, a);
      const r = (await c.duplicates()).collisions as { kind: string; value: string; sides: { anchor: string; device: Record<string, string | null>; sources: { label: string; source: string }[] }[] }[];
      if (a.has('json')) json(io, r);
      else if (!r.length) io.out('no duplicates in the fleet\n');
      else
        for (const x of r) {
          io.out(`${x.kind} ${x.value} is claimed by ${x.sides.length} devices:\n`);
          for (const s of x.sides) io.out(`  ${s.anchor.slice(0, 24)} serial ${s.device.serial ?? '?'}: seen by ${s.sources.map((y) => `${y.label} (${y.source.slice(0, 12)})`).join(', ')}\n`);
        }
      return r.length ? EXIT_REJECTED : EXIT_OK;
    },
    ['json'],
  ),
  'hub lookup': verb('everything the hub knows about one identifier', `usage: fieldbench hub lookup KIND VALUE --hub URL --credential FILE --key FILE\n  KIND: serial, devicePublicKey, ueid, mac, devEui\n${CONNECT}`, [], async (io, a) => {
    if (a.positional.length !== 2) throw new UsageError('give KIND and VALUE');
    json(io, await (await client(io, a)).lookup(a.positional[0], a.positional[1]));
    return EXIT_OK;
  }),
  'hub drift': verb('devices whose attestation changed in a way no recorded update or configuration explains', `usage: fieldbench hub drift --hub URL --credential FILE --key FILE\n${CONNECT}\nExit status 1 when any device drifted.`, [], async (io, a) => {
    const r = (await (await client(io, a)).drift()).drift as { anchor: string; kind: string; reason: string }[];
    if (!r.length) io.out('no drift\n');
    for (const d of r) io.out(`${d.anchor.slice(0, 24)} ${d.kind}: ${d.reason}\n`);
    return r.length ? EXIT_REJECTED : EXIT_OK;
  }),
  'hub block': verb(
    'take a block of serials / DevEUIs / MACs for a station (works offline inside it)',
    `usage: fieldbench hub block --station NAME [--serial N] [--dev-eui N] [--mac N] [--request HEX] --hub URL --credential FILE --key FILE\n${CONNECT}\n  --request HEX         32 hex digits; repeat it to get the same block again after a lost reply`,
    ['station', 'serial', 'dev-eui', 'mac', 'request'],
    async (io, a) => {
      const n = (k: string) => (a.get(k) === undefined ? undefined : Number(a.get(k)));
      const request = a.get('request') ?? [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
      json(io, await (await client(io, a)).block({ station: a.require('station'), request, serial: n('serial'), devEui: n('dev-eui'), mac: n('mac') }));
      return EXIT_OK;
    },
  ),
  'hub bundle': verb("give the hub a newer owner-signed trust bundle (its revocations apply at once)", `usage: fieldbench hub bundle BUNDLE.cbor --hub URL --credential FILE --key FILE\n${CONNECT}`, [], async (io, a) => {
    if (!a.positional[0]) throw new UsageError('give the BUNDLE file');
    const r = await (await client(io, a)).putBundle(await readInput(io, a.positional[0], 'trust bundle'));
    io.out(`the hub holds bundle version ${r.version}\n`);
    return EXIT_OK;
  }),
};

function parsePolicy(text: string, path: string) {
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: not JSON (${(e as Error).message})`);
  }
  if (!p || typeof p !== 'object') throw new InputError(`${path}: expected {"serial": {...}, "devEui": {...}, "mac": {...}}`);
  return p as import('../../hub/blocks.ts').PoolPolicy;
}

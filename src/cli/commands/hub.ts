/**
 * fieldbench hub: run the fleet hub, and talk to one (push, pull, status,
 * duplicates, lookup, drift, block, bundle). docs/HUB.md.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { type CliCommand, type CliIo, EXIT_OK, EXIT_REJECTED, parseArgs, UsageError } from '../command.ts';
import { InputError, readEd25519Private, readEd25519Public, readFirmware, readInput, readText } from '../files.ts';
import { decodeCampaignUnverified, describeTarget, issueCampaign, parseVersionRange, type CampaignInput, type CampaignPart, type CampaignTarget } from '../../core/sync/campaign.ts';
import { artifactTypeOf } from '../../core/trust/artifact.ts';
import { verifyBundle, type TrustBundle } from '../../core/trust/bundle.ts';
import { parseImage, versionString } from '../../core/trust/mcuboot/parse.ts';
import { TrustArtifactError } from '../../core/trust/result.ts';
import { toHex } from '../../core/base/bytes.ts';
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
    summary: 'run the fleet hub (records, fleet registry, identifier blocks, campaigns)',
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
      const { defaultWorkers } = await import('../../hub/verify-pool.ts');
      // a pool of its own, which hub.close() ends: the process's shared pool is never closed, and its
      // idle worker kept a stopped hub's process alive (SIGTERM did not end an idle hub)
      const hub = await startHub({ db, trust, cors: a.all('cors'), verify, verifyWorkers: defaultWorkers() }, { host: listen[1].replace(/^\[|\]$/g, ''), port: Number(listen[2]) });
      const threads = hub.verifyThreads ? `${hub.verifyThreads} worker thread${hub.verifyThreads > 1 ? 's' : ''}` : 'the main thread';
      // the signal handlers are in place before the banner says the hub is up: whoever reads the
      // banner and stops the hub at once is answered by a clean stop, never by the default action
      const stopped = new Promise<void>((done) => {
        const stop = () => void hub.close().then(() => db.close()).then(done, done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      io.out(`fieldbench hub listening on ${hub.url} (${db.kind}${data ? ` in ${data}` : ''}${db.thread === 'worker' ? ' on its own thread' : ''}, bundle version ${trust.bundle.version}, verifying on ${threads})\n`);
      await stopped;
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
    "pull the hub's trust bundle, campaigns and the artifacts they name into a folder (the app's library imports it)",
    `usage: fieldbench hub pull --out DIR [--owner-key OWNER.pem] --hub URL --credential FILE --key FILE
${CONNECT}
  --out DIR             where to write bundle.cbor, campaigns/ID.cbor and the images / configurations they name
  --owner-key FILE      the owner public key: verify the bundle under it and each campaign under the bundle
                        (without it, only each artifact's digest is checked against its campaign)`,
    ['out', 'owner-key'],
    async (io, a) => {
      const c = await client(io, a);
      const out = resolve(io.cwd, a.require('out'));
      const b = await c.bundle();
      let bundle: TrustBundle | undefined;
      if (a.get('owner-key')) {
        const owner = await readEd25519Public(io, a.get('owner-key')!, { what: 'owner key' });
        const v = await verifyBundle(b.bytes, { ownerKeys: [owner], allowStale: true });
        if (!v.ok) {
          io.err(`fieldbench hub pull: refused (${v.code}): the hub's trust bundle does not verify under the owner key: ${v.reason}\n`);
          return EXIT_REJECTED;
        }
        bundle = v.value;
      }
      const pulled = await c.pullCampaigns({ bundle, have: (sha) => existsSync(resolve(out, artifactFile('image', sha))) || existsSync(resolve(out, artifactFile('configuration', sha))) });
      await mkdir(resolve(out, 'campaigns'), { recursive: true });
      await writeFile(resolve(out, 'bundle.cbor'), b.bytes);
      io.out(`wrote ${resolve(out, 'bundle.cbor')} (bundle version ${b.version}${bundle ? ', verified' : ''})\n`);
      for (const p of pulled.campaigns) {
        await writeFile(resolve(out, 'campaigns', `${p.campaign.id}.cbor`), p.bytes);
        for (const x of p.artifacts) await writeFile(resolve(out, artifactFile(x.part, x.sha256)), x.bytes);
        io.out(`campaign ${p.campaign.id} ${JSON.stringify(p.campaign.name)}: ${describeTarget(p.campaign.target)}${bundle ? '' : ' (not verified: give --owner-key)'}; ${p.artifacts.length} new artifact(s)\n`);
      }
      for (const r of pulled.refused) io.err(`campaign ${r.id} ${JSON.stringify(r.name)} refused (${r.code}): ${r.reason}\n`);
      return pulled.refused.length ? EXIT_REJECTED : EXIT_OK;
    },
  ),
  'hub campaign': verb(
    'campaigns: issue (owner-signed), publish to the hub, list, status per device',
    `usage: fieldbench hub campaign issue --owner-key OWNER.pem --name NAME (--model M | --device SERIAL... | --tag T...)
                        [--versions ">=1.0.0 <2.0.0"] [--image FILE] [--config FILE] [--days N] --out FILE
       fieldbench hub campaign publish FILE [--artifact FILE]... --hub URL --credential FILE --key FILE
       fieldbench hub campaign list [--json] --hub URL --credential FILE --key FILE
       fieldbench hub campaign status ID [--json] --hub URL --credential FILE --key FILE
${CONNECT}
  issue: signs a campaign with the owner's private key: the target (every criterion given must hold), the
         image (MCUboot, .bin or .hex) and/or signed configuration by SHA-256, valid for --days (default 30)
  publish: the hub verifies the campaign against its trust bundle; --artifact gives the image / configuration
         files it names (once; the hub keeps them). Needs the 'fleet' permission.
  status: done, failed and pending per targeted device, from the update/configure records pushed.
         Exit status 1 when any device failed.`,
    ['owner-key', 'name', 'model', 'device', 'tag', 'versions', 'image', 'config', 'days', 'out', 'artifact'],
    async (io, a) => {
      const action = a.positional[0];
      if (action === 'issue') return issueCampaignFile(io, a);
      if (action === 'publish') {
        const file = a.positional[1];
        if (!file) throw new UsageError('give the campaign FILE to publish');
        const bytes = await readInput(io, file, 'campaign');
        const artifacts = await Promise.all(a.all('artifact').map(async (p) => (/\.hex$/i.test(p) ? (await readFirmware(io, p)).data : readInput(io, p, 'artifact'))));
        const r = await (await client(io, a)).publishCampaign(bytes, artifacts);
        io.out(`${r.published ? 'published' : 'already published'}: campaign ${r.id} ${JSON.stringify(r.name)} (${r.artifacts} artifact(s) sent)\n`);
        return EXIT_OK;
      }
      if (action === 'list') {
        const cs = await (await client(io, a)).campaigns();
        if (a.has('json')) json(io, cs.map((c) => ({ ...c, bytes: undefined })));
        else if (!cs.length) io.out('no campaigns on the hub\n');
        else for (const c of cs) io.out(`${c.id} ${JSON.stringify(c.name)}: ${describeTarget(c.target)} -> ${[c.image ? `image ${c.image.version ?? ''} ${c.image.sha256.slice(0, 16)}…` : '', c.configuration ? `configuration ${c.configuration.sha256.slice(0, 16)}…` : ''].filter(Boolean).join(', ')}; until ${new Date(c.notAfter * 1000).toISOString()}\n`);
        return EXIT_OK;
      }
      if (action === 'status') {
        const id = a.positional[1];
        if (!id) throw new UsageError('give the campaign ID (fieldbench hub campaign list)');
        const s = await (await client(io, a)).campaignStatus(id);
        if (a.has('json')) json(io, s);
        else {
          io.out(`campaign ${s.campaign.id} ${JSON.stringify(s.campaign.name)}: ${s.counts.targeted} devices: ${s.counts.done} done, ${s.counts.failed} failed, ${s.counts.pending} pending\n`);
          for (const d of s.devices) {
            const parts = Object.entries(d.parts).map(([k, v]) => `${k} ${v!.outcome} by ${v!.reporter} ${new Date(v!.time).toISOString()}`).join('; ');
            io.out(`  ${(d.serial ?? d.anchor.slice(0, 24)).padEnd(16)} ${d.state.padEnd(7)} ${d.model ?? '?'} ${d.firmware ?? '?'}${parts ? `  ${parts}` : ''}\n`);
          }
          if (s.truncated) io.out('  (list truncated; use --json for the counts)\n');
        }
        return s.counts.failed ? EXIT_REJECTED : EXIT_OK;
      }
      throw new UsageError('give issue, publish FILE, list or status ID');
    },
    ['json'],
  ),
  'hub tag': verb(
    'set the tags of a device (campaigns target tags)',
    `usage: fieldbench hub tag KIND VALUE [TAG]... --hub URL --credential FILE --key FILE\n  KIND: serial, devicePublicKey, ueid, mac, devEui; no TAG clears the tags. Needs the 'fleet' permission.\n${CONNECT}`,
    [],
    async (io, a) => {
      if (a.positional.length < 2) throw new UsageError('give KIND VALUE and the tags');
      const r = await (await client(io, a)).setTags(a.positional[0], a.positional[1], a.positional.slice(2));
      io.out(`${r.anchors.length} device(s) tagged: ${r.tags.join(', ') || '(none)'}\n`);
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
    `usage: fieldbench hub block --station NAME (--units N | [--serial N] [--dev-eui N] [--mac N]) [--request HEX] --hub URL --credential FILE --key FILE
${CONNECT}
  --units N             N units of the hub's identifier policy (serial, DevEUI and MAC of each unit together):
                        the answer's "block" is the station allocator's block, to use as it is
  --serial/--dev-eui/--mac N   separate ranges of one kind each
  --request HEX         32 hex digits; repeat it to get the same block again after a lost reply`,
    ['station', 'serial', 'dev-eui', 'mac', 'units', 'request'],
    async (io, a) => {
      const n = (k: string) => (a.get(k) === undefined ? undefined : Number(a.get(k)));
      const request = a.get('request') ?? toHex(crypto.getRandomValues(new Uint8Array(16)));
      json(io, await (await client(io, a)).block({ station: a.require('station'), request, serial: n('serial'), devEui: n('dev-eui'), mac: n('mac'), units: n('units') }));
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

function artifactFile(part: CampaignPart, sha: string): string {
  return part === 'image' ? `image-${sha.slice(0, 16)}.bin` : `config-${sha.slice(0, 16)}.cbor`;
}

async function issueCampaignFile(io: CliIo, a: ReturnType<typeof parseArgs>): Promise<number> {
  const owner = await readEd25519Private(io, a.require('owner-key'), 'owner key');
  const target: CampaignTarget = {};
  if (a.get('model')) target.model = a.get('model');
  if (a.all('device').length) target.devices = a.all('device');
  if (a.all('tag').length) target.tags = a.all('tag');
  if (a.get('versions')) {
    try {
      target.versions = parseVersionRange(a.get('versions')!);
    } catch (e) {
      throw new UsageError(`--versions: ${(e as Error).message}`);
    }
  }
  const days = a.get('days') === undefined ? 30 : Number(a.get('days'));
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError('--days is a whole number of days, 1..3650');
  let image: CampaignInput['image'];
  if (a.get('image')) {
    const data = (await readFirmware(io, a.get('image')!)).data;
    let version: string | undefined;
    try {
      version = versionString(parseImage(data).header.version);
    } catch (e) {
      throw new InputError(`${a.get('image')}: not an MCUboot image (${(e as Error).message})`);
    }
    image = { sha256: sha256(data), version, name: basename(a.get('image')!) };
  }
  let configuration: CampaignInput['configuration'];
  if (a.get('config')) {
    const data = await readInput(io, a.get('config')!, 'signed configuration');
    if (artifactTypeOf(data) !== 'config') throw new InputError(`${a.get('config')}: not a signed configuration`);
    configuration = { sha256: sha256(data), name: basename(a.get('config')!) };
  }
  let bytes: Uint8Array;
  try {
    bytes = await issueCampaign({ name: a.require('name'), target, image, configuration, notAfter: new Date(Date.now() + days * 86400_000) }, owner);
  } catch (e) {
    if (e instanceof TrustArtifactError) throw new UsageError(e.message);
    throw e;
  }
  const out = resolve(io.cwd, a.require('out'));
  await writeFile(out, bytes);
  const c = decodeCampaignUnverified(bytes);
  io.out(`wrote campaign ${toHex(c.campaignId)} to ${out}: ${describeTarget(c.target)}${image ? `, image ${image.version} sha256 ${toHex(image.sha256)}` : ''}${configuration ? `, configuration sha256 ${toHex(configuration.sha256)}` : ''}\n`);
  return EXIT_OK;
}

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

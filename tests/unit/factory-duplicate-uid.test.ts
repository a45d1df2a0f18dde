/**
 * Two units reporting one chip UID (a clone, an emulator, a reused board): the station remembers
 * every chip UID it certified, with the device key, in its identifier journal (and knows the ones
 * in the control log it signs), and refuses an offer for a UID another key holds, before any
 * identifier is allocated (src/core/factory/identifiers.ts, run.ts). The reference devices are
 * made to report the same UID with their constructor option (`ueid`, never settable over the wire).
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type RunUnitOptions, runUnitToEnd } from '../../src/core/factory/run.ts';
import { Station, type StationEvent } from '../../src/core/factory/station.ts';
import { type JournaledAllocator, memoryAllocator } from '../../src/core/factory/identifiers.ts';
import { JOURNAL_FILE, fileAllocator } from '../../src/core/factory/journal-node.ts';
import { type UnitControlRecord, controlRows } from '../../src/core/factory/control-log.ts';
import { chipClaim, provisionIdentity } from '../../src/core/factory/provision.ts';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { RECORDS_FILE, parseRecordsLog } from '../../src/core/store/records-log.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { appendRecords } from '../../src/cli/records.ts';
import { issueReprovision } from '../../src/core/trust/reprovision.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import { type FactoryWorld, type Jig, factoryWorld, makeJig } from '../helpers/factory-world.ts';

let w: FactoryWorld;
beforeAll(async () => {
  w = await factoryWorld();
});

const newUid = () => Uint8Array.of(0x01, ...crypto.getRandomValues(new Uint8Array(16)));
const seed = crypto.getRandomValues(new Uint8Array(32));

/** The station's control log in `dir`: signed, chained records (what `bench run` writes). */
function controlLog(dir: string) {
  let chain: Promise<unknown> = Promise.resolve();
  return (e: AuditInput) => {
    const p = chain.then(() => appendRecords(dir, [e], { seed, technician: 'station:test' }));
    chain = p.catch(() => undefined);
    return p.then(() => undefined);
  };
}

async function rows(dir: string): Promise<UnitControlRecord[]> {
  const p = parseRecordsLog(await readFile(join(dir, RECORDS_FILE), 'utf8'));
  if (!p.ok) throw new Error(p.reason);
  return controlRows(p.entries);
}

function options(jig: Jig, allocator: RunUnitOptions['allocator'], record: RunUnitOptions['record'], extra: Partial<RunUnitOptions> = {}): RunUnitOptions {
  return {
    port: 'jig-1',
    connect: () => jig.connect(),
    profile: w.profile,
    image: w.image,
    bundle: w.bundle,
    manufacturer: w.manufacturer,
    station: { signer: w.stationSigner },
    allocator,
    record,
    update: { resetSettleMs: 10, bootTimeoutMs: 3000 },
    ...extra,
  };
}

const CLONE = (uid: Uint8Array, serial: string) =>
  new RegExp(`chip UID ${toHex(uid)} was already certified as serial ${serial} on \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z \\(jig-1\\) for another device key .*: a clone or a reused board; not provisioned`);

describe('two units with one chip UID', () => {
  it('one after the other, across a station restart: the clone is refused with the reason, no identifier burnt, the original intact and its retry kept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fb-uid-'));
    const uid = newUid();
    const record = controlLog(dir);
    let alloc: JournaledAllocator = fileAllocator(w.policy, dir, undefined, { controlLog: dir });
    const original = await makeJig(w, { ueid: uid });
    const o1 = await runUnitToEnd(options(original, alloc, record));
    if (o1.kind !== 'done') throw new Error(o1.reason);
    expect(o1.result).toMatchObject({ serial: 'FB-000001', ueid: toHex(uid) });
    await alloc.close();
    const journalBefore = await readFile(join(dir, JOURNAL_FILE), 'utf8');

    // the station restarts; a second board reporting the same chip UID is plugged in
    alloc = fileAllocator(w.policy, dir, undefined, { controlLog: dir });
    const clone = await makeJig(w, { ueid: uid });
    const o2 = await runUnitToEnd(options(clone, alloc, record, { port: 'jig-2' }));
    expect(o2).toMatchObject({ kind: 'failed', code: 'provision', retryable: false, details: { step: 'provision', cause: 'duplicate-uid' } });
    expect(o2.kind === 'failed' && o2.reason).toMatch(CLONE(uid, 'FB-000001'));
    expect(clone.security.provisioned).toBe(false);
    // no identifier burnt: the journal holds exactly what it held, the next unit gets FB-000002
    expect((await alloc.entries()).map((e) => [e.ids?.serial, e.status])).toEqual([['FB-000001', 'provisioned']]);
    const log = await rows(dir);
    expect(log.map((r) => [r.port, r.verdict, r.serial, r.failure?.code])).toEqual([
      ['jig-1', 'provisioned', 'FB-000001', undefined],
      ['jig-2', 'failed', undefined, 'duplicate-uid'],
    ]);
    expect(log[1]).toMatchObject({ ueid: toHex(uid), devicePublicKey: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(log[1].devicePublicKey).not.toBe(log[0].devicePublicKey);
    expect(log[1].failure?.reason).toMatch(CLONE(uid, 'FB-000001'));
    // the clone retried: refused again, still nothing allocated
    const o3 = await runUnitToEnd(options(clone, alloc, record, { port: 'jig-2' }));
    expect(o3).toMatchObject({ kind: 'failed', details: { cause: 'duplicate-uid' } });
    expect(await alloc.entries()).toHaveLength(1);
    // the original is intact: its retry keeps its identity; a genuine next unit gets the next serial
    const o4 = await runUnitToEnd(options(original, alloc, record));
    expect(o4).toMatchObject({ kind: 'done', result: { serial: 'FB-000001', kept: true } });
    const next = await makeJig(w);
    expect(await runUnitToEnd(options(next, alloc, record, { port: 'jig-3' }))).toMatchObject({ kind: 'done', result: { serial: 'FB-000002' } });
    await alloc.close();
    expect((await readFile(join(dir, JOURNAL_FILE), 'utf8')).startsWith(journalBefore)).toBe(true);
  }, 60_000);

  it('two ports at once: exactly one of the two boards gets the UID, the other is refused before any identifier is allocated', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fb-uid-'));
    const uid = newUid();
    const alloc = fileAllocator(w.policy, dir, undefined, { controlLog: dir });
    const jigs = [await makeJig(w, { ueid: uid }), await makeJig(w, { ueid: uid })];
    const ends: Extract<StationEvent, { kind: 'unit-end' }>[] = [];
    const station = new Station({
      profile: w.profile, image: w.image, bundle: w.bundle, manufacturer: w.manufacturer, station: { signer: w.stationSigner },
      allocator: alloc, record: controlLog(dir), update: { resetSettleMs: 10, bootTimeoutMs: 3000 }, once: true, pollMs: 10,
      onEvent: (e) => void (e.kind === 'unit-end' && ends.push(e)),
    });
    jigs.forEach((j, i) => station.add({ name: `jig-${i + 1}`, present: async () => true, connect: () => j.connect() }));
    await station.finish();
    const done = ends.filter((e) => e.outcome.kind === 'done');
    const refused = ends.filter((e) => e.outcome.kind === 'failed');
    expect(done).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0].outcome).toMatchObject({ code: 'provision', details: { cause: 'duplicate-uid' } });
    expect(refused[0].outcome.kind === 'failed' && refused[0].outcome.reason).toMatch(
      new RegExp(`chip UID ${toHex(uid)} (is being certified right now|was already certified) as serial FB-000001 .*a clone or a reused board`),
    );
    expect(jigs.filter((j) => j.security.provisioned)).toHaveLength(1);
    expect((await alloc.entries()).map((e) => [e.ids?.serial, e.status])).toEqual([['FB-000001', 'provisioned']]);
    await alloc.close();
  }, 60_000);

  it('the station knows the UIDs of the control log it signs: a journal started afresh still refuses the clone', async () => {
    const recordsDir = await mkdtemp(join(tmpdir(), 'fb-uid-rec-'));
    const uid = newUid();
    const record = controlLog(recordsDir);
    const first = fileAllocator(w.policy, await mkdtemp(join(tmpdir(), 'fb-uid-j1-')), undefined, { controlLog: recordsDir });
    expect(await runUnitToEnd(options(await makeJig(w, { ueid: uid }), first, record))).toMatchObject({ kind: 'done', result: { serial: 'FB-000001' } });
    await first.close();
    // another journal (another block, a replaced disk): only the control log names the UID
    const fresh = fileAllocator(w.policy, await mkdtemp(join(tmpdir(), 'fb-uid-j2-')), { id: 'b2', start: 100, count: 100 }, { controlLog: recordsDir });
    const o = await runUnitToEnd(options(await makeJig(w, { ueid: uid }), fresh, record, { port: 'jig-2' }));
    expect(o.kind === 'failed' && o.reason).toMatch(CLONE(uid, 'FB-000001'));
    expect(await fresh.entries()).toEqual([]);
    await fresh.close();
  }, 60_000);

  it('the same unit retried after faults following the allocation is accepted (new candidate keys, same UID), and a clone after it is still refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fb-uid-'));
    const uid = newUid();
    const record = controlLog(dir);
    let alloc = fileAllocator(w.policy, dir, undefined, { controlLog: dir });
    const unit = await makeJig(w, { ueid: uid });
    // the link goes after the certificate was issued, before the unit stored it: the certificate
    // was never confirmed, the unit's next offer carries new keys for the same UID
    let fault: string | undefined = 'provision:install';
    const hooks = { beforeStep: (s: string) => void (s === fault && ((fault = undefined), unit.unplug())) };
    const o1 = await runUnitToEnd(options(unit, alloc, record, { hooks }));
    expect(o1).toMatchObject({ kind: 'failed', details: { step: 'provision', serial: 'FB-000001' } });
    const o2 = await runUnitToEnd(options(unit, alloc, record));
    expect(o2).toMatchObject({ kind: 'done', result: { serial: 'FB-000002', kept: false, ueid: toHex(uid) } });
    await alloc.close();
    // a unit that stored its certificate but the station died before the read-back: after the
    // restart its retry keeps the identity and journals the UID as held by its key
    const dir2 = await mkdtemp(join(tmpdir(), 'fb-uid-'));
    const uid2 = newUid();
    const record2 = controlLog(dir2);
    alloc = fileAllocator(w.policy, dir2);
    const unit2 = await makeJig(w, { ueid: uid2 });
    let dead = false;
    const crashing: RunUnitOptions['allocator'] = {
      allocate: (...a) => (dead ? Promise.reject(new Error('dead')) : alloc.allocate(...a)),
      commit: (...a) => (dead ? Promise.reject(new Error('dead')) : alloc.commit(...a)),
      hold: (...a) => (dead ? Promise.reject(new Error('dead')) : alloc.hold(...a)),
    };
    const o3 = await runUnitToEnd(
      options(unit2, crashing, async (e) => (dead ? Promise.reject(new Error('dead')) : record2(e)), {
        hooks: { beforeStep: (s) => { if (s === 'provision:readback') { dead = true; throw new Error('the station process died'); } } },
      }),
    );
    expect(o3.kind).toBe('failed');
    expect(unit2.security.provisioned).toBe(true);
    await alloc.close();
    alloc = fileAllocator(w.policy, dir2, undefined, { controlLog: dir2 });
    expect((await alloc.entries()).map((e) => [e.ids?.serial, e.status, e.detail])).toEqual([['FB-000001', 'failed', 'interrupted']]);
    expect(await runUnitToEnd(options(unit2, alloc, record2))).toMatchObject({ kind: 'done', result: { serial: 'FB-000001', kept: true } });
    expect(await alloc.certifiedChips()).toMatchObject([{ uid: toHex(uid2), serial: 'FB-000001', key: toHex(unit2.security.devicePublicKey) }]);
    await alloc.close();
    alloc = fileAllocator(w.policy, dir2); // the journal alone (no control log) remembers it
    const o4 = await runUnitToEnd(options(await makeJig(w, { ueid: uid2 }), alloc, record2, { port: 'jig-2' }));
    expect(o4.kind === 'failed' && o4.reason).toMatch(CLONE(uid2, 'FB-000001'));
    expect(await alloc.entries()).toHaveLength(1);
    await alloc.close();
  }, 60_000);

  it('a clone that slips in while the original\'s certificate is unconfirmed (fault at read-back) is caught when the original comes back', async () => {
    const uid = newUid();
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    const record = async (e: AuditInput) => void records.push(e);
    const original = await makeJig(w, { ueid: uid });
    let fault = true;
    const o1 = await runUnitToEnd(options(original, alloc, record, { hooks: { beforeStep: (s) => void (s === 'provision:readback' && fault && ((fault = false), original.unplug())) } }));
    expect(o1.kind).toBe('failed');
    expect(original.security.provisioned).toBe(true); // it stored FB-000001, the station never saw it
    // the station cannot tell this offer from the original's retry (new keys, same UID): it certifies it
    const clone = await makeJig(w, { ueid: uid });
    expect(await runUnitToEnd(options(clone, alloc, record, { port: 'jig-2' }))).toMatchObject({ kind: 'done', result: { serial: 'FB-000002' } });
    // the original comes back: two units hold one chip UID, and the station says so
    const o3 = await runUnitToEnd(options(original, alloc, record));
    expect(o3).toMatchObject({ kind: 'failed', code: 'provision', details: { cause: 'duplicate-uid' } });
    expect(o3.kind === 'failed' && o3.reason).toMatch(new RegExp(`chip UID ${toHex(uid)} is also certified as serial FB-000002 on .*\\(jig-2\\).*two units with one chip UID`));
    expect(records.at(-1)).toMatchObject({ outcome: 'failed', details: { serial: 'FB-000001', ueid: toHex(uid), failure: { code: 'duplicate-uid' } } });
  }, 60_000);

  it('re-provisioning under an owner-signed authorization gives the UID a new key; a clone presenting the same authorization is refused', async () => {
    const uid = newUid();
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    const unit = await makeJig(w, { ueid: uid });
    const o1 = await runUnitToEnd(options(unit, alloc, async (e) => void records.push(e)));
    if (o1.kind !== 'done') throw new Error(o1.reason);
    const authorization = await issueReprovision({ devicePublicKey: unit.security.devicePublicKey, chipUid: uid, reason: 'board reworked', notAfter: new Date(Date.now() + 3600_000) }, w.auth.owner.privateKey);
    const reprovision = async (jig: Jig) => {
      const s = await jig.connect();
      try {
        let ids: Awaited<ReturnType<JournaledAllocator['allocate']>> | undefined;
        const r = await provisionIdentity(new SecurityGroup(s.client, jig.security.groupId), {
          signer: w.manufacturer, model: w.profile.model, notAfter: new Date(Date.now() + 86400_000), authorization, ownerKeys: [w.auth.owner.publicKey],
          identifiers: async (offer, ctx) => (ids = await alloc.allocate(`jig ${toHex(offer.chipUid)}`, chipClaim(offer, ctx))),
        });
        await alloc.commit(ids!, 'provisioned');
        return r;
      } finally {
        await s.close();
      }
    };
    // a clone (factory-fresh, same UID) with a copy of the authorization: it has no identity the
    // authorization could name, so it is refused, nothing allocated; a claim that names a key to
    // replace other than the one holding the UID does not open it either
    await expect(reprovision(await makeJig(w, { ueid: uid }))).rejects.toMatchObject({ code: 'refused' });
    const stranger = toHex(crypto.getRandomValues(new Uint8Array(32)));
    await expect(alloc.allocate('jig-9', { uid: toHex(uid), key: stranger, replaces: stranger })).rejects.toMatchObject({ code: 'duplicate-uid' });
    expect(await alloc.entries()).toHaveLength(1);
    // an authorization for another device is refused by the station itself, before it reaches the unit
    const forOther = await issueReprovision({ devicePublicKey: crypto.getRandomValues(new Uint8Array(32)), chipUid: uid, reason: 'x', notAfter: new Date(Date.now() + 3600_000) }, w.auth.owner.privateKey);
    const s0 = await unit.connect();
    await expect(
      provisionIdentity(new SecurityGroup(s0.client, unit.security.groupId), { signer: w.manufacturer, notAfter: new Date(Date.now() + 86400_000), authorization: forOther, identifiers: () => ({ serial: 'never' }) }),
    ).rejects.toMatchObject({ code: 'bad-authorization' });
    await s0.close();
    // the unit itself: it proves its current key, the authorization names it; the new key takes the UID
    const old = toHex(unit.security.devicePublicKey);
    const r = await reprovision(unit);
    expect(r).toMatchObject({ serial: 'FB-000002', reprovisioned: true });
    expect(await alloc.certifiedChips()).toEqual([expect.objectContaining({ uid: toHex(uid), serial: 'FB-000002', key: toHex(r.devicePublicKey) })]);
    expect(toHex(r.devicePublicKey)).not.toBe(old);
    // after it, another board with that UID is refused, naming the new serial
    const o3 = await runUnitToEnd(options(await makeJig(w, { ueid: uid }), alloc, async () => {}, { port: 'jig-2' }));
    expect(o3.kind === 'failed' && o3.reason).toMatch(/was already certified as serial FB-000002 on .*\(jig\)/);
  }, 60_000);
});

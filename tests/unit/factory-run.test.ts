/**
 * One unit's factory run (src/core/factory/run.ts) against factory-fresh reference devices:
 * the whole flow in application mode and on a blank board (serial recovery), what the record
 * holds, refusals with clear reasons, and retries that never lose or duplicate identifiers.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type RunUnitOptions, type UnitState, UNIT_STEPS, runUnit, runUnitToEnd } from '../../src/core/factory/run.ts';
import { type JournaledAllocator, memoryAllocator } from '../../src/core/factory/identifiers.ts';
import type { AuditInput } from '../../src/core/store/audit.ts';
import { parseLabelPayload, labelPayload } from '../../src/core/factory/label.ts';
import { SecurityGroup } from '../../src/core/groups/security.ts';
import { memorySigner } from '../../src/core/trust/signer.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { signImage } from '../../src/core/trust/mcuboot/sign.ts';
import { type FactoryWorld, type Jig, factoryWorld, makeJig, unitOptions } from '../helpers/factory-world.ts';

let w: FactoryWorld;
beforeAll(async () => {
  w = await factoryWorld();
});

const options = (jig: Jig, allocator: JournaledAllocator, records: AuditInput[], extra: Partial<RunUnitOptions> = {}): RunUnitOptions => unitOptions(w, jig, { allocator, records, ...extra });

describe('one unit on the factory line', () => {
  it('a factory-fresh unit: flashed, test-booted, confirmed, provisioned, configured, attested trusted, labelled, recorded', async () => {
    const jig = await makeJig(w);
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    const states: UnitState[] = [];
    const labels: unknown[] = [];
    const o = await runUnitToEnd(options(jig, alloc, records, { label: async (d) => void labels.push(d) }), (s) => states.push(s));
    if (o.kind !== 'done') throw new Error(`${o.kind}: ${o.reason}`);
    const r = o.result;
    expect(r.serial).toBe('FB-000001');
    expect(r.devEui).toBe('70b3d57ed0000000');
    expect(r.mac).toBe('02fb00000000');
    expect(r.kept).toBe(false);
    expect(r.steps.map((s) => s.step)).toEqual([...UNIT_STEPS]);
    expect(r.steps.every((s) => s.outcome === 'done')).toBe(true);
    // every state is plain data, progress is reported while flashing
    for (const s of states) expect(JSON.parse(JSON.stringify(s))).toBeTruthy();
    expect(states.some((s) => s.kind === 'step' && s.step === 'flash' && typeof s.progress === 'number' && s.progress > 0 && s.progress < 1)).toBe(true);
    // the device is what the record says
    expect(jig.security.opts.serial).toBe('FB-000001');
    expect(jig.device.firmware()[0].sha256).toEqual(w.imageHash);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ op: 'factory/unit', outcome: 'provisioned', device: { serial: 'FB-000001', devEui: '70b3d57ed0000000' } });
    expect(records[0].details).toMatchObject({ verdict: 'provisioned', attestation: 'trusted', configSequence: 1, firmwareDigest: Buffer.from(w.imageHash).toString('hex') });
    // the label round-trips
    expect(labels).toHaveLength(1);
    expect(parseLabelPayload(labelPayload(r.label))).toEqual(r.label);
    expect((await alloc.entries()).map((e) => e.status)).toEqual(['provisioned']);
  });

  it('a blank board is flashed through MCUboot serial recovery, then runs the whole flow', async () => {
    const jig = await makeJig(w, { blank: true });
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    const states: UnitState[] = [];
    const o = await runUnitToEnd(options(jig, alloc, records), (s) => states.push(s));
    if (o.kind !== 'done') throw new Error(`${o.kind}: ${o.reason}`);
    expect(states.find((s) => s.kind === 'step-done' && s.step === 'info')).toMatchObject({ note: expect.stringContaining('serial recovery') });
    expect(o.result.steps.every((s) => s.outcome === 'done')).toBe(true);
    expect(jig.device.firmware()[0].sha256).toEqual(w.imageHash);
  });

  it('a unit that already runs the image skips the flash; a provisioned unit of this station keeps its identity on a retry', async () => {
    const jig = await makeJig(w);
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    // first run stops after provisioning: the attestation's station login fails once
    let fail = true;
    const o1 = await runUnitToEnd(
      options(jig, alloc, records, {
        hooks: {
          beforeStep: (s) => {
            if (s === 'configure' && fail) {
              fail = false;
              jig.unplug();
            }
          },
        },
      }),
    );
    expect(o1).toMatchObject({ kind: 'failed', retryable: true, details: { step: 'configure', serial: 'FB-000001' } });
    expect(o1.kind === 'failed' && o1.reason).toMatch(/^jig-1: configure failed: /);
    expect(records[0]).toMatchObject({ outcome: 'failed', details: { failure: { step: 'configure' }, serial: 'FB-000001' } });
    const o2 = await runUnitToEnd(options(jig, alloc, records));
    if (o2.kind !== 'done') throw new Error(o2.reason);
    expect(o2.result).toMatchObject({ serial: 'FB-000001', kept: true });
    expect(o2.result.steps.filter((s) => s.outcome === 'skipped').map((s) => s.step)).toEqual(['flash', 'test-boot', 'confirm']);
    expect((await alloc.entries()).map((e) => [e.ids?.serial, e.status])).toEqual([['FB-000001', 'provisioned']]);
    expect(records.map((r) => r.outcome)).toEqual(['failed', 'provisioned']);
  });

  it('a unit provisioned by another manufacturer key is refused with a clear reason, and nothing is allocated', async () => {
    const jig = await makeJig(w);
    const rogue = await generateEd25519();
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    const o = await runUnitToEnd(options(jig, alloc, records, { manufacturer: memorySigner(rogue.privateKey) }));
    expect(o).toMatchObject({ kind: 'failed', code: 'provision', details: { cause: 'untrusted-manufacturer' } });
    expect(await alloc.entries()).toEqual([]);
    expect(records[0]).toMatchObject({ outcome: 'failed', details: { failure: { step: 'provision', code: 'untrusted-manufacturer' } } });
  });

  it('an image other than the profile\'s is never uploaded', async () => {
    const jig = await makeJig(w);
    const other = (await signImage(new Uint8Array(4096).fill(7), { key: w.auth.firmware.privateKey, version: '2.0.1', headerSize: 32, padHeader: true, securityCounter: 2 })).image;
    const records: AuditInput[] = [];
    const before = jig.device.firmware()[0].sha256;
    const o = await runUnitToEnd(options(jig, memoryAllocator(w.policy), records, { image: other }));
    expect(o).toMatchObject({ kind: 'failed', code: 'profile', retryable: false, details: { cause: 'image' } });
    expect(jig.device.firmware()[0].sha256).toEqual(before);
  });

  it('a unit whose attestation is not trusted fails at attest; its identifiers stay with it and are not reissued', async () => {
    const jig = await makeJig(w);
    jig.security.misbehave.unknownFirmware = true;
    const alloc = memoryAllocator(w.policy);
    const records: AuditInput[] = [];
    const o = await runUnitToEnd(options(jig, alloc, records));
    expect(o).toMatchObject({ kind: 'failed', code: 'attest', retryable: false });
    expect(records[0].details).toMatchObject({ verdict: 'failed', serial: 'FB-000001', attestation: 'untrusted' });
    expect((await alloc.entries())[0]).toMatchObject({ status: 'provisioned' });
    const next = await makeJig(w);
    const o2 = await runUnitToEnd(options(next, alloc, records));
    expect(o2).toMatchObject({ kind: 'done', result: { serial: 'FB-000002' } });
  });

  it('cancels promptly and sends nothing more', async () => {
    const jig = await makeJig(w, { model: { baudRate: 115200 } });
    const ac = new AbortController();
    const states: UnitState[] = [];
    const op = runUnit(options(jig, memoryAllocator(w.policy), [], { signal: ac.signal }));
    for await (const s of op) {
      states.push(s);
      if (s.kind === 'step' && s.step === 'flash' && (s.progress ?? 0) > 0.05) ac.abort();
    }
    expect(states.at(-1)).toMatchObject({ kind: 'cancelled' });
    expect(new SecurityGroup((await jig.connect()).client, jig.security.groupId)).toBeTruthy();
  });
});

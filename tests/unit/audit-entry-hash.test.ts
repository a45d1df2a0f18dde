/**
 * The hub's hash path (entryHashHex with node:crypto's one-shot, src/hub/batch.ts) against the
 * full parser every verifier uses (verifyAuditExport): on valid entries the same hash, on damaged
 * ones the same refusal with the same reason, field by field. The fast path checks but does not
 * decode what the hash does not cover; it must not accept anything the full parser refuses.
 */
import { hash as oneShot } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { entryHashHex, exportEntryHash, verifyAuditExport, type AuditExportEntry } from '../../src/core/store/audit.ts';

const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));
const nodeHex = (b: Uint8Array) => oneShot('sha256', b, 'hex');

const entry: fc.Arbitrary<AuditExportEntry> = fc.record({
  seq: fc.integer({ min: 1, max: 2 ** 40 }),
  time: fc.integer({ min: 0, max: 2 ** 45 }),
  technician: fc.record({ id: fc.string({ minLength: 1, maxLength: 20 }), keyId: hex(8) }),
  op: fc.constantFrom('identify', 'update', 'configure', 'factory/unit'),
  device: fc.record({ serial: fc.string({ minLength: 1, maxLength: 12 }), devEui: hex(8), devicePublicKey: hex(32) }, { requiredKeys: [] }),
  outcome: fc.constantFrom('ok', 'failed', 'provisioned'),
  details: fc.option(fc.dictionary(fc.constantFrom('model', 'badges', 'n', 'note'), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }))), { nil: undefined }),
  prev: hex(32),
  hash: fc.constant(''),
  sig: hex(64),
  signer: hex(32),
}).map((e) => {
  const o = { ...e } as AuditExportEntry & { details?: unknown };
  if (o.details === undefined) delete o.details;
  return o;
});

/** One damage to one field (or none): what a forged or broken export carries. */
const damage = fc.oneof(
  fc.constant<[string, unknown]>(['none', undefined]),
  fc.tuple(fc.constantFrom('seq', 'time'), fc.constantFrom(-1, 1.5, '3', null, 2 ** 60)),
  fc.tuple(fc.constantFrom('sig', 'signer', 'prev'), fc.constantFrom('', 'zz', 'AB'.repeat(32), 'ab'.repeat(31), 'ab'.repeat(64), 7)),
  fc.tuple(fc.constantFrom('op', 'outcome'), fc.constantFrom('', 5, 'x'.repeat(2000))),
  fc.tuple(fc.constant('technician'), fc.constantFrom(null, [], { id: 'a' }, { id: 'a', keyId: 'ab'.repeat(8), extra: 1 })),
  fc.tuple(fc.constant('device'), fc.constantFrom(null, { serial: 3 }, { imei: 'x' })),
  fc.tuple(fc.constant('details'), fc.constantFrom(null, [], { secretKey: 'x' }, { n: 1.5 })),
  fc.tuple(fc.constant('extra'), fc.constant(1)),
);

describe('entry hash: the hub path equals the full parser', () => {
  it('same hash on valid entries, same refusal on damaged ones', async () => {
    await fc.assert(
      fc.asyncProperty(entry, damage, async (e, [field, value]) => {
        const d = { ...e } as Record<string, unknown>;
        if (field !== 'none') d[field] = value;
        let fast: { ok: true; hash: string } | { ok: false; reason: string };
        try {
          fast = { ok: true, hash: entryHashHex(d as unknown as AuditExportEntry, nodeHex) };
        } catch (err) {
          fast = { ok: false, reason: (err as Error).message };
        }
        // the full parser, through the public verifier: the entry with its hash filled in (or a placeholder when it cannot have one)
        d.hash = fast.ok ? fast.hash : '00'.repeat(32);
        const v = await verifyAuditExport({ format: 'fieldbench-audit', version: 1, entries: [d], head: { seq: Number.isSafeInteger(d.seq) ? d.seq : 0, hash: d.hash } });
        if (fast.ok) {
          // only the signature may fail (it is random): the entry parsed, and the hash is the same as @noble's path
          expect(v.ok ? 'ok' : v.code).not.toBe('malformed');
          expect(exportEntryHash(d as unknown as AuditExportEntry)).toBe(fast.hash);
        } else {
          expect(v.ok).toBe(false);
          if (!v.ok) {
            expect(v.code).toBe('malformed');
            expect(v.reason).toBe(`entry 0: ${fast.reason}`);
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});

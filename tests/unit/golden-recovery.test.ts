/**
 * Flashes through MCUboot serial recovery recorded on every serial-recovery
 * fixture (tests/peer/recovery-live.test.ts, FIELDBENCH_RECORD=1): the
 * bootloader's bytes decode through our framing and CBOR codecs into one reply
 * per request, and the recording shows the upload as this tool must do it:
 * each chunk starts exactly where the device's last reply said (its
 * 4-byte-aligned acceptance is followed, never fought), no resume is claimed,
 * and the image list afterwards names the image's hash in the primary slot.
 * Upload data is redacted in the files (length and SHA-256 only).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeCborObject } from '../../src/core/base/cbor.ts';
import { toHex } from '../../src/core/base/bytes.ts';
import { createDecoder } from '../../src/core/smp/framing.ts';
import { SMP_HEADER_SIZE, decodeHeader } from '../../src/core/smp/header.ts';
import { bytesReviver } from '../peer/script.ts';
import type { UpdateGolden } from '../peer/update-peer.ts';

const DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../golden/peer/update/recovery');
const files = existsSync(DIR) ? readdirSync(DIR).filter((f) => f.endsWith('.json')).sort() : [];

it('has a recorded recovery flash for each serial-recovery fixture (console and raw, each buffer size)', () => {
  expect(files.map((f) => f.replace('.recovery-flash.json', ''))).toEqual([
    'mps2_an385.serial_recovery',
    'mps2_an385.serial_recovery_buf1024',
    'mps2_an385.serial_recovery_buf2048',
    'mps2_an385.serial_recovery_buf400',
    'mps2_an385.serial_recovery_buf512',
    'mps2_an385.serial_recovery_raw',
  ]);
});

for (const file of files) {
  const g = JSON.parse(readFileSync(join(DIR, file), 'utf8'), bytesReviver) as UpdateGolden;
  describe(`recovery flash ${g.fixture} (${g.framing})`, () => {
    type Pkt = { header: ReturnType<typeof decodeHeader>; body: Record<string, unknown> };
    const replies: Pkt[] = [];
    const drops: string[] = [];
    const dec = createDecoder(g.framing, (p) => {
      const header = decodeHeader(p);
      replies.push({ header, body: (header.length ? decodeCborObject(p.subarray(SMP_HEADER_SIZE)) : {}) as Record<string, unknown> });
    }, { acceptOps: [1, 3], onDrop: (r) => drops.push(r) });
    for (const e of g.events) if (e.dir === 'rx') dec.push(new Uint8Array(Buffer.from(e.hex, 'hex')));
    const reqs = g.events.filter((e): e is Extract<typeof e, { dir: 'tx' }> => e.dir === 'tx');
    const uploads = reqs.filter((e) => e.header.group === 1 && e.header.id === 1);
    const replyTo = (seq: number) => replies.filter((r) => r.header.seq === seq && r.header.group === 1);

    it('every request got one reply that decodes; nothing dropped', () => {
      expect(drops).toEqual([]);
      for (const q of reqs) expect(replies.filter((r) => r.header.seq === q.header.seq && r.header.group === q.header.group && r.header.id === q.header.id), `seq ${q.header.seq}`).toHaveLength(1);
    });

    it('each chunk starts where the device said; accepted offsets are word-aligned; it ends at the image size', () => {
      expect(uploads.length).toBeGreaterThan(50);
      expect(uploads[0].body.off).toBe(0);
      let partial = 0;
      for (let i = 0; i < uploads.length; i++) {
        const [r] = replyTo(uploads[i].header.seq);
        expect(r.body.rc ?? 0).toBe(0);
        const off = r.body.off as number;
        const sent = (uploads[i].body.off as number) + (uploads[i].body.data as { len: number }).len;
        if (i + 1 < uploads.length) {
          expect(off % 4, `reply ${i}`).toBe(0);
          expect(uploads[i + 1].body.off).toBe(off);
          if (off < sent) partial++;
        } else expect(off).toBe(g.image.size);
      }
      // the alignment is learnt from the first partial acceptance: few chunks are cut short
      expect(partial).toBeLessThanOrEqual(1);
    });

    it('no resume is claimed; the image list names the image hash in the primary slot', () => {
      expect(g.states.map((s) => s.kind)).toEqual(['preflight', 'serial-recovery', 'uploading', 'verifying', 'done']);
      const lists = reqs.filter((e) => e.header.group === 1 && e.header.id === 0 && e.header.op === 0);
      const last = replyTo(lists.at(-1)!.header.seq)[0].body.images as { slot: number; hash: Uint8Array }[];
      expect(toHex(last.find((s) => s.slot === 0)!.hash)).toBe(g.image.hash);
      expect(g.outcome).toMatchObject({ kind: 'done', hash: g.image.hash });
    });
  });
}

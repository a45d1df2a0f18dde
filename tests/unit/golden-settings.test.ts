/**
 * Settings group (3) transcript recorded against the real Zephyr 4.4.0
 * smp_server (native_sim, raw framing; tests/peer/settings-peer.ts records
 * it): the device's replies decode through our framing and SMP layers, our
 * settings client sends byte for byte what was recorded, and it turns the
 * device's real answers (success, v2 group errors, a v1 rc) into the recorded
 * outcomes and sentences.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { TranscriptChunk } from '../../src/core/link/recording.ts';
import { SETTINGS_ERR, SETTINGS_GROUP, readSetting } from '../../src/core/groups/settings.ts';
import { encodeCbor } from '../../src/core/base/cbor.ts';
import { encodeFrames, type Framing } from '../../src/core/smp/framing.ts';
import { buildPacket } from '../../src/core/smp/header.ts';
import { openSession } from '../../src/core/groups/session.ts';
import { ReplayLink } from '../helpers/replay-link.ts';
import { bytesReviver, concatChunks, decodePackets } from '../peer/script.ts';
import { runSettingsScript, type SettingsStep } from '../peer/settings-peer.ts';

const here = dirname(fileURLToPath(import.meta.url));
const DIR = resolve(here, '../golden/peer/settings');

interface SettingsGolden {
  fixture: string;
  zephyrVersion: string;
  artifact: string;
  groups: string[];
  framing: Framing;
  session: { lineGapMs: number; timeoutMs: number; firstSeq: number };
  steps: SettingsStep[];
  chunks: TranscriptChunk[];
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

it('has the native_sim settings transcript', () => {
  expect(files).toEqual(['native_sim.serial_raw.json']);
});

for (const file of files) {
  const g = JSON.parse(readFileSync(join(DIR, file), 'utf8'), bytesReviver) as SettingsGolden;
  const txBytes = concatChunks(g.chunks, 'tx');
  const rx = decodePackets(g.framing, concatChunks(g.chunks, 'rx'), 'replies');
  const tx = decodePackets(g.framing, txBytes, 'requests');
  const replyTo = (seq: number) => rx.packets.filter((p) => p.header.seq === seq).map((p) => p.body);
  const settingsReqs = tx.packets.filter((p) => p.header.group === SETTINGS_GROUP);
  const step = (what: string) => g.steps.find((s) => s.what === what)!.outcome;

  describe(`golden settings ${g.fixture} (Zephyr ${g.zephyrVersion}, ${g.framing} framing)`, () => {
    it('the fixture has the settings group, and the device lists it', () => {
      expect(g.groups).toContain('settings');
      expect(step('enum: groups include settings (3)')).toEqual({ ok: true, value: expect.arrayContaining([SETTINGS_GROUP]) });
    });

    it('every request got exactly one reply (same seq, group, id, op + 1), nothing dropped', () => {
      expect(rx.drops).toEqual([]);
      expect(tx.drops).toEqual([]);
      expect(rx.packets.length).toBe(tx.packets.length);
      for (const q of tx.packets) {
        const r = rx.packets.filter((p) => p.header.seq === q.header.seq);
        expect(r.length, `seq ${q.header.seq}`).toBe(1);
        expect(r[0].header).toMatchObject({ group: q.header.group, id: q.header.id, op: q.header.op + 1, version: 1 });
      }
    });

    it("our encoder reproduces the recorded requests exactly (command ids, key order, bodies)", () => {
      const parts: Uint8Array[] = [];
      for (const p of tx.packets) {
        const { length: _len, ...h } = p.header;
        parts.push(...encodeFrames(g.framing, buildPacket(h, encodeCbor(p.body))));
      }
      expect(Buffer.compare(Buffer.concat(parts), Buffer.from(txBytes))).toBe(0);
      // commit = write id 2, load = read id 3, save = write id 3, read/write = id 0, delete = write id 1
      expect(settingsReqs.slice(0, 3).map((p) => [p.header.op, p.header.id])).toEqual([[2, 2], [0, 3], [2, 3]]);
    });

    it("the device's raw answers: {} for commit/load, v2 group errors {err: {group 3, rc}}, and a v1 rc for an empty name", () => {
      const [commit, load, save] = settingsReqs;
      expect(replyTo(commit.header.seq)).toEqual([{}]);
      expect(replyTo(load.header.seq)).toEqual([{}]);
      expect(replyTo(save.header.seq)).toEqual([{ err: { group: 3, rc: SETTINGS_ERR.SaveNotSupported } }]);
      const byName = (name: string, op: number, id = 0) => settingsReqs.filter((p) => (p.body as { name?: string }).name === name && p.header.op === op && p.header.id === id);
      for (const q of byName('fb/interval', 0)) expect(replyTo(q.header.seq)).toEqual([{ err: { group: 3, rc: SETTINGS_ERR.RootKeyNotFound } }]);
      expect(replyTo(byName('fb/interval', 2, 1)[0].header.seq)).toEqual([{ err: { group: 3, rc: SETTINGS_ERR.KeyNotFound } }]);
      expect(replyTo(byName('x'.repeat(31), 0)[0].header.seq)).toEqual([{ err: { group: 3, rc: SETTINGS_ERR.RootKeyNotFound } }]);
      expect(replyTo(byName('x'.repeat(32), 0)[0].header.seq)).toEqual([{ err: { group: 3, rc: SETTINGS_ERR.KeyTooLong } }]);
      expect(replyTo(byName('', 0)[0].header.seq)).toEqual([{ rc: 3 }]);
    });

    it('the recorded outcomes, as our client reports them', () => {
      expect(step('commit')).toEqual({ ok: true });
      expect(step('load')).toEqual({ ok: true });
      expect(step('save')).toEqual({ ok: false, kind: 'group', group: 3, rc: 8, text: 'the device could not save its settings (no writable settings storage)' });
      expect(step('read fb/interval')).toMatchObject({ ok: false, kind: 'group', rc: 5, text: 'no settings handler for this name (unknown subtree) (fb/interval)' });
      expect(step('delete fb/interval')).toMatchObject({ ok: false, kind: 'group', rc: 3, text: 'no such setting (fb/interval)' });
      // CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN 32 includes the NUL: 31 characters pass the length check, 32 do not
      expect(step('read a 31-character name')).toMatchObject({ rc: SETTINGS_ERR.RootKeyNotFound });
      expect(step('read a 32-character name')).toMatchObject({ rc: SETTINGS_ERR.KeyTooLong, text: 'setting name too long for the device (32 chars)' });
      expect(step('read an empty name')).toMatchObject({ ok: false, kind: 'rc', rc: 3 });
      expect(step('configure op: read the reference schema from a stock device')).toEqual({ ok: false, kind: 'configure', text: 'no settings handler for this name (unknown subtree) (fb/interval)' });
    });

    it('the whole session replays: same bytes out, same outcomes', async () => {
      const link = new ReplayLink(g.chunks, `replay ${g.fixture}`);
      const s = await openSession(link, { framing: g.framing, timeoutMs: g.session.timeoutMs, initialSeq: g.session.firstSeq });
      const steps = await runSettingsScript(s);
      expect(link.mismatch).toBeUndefined();
      expect(link.finished, link.position).toBe(true);
      expect(JSON.parse(JSON.stringify(steps))).toEqual(JSON.parse(JSON.stringify(g.steps)));
      await s.close();
    });

    it('a different name on the wire is caught by the replay', async () => {
      const link = new ReplayLink(g.chunks, `replay ${g.fixture}`);
      const s = await openSession(link, { framing: g.framing, timeoutMs: 300, initialSeq: g.session.firstSeq });
      // the recorded session's second request is the enum list, not a settings read
      await expect(readSetting(s.client, 'fb/other')).rejects.toMatchObject({ kind: 'closed' });
      expect(link.mismatch).toMatch(/^tx differs from the recording/);
      await s.close();
    });
  });
}

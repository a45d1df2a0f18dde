/**
 * Settings group (3) against a real Zephyr 4.4.0 smp_server (native_sim, raw
 * framing): what runSettingsScript() does, the recorder
 * (`FIELDBENCH_RECORD=1 npx tsx tests/peer/settings-peer.ts`) writing
 * tests/golden/peer/settings/<fixture>.json, replayed by
 * tests/unit/golden-settings.test.ts. The transcript holds only settings
 * requests and the device's answers (no firmware bytes), so chunks are kept
 * raw both ways.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordLink } from '../../src/core/link/recording.ts';
import { listGroups } from '../../src/core/groups/enum.ts';
import { commitSettings, deleteSetting, describeSettingsError, loadSettings, readSetting, saveSettings, writeSetting } from '../../src/core/groups/settings.ts';
import { readStockSettings } from '../../src/core/ops/configuration/read.ts';
import { FIELDBENCH_REF_SCHEMA } from '../../src/core/ops/configuration/schema.ts';
import { SmpError } from '../../src/core/smp/errors.ts';
import { openSession, type SmpSession } from '../../src/core/groups/session.ts';
import { launchFixture, zephyrVersionOf, type PeerFixtureId } from './fixtures.ts';
import { bytesReplacer } from './script.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const SETTINGS_GOLDEN_DIR = resolve(here, '../golden/peer/settings');
export const SETTINGS_FIXTURE: PeerFixtureId = 'native_sim.serial_raw';
export const SETTINGS_TIMEOUT_MS = 2000;
export const SETTINGS_FIRST_SEQ = 1;

export type SettingsOutcome =
  | { ok: true; value?: unknown }
  | { ok: false; kind: string; rc?: number; group?: number; text: string };

export interface SettingsStep {
  what: string;
  outcome: SettingsOutcome;
}

async function step(what: string, name: string | undefined, p: Promise<unknown>): Promise<SettingsStep> {
  try {
    const v = await p;
    return { what, outcome: v === undefined ? { ok: true } : { ok: true, value: v } };
  } catch (e) {
    if (e instanceof SmpError) {
      return { what, outcome: { ok: false, kind: e.kind, ...(e.rc !== undefined ? { rc: e.rc } : {}), ...(e.group !== undefined ? { group: e.group } : {}), text: describeSettingsError(e, name) } };
    }
    if (e instanceof Error && e.name === 'ConfigureError') return { what, outcome: { ok: false, kind: 'configure', text: e.message } };
    throw e;
  }
}

/** Deterministic given the same replies. */
export async function runSettingsScript(s: SmpSession): Promise<SettingsStep[]> {
  const c = s.client;
  const o = { timeoutMs: SETTINGS_TIMEOUT_MS };
  const steps: SettingsStep[] = [];
  steps.push(await step('enum: groups include settings (3)', undefined, listGroups(c).then((g) => g.map((x) => x.id))));
  steps.push(await step('commit', undefined, commitSettings(c, o)));
  steps.push(await step('load', undefined, loadSettings(c, o)));
  steps.push(await step('save', undefined, saveSettings(c, o)));
  steps.push(await step('read fb/interval', 'fb/interval', readSetting(c, 'fb/interval', o)));
  steps.push(await step('read fb/interval max_size 100', 'fb/interval', readSetting(c, 'fb/interval', { ...o, maxSize: 100 })));
  steps.push(await step('write fb/interval 60 (u32 le)', 'fb/interval', writeSetting(c, 'fb/interval', Uint8Array.of(60, 0, 0, 0), o)));
  steps.push(await step('delete fb/interval', 'fb/interval', deleteSetting(c, 'fb/interval', o)));
  // name length limit: CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN (32) counts the terminating NUL
  for (const n of [31, 32, 40]) steps.push(await step(`read a ${n}-character name`, `${n} chars`, readSetting(c, 'x'.repeat(n), o)));
  steps.push(await step('read an empty name', '(empty)', readSetting(c, '', o)));
  steps.push(await step('write an empty value to fb/x', 'fb/x', writeSetting(c, 'fb/x', new Uint8Array(0), o)));
  steps.push(await step('configure op: read the reference schema from a stock device', undefined, readStockSettings(c, FIELDBENCH_REF_SCHEMA)));
  return steps;
}

export async function recordSettings(id: PeerFixtureId = SETTINGS_FIXTURE): Promise<{ file: string; golden: unknown }> {
  const fx = await launchFixture(id);
  try {
    const rl = recordLink(await fx.open(), { peer: `zephyr ${zephyrVersionOf(fx.entry)} ${id} (${fx.entry.artifact})`, framing: fx.framing });
    const s = await openSession(rl, { framing: fx.framing, lineGapMs: fx.lineGapMs, timeoutMs: SETTINGS_TIMEOUT_MS, initialSeq: SETTINGS_FIRST_SEQ });
    const steps = await runSettingsScript(s);
    await s.close();
    const t = rl.toTranscript();
    const golden = {
      fixture: id,
      zephyrVersion: zephyrVersionOf(fx.entry),
      artifact: fx.entry.artifact,
      groups: fx.entry.groups,
      peer: t.peer,
      framing: t.framing,
      recordedAt: t.recordedAt,
      session: { lineGapMs: fx.lineGapMs, timeoutMs: SETTINGS_TIMEOUT_MS, firstSeq: SETTINGS_FIRST_SEQ },
      steps,
      chunks: t.chunks,
    };
    mkdirSync(SETTINGS_GOLDEN_DIR, { recursive: true });
    const file = join(SETTINGS_GOLDEN_DIR, `${id}.json`);
    if (process.env.FIELDBENCH_RECORD === '1') writeFileSync(file, JSON.stringify(golden, bytesReplacer, 1) + '\n');
    return { file, golden };
  } finally {
    await fx.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { file, golden } = await recordSettings();
  console.log(JSON.stringify((golden as { steps: unknown }).steps, bytesReplacer, 1));
  if (process.env.FIELDBENCH_RECORD === '1') console.log(`recorded ${file}`);
}

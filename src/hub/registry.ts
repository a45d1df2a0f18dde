/**
 * The fleet registry, fed by ingested entries (inside the push's transaction).
 *
 * A device is keyed by its strongest identifier (its "anchor"): the device
 * public key, else the UEID, else the serial. Every identifier a source saw on
 * a device is a sighting (kind, value, anchor, source).
 *
 * Collisions: one serial, DevEUI or MAC seen on two devices with different
 * keys (or UEIDs); or one device key seen with two serials (a cloned key).
 * Each is named with the sources that saw each side.
 *
 * Drift: an attestation whose firmware measurement, configuration digest or
 * security counter differs from the device's last attested state in a way no
 * recorded (signed) update or configuration since then explains.
 */
import type { AuditExportEntry } from '../core/store/audit.ts';
import { anchorOf, canonicalIds, regEntry, type RegEntry } from './batch.ts';
import type { Sql } from './db.ts';
import { recordCampaignResults, type ResultCandidate } from './campaigns.ts';

const KINDS = ['serial', 'devicePublicKey', 'ueid', 'mac', 'devEui'] as const;
type Kind = (typeof KINDS)[number];
/** Kinds that two devices must never share. */
const UNIQUE_KINDS: Kind[] = ['serial', 'devEui', 'mac', 'ueid'];

interface DeviceRow {
  /** Numeric id (sightings refer to it); 0 until the row is stored. */
  id: number;
  anchor: string;
  serial: string | null;
  device_public_key: string | null;
  ueid: string | null;
  mac: string | null;
  dev_eui: string | null;
  model: string | null;
  firmware: string | null;
  measurement: string | null;
  security_counter: number | null;
  config_digest: string | null;
  attest_verdict: string | null;
  attest_time: number | null;
  measurements: unknown;
  expected: { measurement?: string; version?: string; config?: boolean };
  first_seen: number;
  last_seen: number;
  entries: number;
}

interface DriftRow {
  anchor: string;
  hash: string;
  kind: string;
  reason: string;
  time: number;
}

const COLS: Record<Kind, keyof DeviceRow> = { serial: 'serial', devicePublicKey: 'device_public_key', ueid: 'ueid', mac: 'mac', devEui: 'dev_eui' };

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined);

export { anchorOf };

/** Apply new entries (oldest first) of one source to the registry. */
export async function updateRegistry(tx: Sql, sourceId: string, es: AuditExportEntry[]): Promise<void> {
  await applyToRegistry(tx, sourceId, es.map(regEntry));
}

/**
 * The same, from the registry's view of each entry (src/hub/batch.ts; null: no device to key).
 * Returns the collision probe's input when it ran, for recheckCollisions after the commit.
 */
export async function applyToRegistry(tx: Sql, sourceId: string, es: (RegEntry | null)[]): Promise<string | undefined> {
  const touched = new Map<string, RegEntry[]>();
  for (const e of es) {
    if (!e) continue;
    let l = touched.get(e.anchor);
    if (!l) touched.set(e.anchor, (l = []));
    l.push(e);
  }
  if (!touched.size) return undefined;
  const anchors = [...touched.keys()].sort();
  // Two pushes about one device serialise on the device's row (sorted: no deadlock). Row locks,
  // not advisory ones: a batch of thousands of new devices times concurrent pushes would exhaust
  // PostgreSQL's lock table (max_locks_per_transaction), which holds every advisory lock until
  // commit. Held devices are locked here; a device the hub has not seen is written once, below,
  // by an INSERT that waits for (and then yields to) a concurrent push inserting the same anchor:
  // those few are then locked and computed again from the row that push left.
  const held = await lockDevices(tx, anchors);
  const outcome = fold(touched, held);
  const fresh = outcome.rows.filter((d) => !held.has(d.anchor));
  const ids = new Map<string, number>();
  for (const [a, d] of held) ids.set(a, d.id);
  let raced: string[] = [];
  if (fresh.length) {
    const ins = await tx.query<{ anchor: string; id: string | number }>(`INSERT INTO devices ${DEVICE_COLS} SELECT * FROM ${DEVICE_ROWS} ORDER BY anchor ON CONFLICT (anchor) DO NOTHING RETURNING anchor, id`, [JSON.stringify(fresh.map(({ id: _, ...d }) => d))]);
    for (const r of ins) ids.set(r.anchor, Number(r.id));
    if (ins.length < fresh.length) raced = fresh.map((d) => d.anchor).filter((a) => !ids.has(a));
  }
  let final = outcome;
  if (raced.length) {
    // another push created these devices meanwhile: fold this push's entries over what it stored
    for (const [a, d] of await lockDevices(tx, raced)) {
      held.set(a, d);
      ids.set(a, d.id);
    }
    final = fold(touched, held);
  }
  const update = final.rows.filter((d) => held.has(d.anchor));
  if (update.length) {
    await tx.query(
      `UPDATE devices AS t SET serial = r.serial, device_public_key = r.device_public_key, ueid = r.ueid,
          mac = r.mac, dev_eui = r.dev_eui, model = r.model, firmware = r.firmware, measurement = r.measurement,
          security_counter = r.security_counter, config_digest = r.config_digest, attest_verdict = r.attest_verdict,
          attest_time = r.attest_time, measurements = r.measurements, expected = r.expected, first_seen = r.first_seen,
          last_seen = r.last_seen, entries = r.entries
       FROM ${DEVICE_ROWS} WHERE t.anchor = r.anchor`,
      [JSON.stringify(update.map(({ id: _, ...d }) => d))],
    );
  }
  const { drift, sightings, results } = final;
  // One set-based upsert of every sighting. The rows travel as one JSON text: JSON.stringify is
  // native, while the driver escapes array parameters element by element in JavaScript.
  // `p` marks the (kind, value, device) combinations the collision probe below needs, those that
  // may be new: a held device's own identifier of that kind was sighted, and checked, when it was
  // first stored.
  const sRows: { k: string; v: string; d: number; f: number; l: number; p?: 1 }[] = [];
  const serialsOf = new Map<string, Set<string>>();
  let probes = 0;
  for (const s of sightings.values()) {
    const h = held.get(s.anchor);
    const r: (typeof sRows)[number] = { k: s.kind, v: s.value, d: ids.get(s.anchor)!, f: s.first, l: s.last };
    if (s.kind === 'serial') {
      let l = serialsOf.get(s.anchor);
      if (!l) serialsOf.set(s.anchor, (l = new Set()));
      l.add(s.value);
    }
    if ((UNIQUE_KINDS as string[]).includes(s.kind) && !(h && h[COLS[s.kind as Kind]] === s.value)) {
      r.p = 1;
      probes++;
    }
    sRows.push(r);
  }
  const sJson = JSON.stringify(sRows);
  await tx.query(
    `INSERT INTO sightings AS t (kind, value, device, source_id, first_seen, last_seen)
     SELECT r.k, r.v, r.d, $1, r.f, r.l FROM json_to_recordset($2::json) AS r(k text, v text, d bigint, f bigint, l bigint)
     ON CONFLICT (kind, value, device, source_id) DO UPDATE SET first_seen = least(t.first_seen, excluded.first_seen), last_seen = greatest(t.last_seen, excluded.last_seen)`,
    [sourceId, sJson],
  );
  // Collisions among what this push touched: an identifier of a unique kind now on two devices
  // anchored by key or UEID. First a cheap index probe (another device with it at all?), then the
  // full rule for those few.
  if (probes) await probeCollisions(tx, sJson);
  // One device key with two serials (a cloned key): only possible where this push brought a serial
  // the device did not carry (a new device with two, or a held one with another).
  const keyDevices: number[] = [];
  for (const [a, set] of serialsOf) {
    if (!a.startsWith('key:')) continue;
    const h = held.get(a);
    if (h ? [...set].some((v) => v !== h.serial) : set.size > 1) keyDevices.push(ids.get(a)!);
  }
  if (keyDevices.length) {
    await tx.query(
      `INSERT INTO collisions (kind, value)
       SELECT 'devicePublicKey', substr(d.anchor, 5) FROM sightings s JOIN devices d ON d.id = s.device
       WHERE s.kind = 'serial' AND s.device = ANY($1::bigint[])
       GROUP BY d.anchor HAVING count(DISTINCT s.value) > 1
       ON CONFLICT DO NOTHING`,
      [keyDevices],
    );
  }
  await recordCampaignResults(tx, results);
  if (drift.length) {
    await tx.query(
      `INSERT INTO drift (anchor, entry_hash, source_id, kind, reason, time)
       SELECT r.anchor, decode(r.hash, 'hex'), $2, r.kind, r.reason, r.time FROM jsonb_to_recordset($1::jsonb) AS r(anchor text, hash text, kind text, reason text, time bigint)
       ON CONFLICT (entry_hash, kind) DO NOTHING`,
      [JSON.stringify(drift), sourceId],
    );
  }
  return probes ? sJson : undefined;
}

/**
 * Collisions among the pushed identifiers marked `p` in `json` (the sightings' JSON of
 * applyToRegistry): an identifier of a unique kind on two devices anchored by key or UEID.
 * First a cheap index probe (another device with it at all?), then the full rule for those few.
 * LATERAL ... LIMIT 1 keeps both steps index probes of the pushed identifiers: a join the
 * planner is free to choose becomes a sort of the whole table on every push.
 */
async function probeCollisions(db: Sql, json: string): Promise<void> {
  await db.query(
    `WITH c AS (SELECT DISTINCT p.k AS kind, p.v AS value FROM json_to_recordset($1::json) AS p(k text, v text, d bigint, p int)
                CROSS JOIN LATERAL (SELECT 1 FROM sightings s WHERE s.kind = p.k AND s.value = p.v AND s.device <> p.d LIMIT 1) o
                WHERE p.p = 1)
     INSERT INTO collisions (kind, value)
     SELECT c.kind, c.value FROM c CROSS JOIN LATERAL (
       SELECT count(DISTINCT s.device) AS n FROM sightings s JOIN devices d ON d.id = s.device
       WHERE s.kind = c.kind AND s.value = c.value AND d.anchor NOT LIKE 'serial:%') k
     WHERE k.n > 1
     ORDER BY c.kind, c.value
     ON CONFLICT DO NOTHING`,
    [json],
  );
}

/**
 * The same probe again, after the push committed, on PostgreSQL. Inside the transaction the
 * probe sees only committed sightings and the push's own: two pushes committing at the same
 * moment, about two devices that share an identifier, would each see one device. After its
 * commit, each push's statement sees every push committed before it, so of two such pushes
 * the later one to commit finds the pair. (PGlite runs one transaction at a time: nothing to
 * re-check.) Collisions are inserted with ON CONFLICT DO NOTHING: running it twice is harmless.
 */
export async function recheckCollisions(db: Sql & { kind: string }, json: string): Promise<void> {
  if (db.kind === 'pglite') return;
  await probeCollisions(db, json);
}

/**
 * Collision re-checks a hub killed after a push's commit did not run
 * (pending_rechecks, written in the push's transaction): each pending push's
 * probe is rebuilt from its stored entries (their identifiers of the kinds
 * two devices must never share, on the devices they were filed under) and
 * run, then its row is deleted. Run at start, before the hub listens, on
 * PostgreSQL. Returns how many pushes were re-checked.
 */
export async function recoverRechecks(db: Sql & { kind: string }): Promise<number> {
  if (db.kind === 'pglite') return 0;
  const pending = await db.query<{ id: string; source_id: string; from_seq: string; to_seq: string }>('SELECT id, source_id, from_seq, to_seq FROM pending_rechecks ORDER BY id');
  for (const r of pending) {
    const es = await db.query<{ device: AuditExportEntry['device'] }>('SELECT device FROM entries WHERE source_id = $1 AND seq >= $2 AND seq <= $3', [r.source_id, r.from_seq, r.to_seq]);
    const want: { k: string; v: string; a: string }[] = [];
    for (const e of es) {
      const d = canonicalIds(e.device ?? {});
      const a = anchorOf(d);
      if (!a) continue;
      for (const k of UNIQUE_KINDS) if (d[k]) want.push({ k, v: d[k]!, a });
    }
    if (want.length) {
      const ids = new Map((await db.query<{ anchor: string; id: string }>('SELECT anchor, id FROM devices WHERE anchor = ANY($1::text[])', [[...new Set(want.map((w) => w.a))]])).map((x) => [x.anchor, Number(x.id)]));
      const rows = want.filter((w) => ids.has(w.a)).map((w) => ({ k: w.k, v: w.v, d: ids.get(w.a)!, p: 1 }));
      if (rows.length) await probeCollisions(db, JSON.stringify(rows));
    }
    await db.query('DELETE FROM pending_rechecks WHERE id = $1', [r.id]);
  }
  return pending.length;
}

const DEVICE_COLS = `(anchor, serial, device_public_key, ueid, mac, dev_eui, model, firmware, measurement, security_counter, config_digest,
        attest_verdict, attest_time, measurements, expected, first_seen, last_seen, entries)`;
const DEVICE_ROWS = `json_to_recordset($1::json) AS r(anchor text, serial text, device_public_key text, ueid text, mac text, dev_eui text, model text,
        firmware text, measurement text, security_counter bigint, config_digest text, attest_verdict text, attest_time bigint, measurements jsonb,
        expected jsonb, first_seen bigint, last_seen bigint, entries bigint)`;

/** The held rows of these anchors (sorted), locked until the push's transaction ends. */
async function lockDevices(tx: Sql, anchors: string[]): Promise<Map<string, DeviceRow>> {
  const held = await tx.query<DeviceRow>('SELECT * FROM devices WHERE anchor = ANY($1::text[]) ORDER BY anchor FOR UPDATE', [anchors]);
  return new Map(held.map((r) => [r.anchor, { ...r, id: Number(r.id), security_counter: r.security_counter === null ? null : Number(r.security_counter), attest_time: r.attest_time === null ? null : Number(r.attest_time), first_seen: Number(r.first_seen), last_seen: Number(r.last_seen), entries: Number(r.entries) }]));
}

interface Folded {
  /** The new state of every touched device. */
  rows: DeviceRow[];
  drift: DriftRow[];
  sightings: Map<string, { kind: string; value: string; anchor: string; first: number; last: number }>;
  results: ResultCandidate[];
}

/** This push's entries applied over the held state (not modified; a device not held starts empty). */
function fold(touched: Map<string, RegEntry[]>, held: Map<string, DeviceRow>): Folded {
  const drift: DriftRow[] = [];
  const sightings: Folded['sightings'] = new Map();
  const results: ResultCandidate[] = [];
  const rows: DeviceRow[] = [];
  for (const [anchor, list] of touched) {
    const h = held.get(anchor);
    const d: DeviceRow = h
      ? { ...h, expected: { ...h.expected } }
      : {
          id: 0, anchor, serial: null, device_public_key: null, ueid: null, mac: null, dev_eui: null, model: null, firmware: null, measurement: null,
          security_counter: null, config_digest: null, attest_verdict: null, attest_time: null, measurements: null, expected: {},
          first_seen: list[0].time, last_seen: list[0].time, entries: 0,
        };
    rows.push(d);
    for (const e of list) {
      d.entries++;
      d.first_seen = Math.min(d.first_seen, e.time);
      d.last_seen = Math.max(d.last_seen, e.time);
      // A device keyed by its public key carries the key in its anchor: the key is sighted (a row of
      // its own) only by an entry that names nothing else, so that every entry leaves its source and
      // time in some sighting of the device. lookupIdentifier answers for a key from all of them.
      const keyInAnchor = anchor.startsWith('key:') && (!!e.device.serial || !!e.device.ueid || !!e.device.mac || !!e.device.devEui);
      for (const k of KINDS) {
        const v = e.device[k];
        if (!v) continue;
        (d as unknown as Record<string, unknown>)[COLS[k]] = v;
        if (k === 'devicePublicKey' && keyInAnchor) continue;
        const key = `${k}\u0000${v}\u0000${anchor}`;
        const s = sightings.get(key);
        if (s) {
          s.first = Math.min(s.first, e.time);
          s.last = Math.max(s.last, e.time);
        } else sightings.set(key, { kind: k, value: v, anchor, first: e.time, last: e.time });
      }
      // campaign results: the device as it stood when the update/configuration was recorded
      if (e.op === 'update' || e.op === 'configure') results.push({ anchor, entry: e, device: { model: d.model, firmware: d.firmware, serial: d.serial } });
      applyEntry(d, e, drift);
    }
  }
  return { rows, drift, sightings, results };
}

/** One entry's effect on a device's last known state; drift found is pushed to `drift`. */
function applyEntry(d: DeviceRow, e: RegEntry, drift: DriftRow[]): void {
  const det = (e.details ?? {}) as Record<string, unknown>;
  const good = e.outcome === 'ok' || e.outcome === 'attention';
  if (e.op === 'identify' && str(det.model)) d.model = str(det.model)!;
  if (e.op === 'update' && good) {
    d.expected = { ...d.expected, measurement: str(det.hash) ?? d.expected.measurement, version: str(det.version) ?? str(det.imageVersion) ?? d.expected.version };
  }
  if (e.op === 'configure' && good) d.expected = { ...d.expected, config: true };
  if (e.op !== 'attest') return;
  const claims = det.claims as Record<string, unknown> | undefined;
  d.attest_verdict = str(det.verdict) ?? d.attest_verdict;
  d.attest_time = e.time;
  if (!claims || typeof claims !== 'object') return;
  const sw = Array.isArray(claims.software) ? (claims.software as Record<string, unknown>[]) : [];
  const m1 = str(sw[0]?.measurement);
  const v1 = str(sw[0]?.version);
  const c1 = num(claims.securityCounter);
  const d1 = str(claims.configDigest);
  const reasons: { kind: string; reason: string }[] = [];
  if (d.measurement && m1 && m1 !== d.measurement) {
    const explained = d.expected.measurement === m1 || (!!v1 && d.expected.version === v1 && d.firmware !== v1);
    if (!explained) reasons.push({ kind: 'firmware', reason: `firmware measurement changed from ${d.measurement.slice(0, 16)}… (${d.firmware ?? '?'}) to ${m1.slice(0, 16)}… (${v1 ?? '?'}) with no recorded update to it` });
  }
  if (d.security_counter !== null && c1 !== undefined && c1 < d.security_counter) {
    reasons.push({ kind: 'rollback', reason: `security counter went down from ${d.security_counter} to ${c1}` });
  }
  if (d.config_digest && d1 && d1 !== d.config_digest && !d.expected.config) {
    reasons.push({ kind: 'configuration', reason: `configuration digest changed from ${d.config_digest.slice(0, 16)}… to ${d1.slice(0, 16)}… with no recorded configuration` });
  }
  for (const r of reasons) drift.push({ anchor: d.anchor, hash: e.hash, kind: r.kind, reason: r.reason, time: e.time });
  if (m1) d.measurement = m1;
  if (v1) d.firmware = v1;
  if (c1 !== undefined) d.security_counter = c1;
  if (d1) d.config_digest = d1;
  d.measurements = sw;
  d.expected = {};
}

// ---------------------------------------------------------------- queries

export interface Side {
  anchor: string;
  device: Record<string, string | null>;
  sources: { source: string; label: string; firstSeen: number; lastSeen: number }[];
}

export interface Collision {
  kind: string;
  value: string;
  detected: string;
  sides: Side[];
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Everything the hub knows about one identifier: the devices that carry it and who saw them. */
export async function lookupIdentifier(db: Sql, kind: string, value: string): Promise<Side[]> {
  type Row = { anchor: string; genesis: Uint8Array; label: string; first_seen: string; last_seen: string; serial: string | null; device_public_key: string | null; dev_eui: string | null; mac: string | null; ueid: string | null };
  // A device key is the anchor of its device, and every entry that named it is folded there (its
  // key is sighted only where an entry named nothing else, src/hub/registry.ts fold): who saw the
  // key, and when, is who saw that device, from all of its sightings.
  const rows =
    kind === 'devicePublicKey'
      ? await db.query<Row>(
          `SELECT d.anchor, src.genesis, src.label, s.first_seen, s.last_seen, d.serial, d.device_public_key, d.dev_eui, d.mac, d.ueid
           FROM devices d
           CROSS JOIN LATERAL (SELECT source_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen FROM sightings WHERE device = d.id GROUP BY source_id) s
           JOIN sources src ON src.id = s.source_id
           WHERE d.anchor = 'key:' || $1 ORDER BY s.first_seen, src.id`,
          [value],
        )
      : await db.query<Row>(
          `SELECT d.anchor, src.genesis, src.label, s.first_seen, s.last_seen, d.serial, d.device_public_key, d.dev_eui, d.mac, d.ueid
           FROM sightings s JOIN sources src ON src.id = s.source_id JOIN devices d ON d.id = s.device
           WHERE s.kind = $1 AND s.value = $2 ORDER BY d.anchor, s.first_seen`,
          [kind, value],
        );
  const sides = new Map<string, Side>();
  for (const r of rows) {
    let s = sides.get(r.anchor);
    if (!s) sides.set(r.anchor, (s = { anchor: r.anchor, device: { serial: r.serial, devicePublicKey: r.device_public_key, ueid: r.ueid, mac: r.mac, devEui: r.dev_eui }, sources: [] }));
    s.sources.push({ source: hexOf(r.genesis), label: r.label, firstSeen: Number(r.first_seen), lastSeen: Number(r.last_seen) });
  }
  return [...sides.values()];
}

/** Fleet-wide collisions, each with the sources on each side. */
export async function listCollisions(db: Sql, limit = 1000): Promise<Collision[]> {
  const cs = await db.query<{ kind: string; value: string; detected: Date | string }>('SELECT kind, value, detected FROM collisions ORDER BY detected, kind, value LIMIT $1', [limit]);
  const out: Collision[] = [];
  for (const c of cs) {
    let sides: Side[];
    if (c.kind === 'devicePublicKey') {
      // one key, several serials: each serial is a side
      const serials = await db.query<{ value: string }>(`SELECT DISTINCT s.value FROM sightings s JOIN devices d ON d.id = s.device WHERE s.kind = 'serial' AND d.anchor = $1 ORDER BY s.value`, [`key:${c.value}`]);
      sides = [];
      for (const s of serials) {
        const l = (await lookupIdentifier(db, 'serial', s.value)).filter((x) => x.anchor === `key:${c.value}`);
        for (const x of l) sides.push({ ...x, device: { ...x.device, serial: s.value } });
      }
    } else sides = (await lookupIdentifier(db, c.kind, c.value)).filter((s) => !s.anchor.startsWith('serial:'));
    out.push({ kind: c.kind, value: c.value, detected: new Date(c.detected).toISOString(), sides });
  }
  return out;
}

export interface DeviceState {
  anchor: string;
  ids: Record<string, string | null>;
  model: string | null;
  firmware: string | null;
  measurement: string | null;
  securityCounter: number | null;
  configDigest: string | null;
  attestation: { verdict: string | null; time: number | null; measurements: unknown };
  firstSeen: number;
  lastSeen: number;
  entries: number;
  drift: { kind: string; reason: string; time: number }[];
}

export async function deviceState(db: Sql, anchor: string): Promise<DeviceState | null> {
  const r = (await db.query<DeviceRow>('SELECT * FROM devices WHERE anchor = $1', [anchor]))[0];
  if (!r) return null;
  const drift = await db.query<{ kind: string; reason: string; time: string }>('SELECT kind, reason, time FROM drift WHERE anchor = $1 ORDER BY time', [anchor]);
  return {
    anchor: r.anchor,
    ids: { serial: r.serial, devicePublicKey: r.device_public_key, ueid: r.ueid, mac: r.mac, devEui: r.dev_eui },
    model: r.model,
    firmware: r.firmware,
    measurement: r.measurement,
    securityCounter: r.security_counter === null ? null : Number(r.security_counter),
    configDigest: r.config_digest,
    attestation: { verdict: r.attest_verdict, time: r.attest_time === null ? null : Number(r.attest_time), measurements: r.measurements },
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
    entries: Number(r.entries),
    drift: drift.map((d) => ({ kind: d.kind, reason: d.reason, time: Number(d.time) })),
  };
}

export async function listDrift(db: Sql, limit = 1000): Promise<{ anchor: string; kind: string; reason: string; time: number; source: string }[]> {
  const r = await db.query<{ anchor: string; kind: string; reason: string; time: string; genesis: Uint8Array }>(
    'SELECT d.anchor, d.kind, d.reason, d.time, s.genesis FROM drift d JOIN sources s ON s.id = d.source_id ORDER BY d.id LIMIT $1',
    [limit],
  );
  return r.map((x) => ({ anchor: x.anchor, kind: x.kind, reason: x.reason, time: Number(x.time), source: hexOf(x.genesis) }));
}

/**
 * The hub's schema, as ordered migrations. Never edit a released migration:
 * add a new one. docs/HUB.md describes the tables.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string[];
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'records, registry, access',
    sql: [
      // One row per hash chain (an app's audit trail or a station's control log),
      // named by the hash of its first entry.
      `CREATE TABLE sources (
        id bigserial PRIMARY KEY,
        genesis bytea NOT NULL UNIQUE,
        head_seq bigint NOT NULL,
        head_hash bytea NOT NULL,
        label text NOT NULL,
        first_push timestamptz NOT NULL DEFAULT now(),
        last_push timestamptz NOT NULL DEFAULT now(),
        last_pusher text NOT NULL,
        gap jsonb
      )`,
      `CREATE TABLE entries (
        source_id bigint NOT NULL REFERENCES sources(id),
        seq bigint NOT NULL,
        hash bytea NOT NULL,
        prev bytea NOT NULL,
        time bigint NOT NULL,
        technician_id text NOT NULL,
        key_id text NOT NULL,
        op text NOT NULL,
        outcome text NOT NULL,
        device jsonb NOT NULL,
        details jsonb,
        sig bytea NOT NULL,
        signer bytea NOT NULL,
        received timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_id, seq)
      )`,
      `CREATE UNIQUE INDEX entries_hash ON entries (hash)`,
      // The fleet registry: one row per device, keyed by its strongest identifier.
      `CREATE TABLE devices (
        anchor text PRIMARY KEY,
        serial text,
        device_public_key text,
        ueid text,
        mac text,
        dev_eui text,
        model text,
        firmware text,
        measurement text,
        security_counter bigint,
        config_digest text,
        attest_verdict text,
        attest_time bigint,
        measurements jsonb,
        expected jsonb NOT NULL DEFAULT '{}'::jsonb,
        first_seen bigint NOT NULL,
        last_seen bigint NOT NULL,
        entries bigint NOT NULL DEFAULT 0
      )`,
      // Which source saw which identifier on which device.
      `CREATE TABLE sightings (
        kind text NOT NULL,
        value text NOT NULL,
        anchor text NOT NULL,
        source_id bigint NOT NULL REFERENCES sources(id),
        first_seen bigint NOT NULL,
        last_seen bigint NOT NULL,
        PRIMARY KEY (kind, value, anchor, source_id)
      )`,
      `CREATE INDEX sightings_anchor ON sightings (anchor)`,
      `CREATE TABLE collisions (
        kind text NOT NULL,
        value text NOT NULL,
        detected timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, value)
      )`,
      `CREATE TABLE drift (
        id bigserial PRIMARY KEY,
        anchor text NOT NULL,
        entry_hash bytea NOT NULL,
        source_id bigint NOT NULL REFERENCES sources(id),
        kind text NOT NULL,
        reason text NOT NULL,
        time bigint NOT NULL,
        UNIQUE (entry_hash, kind)
      )`,
      `CREATE INDEX drift_anchor ON drift (anchor)`,
      // Request nonces seen inside the replay window.
      `CREATE TABLE nonces (
        nonce bytea PRIMARY KEY,
        key_id text NOT NULL,
        expires bigint NOT NULL
      )`,
      `CREATE INDEX nonces_expires ON nonces (expires)`,
      // The held trust bundle (newest accepted version).
      `CREATE TABLE trust (
        id integer PRIMARY KEY CHECK (id = 1),
        version integer NOT NULL,
        bytes bytea NOT NULL,
        updated timestamptz NOT NULL DEFAULT now()
      )`,
    ],
  },
  {
    version: 2,
    name: 'identifier blocks, campaigns',
    sql: [
      `CREATE TABLE block_pools (
        kind text PRIMARY KEY,
        first numeric NOT NULL,
        last numeric NOT NULL,
        next numeric NOT NULL,
        pattern text
      )`,
      `CREATE TABLE blocks (
        id bigserial PRIMARY KEY,
        kind text NOT NULL REFERENCES block_pools(kind),
        first numeric NOT NULL,
        count numeric NOT NULL,
        station text NOT NULL,
        key_id text NOT NULL,
        request text UNIQUE,
        granted timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE artifacts (
        sha256 bytea PRIMARY KEY,
        kind text NOT NULL,
        bytes bytea NOT NULL,
        added timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE campaigns (
        id text PRIMARY KEY,
        bytes bytea NOT NULL,
        body jsonb NOT NULL,
        published timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE campaign_results (
        campaign_id text NOT NULL REFERENCES campaigns(id),
        device text NOT NULL,
        outcome text NOT NULL,
        detail text,
        time bigint NOT NULL,
        reporter text NOT NULL,
        PRIMARY KEY (campaign_id, device)
      )`,
    ],
  },
  {
    version: 3,
    name: 'campaign results per part, device tags, unit blocks',
    sql: [
      `ALTER TABLE campaigns ADD COLUMN not_after bigint`,
      `ALTER TABLE campaign_results ADD COLUMN part text NOT NULL DEFAULT 'image'`,
      `ALTER TABLE campaign_results ADD COLUMN entry_hash bytea`,
      `ALTER TABLE campaign_results DROP CONSTRAINT campaign_results_pkey`,
      `ALTER TABLE campaign_results ADD PRIMARY KEY (campaign_id, device, part)`,
      `CREATE INDEX campaign_results_device ON campaign_results (device)`,
      // Tags the fleet operator puts on devices (campaigns target them).
      `CREATE TABLE device_tags (
        anchor text NOT NULL,
        tag text NOT NULL,
        PRIMARY KEY (anchor, tag)
      )`,
      `CREATE INDEX device_tags_tag ON device_tags (tag)`,
      `CREATE INDEX devices_model ON devices (model)`,
      // unit blocks (a station allocator's index range) span every pool: their kind is 'units', not a pool's
      `ALTER TABLE blocks DROP CONSTRAINT blocks_kind_fkey`,
    ],
  },
  {
    version: 4,
    name: 'ingest: sources are never removed, in place of per-row foreign-key checks',
    sql: [
      // A foreign key costs one look-up and one row lock on `sources` per inserted row, for the
      // two tables every pushed entry writes to (about a third of a sighting's insert). The push
      // inserts only under the source row it holds locked, and a source is never removed or
      // renumbered: that invariant is enforced here instead, once, on `sources` itself.
      `ALTER TABLE entries DROP CONSTRAINT entries_source_id_fkey`,
      `ALTER TABLE sightings DROP CONSTRAINT sightings_source_id_fkey`,
      `CREATE FUNCTION hub_sources_stay() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'a source (hash chain) is never removed or renumbered: entries and sightings refer to it';
       END $$`,
      `CREATE TRIGGER sources_stay BEFORE DELETE OR UPDATE OF id ON sources FOR EACH ROW EXECUTE FUNCTION hub_sources_stay()`,
    ],
  },
  {
    version: 5,
    name: 'registry: numeric device ids in sightings',
    sql: [
      // A sighting named its device by the 68-character text anchor, in its heap row, in its
      // primary key and in a second index: about 40 % of a new device's registry cost. Devices get
      // a numeric id, and sightings refer to it (a bigint in both indexes). The anchor stays the
      // devices' primary key and the name every other table and the API use.
      `ALTER TABLE devices ADD COLUMN id bigserial`,
      `ALTER TABLE devices ADD CONSTRAINT devices_id UNIQUE (id)`,
      `CREATE TABLE sightings_v5 (
        kind text NOT NULL,
        value text NOT NULL,
        device bigint NOT NULL,
        source_id bigint NOT NULL,
        first_seen bigint NOT NULL,
        last_seen bigint NOT NULL,
        CONSTRAINT sightings_v5_pkey PRIMARY KEY (kind, value, device, source_id)
      )`,
      `INSERT INTO sightings_v5 (kind, value, device, source_id, first_seen, last_seen)
       SELECT s.kind, s.value, d.id, s.source_id, s.first_seen, s.last_seen FROM sightings s JOIN devices d ON d.anchor = s.anchor`,
      `DROP TABLE sightings`,
      `ALTER TABLE sightings_v5 RENAME TO sightings`,
      `ALTER INDEX sightings_v5_pkey RENAME TO sightings_pkey`,
      `CREATE INDEX sightings_device ON sightings (device)`,
    ],
  },
  {
    version: 6,
    name: 'registry: collision re-checks still to run after a commit',
    sql: [
      // A push on PostgreSQL runs its collision probe again after its commit (src/hub/registry.ts,
      // recheckCollisions). The row is written in the push's transaction and deleted after that
      // probe: a hub killed in between runs it at its next start (recoverRechecks).
      `CREATE TABLE pending_rechecks (
        id bigserial PRIMARY KEY,
        source_id bigint NOT NULL,
        from_seq bigint NOT NULL,
        to_seq bigint NOT NULL
      )`,
    ],
  },
];

-- threadlog schema. Applied idempotently at start-up (shared/db.py: apply_schema).

-- The log. Append-only: one row per event, ordered globally by (txid, position) for readers.
CREATE TABLE IF NOT EXISTS events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id. Readers of the global order stop below the oldest transaction still
    -- open (pg_snapshot_xmin), so a row that commits late is never stepped over (see store.py).
    txid            bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    stream_id       text NOT NULL,
    stream_version  integer NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    schema_version  smallint NOT NULL,
    tenant_id       text NOT NULL,
    -- The exact bytes msgspec wrote: replay is byte-for-byte and a hash chain over rows stays possible.
    payload         bytea NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    correlation_id  uuid,
    causation_id    uuid,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);
CREATE INDEX IF NOT EXISTS events_txid_position ON events (txid, position);

-- Events are never rewritten. Only an explicit, audited maintenance session may (tests of tamper detection).
CREATE OR REPLACE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('threadlog.allow_rewrite', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD WHEN TG_OP = 'TRUNCATE' THEN NULL ELSE NEW END;
END $$;
DROP TRIGGER IF EXISTS events_immutable ON events;
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
DROP TRIGGER IF EXISTS events_not_truncated ON events;
CREATE TRIGGER events_not_truncated BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- How far each follower of the log (the outbox relay, each projection) has got, as a (txid, position) cursor.
CREATE TABLE IF NOT EXISTS checkpoints (
    name        text PRIMARY KEY,
    txid        bigint NOT NULL DEFAULT 0,
    position    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Projects (tenants) and their API keys. Keys are stored as SHA-256 hashes only.
CREATE TABLE IF NOT EXISTS projects (
    project_id  text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (project_id),
    key_hash    bytea NOT NULL UNIQUE,
    key_hint    text NOT NULL,
    is_admin    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Which worker holds which run, until when. Not part of the record (a heartbeat is not an event):
-- the claim itself is an event appended at the expected version; this row only says the holder is alive.
CREATE TABLE IF NOT EXISTS run_leases (
    run_id       text PRIMARY KEY,
    worker_id    text NOT NULL,
    attempt      integer NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- Erasure rewrites an erased thread's payloads (content removed, structure kept); the row says so.
ALTER TABLE events ADD COLUMN IF NOT EXISTS redacted boolean NOT NULL DEFAULT false;

-- The tamper-evident chain, built off the write path by the sealer in the global order:
-- chain_hash = sha256(previous chain_hash || sha256(the event's envelope and payload hash)).
-- `seq` is dense (1, 2, 3…), so a removed chain row shows as well as a removed or edited event.
CREATE TABLE IF NOT EXISTS event_chain (
    seq          bigint PRIMARY KEY,
    position     bigint NOT NULL UNIQUE,
    payload_hash bytea NOT NULL,
    chain_hash   bytea NOT NULL
);

-- Safe retries: the first answer to a POST carrying an Idempotency-Key, per project and key.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant_id     text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    request_id    uuid NOT NULL,  -- the correlation id of every event the first request appended
    status        integer,        -- null while the first request is still being handled
    body          bytea,
    content_type  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Token budgets: per project (over a period) and per thread (over a period).
CREATE TABLE IF NOT EXISTS budgets (
    tenant_id  text NOT NULL,
    scope      text NOT NULL CHECK (scope IN ('project', 'thread')),
    period     text NOT NULL CHECK (period IN ('day', 'month', 'total')),
    tokens     bigint NOT NULL CHECK (tokens >= 0),
    PRIMARY KEY (tenant_id, scope)
);

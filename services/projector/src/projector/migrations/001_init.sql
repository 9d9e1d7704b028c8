-- Current state per sandbox (the source of truth the Redis read model is built from).
CREATE TABLE IF NOT EXISTS sandboxes (
    sandbox_id      text PRIMARY KEY,
    project_id      text,
    team_id         text,
    template_id     text,
    status          text,
    last_active_at  timestamptz,
    timeout_at      timestamptz,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Per-register stamps (time, rank, event id) that make the fold order-independent.
    stamps          jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at   timestamptz,
    last_event_at   timestamptz,
    revision        bigint NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sandboxes_project_idx ON sandboxes (project_id);
CREATE INDEX IF NOT EXISTS sandboxes_status_active_idx ON sandboxes (status, last_active_at);

-- Append-only history: one row per fact, whatever the number of deliveries.
CREATE TABLE IF NOT EXISTS sandbox_events (
    event_id        text PRIMARY KEY,
    sandbox_id      text NOT NULL,
    type            text NOT NULL,
    source          text NOT NULL,
    project_id      text,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    data            jsonb NOT NULL,
    schema_version  int NOT NULL,
    kafka_topic     text NOT NULL,
    kafka_partition int NOT NULL,
    kafka_offset    bigint NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sandbox_events_sandbox_idx ON sandbox_events (sandbox_id, occurred_at);

-- How far the projector has folded each partition, written in the same transaction as the
-- state it produced (for lag and replay bookkeeping; Kafka's committed offset drives resume).
CREATE TABLE IF NOT EXISTS projector_offsets (
    topic       text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

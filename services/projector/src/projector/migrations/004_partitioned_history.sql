-- Issue 15. The history, partitioned by day on occurred_at, so retention drops whole partitions
-- (HISTORY_RETENTION_DAYS; projector.history_retention plans it) instead of deleting rows.
--
-- Why occurred_at and not the time the projector stored the row: a partitioned table's unique
-- key must hold the partition key, and the key is what stores a fact delivered twice once.
-- occurred_at comes with the fact (the envelope), so every copy of a fact carries the same one and
-- (event_id, occurred_at) still stores it once, in the same partition, however late the copy
-- comes; a store time would put a redelivery on another day into another partition, twice.
-- What changes: a fact re-published under the same id with a new occurred_at (the actuator's
-- outcome of a redelivered command) is two rows, each attempt at its own time; a replay keys
-- its history the same way (replay/fold.py), so a rebuilt history equals the live one.
-- Ages follow occurred_at too, which is what an operator asks ("what happened in the last 90
-- days"); a late fact joins its own day's partition, or the default partition below.
--
-- Partitions are named sandbox_events_pYYYYMMDD ([day, day + 1) in UTC; the names are what
-- projector.history_retention reads). The DEFAULT partition takes a fact whose day has none
-- (older than the oldest, or beyond the days made ahead), so no fact is ever refused; the
-- projector splits such days out into their own partitions, or deletes them once past the window.
--
-- Existing rows move here, one partition per day they span: the table is rewritten once, under
-- this migration's lock (run it at deploy time, `sandboxctl migrate` / `init`).
ALTER TABLE sandbox_events RENAME TO sandbox_events_unpartitioned;
ALTER TABLE sandbox_events_unpartitioned RENAME CONSTRAINT sandbox_events_pkey
    TO sandbox_events_unpartitioned_pkey;
DROP INDEX IF EXISTS sandbox_events_sandbox_idx;

CREATE TABLE sandbox_events (
    event_id        text NOT NULL,
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
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
-- A sandbox's history newest first, paged by (occurred_at, event_id): one index range per
-- partition, in the order asked, no sort (status-api's history route, the fleet's last activity).
CREATE INDEX sandbox_events_sandbox_idx ON sandbox_events (sandbox_id, occurred_at, event_id);
CREATE TABLE sandbox_events_default PARTITION OF sandbox_events DEFAULT;

DO $$
DECLARE
    day date;
BEGIN
    FOR day IN
        SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM sandbox_events_unpartitioned
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF sandbox_events FOR VALUES FROM (%L) TO (%L)',
            'sandbox_events_p' || to_char(day, 'YYYYMMDD'),
            day::timestamp AT TIME ZONE 'UTC',
            (day + 1)::timestamp AT TIME ZONE 'UTC'
        );
    END LOOP;
END
$$;

INSERT INTO sandbox_events SELECT * FROM sandbox_events_unpartitioned;
DROP TABLE sandbox_events_unpartitioned;

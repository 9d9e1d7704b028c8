-- Issue 17, item 5. Notifications out: each project's receiver (status-api's
-- /api/projects/{id}/notifications), and the outbox the projector fills in the transaction that
-- stores the facts (so a stored fact's notice is never lost, and a replay, which does not go
-- through that transaction, sends nothing). Deliverers claim due rows (SKIP LOCKED), delete
-- them once the receiver answered 2xx, and dead-letter what keeps failing: the outbox holds
-- only what is still to be sent.
CREATE TABLE notification_targets (
    project_id  text PRIMARY KEY,
    url         text NOT NULL,
    events      text[] NOT NULL,
    -- The receiver checks our HMAC with it: kept as given, never shown again by the API.
    secret      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);

CREATE TABLE notification_outbox (
    project_id      text NOT NULL,
    delivery_id     text NOT NULL,
    event           text NOT NULL,
    body            bytea NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, delivery_id)
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at);

-- Issue 17. Lifecycle policies: a project's, and the global default, each the latest
-- `project.policy.set` fact of its subject (facts.policy_subject: 'policy:default',
-- 'policy:project:<id>'). The facts themselves are in sandbox_events like every other, under
-- that subject. A subject's facts share one partition; the position of the one applied guards
-- the row, so a redelivered batch never puts an older policy back.
CREATE TABLE project_policies (
    subject         text PRIMARY KEY,
    project_id      text,
    policy          jsonb NOT NULL,
    event_id        text NOT NULL,
    set_at          timestamptz NOT NULL,
    actor           text,
    kafka_partition int NOT NULL,
    kafka_offset    bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

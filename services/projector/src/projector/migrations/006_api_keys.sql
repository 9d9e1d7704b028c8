-- Issue 17, item 4. Project API keys (sandboxctl api-key; status-api's X-API-Key): credentials,
-- not lifecycle facts, so they are kept here only (a replay leaves this table alone) and only
-- as a digest (sandbox_common/api_keys.py). A revoked key keeps its row: who had it, and when
-- it stopped working.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    project_id  text NOT NULL,
    digest      bytea NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, created_at);

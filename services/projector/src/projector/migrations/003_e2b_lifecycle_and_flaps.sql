-- Issue 14. E2B's own lifecycle of a sandbox, as read from E2B ({"onTimeout": "pause"|"kill",
-- "autoResume": bool}; NULL until read), and its recent pause/resume cycles
-- ({"idlePauses": [...], "resumes": [...]}, the newest few of each) from which flapping is read.
-- Adding nullable or constant-default columns rewrites nothing (PostgreSQL 11+): instant on a
-- large fleet.
ALTER TABLE sandboxes ADD COLUMN IF NOT EXISTS lifecycle jsonb;
ALTER TABLE sandboxes ADD COLUMN IF NOT EXISTS recent_cycles jsonb NOT NULL DEFAULT '{}'::jsonb;

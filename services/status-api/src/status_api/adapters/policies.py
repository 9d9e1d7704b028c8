"""Reads of the lifecycle policies the projector keeps in PostgreSQL (`project_policies`, the
latest `project.policy.set` fact per subject: facts.policy_subject)."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg
import msgspec

from sandbox_common.facts import policy_subject
from sandbox_common.policies import PolicyError, decode_policy
from status_api.adapters.postgres import Queries
from status_api.policies import Levels, StoredPolicy

_COLUMNS = "subject, project_id, policy::text AS policy, event_id, set_at, actor"
_LEVELS = f"SELECT {_COLUMNS} FROM project_policies WHERE subject = ANY($1::text[])"  # noqa: S608
# Along the primary key: a project's subject sorts as its id does (one shared prefix).
_PAGE = f"""
SELECT {_COLUMNS} FROM project_policies
WHERE subject LIKE $1 || '%' AND ($2::text IS NULL OR subject > $1 || $2)
ORDER BY subject
LIMIT $3
"""  # noqa: S608
_PROJECT_PREFIX = policy_subject("")


class StoredPolicyError(RuntimeError):
    """A stored policy that does not read as one: the projector stores only valid ones, so
    this is a bug or a hand edit (a 500), never the caller's 422."""


def _stored(row: asyncpg.Record) -> StoredPolicy:
    raw = row["policy"]
    try:
        policy = decode_policy(raw.encode() if isinstance(raw, str) else msgspec.json.encode(raw))
    except PolicyError as exc:
        raise StoredPolicyError(f"stored policy {row['subject']} is unreadable: {exc}") from exc
    return StoredPolicy(row["project_id"], policy, row["event_id"], row["set_at"], row["actor"])


class PolicyStore:
    def __init__(self, pool: Queries) -> None:
        self._pool = pool

    async def levels(self, project_id: str | None) -> Levels:
        """The default's row and the project's, in one query."""
        default = policy_subject(None)
        subjects = [default] if project_id is None else [default, policy_subject(project_id)]
        found = {r["subject"]: _stored(r) for r in await self._pool.fetch(_LEVELS, subjects)}
        own = found.get(policy_subject(project_id)) if project_id is not None else None
        return Levels(found.get(default), own)

    async def of_projects(self, project_ids: Collection[str]) -> list[StoredPolicy]:
        subjects = [policy_subject(None), *(policy_subject(p) for p in project_ids)]
        return [_stored(r) for r in await self._pool.fetch(_LEVELS, subjects)]

    async def projects(self, after: str | None, limit: int) -> list[StoredPolicy]:
        """Projects with a policy, by id, after the project id `after`."""
        rows = await self._pool.fetch(_PAGE, _PROJECT_PREFIX, after, limit)
        return [_stored(r) for r in rows]

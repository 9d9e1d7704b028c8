"""PostgreSQL side of the learner: the adaptive project policies in force, and the uses of a
project's sandboxes since a moment (their history, read by sandbox through the history's
(sandbox_id, occurred_at) index: no scan of the whole table)."""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from enforcer.learner.learn import AdaptivePolicy, traces_of
from sandbox_common.envelope import MOVES_LAST_ACTIVITY, FactType
from sandbox_common.policies import PolicyError, decode_policy
from sandbox_common.whatif.trace import Trace

log = logging.getLogger("learner")
_CHUNK = 1000
_USES = sorted(t.value for t in MOVES_LAST_ACTIVITY)
_ADAPTIVE = (
    "SELECT project_id, policy::text AS policy, event_id FROM project_policies"
    " WHERE project_id IS NOT NULL AND policy->'idle'->>'mode' = 'adaptive' ORDER BY project_id"
)
_SANDBOXES = "SELECT sandbox_id FROM sandboxes WHERE project_id = $1"
_EVENTS = (
    "SELECT sandbox_id, type, extract(epoch FROM occurred_at)::float8 AS at FROM sandbox_events"
    " WHERE sandbox_id = ANY($1::text[]) AND occurred_at >= $2 AND type = ANY($3::text[])"
)


class PostgresHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def adaptive(self) -> list[AdaptivePolicy]:
        found = []
        for row in await self._pool.fetch(_ADAPTIVE):
            try:
                policy = decode_policy(row["policy"].encode())
            except PolicyError as exc:  # the projector stored it, so a newer writer's shape
                log.warning("policy of %s not readable here: %s", row["project_id"], exc)
                continue
            if policy.idle is not None:
                found.append(
                    AdaptivePolicy(row["project_id"], policy, policy.idle, row["event_id"])
                )
        return found

    async def traces(self, project_id: str, since: datetime) -> list[Trace]:
        ids = [r["sandbox_id"] for r in await self._pool.fetch(_SANDBOXES, project_id)]
        rows: list[tuple[str, str, float]] = []
        ended: dict[str, float] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for r in await self._pool.fetch(_EVENTS, chunk, since, [*_USES, FactType.KILLED]):
                if r["type"] == FactType.KILLED:
                    ended[r["sandbox_id"]] = min(r["at"], ended.get(r["sandbox_id"], r["at"]))
                else:
                    rows.append((r["sandbox_id"], r["type"], r["at"]))
        traces = traces_of(rows, ended)
        for trace in traces:
            trace.project_id = project_id
        return traces

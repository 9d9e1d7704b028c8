"""Redis side of the projection: the status documents status-api serves."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis

from projector.domain import SandboxState
from projector.handlers import Projected
from sandbox_common import changes, keys
from sandbox_common.idle import idle_deadline
from sandbox_common.readmodel import Status, StatusDoc, encode_doc

# Compare-and-set on the revision: a replayed or late write never regresses a document. The
# idle-deadline index moves in the same step, so the enforcer never sees one without the other.
# The change feed entry is added in the same step too: an SSE client that sees the entry can
# read the document it announces.
# KEYS: doc, project pointer (or the doc key again when there is no project), deadline index,
#       transitional index, change feed.
# ARGV: revision, document, ttl seconds (0 = keep), sandbox id, has project (1/0),
#       idle deadline as epoch seconds ('' = not running: leave the index),
#       since when PAUSING/STARTING as epoch seconds ('' = neither: leave that index),
#       project id ('' = none), change feed length.
_WRITE_DOC = f"""
local current = tonumber(redis.call('HGET', KEYS[1], {keys.REVISION_FIELD!r}) or '-1')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], {keys.REVISION_FIELD!r}, ARGV[1], {keys.DOC_FIELD!r}, ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[4]) end
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[3], ARGV[4])
else
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
end
if ARGV[7] == '' then
  redis.call('ZREM', KEYS[4], ARGV[4])
else
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[4])
end
{
    changes.lua_xadd(
        feed="KEYS[5]",
        max_length="ARGV[9]",
        kind=changes.ChangeKind.DOC,
        project="ARGV[8]",
        sandbox="ARGV[4]",
        revision="ARGV[1]",
        data="ARGV[2]",
    )
}
return 1
"""


# Sets the completeness mark only if it still holds this rebuild's token (Redis was not emptied
# again, and no other rebuild started, meanwhile).
_FINISH_REBUILD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_COMPLETE = keys.READ_MODEL_COMPLETE


# States that wait for an answer (the actuator's, or E2B's); the enforcer repairs stuck ones.
_TRANSITIONAL = frozenset({Status.PAUSING, Status.STARTING})


def to_doc(
    state: SandboxState, revision: int, now: datetime, default_idle_seconds: int
) -> StatusDoc | None:
    if state.status is None:
        return None  # facts seen, but none that says what state the sandbox is in
    status_stamp = state.stamps.get("status")
    active_at = state.last_active_at if state.status is Status.RUNNING else None
    return StatusDoc(
        sandbox_id=state.sandbox_id,
        project_id=state.project_id,
        status=state.status,
        last_active_at=state.last_active_at,
        status_changed_at=status_stamp.at if status_stamp else None,
        timeout_at=state.timeout_at,
        team_id=state.team_id,
        template_id=state.template_id,
        metadata=state.metadata,
        idle_deadline_at=(
            idle_deadline(active_at, state.metadata, default_idle_seconds) if active_at else None
        ),
        revision=revision,
        updated_at=now,
    )


class RedisReadModel:
    def __init__(
        self,
        client: aioredis.Redis,
        tombstone_ttl_seconds: int,
        default_idle_seconds: int,
        change_feed_max_length: int,
    ) -> None:
        self._client = client
        self._feed_length = change_feed_max_length
        self._tombstone_ttl = tombstone_ttl_seconds
        self._default_idle = default_idle_seconds
        self._script = client.register_script(_WRITE_DOC)
        self._finish = client.register_script(_FINISH_REBUILD)

    async def publish(self, projected: Sequence[Projected]) -> None:
        if not projected:
            return
        now = datetime.now(UTC)
        async with self._client.pipeline(transaction=False) as pipe:
            for p in projected:
                doc = to_doc(p.state, p.revision, now, self._default_idle)
                if doc is None:
                    continue
                doc_key = keys.sandbox_doc(doc.sandbox_id)
                # Tombstones expire; by then no late webhook for the sandbox is still in flight.
                ttl = self._tombstone_ttl if p.state.killed else 0
                live_project = doc.project_id is not None and not p.state.killed
                pointer = keys.project_sandbox(doc.project_id) if doc.project_id else doc_key
                deadline = doc.idle_deadline_at
                changed = doc.status_changed_at if doc.status in _TRANSITIONAL else None
                await self._script(
                    keys=[doc_key, pointer, keys.IDLE_DEADLINES, keys.TRANSITIONAL, keys.CHANGES],
                    args=[
                        p.revision,
                        encode_doc(doc),
                        ttl,
                        doc.sandbox_id,
                        "1" if live_project else "0",
                        f"{deadline.timestamp():.3f}" if deadline else "",
                        f"{changed.timestamp():.3f}" if changed else "",
                        doc.project_id or "",
                        self._feed_length,
                    ],
                    client=pipe,
                )
            await pipe.execute()

    async def ping(self) -> None:
        await self._client.ping()

    async def complete(self) -> bool:
        return bool(await self._client.get(keys.READ_MODEL_MARK) == _COMPLETE)

    async def begin_rebuild(self) -> str:
        token = f"rebuilding:{uuid.uuid4().hex}"
        await self._client.set(keys.READ_MODEL_MARK, token)
        return token

    async def finish_rebuild(self, token: str) -> bool:
        return bool(await self._finish(keys=[keys.READ_MODEL_MARK], args=[token, _COMPLETE]))

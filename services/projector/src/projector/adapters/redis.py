"""Redis side of the projection: the status documents status-api serves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import redis.asyncio as aioredis

from projector.domain import SandboxState
from projector.handlers import Projected
from sandbox_common import changes, keys
from sandbox_common.idle import idle_deadline
from sandbox_common.readmodel import Status, StatusDoc, encode_doc

_encoder = msgspec.json.Encoder()

# Compare-and-set on the revision: a replayed or late write never regresses a document. The
# idle-deadline index moves in the same step, so the enforcer never sees one without the other,
# and so does the change feed entry: an SSE client that sees the entry can read the document.
# One call writes a whole chunk of documents, given as one JSON array: per-document arguments
# cost more to pack on the client than the writes cost Redis. Keys are derived inside the
# script from their prefixes (one Redis instance; not for Redis Cluster).
# KEYS: deadline index, transitional index, change feed.
# ARGV: the entries, change feed length, document key prefix, project pointer prefix and suffix.
# Entry: [revision, document, ttl seconds (0 = keep), sandbox id, live project ('' = none),
#         idle deadline epoch s ('' = not running: leave the index),
#         since when PAUSING/STARTING epoch s ('' = neither), project id ('' = none)].
_WRITE_DOCS = f"""
local entries = cjson.decode(ARGV[1])
local feed_length, doc_prefix = ARGV[2], ARGV[3]
local pointer_prefix, pointer_suffix = ARGV[4], ARGV[5]
local written = 0
for _, e in ipairs(entries) do
  local revision, doc, ttl, sandbox = e[1], e[2], e[3], e[4]
  local key = doc_prefix .. sandbox
  local current = tonumber(redis.call('HGET', key, {keys.REVISION_FIELD!r}) or '-1')
  if current < tonumber(revision) then
    redis.call('HSET', key, {keys.REVISION_FIELD!r}, revision, {keys.DOC_FIELD!r}, doc)
    if tonumber(ttl) > 0 then
      redis.call('EXPIRE', key, ttl)
    else
      redis.call('PERSIST', key)
    end
    if e[5] ~= '' then redis.call('SET', pointer_prefix .. e[5] .. pointer_suffix, sandbox) end
    if e[6] == '' then
      redis.call('ZREM', KEYS[1], sandbox)
    else
      redis.call('ZADD', KEYS[1], e[6], sandbox)
    end
    if e[7] == '' then
      redis.call('ZREM', KEYS[2], sandbox)
    else
      redis.call('ZADD', KEYS[2], e[7], sandbox)
    end
    {
    changes.lua_xadd(
        feed="KEYS[3]",
        max_length="feed_length",
        kind=changes.ChangeKind.DOC,
        project="e[8]",
        sandbox="sandbox",
        revision="revision",
        data="doc",
    )
}
    written = written + 1
  end
end
return written
"""
# Documents per call: bounds how long one call holds Redis (a few ms).
_CHUNK = 500


# States that wait for an answer (the actuator's, or E2B's); the enforcer repairs stuck ones.
_TRANSITIONAL = frozenset({Status.PAUSING, Status.STARTING})
TRANSITIONAL_STATES = _TRANSITIONAL  # replay's shadow writer indexes the same states


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
        self._script = client.register_script(_WRITE_DOCS)
        self._doc_prefix = keys.sandbox_doc("")
        self._pointer_prefix, self._pointer_suffix = keys.project_sandbox("\x00").split("\x00")

    async def publish(self, projected: Sequence[Projected]) -> None:
        now = datetime.now(UTC)
        entries: list[list[str]] = []
        for p in projected:
            doc = to_doc(p.state, p.revision, now, self._default_idle)
            if doc is None:
                continue
            # Tombstones expire; by then no late webhook for the sandbox is still in flight.
            ttl = self._tombstone_ttl if p.state.killed else 0
            # No pointer for a killed sandbox, nor for an empty project id (metadata
            # `projectId: ""`): the script takes '' as "none".
            live_project = doc.project_id if not p.state.killed else None
            deadline = doc.idle_deadline_at
            changed = doc.status_changed_at if doc.status in _TRANSITIONAL else None
            entries.append(
                [
                    str(p.revision),
                    encode_doc(doc).decode(),
                    str(ttl),
                    doc.sandbox_id,
                    live_project or "",
                    f"{deadline.timestamp():.3f}" if deadline else "",
                    f"{changed.timestamp():.3f}" if changed else "",
                    doc.project_id or "",
                ]
            )
        if not entries:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for i in range(0, len(entries), _CHUNK):
                await self._script(
                    keys=[keys.IDLE_DEADLINES, keys.TRANSITIONAL, keys.CHANGES],
                    args=[
                        _encoder.encode(entries[i : i + _CHUNK]),
                        self._feed_length,
                        self._doc_prefix,
                        self._pointer_prefix,
                        self._pointer_suffix,
                    ],
                    client=pipe,
                )
            await pipe.execute()

    async def ping(self) -> None:
        await self._client.ping()

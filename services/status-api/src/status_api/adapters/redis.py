"""status-api's Redis: reads of the documents the projector maintains, the heartbeat throttle,
and pause warnings into the change feed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from sandbox_common import changes, keys
from sandbox_common.readmodel import StatusDoc, decode_doc
from status_api.pause_warnings import DueWarning

# Project pointer -> document in one round trip (this is the hot read of every frontend poll).
# KEYS: project pointer. ARGV: document key prefix, document field.
_BY_PROJECT = """
local sandbox_id = redis.call('GET', KEYS[1])
if not sandbox_id then return false end
return redis.call('HGET', ARGV[1] .. sandbox_id, ARGV[2])
"""

# The warning for one deadline goes out once, however many status-api replicas see it due.
# KEYS: warned marker, change feed. ARGV: marker ttl, feed length, project ('' = none),
#       sandbox id, revision, warning JSON.
_WARN_ONCE = f"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
{
    changes.lua_xadd(
        feed="KEYS[2]",
        max_length="ARGV[2]",
        kind=changes.ChangeKind.WARNING,
        project="ARGV[3]",
        sandbox="ARGV[4]",
        revision="ARGV[5]",
        data="ARGV[6]",
    )
}
return 1
"""


class ReadModelMissingError(RuntimeError):
    """Redis has lost the read model (its marker is gone) and the projector is rebuilding it
    from PostgreSQL: a miss means "not known yet", not "no such sandbox" (503, not 404)."""


class StatusReader:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._by_project = client.register_script(_BY_PROJECT)
        self._doc_prefix = keys.sandbox_doc("")

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        raw = await self._client.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
        if raw:
            return decode_doc(raw)
        await self._check_built()
        return None

    async def by_sandboxes(self, sandbox_ids: Sequence[str]) -> list[StatusDoc | None]:
        """Several documents in one round trip, in the order asked."""
        async with self._client.pipeline(transaction=False) as pipe:
            for sandbox_id in sandbox_ids:
                pipe.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
            raws: list[Any] = await pipe.execute()
        if not all(raws):
            await self._check_built()
        return [decode_doc(raw) if raw else None for raw in raws]

    async def by_project(self, project_id: str) -> StatusDoc | None:
        raw = await self._by_project(
            keys=[keys.project_sandbox(project_id)], args=[self._doc_prefix, keys.DOC_FIELD]
        )
        if raw:
            return decode_doc(raw)
        await self._check_built()
        return None

    async def _check_built(self) -> None:
        """Only misses pay for this check; hits never do."""
        if not await self._client.exists(keys.READ_MODEL_MARKER):
            raise ReadModelMissingError("the read model is being rebuilt; retry shortly")

    async def due_deadlines(self, low: float, high: float) -> list[tuple[str, float]]:
        """RUNNING sandboxes whose idle deadline (epoch s) is within [low, high]."""
        members: Any = await self._client.zrangebyscore(
            keys.IDLE_DEADLINES, low, high, withscores=True
        )
        return [(text(m), float(score)) for m, score in members]

    async def ping(self) -> bool:
        return bool(await self._client.ping())


class WarningFeed:
    def __init__(self, client: aioredis.Redis, feed_length: int) -> None:
        self._client = client
        self._script = client.register_script(_WARN_ONCE)
        self._feed_length = feed_length

    async def warn_once(
        self, warnings: Sequence[DueWarning], marker_ttl_seconds: int
    ) -> list[bool]:
        """One answer per warning, all in one round trip: False when that deadline was
        already warned about (by any replica)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for w in warnings:
                await self._script(
                    keys=[keys.pause_warned(w.doc.sandbox_id, w.deadline_key), keys.CHANGES],
                    args=[
                        marker_ttl_seconds,
                        self._feed_length,
                        w.doc.project_id or "",
                        w.doc.sandbox_id,
                        w.doc.revision,
                        w.payload,
                    ],
                    client=pipe,
                )
            return [bool(answer) for answer in await pipe.execute()]


class RedisThrottle:
    def __init__(self, client: aioredis.Redis, window_seconds: float) -> None:
        self._client = client
        self._window_ms = max(1, int(window_seconds * 1000))

    async def first_in_window(self, sandbox_id: str) -> bool:
        return bool(
            await self._client.set(
                keys.activity_throttle(sandbox_id), b"1", nx=True, px=self._window_ms
            )
        )

    async def forget(self, sandbox_id: str) -> None:
        await self._client.delete(keys.activity_throttle(sandbox_id))


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value

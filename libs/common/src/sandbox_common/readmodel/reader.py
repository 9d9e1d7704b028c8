"""Reads of the read model: documents (by sandbox, many, by project), the due part of the
idle-deadline index, the transitional index, and whether the model is complete at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import StatusDoc, decode_doc
from sandbox_common.readmodel.marker import Stale, staleness
from sandbox_common.readmodel.redis_text import text

# Project pointer -> document in one round trip (this is the hot read of every frontend poll).
# KEYS: project pointer. ARGV: document key prefix, document field.
_BY_PROJECT = """
local sandbox_id = redis.call('GET', KEYS[1])
if not sandbox_id then return false end
return redis.call('HGET', ARGV[1] .. sandbox_id, ARGV[2])
"""
_CHUNK = 5000


class DueMark(NamedTuple):
    """A due sandbox and its idle deadline (epoch seconds): a place in the deadline index."""

    sandbox_id: str
    deadline: float


class ReadModelMissingError(RuntimeError):
    """Redis has lost the read model (its marker is gone) and the projector is rebuilding it
    from PostgreSQL: a missing document means "not known yet", not "no such sandbox"."""


@dataclass(frozen=True)
class IndexSummary:
    """The enforcer's two indexes at a glance (`sandboxctl status`)."""

    idle_indexed: int  # RUNNING sandboxes with an idle deadline
    due: int  # of them, deadline passed
    oldest_due_at: datetime | None
    transitional: int  # PAUSING or STARTING
    oldest_transitional_at: datetime | None


@dataclass(frozen=True)
class Memory:
    """Redis's memory against its limit: the read model must never be evicted, so the limit
    is meant to come with `noeviction` (writes refused, retried, alerted on)."""

    used_bytes: int
    max_bytes: int  # 0: no limit
    policy: str

    @property
    def bounded(self) -> bool:
        return self.max_bytes > 0 and self.policy == "noeviction"


class ReadModelReader:
    """Every read raises ReadModelMissingError when a document is missing while the model is
    incomplete; only misses pay for that check, hits never do."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._by_project = client.register_script(_BY_PROJECT)
        self._doc_prefix = keys.sandbox_doc("")

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        raw = await self._client.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
        if raw:
            return decode_doc(raw)
        await self.require_complete()
        return None

    async def by_sandboxes(self, sandbox_ids: Sequence[str]) -> list[StatusDoc | None]:
        """Several documents in one round trip, in the order asked."""
        if not sandbox_ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for sandbox_id in sandbox_ids:
                pipe.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
            raws: list[Any] = await pipe.execute()
        if not all(raws):
            await self.require_complete()
        return [decode_doc(raw) if raw else None for raw in raws]

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        """The documents found among `sandbox_ids`, by sandbox id."""
        found = await self.by_sandboxes(sandbox_ids)
        return {sid: doc for sid, doc in zip(sandbox_ids, found, strict=True) if doc is not None}

    async def by_project(self, project_id: str) -> StatusDoc | None:
        raw = await self._by_project(
            keys=[keys.project_sandbox(project_id)], args=[self._doc_prefix, keys.DOC_FIELD]
        )
        if raw:
            return decode_doc(raw)
        await self.require_complete()
        return None

    async def is_complete(self) -> bool:
        return bool(await self._client.exists(keys.READ_MODEL_MARKER))

    async def staleness(self) -> Stale | None:
        """Why the model must be rebuilt (marker missing, or written on another Redis)."""
        return await staleness(self._client)

    async def require_complete(self) -> None:
        if not await self.is_complete():
            raise ReadModelMissingError("the read model is being rebuilt; retry shortly")

    async def running_count(self) -> int:
        """RUNNING sandboxes with an idle deadline: the whole idle-deadline index (ZCARD)."""
        return int(await self._client.zcard(keys.IDLE_DEADLINES))

    async def due_count(self, now: datetime) -> int:
        """RUNNING sandboxes whose idle deadline has passed (ZCOUNT: no member is read)."""
        return int(await self._client.zcount(keys.IDLE_DEADLINES, "-inf", now.timestamp()))

    async def due(self, now: datetime, limit: int, after: DueMark | None = None) -> list[DueMark]:
        """RUNNING sandboxes whose idle deadline has passed, oldest first, with their deadlines:
        only the due part of the index is read (cost grows with the number due, not with the
        fleet). `after`: the last one of the previous page; this page holds what follows it in
        the index's order (deadline, then id), so a tick pages through all that is due even
        while none of it has left the index yet."""
        if after is None:
            members: Any = await self._client.zrangebyscore(
                keys.IDLE_DEADLINES, "-inf", now.timestamp(), start=0, num=limit, withscores=True
            )
            return [DueMark(text(m), float(score)) for m, score in members]
        async with self._client.pipeline(transaction=False) as pipe:
            # Those with the same deadline as `after` (rare: deadlines are in microseconds)...
            pipe.zrangebyscore(keys.IDLE_DEADLINES, after.deadline, after.deadline)
            # ... and those with a later one. repr() of a float reads back as the same float.
            pipe.zrangebyscore(
                keys.IDLE_DEADLINES,
                f"({after.deadline!r}",
                now.timestamp(),
                start=0,
                num=limit,
                withscores=True,
            )
            ties, later = await pipe.execute()
        # Redis orders equal scores by their bytes, as Python compares bytes.
        last = after.sandbox_id.encode()
        page = [DueMark(text(m), after.deadline) for m in ties if bytes(m) > last]
        page += [DueMark(text(m), float(score)) for m, score in later]
        return page[:limit]

    async def deadlines_between(self, low: float, high: float) -> list[tuple[str, float]]:
        """RUNNING sandboxes whose idle deadline (epoch s) is within [low, high], with it."""
        members: Any = await self._client.zrangebyscore(
            keys.IDLE_DEADLINES, low, high, withscores=True
        )
        return [(text(m), float(score)) for m, score in members]

    async def hard_ends_between(self, low: float, high: float) -> list[tuple[str, float]]:
        """RUNNING sandboxes whose run E2B ends (epoch s) within [low, high], with that end."""
        members: Any = await self._client.zrangebyscore(keys.HARD_ENDS, low, high, withscores=True)
        return [(text(m), float(score)) for m, score in members]

    async def entered_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Sandboxes in PAUSING or STARTING since before `cutoff`, oldest first."""
        members: Any = await self._client.zrangebyscore(
            keys.TRANSITIONAL, "-inf", cutoff.timestamp(), start=0, num=limit
        )
        return [text(m) for m in members]

    async def summary(self, now: datetime) -> IndexSummary:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.IDLE_DEADLINES)
            pipe.zcount(keys.IDLE_DEADLINES, "-inf", now.timestamp())
            pipe.zrange(keys.IDLE_DEADLINES, 0, 0, withscores=True)
            pipe.zcard(keys.TRANSITIONAL)
            pipe.zrange(keys.TRANSITIONAL, 0, 0, withscores=True)
            indexed, due, first_due, transitional, first_stuck = await pipe.execute()
        return IndexSummary(
            idle_indexed=int(indexed),
            due=int(due),
            oldest_due_at=_first_at(first_due) if due else None,
            transitional=int(transitional),
            oldest_transitional_at=_first_at(first_stuck),
        )

    # -- whole-model reads, for `replay --verify` ------------------------------------------

    async def all_sandbox_ids(self) -> set[str]:
        """Sandbox ids that have a document (a SCAN: no blocking of the server)."""
        found: set[str] = set()
        async for key in self._client.scan_iter(match=self._doc_prefix + "*", count=5000):
            found.add(text(key)[len(self._doc_prefix) :])
        return found

    async def docs(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        """Many documents, in chunks; no completeness check (a comparison wants what is)."""
        found: dict[str, StatusDoc] = {}
        for start in range(0, len(sandbox_ids), _CHUNK):
            chunk = sandbox_ids[start : start + _CHUNK]
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    pipe.hget(keys.sandbox_doc(sid), keys.DOC_FIELD)
                raw = await pipe.execute()
            found.update({sid: decode_doc(r) for sid, r in zip(chunk, raw, strict=True) if r})
        return found

    async def idle_deadlines(self) -> dict[str, float]:
        return await self._scores(keys.IDLE_DEADLINES)

    async def transitional(self) -> dict[str, float]:
        return await self._scores(keys.TRANSITIONAL)

    async def hard_ends(self) -> dict[str, float]:
        return await self._scores(keys.HARD_ENDS)

    async def pointers(self, project_ids: Sequence[str]) -> dict[str, str | None]:
        """project -> the sandbox id its pointer names (None: no pointer)."""
        found: dict[str, str | None] = {}
        for start in range(0, len(project_ids), _CHUNK):
            chunk = project_ids[start : start + _CHUNK]
            raw = await self._client.mget([keys.project_sandbox(p) for p in chunk])
            found.update({p: text(v) if v else None for p, v in zip(chunk, raw, strict=True)})
        return found

    async def _scores(self, key: str) -> dict[str, float]:
        pairs: list[Any] = await self._client.zrange(key, 0, -1, withscores=True)
        return {text(member): float(score) for member, score in pairs}

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def memory(self) -> Memory:
        info: dict[str, Any] = await self._client.info("memory")
        return Memory(
            used_bytes=int(info.get("used_memory", 0)),
            max_bytes=int(info.get("maxmemory", 0)),
            policy=text(info.get("maxmemory_policy", "")),
        )


def _first_at(first: list[tuple[bytes, float]]) -> datetime | None:
    return datetime.fromtimestamp(first[0][1], UTC) if first else None

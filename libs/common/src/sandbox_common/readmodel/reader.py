"""Reads of the read model: documents (by sandbox, many, by project), the due part of the
idle-deadline indexes, the transitional indexes, and whether the model is complete at all.
An index read asks every shard (one pipelined round trip on one Redis) and merges."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from sandbox_common import redis_pool
from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import StatusDoc, decode_doc
from sandbox_common.readmodel.marker import Stale, staleness
from sandbox_common.readmodel.redis_text import text

_CHUNK = 5000


class DueMark(NamedTuple):
    """A due sandbox and its idle deadline (epoch seconds): a place in the deadline index."""

    sandbox_id: str
    deadline: float


@dataclass(frozen=True)
class DuePlace:
    """How far a tick paged through the due sandboxes: a shard, and the last one of it read."""

    shard: int = 0
    after: DueMark | None = None


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

    def __init__(
        self,
        client: aioredis.Redis,
        layout: keys.Layout = keys.Layout(),  # noqa: B008 - frozen, shared
    ) -> None:
        self._client = client
        self.layout = layout

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        raw = await self._client.hget(self.layout.doc(sandbox_id), keys.DOC_FIELD)
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
                pipe.hget(self.layout.doc(sandbox_id), keys.DOC_FIELD)
            raws: list[Any] = await pipe.execute()
        if not all(raws):
            await self.require_complete()
        return [decode_doc(raw) if raw else None for raw in raws]

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        """The documents found among `sandbox_ids`, by sandbox id."""
        found = await self.by_sandboxes(sandbox_ids)
        return {sid: doc for sid, doc in zip(sandbox_ids, found, strict=True) if doc is not None}

    async def by_project(self, project_id: str) -> StatusDoc | None:
        """The pointer, then the document it names: two reads, as the two live in different
        slots. The writer sets a pointer only once its document is written, so a pointer never
        names a document not there yet (a tombstone expired since reads as none)."""
        sandbox_id = await self._client.get(keys.project_sandbox(project_id))
        if sandbox_id is not None:
            return await self.by_sandbox(text(sandbox_id))
        await self.require_complete()
        return None

    async def is_complete(self) -> bool:
        return bool(await self._client.exists(keys.READ_MODEL_MARKER))

    async def staleness(self) -> Stale | None:
        """Why the model must be rebuilt (marker missing, or written on another Redis)."""
        return await staleness(self._client, self.layout)

    async def require_complete(self) -> None:
        if not await self.is_complete():
            raise ReadModelMissingError("the read model is being rebuilt; retry shortly")

    async def running_count(self) -> int:
        """RUNNING sandboxes with an idle deadline: every shard's idle-deadline index (ZCARD)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self.layout.all:
                pipe.zcard(self.layout.idle_deadlines(shard))
            return sum(int(n) for n in await pipe.execute())

    async def due_count(self, now: datetime) -> int:
        """RUNNING sandboxes whose idle deadline has passed (ZCOUNT: no member is read)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self.layout.all:
                pipe.zcount(self.layout.idle_deadlines(shard), "-inf", now.timestamp())
            return sum(int(n) for n in await pipe.execute())

    async def due(self, now: datetime, limit: int) -> list[str]:
        """RUNNING sandboxes whose idle deadline has passed, oldest first: only the due part of
        each shard's index is read (cost grows with the number due, not with the fleet)."""
        due = await self._below(self.layout.idle_deadlines, now.timestamp(), limit)
        return [member for member, _ in due]

    async def due_page(
        self, now: datetime, limit: int, place: DuePlace | None = None
    ) -> tuple[list[DueMark], DuePlace | None]:
        """The next at most `limit` due sandboxes after `place` (None: from the start), and the
        place after them (None: no more). Shard after shard, each oldest first from where the
        last page left it, so a tick pages through all that is due, each read once, while none
        of it has left the index yet."""
        place = place or DuePlace()
        index = self.layout.idle_deadlines(place.shard)
        after = place.after
        if after is None:
            members: Any = await self._client.zrangebyscore(
                index, "-inf", now.timestamp(), start=0, num=limit, withscores=True
            )
            page = [DueMark(text(m), float(score)) for m, score in members]
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                # Those with the same deadline as `after` (rare: deadlines are in microseconds)...
                pipe.zrangebyscore(index, after.deadline, after.deadline)
                # ... and those with a later one. repr() of a float reads back as the same float.
                pipe.zrangebyscore(
                    index,
                    f"({after.deadline!r}",
                    now.timestamp(),
                    start=0,
                    num=limit,
                    withscores=True,
                )
                ties, later = await pipe.execute()
            # Redis orders equal deadlines by the ids' bytes.
            last = after.sandbox_id.encode()
            page = [DueMark(text(m), after.deadline) for m in ties if bytes(m) > last]
            page = (page + [DueMark(text(m), float(score)) for m, score in later])[:limit]
        if len(page) == limit:
            return page, DuePlace(place.shard, page[-1])
        following = place.shard + 1
        return page, DuePlace(following) if following < self.layout.shards else None

    async def deadlines_between(self, low: float, high: float) -> list[tuple[str, float]]:
        """RUNNING sandboxes whose idle deadline (epoch s) is within [low, high], with it."""
        return await self._between(self.layout.idle_deadlines, low, high)

    async def hard_ends_between(self, low: float, high: float) -> list[tuple[str, float]]:
        """RUNNING sandboxes whose run E2B ends (epoch s) within [low, high], with that end."""
        return await self._between(self.layout.hard_ends, low, high)

    async def deletes_between(self, low: float, high: float) -> list[tuple[str, float]]:
        """PAUSED sandboxes a policy deletes (epoch s) within [low, high], with that time."""
        return await self._between(self.layout.deletes, low, high)

    async def due_deletes(self, now: datetime, limit: int) -> list[str]:
        """PAUSED sandboxes whose policy's delete time has passed, oldest first."""
        found = await self._below(self.layout.deletes, now.timestamp(), limit)
        return [member for member, _ in found]

    async def entered_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Sandboxes in PAUSING or STARTING since before `cutoff`, oldest first."""
        found = await self._below(self.layout.transitional, cutoff.timestamp(), limit)
        return [member for member, _ in found]

    async def _below(
        self, index: Callable[[int], str], high: float, limit: int
    ) -> list[tuple[str, float]]:
        """The `limit` lowest scores up to `high` over every shard's `index`: each shard's
        first `limit`, merged."""
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self.layout.all:
                pipe.zrangebyscore(index(shard), "-inf", high, start=0, num=limit, withscores=True)
            answers: list[Any] = await pipe.execute()
        merged = [(text(m), float(score)) for answer in answers for m, score in answer]
        return sorted(merged, key=lambda pair: (pair[1], pair[0]))[:limit]

    async def _between(
        self, index: Callable[[int], str], low: float, high: float
    ) -> list[tuple[str, float]]:
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self.layout.all:
                pipe.zrangebyscore(index(shard), low, high, withscores=True)
            answers: list[Any] = await pipe.execute()
        return [(text(m), float(score)) for answer in answers for m, score in answer]

    async def summary(self, now: datetime) -> IndexSummary:
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self.layout.all:
                idle, transitional = (
                    self.layout.idle_deadlines(shard),
                    self.layout.transitional(shard),
                )
                pipe.zcard(idle)
                pipe.zcount(idle, "-inf", now.timestamp())
                pipe.zrange(idle, 0, 0, withscores=True)
                pipe.zcard(transitional)
                pipe.zrange(transitional, 0, 0, withscores=True)
            answers = await pipe.execute()
        shards = [answers[i : i + 5] for i in range(0, len(answers), 5)]
        due = sum(int(s[1]) for s in shards)
        return IndexSummary(
            idle_indexed=sum(int(s[0]) for s in shards),
            due=due,
            oldest_due_at=_first_at([first for s in shards for first in s[2]]) if due else None,
            transitional=sum(int(s[3]) for s in shards),
            oldest_transitional_at=_first_at([first for s in shards for first in s[4]]),
        )

    # -- whole-model reads, for `replay --verify` ------------------------------------------

    async def all_sandbox_ids(self) -> set[str]:
        """Sandbox ids that have a document (a SCAN of every node: no blocking of a server)."""
        found: set[str] = set()
        async for key in self._client.scan_iter(match=self.layout.doc_pattern(), count=5000):
            found.add(text(key).split(":sandbox:", 1)[1])
        return found

    async def docs(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        """Many documents, in chunks; no completeness check (a comparison wants what is)."""
        found: dict[str, StatusDoc] = {}
        for start in range(0, len(sandbox_ids), _CHUNK):
            chunk = sandbox_ids[start : start + _CHUNK]
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    pipe.hget(self.layout.doc(sid), keys.DOC_FIELD)
                raw = await pipe.execute()
            found.update({sid: decode_doc(r) for sid, r in zip(chunk, raw, strict=True) if r})
        return found

    async def idle_deadlines(self) -> dict[str, float]:
        return await self._scores(self.layout.idle_deadlines)

    async def transitional(self) -> dict[str, float]:
        return await self._scores(self.layout.transitional)

    async def hard_ends(self) -> dict[str, float]:
        return await self._scores(self.layout.hard_ends)

    async def deletes(self) -> dict[str, float]:
        return await self._scores(self.layout.deletes)

    async def pointers(self, project_ids: Sequence[str]) -> dict[str, str | None]:
        """project -> the sandbox id its pointer names (None: no pointer)."""
        found: dict[str, str | None] = {}
        for start in range(0, len(project_ids), _CHUNK):
            chunk = project_ids[start : start + _CHUNK]
            raw = await redis_pool.get_many(self._client, [keys.project_sandbox(p) for p in chunk])
            found.update({p: text(v) if v else None for p, v in zip(chunk, raw, strict=True)})
        return found

    async def _scores(self, index: Callable[[int], str]) -> dict[str, float]:
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self.layout.all:
                pipe.zrange(index(shard), 0, -1, withscores=True)
            answers: list[Any] = await pipe.execute()
        return {text(member): float(score) for answer in answers for member, score in answer}

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def memory(self) -> Memory:
        """On a cluster, the primary nearest its limit: the first to refuse writes."""
        found = [
            Memory(
                used_bytes=int(info.get("used_memory", 0)),
                max_bytes=int(info.get("maxmemory", 0)),
                policy=text(info.get("maxmemory_policy", "")),
            )
            for info in await redis_pool.primaries_info(self._client, "memory")
        ]
        return max(found, key=lambda m: m.used_bytes / m.max_bytes if m.max_bytes else 0.0)


def _first_at(firsts: list[tuple[bytes, float]]) -> datetime | None:
    return datetime.fromtimestamp(min(score for _, score in firsts), UTC) if firsts else None

"""Remembers which webhook event ids are already on the topic (E2B retries, at least once).

Markers are written only after the broker acknowledged, so a failed publish is never
remembered as done. A small in-process LRU spares Redis the common retry-burst case; Redis
shares the memory across replicas. The lookups of concurrent requests are coalesced into one
MGET at a time (those that arrive while one is out go in the next), and markers into one pipeline
per MARK_DELAY: one round trip for many requests instead of one each, which matters at thousands
of webhooks a second. When Redis is down, ingest still publishes: the projector's unique event id
makes a rare duplicate on the topic harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sandbox_common import redis_pool
from sandbox_common.readmodel import keys

log = logging.getLogger(__name__)
# Longest a marker waits before it is written to Redis. A duplicate that reaches another replica
# within this window is published twice (harmless: the projector dedupes by event id); E2B
# retries are seconds apart.
MARK_DELAY = 0.05


class SeenEvents:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int, local_size: int = 100_000) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._local: OrderedDict[str, None] = OrderedDict()
        self._local_size = local_size
        self._lookups: list[tuple[str, asyncio.Future[bool]]] = []
        self._marks: list[str] = []
        self._flush_scheduled = False
        self._looking_up: asyncio.Task[None] | None = None
        self._mark_timer_armed = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def seen(self, event_id: str) -> bool:
        if event_id in self._local:
            self._local.move_to_end(event_id)
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._lookups.append((event_id, future))
        self._schedule_flush()
        return await future

    async def mark(self, event_id: str) -> None:
        """Remembers the id locally now, and in Redis within MARK_DELAY seconds (write-behind:
        one pipeline per interval instead of a round trip per webhook)."""
        self._local[event_id] = None
        if len(self._local) > self._local_size:
            self._local.popitem(last=False)
        self._marks.append(event_id)
        if not self._mark_timer_armed:
            self._mark_timer_armed = True
            asyncio.get_running_loop().call_later(MARK_DELAY, self._flush_marks)

    def _flush_marks(self) -> None:
        self._mark_timer_armed = False
        marks, self._marks = self._marks, []
        if marks:
            self._track(self._write_marks(marks))

    def _schedule_flush(self) -> None:
        # While an MGET is out, lookups wait for it to come back and go out together in the next:
        # one MGET per loop turn made batches of two or three keys at 3,000 webhooks/s, and the
        # round trips were an eighth of ingest's CPU.
        if not self._flush_scheduled and self._looking_up is None:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        if self._lookups and self._looking_up is None:
            self._looking_up = asyncio.create_task(self._look_up_all())

    async def _look_up_all(self) -> None:
        try:
            while self._lookups:
                lookups, self._lookups = self._lookups, []
                await self._look_up(lookups)
        finally:
            self._looking_up = None

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _look_up(self, lookups: list[tuple[str, asyncio.Future[bool]]]) -> None:
        # One MGET for every lookup of this loop turn (one per slot on a cluster): a single
        # command to pack and parse, where a pipeline of EXISTS costs a command each.
        found: list[bytes | str | None] = []
        try:
            names = [keys.seen_event(event_id) for event_id, _ in lookups]
            found = await redis_pool.get_many(self._client, names)
        except (RedisError, OSError) as exc:
            log.warning("dedupe degraded, Redis unavailable: %s", exc)
        except BaseException:
            log.exception("dedupe lookup failed")
            raise
        finally:
            # Every waiting request gets an answer, whatever happened: "not seen" publishes,
            # and the projector's unique event id absorbs the rare duplicate.
            found = found + [None] * (len(lookups) - len(found))
            for (_, future), hit in zip(lookups, found, strict=True):
                if not future.done():
                    future.set_result(hit is not None)

    async def _write_marks(self, marks: list[str]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event_id in marks:
                    pipe.set(keys.seen_event(event_id), b"1", ex=self._ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # The local LRU still answers retries to this replica; a retry elsewhere publishes a
            # duplicate the projector absorbs.
            log.warning("dedupe markers not written, Redis unavailable: %s", exc)

    async def drain(self) -> None:
        """Waits for pending markers (shutdown)."""
        self._start_flush()
        self._flush_marks()
        pending = [*self._in_flight, *([self._looking_up] if self._looking_up else [])]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

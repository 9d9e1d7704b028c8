"""Remembers which webhook event ids are already on the topic (E2B retries, at least once).

Markers are written only after the broker acknowledged, so a failed publish is never
remembered as done. A small in-process LRU spares Redis the common retry-burst case; Redis
shares the memory across replicas. Lookups and markers of concurrent requests are coalesced
into one pipeline per event-loop turn: one round trip for many requests instead of one each,
which matters at thousands of webhooks a second. When Redis is down, ingest still publishes:
the projector's unique event id makes a rare duplicate on the topic harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sandbox_common import keys

log = logging.getLogger(__name__)
# Longest a marker waits for a lookup flush to ride along with. A duplicate that reaches another
# replica within this window is published twice (harmless: the projector dedupes by event id);
# E2B retries are seconds apart.
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
        """Remembers the id locally now, and in Redis with the next lookup flush or within
        MARK_DELAY seconds (write-behind: under load markers ride along with lookups instead of
        costing a round trip of their own)."""
        self._local[event_id] = None
        if len(self._local) > self._local_size:
            self._local.popitem(last=False)
        self._marks.append(event_id)
        if not self._mark_timer_armed:
            self._mark_timer_armed = True
            asyncio.get_running_loop().call_later(MARK_DELAY, self._flush_marks)

    def _flush_marks(self) -> None:
        self._mark_timer_armed = False
        if self._marks:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        lookups, self._lookups = self._lookups, []
        marks, self._marks = self._marks, []
        task = asyncio.create_task(self._flush(lookups, marks))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _flush(
        self, lookups: list[tuple[str, asyncio.Future[bool]]], marks: list[str]
    ) -> None:
        results: list[object] = []
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event_id, _ in lookups:
                    pipe.exists(keys.seen_event(event_id))
                for event_id in marks:
                    pipe.set(keys.seen_event(event_id), b"1", ex=self._ttl)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("dedupe degraded, Redis unavailable: %s", exc)
        except BaseException:
            log.exception("dedupe flush failed")
            raise
        finally:
            # Every waiting request gets an answer, whatever happened: "not seen" publishes,
            # and the projector's unique event id absorbs the rare duplicate.
            found = results[: len(lookups)] + [0] * (len(lookups) - len(results))
            for (_, future), hit in zip(lookups, found, strict=True):
                if not future.done():
                    future.set_result(bool(hit))

    async def drain(self) -> None:
        """Waits for pending markers (shutdown)."""
        if self._lookups or self._marks:
            self._start_flush()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

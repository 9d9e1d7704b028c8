"""Remembers which webhook event ids are already on the topic (E2B retries, at least once).

Markers are written only after the broker acknowledged, so a failed publish is never
remembered as done. A small in-process LRU spares Redis the common retry-burst case; Redis
shares the memory across replicas. When Redis is down, ingest still publishes: the projector's
unique event id makes a rare duplicate on the topic harmless.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sandbox_common import keys

log = logging.getLogger(__name__)


class SeenEvents:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int, local_size: int = 100_000) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._local: OrderedDict[str, None] = OrderedDict()
        self._local_size = local_size

    async def seen(self, event_id: str) -> bool:
        if event_id in self._local:
            self._local.move_to_end(event_id)
            return True
        try:
            return bool(await self._client.exists(keys.seen_event(event_id)))
        except RedisError as exc:
            log.warning("dedupe lookup skipped, Redis unavailable: %s", exc)
            return False

    async def mark(self, event_id: str) -> None:
        self._local[event_id] = None
        if len(self._local) > self._local_size:
            self._local.popitem(last=False)
        try:
            await self._client.set(keys.seen_event(event_id), b"1", ex=self._ttl)
        except RedisError as exc:
            log.warning("dedupe marker not stored, Redis unavailable: %s", exc)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except RedisError:
            return False

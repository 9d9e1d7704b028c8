"""Ingest's dedupe lookups: one MGET out at a time, the lookups that arrive meanwhile together in
the next one, and every lookup answered."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import redis.asyncio as aioredis

from ingest.adapters.dedupe import SeenEvents
from sandbox_common.readmodel import keys


class SlowRedis:
    def __init__(self, known: set[str]) -> None:
        self.known = {keys.seen_event(k) for k in known}
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()

    async def mget(self, names: list[str]) -> list[bytes | None]:
        self.calls.append(list(names))
        await self.gate.wait()
        return [b"1" if n in self.known else None for n in names]


async def test_lookups_that_arrive_while_one_mget_is_out_share_the_next() -> None:
    redis = SlowRedis(known={"e3"})
    seen = SeenEvents(cast(aioredis.Redis, cast(Any, redis)), 60)
    first = asyncio.create_task(seen.seen("e0"))
    await asyncio.sleep(0.01)
    assert len(redis.calls) == 1  # out, and held by the slow Redis
    later = [asyncio.create_task(seen.seen(f"e{i}")) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    assert len(redis.calls) == 1  # waiting for the first to come back
    redis.gate.set()
    answers = await asyncio.gather(first, *later)
    assert answers == [False, False, False, True, False, False]
    assert [len(c) for c in redis.calls] == [1, 5]

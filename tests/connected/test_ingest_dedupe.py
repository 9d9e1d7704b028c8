"""Ingest's dedupe memory against a real Redis: shared across replicas, degraded when down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx
import pytest
import redis.asyncio as aioredis

from ingest.adapters.dedupe import MARK_DELAY, SeenEvents
from sandbox_common.readmodel import keys
from tests.connected import redis_mode
from tests.connected.conftest import Stack
from tests.connected.helpers import eventually, post_webhook, unique, webhook

pytestmark = pytest.mark.connected


async def test_an_id_marked_by_one_replica_is_seen_by_another(stack: Stack) -> None:
    a_client = redis_mode.client(stack.infra.redis_url)
    b_client = redis_mode.client(stack.infra.redis_url)
    replica_a, replica_b = SeenEvents(a_client, 60), SeenEvents(b_client, 60)
    event_id = unique("evt")
    try:
        assert not await replica_b.seen(event_id)
        await replica_a.mark(event_id)
        assert await replica_a.seen(event_id)  # its own memory, at once
        # The write-behind marker reaches Redis within MARK_DELAY of an idle loop; a loaded
        # machine (or a cluster client's first slot discovery) takes longer, so wait for it.
        await eventually(lambda: replica_b.seen(event_id), within=5, interval=MARK_DELAY)
        assert not await replica_b.seen(unique("evt"))
    finally:
        await a_client.aclose()
        await b_client.aclose()


async def test_many_concurrent_lookups_share_round_trips_and_all_get_answers(
    stack: Stack,
) -> None:
    client = redis_mode.client(stack.infra.redis_url)
    seen = SeenEvents(client, 60)
    ids = [unique("evt") for _ in range(200)]
    try:
        for event_id in ids[:100]:
            await seen.mark(event_id)
        await seen.drain()
        fresh = SeenEvents(client, 60)  # no local memory: every answer comes from Redis
        answers = await asyncio.gather(*(fresh.seen(i) for i in ids))
        assert answers == [True] * 100 + [False] * 100
    finally:
        await client.aclose()


async def test_redis_down_degrades_to_not_seen_instead_of_failing() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    seen = SeenEvents(client, 60)
    try:
        assert await asyncio.wait_for(seen.seen(unique("evt")), 5) is False
        assert not await seen.ping()
    finally:
        await client.aclose()


async def test_a_webhook_id_is_remembered_for_an_hour_not_a_week(stack: Stack) -> None:
    """Issue 15, item 1: a week of markers is 600 GB of Redis at 10k webhooks/s; PostgreSQL's
    unique event id deduplicates for ever, so Redis only covers E2B's redeliveries."""
    event_id = unique("evt")
    body = webhook("created", unique("sbx"), unique("proj"), event_id=event_id)
    client = redis_mode.client(stack.infra.redis_url)
    try:
        async with httpx.AsyncClient() as http:
            assert (await post_webhook(http, stack, body)).status_code == 200
        ttl = await eventually(lambda: _positive(client.ttl(keys.seen_event(event_id))), within=5)
        assert 0 < ttl <= 3600
    finally:
        await client.aclose()


async def _positive(ttl: Awaitable[int]) -> int | None:
    value = await ttl
    return value if value > 0 else None

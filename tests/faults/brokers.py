"""What the broker scenarios measure on a three-node Kafka: ingest's p99 second by second
around a fault, and how long until every partition has all its replicas in sync again."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from sandbox_common import topics
from tests.faults.load import Delivery

TOPICS = (topics.LIFECYCLE, topics.COMMANDS, topics.LIFECYCLE_DLQ)


@dataclass(frozen=True)
class Window:
    start: float  # seconds after the reference instant
    count: int  # webhooks due in it
    p99: float  # seconds from due to 2xx; infinite when one was never answered 2xx


def p99(delays: list[float]) -> float:
    ordered = sorted(delays)
    return ordered[len(ordered) * 99 // 100] if ordered else 0.0


def windows(
    deliveries: Iterable[Delivery], since: float, until: float, width: float = 1.0
) -> list[Window]:
    """The p99 of the webhooks due in each `width` seconds from `since` to `until` (monotonic
    times), by when they were due (open loop: what a sender at that moment waited)."""
    buckets: list[list[float]] = [[] for _ in range(max(0, math.ceil((until - since) / width)))]
    for d in deliveries:
        if d.due_at is None or not since <= d.due_at < until:
            continue
        delay = d.delay if d.delay is not None else math.inf
        buckets[int((d.due_at - since) / width)].append(delay)
    return [Window(i * width, len(b), p99(b)) for i, b in enumerate(buckets) if b]


def normal_again(found: list[Window], bound: float) -> float:
    """Seconds after the reference from which on every window's p99 is within `bound`
    (infinite: not by the last window)."""
    for i, w in enumerate(found):
        if all(later.p99 <= bound for later in found[i:]):
            return w.start
    return math.inf


async def partitions(bootstrap: str) -> list[dict[str, Any]]:
    """Every partition of the project's topics: its leader, replicas and in-sync replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(TOPICS))
    finally:
        await admin.close()
    found = [p for t in described for p in t.get("partitions", [])]
    assert found, f"no partitions described: {described}"
    return found


async def out_of_sync(bootstrap: str) -> int:
    """Partitions of the project's topics with a replica outside the in-sync set."""
    return sum(1 for p in await partitions(bootstrap) if set(p["replicas"]) - set(p["isr"]))


async def in_sync(bootstrap: str, within: float) -> float:
    """Seconds until every partition has all its replicas in sync."""
    started = time.monotonic()
    behind: int | str = "?"
    while time.monotonic() - started < within:
        try:
            behind = await out_of_sync(bootstrap)
        except KafkaError as exc:
            behind = repr(exc)
        if behind == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"replicas not in sync within {within}s: {behind} partitions behind")

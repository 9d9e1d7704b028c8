"""How far the projector is behind the topic, sampled while faults come and go.

Lag = records on `sandbox-lifecycle` (end offsets from the broker) minus the projector's next
offsets (from its own table in PostgreSQL). Either store may be down: a sample is then skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from projector.settings import ProjectorSettings
from sandbox_common import topics
from sandbox_common.consumer_lag import committed_lag
from tests.connected.conftest import topic_partitions
from tests.faults.invariants import Snapshot, redis_behind


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    ends: dict[int, int]
    projected: dict[int, int]

    @property
    def lag(self) -> int:
        return sum(end - self.projected.get(p, 0) for p, end in self.ends.items())

    @property
    def projected_total(self) -> int:
        return sum(self.projected.values())


class EndOffsets:
    """One consumer for the whole run (aiokafka reconnects by itself after a broker restart)."""

    def __init__(self, kafka: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=kafka, request_timeout_ms=3000)
        self._kafka = kafka
        self._started = False
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def of(self, topic: str = topics.LIFECYCLE) -> dict[int, int]:
        if not self._started:
            await self._consumer.start()
            self._started = True
        if topic not in self._partitions:
            self._partitions[topic] = await topic_partitions(self._kafka, topic)
            assert self._partitions[topic], f"topic {topic} has no partitions"
        tps = self._partitions[topic]
        ends = await self._consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def close(self) -> None:
        if self._started:
            # aiokafka#647: stop() can raise CancelledError from its own internal task.
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer.stop()


async def projected_offsets(database_url: str) -> dict[int, int]:
    conn = await asyncpg.connect(database_url, timeout=3)
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM projector_offsets WHERE topic = $1",
            topics.LIFECYCLE,
        )
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


async def sample(offsets: EndOffsets, database_url: str) -> Sample | None:
    try:
        async with asyncio.timeout(5):
            ends = await offsets.of()
            projected = await projected_offsets(database_url)
    except (KafkaError, OSError, TimeoutError, asyncpg.PostgresError):
        return None
    if not ends:
        return None
    return Sample(time.monotonic(), ends, projected)


@dataclass
class LagWatch:
    offsets: EndOffsets
    database_url: str
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            found = await sample(self.offsets, self.database_url)
            if found is not None:
                self.samples.append(found)
            await asyncio.sleep(self.interval)

    @property
    def max_lag(self) -> int:
        return max((s.lag for s in self.samples), default=0)

    def caught_up(self, since: float, lag: int) -> float | None:
        """Seconds after `since` until the lag was back at or below `lag`."""
        for s in self.samples:
            if s.at > since and s.lag <= lag:
                return s.at - since
        return None

    def every_partition_moved(self, at: float) -> float | None:
        """Seconds after `at` until each partition's projected offset had moved past where the
        first sample after `at` found it: after a member of the group died at `at`, until its
        partitions, frozen where it left them, had a new owner (to the sampling interval)."""
        after = [s for s in self.samples if s.at > at]
        if not after:
            return None
        frozen, waiting = after[0].projected, set(after[0].ends)
        for s in after[1:]:
            waiting = {p for p in waiting if s.projected.get(p, 0) <= frozen.get(p, 0)}
            if not waiting:
                return s.at - at
        return None

    def moved_since(self, at: float) -> bool:
        """The projector wrote offsets after `at` (compared with the last sample before it)."""
        before = [s for s in self.samples if s.at <= at]
        after = [s for s in self.samples if s.at > at]
        base = before[-1].projected_total if before else 0
        return any(s.projected_total > base for s in after)


async def drained(
    offsets: EndOffsets, database_url: str, within: float, quiet: float = 0.0
) -> float:
    """Seconds until the projector has every record (and, with `quiet`, nothing new came for
    that long)."""
    started = time.monotonic()
    last: Sample | None = None
    since = started
    while time.monotonic() - started < within:
        now = await sample(offsets, database_url)
        if now is not None and now.lag == 0:
            if not quiet:
                return now.at - started
            if last is None or now.ends != last.ends:
                last, since = now, now.at
            elif now.at - since >= quiet:
                return since - started
        else:
            last = None
        await asyncio.sleep(0.25)
    raise AssertionError(f"projector not drained within {within}s (last sample {last})")


async def committed(kafka: str, within: float) -> float:
    """Seconds until the projector's group has committed every record of the topic. It commits
    a batch once its Redis write is done too, which can trail PostgreSQL's by a batch whose
    `sandbox-state` records the broker has not acknowledged yet (pipeline.py)."""
    started = time.monotonic()
    group = ProjectorSettings.projector_group_id
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, request_timeout_ms=5000)
    ends = AIOKafkaConsumer(bootstrap_servers=kafka, request_timeout_ms=5000)
    await admin.start()
    await ends.start()
    lag: dict[int, int] | str | None = None
    try:
        while time.monotonic() - started < within:
            try:
                lag = await committed_lag(admin, ends, group, topics.LIFECYCLE)
            except KafkaError as exc:
                lag = repr(exc)
            if isinstance(lag, dict) and not any(lag.values()):
                return time.monotonic() - started
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka#647
            await ends.stop()
    raise AssertionError(f"group {group} has not committed everything within {within}s: {lag}")


async def redis_caught_up(
    redis_url: str, snap: Snapshot, idle_seconds: int, within: float
) -> float:
    """Seconds until Redis holds at least what the PostgreSQL snapshot does (infinite: not
    within `within`; the strict comparison after the group's commit then says what differs)."""
    started = time.monotonic()
    first = behind = await redis_behind(redis_url, snap, idle_seconds)
    while behind:
        if time.monotonic() - started > within:
            return math.inf
        await asyncio.sleep(0.25)
        behind = await redis_behind(redis_url, snap, idle_seconds)
    if first:  # what trailed, for the run's output
        print(
            f"\n[faults] Redis behind PostgreSQL for {time.monotonic() - started:.1f}s: {first[:3]}"
        )
    return time.monotonic() - started

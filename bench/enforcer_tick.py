"""Cost of one enforcer tick over a large fleet (issues 3 and 16): 1,000,000 running sandboxes in
the idle-deadline index, 10,000 of them due. (Paused and killed sandboxes are not in the index
at all, which is the point of it: a tick never looks at them.)

Runs the real tick (`run_tick`, batches of 1,000, its JSON log lines and its pause-request
markers included) against a real
Redis (database 14, emptied first) and prints the time of a tick that judges the due sandboxes
and sends nothing (dry run), and of one that publishes the 10,000 pause commands and their
10,000 PAUSE_REQUESTED facts through the ticker's publisher (aiokafka, acks=all, idempotent) to a
real Kafka and waits for every acknowledgement. It publishes to two topics of its own (12
partitions each, deleted afterwards), so no running actuator or projector sees made-up pauses.

    source .state/env.sh && uv run python -m bench.enforcer_tick
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from enforcer.ticker.bootstrap import TICK_BATCH_BYTES
from enforcer.ticker.tick import TickOptions, run_tick
from sandbox_common import logging as jsonlog
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_publisher import KafkaPublisher, Shape
from sandbox_common.readmodel import Layout, Status, StatusDoc, encode_doc, keys
from sandbox_common.readmodel.coordination import RequestedPauses
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.settings import KafkaSettings, load

# The services' default READ_MODEL_SHARDS.
LAYOUT = Layout()

RUNNING, DUE, BATCH = 1_000_000, 10_000, 1_000
T = TypeVar("T")
ROUNDS = 3


async def seed(
    client: aioredis.Redis, now: datetime, running: int = RUNNING, due: int = DUE
) -> None:
    """`running` sandboxes in the index, the first `due` of them past their deadline (each a
    different one, a microsecond apart, as real activity times are) with a RUNNING document."""
    await client.flushdb()
    async with client.pipeline(transaction=False) as pipe:
        for i in range(running):
            is_due = i < due
            active = now - timedelta(seconds=300 if is_due else 60, microseconds=i)
            deadline = active + timedelta(seconds=180)
            sid = f"tick-{i}"
            pipe.zadd(LAYOUT.idle_deadlines(LAYOUT.shard(sid)), {sid: deadline.timestamp()})
            if is_due:  # only due sandboxes are ever read; the rest need no document here
                doc = StatusDoc(
                    sandbox_id=sid,
                    project_id=f"p-{i}",
                    status=Status.RUNNING,
                    last_active_at=active,
                    status_changed_at=active,
                    idle_deadline_at=deadline,
                )
                pipe.hset(LAYOUT.doc(sid), keys.DOC_FIELD, encode_doc(doc))
            if i % 10_000 == 9_999:
                await pipe.execute()
        await pipe.execute()


@asynccontextmanager
async def scratch_topics(connection: KafkaConnection) -> AsyncIterator[tuple[str, str]]:
    run = uuid.uuid4().hex[:6]
    names = (f"bench-tick-{run}-lifecycle", f"bench-tick-{run}-commands")
    admin = AIOKafkaAdminClient(**connection.client_kwargs())
    await admin.start()
    try:
        # As many partitions as the real topics have: the producer's batching depends on it.
        await admin.create_topics([NewTopic(n, 12, 1) for n in names])
        yield names
    finally:
        await admin.delete_topics(list(names))
        await admin.close()


def _line(label: str, judged: int, wall: list[float], cpu: list[float]) -> str:
    return (
        f"tick, {label}: {judged:,} of {RUNNING:,} running; "
        f"wall median {statistics.median(wall):.0f} ms (min {min(wall):.0f}, "
        f"max {max(wall):.0f}), CPU median {statistics.median(cpu):.0f} ms"
    )


async def measure() -> list[str]:
    """One line per variant: the median of a few ticks, wall and CPU."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
    connection = load(KafkaSettings).kafka_connection()
    client = aioredis.Redis.from_url(url)
    now = datetime.now(UTC)
    print(f"[bench] seeding {RUNNING:,} running sandboxes ({DUE:,} due) into {url} ...")
    await seed(client, now)
    model = ReadModelReader(client, LAYOUT)
    options = TickOptions(batch_size=BATCH)
    lines: list[str] = []
    wall, cpu, judged = [], [], 0
    for _ in range(ROUNDS):
        w0, c0 = time.perf_counter(), time.process_time()
        report = await run_tick(now, model, _NoPublisher(), TickOptions(BATCH, dry_run=True))
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        judged = report.would_pause
    lines.append(_line("dry run (judge only)", judged, wall, cpu))
    async with scratch_topics(connection) as names:
        publisher = KafkaPublisher(
            connection, 10.0, client_id="bench-tick", shape=Shape(TICK_BATCH_BYTES, names)
        )
        await publisher.start()
        try:
            requested = RequestedPauses(client, 300)
            await run_tick(now, model, publisher, options)  # warm-up: metadata, connections
            wall, cpu = [], []
            for _ in range(ROUNDS):
                await client.delete(keys.PAUSES_REQUESTED)  # each round asks for all again
                w0, c0 = time.perf_counter(), time.process_time()
                report = await run_tick(now, model, publisher, options, requested)
                wall.append((time.perf_counter() - w0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                assert report.errors == 0, report
                judged = report.paused
        finally:
            await publisher.stop()
    lines.append(
        _line(
            f"{DUE:,} pause commands + {DUE:,} facts published (acks=all, target <= 1,000 ms)",
            judged,
            wall,
            cpu,
        )
    )
    await client.flushdb()
    await client.aclose()
    return lines


class _NoPublisher:
    """A dry run publishes nothing."""

    async def publish_commands_all(self, issued: object) -> list[BaseException | None]:
        raise AssertionError("a dry run published")

    async def publish_all(self, facts: object) -> list[BaseException | None]:
        raise AssertionError("a dry run published")


def run_quietly_with(measurement: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """The tick's JSON log lines (one per paused sandbox) are part of its cost: formatted as in
    production, written to /dev/null rather than to a terminal."""
    jsonlog.configure("enforcer")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    with open(os.devnull, "w") as sink:
        previous = handler.setStream(sink)
        try:
            return asyncio.run(measurement())
        finally:
            handler.setStream(previous)


def run_quietly() -> list[str]:
    return run_quietly_with(measure)


if __name__ == "__main__":
    for line in run_quietly():
        print(line)

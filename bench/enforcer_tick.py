"""Cost of one enforcer tick over a large fleet (issue 3): 100,000 running sandboxes in the
idle-deadline index, 1,000 of them due. The 900,000 other tracked sandboxes (paused, killed)
are not in the index at all, which is the point of it: a tick never looks at them.

Runs the real tick (`run_tick`, its JSON log lines included) against a real Redis (database 14,
emptied first) and prints
the time of a tick that judges the due sandboxes and sends nothing (dry run), and of one that
hands 1,000 pause requests to a publisher that only counts them. Kafka is left out on purpose:
its cost is the broker's, measured by the ingest benchmark.

    source .state/env.sh && uv run python -m bench.enforcer_tick
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from enforcer.ticker.tick import TickOptions, run_tick
from sandbox_common import logging as jsonlog
from sandbox_common.commands import Command
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import Layout, Status, StatusDoc, encode_doc, keys
from sandbox_common.readmodel.reader import ReadModelReader

# The services' default READ_MODEL_SHARDS.
LAYOUT = Layout()

RUNNING, DUE = 100_000, 1_000


class CountingPublisher:
    def __init__(self) -> None:
        self.sent = 0

    async def publish_command(self, command: Command) -> None:
        self.sent += 1

    async def publish(self, fact: Envelope) -> None:
        return None


async def seed(client: aioredis.Redis, now: datetime) -> None:
    await client.flushdb()
    async with client.pipeline(transaction=False) as pipe:
        for i in range(RUNNING):
            due = i < DUE
            active = now - timedelta(seconds=300 if due else 60)
            deadline = active + timedelta(seconds=180)
            sid = f"tick-{i}"
            pipe.zadd(LAYOUT.idle_deadlines(LAYOUT.shard(sid)), {sid: deadline.timestamp()})
            if due:  # only due sandboxes are ever read; the rest need no document here
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


async def measure() -> list[str]:
    """One line per variant: the median of 5 ticks, wall and CPU."""
    lines: list[str] = []
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
    client = aioredis.Redis.from_url(url)
    now = datetime.now(UTC)
    print(f"[bench] seeding {RUNNING:,} running sandboxes ({DUE:,} due) into {url} ...")
    await seed(client, now)
    model = ReadModelReader(client, LAYOUT)
    for dry_run in (True, False):
        wall, cpu, judged = [], [], 0
        for _ in range(5):
            publisher = CountingPublisher()
            w0, c0 = time.perf_counter(), time.process_time()
            report = await run_tick(
                now, model, publisher, TickOptions(batch_size=DUE * 2, dry_run=dry_run)
            )
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            judged = report.would_pause if dry_run else publisher.sent
        label = "dry run (judge only)" if dry_run else "1,000 pause requests handed over"
        lines.append(
            f"tick, {label}: {judged:,} paused of {RUNNING:,} running; "
            f"wall median {statistics.median(wall):.1f} ms (min {min(wall):.1f}), "
            f"CPU median {statistics.median(cpu):.1f} ms"
        )
    await client.flushdb()
    await client.aclose()
    return lines


def run_quietly() -> list[str]:
    """The tick's JSON log lines (one per paused sandbox) are part of its cost: formatted as in
    production, written to /dev/null rather than to a terminal."""
    jsonlog.configure("enforcer")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    with open(os.devnull, "w") as sink:
        previous = handler.setStream(sink)
        try:
            return asyncio.run(measure())
        finally:
            handler.setStream(previous)


if __name__ == "__main__":
    for line in run_quietly():
        print(line)

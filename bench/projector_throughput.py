"""Projector throughput: how fast a backlog of facts is folded into PostgreSQL and Redis.

Publishes N facts (created / updated / paused / resumed over M sandboxes) to sandbox-lifecycle,
then starts a projector with a fresh consumer group positioned just before them and times how
long it takes to commit past the last one. Uses the test database and Redis db 15.

    source .state/env.sh && uv run python -m bench.projector_throughput [N] [M]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sandbox_common import envelope as env
from sandbox_common import topics
from sandbox_common.envelope import Envelope, FactType, Source

KINDS = [FactType.CREATED, FactType.UPDATED, FactType.PAUSED, FactType.RESUMED]


async def partitions(bootstrap: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topics.LIFECYCLE])
    finally:
        await admin.close()
    return [TopicPartition(topics.LIFECYCLE, p["partition"]) for p in described["partitions"]]


async def offsets(bootstrap: str, group: str | None) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await partitions(bootstrap)
        if group is None:
            return dict(await consumer.end_offsets(tps))
        consumer.assign(tps)
        return {tp: (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()


async def pin_group(bootstrap: str, group: str, at: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(at))
        await consumer.commit(at)
    finally:
        await consumer.stop()


async def publish(bootstrap: str, count: int, sandboxes: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    run = uuid.uuid4().hex[:6]
    t0 = datetime.now(UTC)
    try:
        pending = []
        for i in range(count):
            sid = f"pt-{run}-{i % sandboxes}"
            fact = Envelope(
                event_id=str(uuid.uuid4()),
                type=KINDS[(i // sandboxes) % len(KINDS)],
                source=Source.E2B_WEBHOOK,
                sandbox_id=sid,
                project_id=f"{sid}-p",
                occurred_at=t0 + timedelta(milliseconds=i),
                received_at=t0,
                data={"metadata": {"projectId": f"{sid}-p"}},
            )
            pending.append(
                await producer.send(topics.LIFECYCLE, env.encode(fact), key=topics.record_key(sid))
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class ProjectorResult:
    facts: int
    seconds: float
    cpu_seconds: float

    def line(self) -> str:
        return (
            f"projector: {self.facts:,} facts in {self.seconds:.1f} s = "
            f"{self.facts / self.seconds:,.0f} facts/s (start-up and group join included); "
            f"projector CPU {self.cpu_seconds / self.facts * 1e6:.0f} us/fact"
        )


async def measure(count: int, sandboxes: int) -> ProjectorResult:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    group = f"bench-projector-{uuid.uuid4().hex[:6]}"
    start = await offsets(bootstrap, None)
    await pin_group(bootstrap, group, start)
    print(f"[bench] publishing {count:,} facts over {sandboxes:,} sandboxes ...", flush=True)
    await publish(bootstrap, count, sandboxes)
    end = await offsets(bootstrap, None)
    total = sum(end[tp] - start[tp] for tp in end)
    env_vars = {
        **os.environ,
        "PROJECTOR_GROUP_ID": group,
        "PROJECTOR_PORT": "18182",
        "DATABASE_URL": os.environ.get("TEST_DATABASE_URL", os.environ["DATABASE_URL"]),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
        + "/15",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from projector.main import main; main()", env=env_vars
    )
    began = time.perf_counter()
    cpu0 = _cpu(proc.pid)
    try:
        while True:
            await asyncio.sleep(0.5)
            done = await offsets(bootstrap, group)
            left = sum(max(0, end[tp] - done.get(tp, 0)) for tp in end)
            elapsed = time.perf_counter() - began
            print(
                f"\r[bench] {total - left:,}/{total:,} facts, {elapsed:5.1f} s", end="", flush=True
            )
            if left == 0:
                break
        cpu = _cpu(proc.pid) - cpu0
    finally:
        proc.terminate()
        await proc.wait()
    print(flush=True)
    return ProjectorResult(total, elapsed, cpu)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    print(asyncio.run(measure(n, m)).line())

"""Replay benchmark: `sandboxctl replay` of 1,000,000 facts over 100,000 sandboxes from a topic
of its own into PostgreSQL (schema `bench_replay` of the test database) and Redis (db 14).

The topic is published once and kept (a second run reuses it). The replay runs as the real CLI,
in a subprocess; its wall time covers everything: reading the topic, folding, COPY, indexes,
shadow keys and both swaps.

    source .state/env.sh && uv run python -m bench.replay [EVENTS] [SANDBOXES]
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.replay_data import history
from projector.adapters.schema import migrate
from sandbox_common import envelope as env
from sandbox_common import topics

SCHEMA = "bench_replay"
PARTITIONS = 12


@dataclass(frozen=True)
class ReplayResult:
    events: int
    sandboxes: int
    seconds: float
    cpu_seconds: float

    def line(self) -> str:
        verdict = "met" if self.seconds <= 60 else "MISSED"
        return (
            f"replay: {self.events:,} facts over {self.sandboxes:,} sandboxes into PostgreSQL and"
            f" Redis in {self.seconds:.1f} s = {self.events / self.seconds:,.0f} events/s"
            f" (target <= 60 s: {verdict}); sandboxctl CPU {self.cpu_seconds:.1f} s"
        )


async def _count(bootstrap: str, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return None
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def ensure_topic(bootstrap: str, topic: str, events: int, sandboxes: int) -> None:
    found = await _count(bootstrap, topic)
    if found == events:
        print(f"[bench] reusing {topic} ({events:,} facts)", flush=True)
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if found is not None:
            await admin.delete_topics([topic])
            await asyncio.sleep(2)
        factor = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
        await admin.create_topics([NewTopic(topic, PARTITIONS, factor)])
    finally:
        await admin.close()
    print(f"[bench] publishing {events:,} facts over {sandboxes:,} sandboxes to {topic} ...")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=topics.COMPRESSION,
        linger_ms=50,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        pending = []
        for fact in history(events, sandboxes, f"br-{uuid.uuid4().hex[:6]}"):
            pending.append(
                await producer.send(topic, env.encode(fact), key=topics.record_key(fact.sandbox_id))
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def prepare_store(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    finally:
        await conn.close()
    url = f"{database_url}{'&' if '?' in database_url else '?'}search_path={SCHEMA}"
    await migrate(url)
    return url


def measure(events: int = 1_000_000, sandboxes: int = 100_000) -> ReplayResult:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    topic = f"bench-replay-{events}"
    asyncio.run(ensure_topic(bootstrap, topic, events, sandboxes))
    base_url = os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    database_url = asyncio.run(prepare_store(base_url))
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
    child_env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    print(f"[bench] sandboxctl replay --topic {topic}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from sandboxctl.cli import main; main()",
            "replay",
            "--topic",
            topic,
        ],
        env=child_env,
        check=True,
    )
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ReplayResult(events, sandboxes, seconds, cpu)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    print(measure(n, m).line())

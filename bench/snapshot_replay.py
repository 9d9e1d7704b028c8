"""Snapshot replay benchmark (issue 15, item 4): `sandboxctl replay` (from offset 0) against
`sandboxctl replay --from-snapshot`, side by side on the same 1,000,000 facts over 100,000
sandboxes; target: the snapshot replay at least 3x faster.

The lifecycle topic is bench/replay.py's (published once, reused). The snapshot topic is a
topic of its own (`bench-snapshot-state-<events>`, compacted like sandbox-state), written with
the projector's own records (snapshots.outgoing, adapters.kafka_state) from the fold of all
but the last 1% of each partition: that 1% is the tail the snapshot replay reads. Stores as
bench/replay.py: schema `bench_replay`, Redis db 14; the live stack is not touched.

    source .state/env.sh && uv run python -m bench.snapshot_replay [EVENTS] [SANDBOXES]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.replay import PARTITIONS, ensure_topic, prepare_store
from projector.adapters.kafka_state import KafkaStateSnapshots
from projector.domain import SandboxState, evolve
from projector.replay.kafka_source import TopicReader
from projector.snapshots import outgoing
from sandbox_common import envelope as env
from sandbox_common.kafka_connection import KafkaConnection
from sandboxctl.topic_specs import COMPACTED

TAIL_SHARE = 0.01


@dataclass(frozen=True)
class SnapshotReplayResult:
    events: int
    sandboxes: int
    tail: int
    full_seconds: float
    snapshot_seconds: float

    def line(self) -> str:
        ratio = self.full_seconds / self.snapshot_seconds
        verdict = "met" if ratio >= 3 else "MISSED"
        return (
            f"snapshot replay: {self.events:,} facts over {self.sandboxes:,} sandboxes: full"
            f" replay {self.full_seconds:.1f} s, --from-snapshot {self.snapshot_seconds:.1f} s"
            f" (tail {self.tail:,} facts) = {ratio:.1f}x faster (target >= 3x: {verdict})"
        )


async def write_snapshot(bootstrap: str, topic: str, state_topic: str) -> int:
    """The projector's records for the fold of all but each partition's last TAIL_SHARE; returns
    how many facts are left for the tail."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if state_topic in await admin.list_topics():
            await admin.delete_topics([state_topic])
            await asyncio.sleep(2)
        factor = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
        await admin.create_topics(
            [NewTopic(state_topic, PARTITIONS, factor, topic_configs=COMPACTED)]
        )
    finally:
        await admin.close()
    states: dict[str, SandboxState] = {}
    partition_of: dict[str, int] = {}
    async with TopicReader(KafkaConnection(bootstrap), topic) as reader:
        first, end = await reader.starts(), await reader.ends()
        cut = {p: o - int((o - first[p]) * TAIL_SHARE) for p, o in end.items()}
        async for batch in reader.read(first, cut):
            for r in batch:
                fact = env.decode(r.value)
                states[fact.sandbox_id] = evolve(states.get(fact.sandbox_id), fact)
                partition_of[fact.sandbox_id] = r.partition
    writer = KafkaStateSnapshots(KafkaConnection(bootstrap), state_topic)
    try:
        ends = [(topic, p, o) for p, o in cut.items()]
        await writer.write(outgoing(states.values(), partition_of, ends))
    finally:
        await writer.close()
    return sum(end[p] - cut[p] for p in end)


def _replay(env_vars: dict[str, str], *args: str) -> float:
    print(f"[bench] sandboxctl replay {' '.join(args)}", flush=True)
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from sandboxctl.cli import main; main()", "replay", *args],
        env=env_vars,
        check=True,
    )
    return time.perf_counter() - began


def measure(events: int = 1_000_000, sandboxes: int = 100_000) -> SnapshotReplayResult:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    topic = f"bench-replay-{events}"
    state_topic = f"bench-snapshot-state-{events}"
    asyncio.run(ensure_topic(bootstrap, topic, events, sandboxes))
    print(f"[bench] writing {state_topic} (the fold of all but the last 1%) ...", flush=True)
    tail = asyncio.run(write_snapshot(bootstrap, topic, state_topic))
    base_url = os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    database_url = asyncio.run(prepare_store(base_url))
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
    child_env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    full = _replay(child_env, "--topic", topic)
    from_snapshot = _replay(
        child_env, "--topic", topic, "--from-snapshot", "--state-topic", state_topic
    )
    return SnapshotReplayResult(events, sandboxes, tail, full, from_snapshot)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    print(measure(n, m).line())

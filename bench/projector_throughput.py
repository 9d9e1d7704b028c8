"""Projector throughput: how fast a backlog of facts is folded into PostgreSQL and Redis.

Publishes N facts (created / updated / paused / resumed over M sandboxes, the last one of each
sandbox a kill) to sandbox-lifecycle, waits for the live projector (if any) to fold them too, so
it does not compete, then starts a projector with a fresh consumer group positioned just before
them. It polls the group's committed offsets and reports two rates: steady state (from the
first offset commit to the last, the rate a running projector keeps up) and total (from process
start, start-up and group join included). CPU per fact is measured over the steady window: the
projector process, PostgreSQL as the backends of the projector's own connections (found by
`application_name`) and as the whole server, and the Redis server (these two with whatever
else runs on the machine). Uses the test database and Redis db 15.

    source .state/env.sh && uv run python -m bench.projector_throughput [N] [M]

`BENCH_PROJECTOR_PYTHON` names another interpreter to run the projector with (another
checkout's `.venv/bin/python`), to compare two versions side by side.
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

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import cpu
from projector.adapters.schema import migrate
from sandbox_common import envelope as env
from sandbox_common import topics
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.settings import load
from sandboxctl.settings import Settings

KINDS = [FactType.CREATED, FactType.UPDATED, FactType.PAUSED, FactType.RESUMED]
FACTS = 200_000
SANDBOXES = 20_000
RUN_DIR = Path(os.environ.get("STATE_DIR", Path(__file__).resolve().parents[1] / ".state")) / "run"
_POLL_SECONDS = 0.2
_LIVE_WAIT_SECONDS = 180.0


async def partitions(bootstrap: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topics.LIFECYCLE])
    finally:
        await admin.close()
    return [TopicPartition(topics.LIFECYCLE, p["partition"]) for p in described["partitions"]]


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await partitions(bootstrap)))
    finally:
        await consumer.stop()


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    found = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}


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
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=topics.COMPRESSION,
        linger_ms=20,
        max_batch_size=256 * 1024,
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
                # The last round kills every sandbox: the live projector folds these facts too,
                # and the enforcer would go on pausing thousands of made-up sandboxes.
                type=FactType.KILLED if i >= count - sandboxes else KINDS[(i // sandboxes) % 4],
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
    sandboxes: int
    seconds: float  # process start to the last commit
    steady_facts: int  # committed between the first offset commit and the last
    steady_seconds: float
    cpu_seconds: float  # the projector process, steady window
    pg_cpu_seconds: float  # the projector's PostgreSQL backends, steady window
    pg_server_cpu_seconds: float  # the whole PostgreSQL server, steady window (other load too)
    redis_cpu_seconds: float  # the Redis server, steady window (other load too)

    @property
    def steady_rate(self) -> float:
        return self.steady_facts / self.steady_seconds if self.steady_seconds else 0.0

    def line(self) -> str:
        per = 1e6 / max(self.steady_facts, 1)
        return (
            f"projector: {self.facts:,} facts over {self.sandboxes:,} sandboxes;"
            f" steady state {self.steady_rate:,.0f} facts/s ({self.steady_facts:,} facts from the"
            f" first offset commit to the last in {self.steady_seconds:.1f} s);"
            f" {self.facts / self.seconds:,.0f} facts/s in total ({self.seconds:.1f} s, start-up"
            f" and group join included); CPU per fact in steady state: projector"
            f" {self.cpu_seconds * per:.0f} us, PostgreSQL {self.pg_cpu_seconds * per:.0f} us"
            f" (its backends; whole server {self.pg_server_cpu_seconds * per:.0f} us, other load"
            f" included), Redis {self.redis_cpu_seconds * per:.0f} us"
        )


@dataclass(frozen=True)
class _Sample:
    at: float
    done: int
    projector_cpu: float
    backends: dict[int, float]
    servers: dict[str, float]


async def measure(count: int = FACTS, sandboxes: int = SANDBOXES) -> ProjectorResult:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    database_url = os.environ.get("TEST_DATABASE_URL", os.environ["DATABASE_URL"])
    await migrate(database_url)  # on a fresh machine nothing has created its tables yet
    run = uuid.uuid4().hex[:6]
    group = f"bench-projector-{run}"
    app_name = f"bench-projector-{run}"
    start = await end_offsets(bootstrap)
    await pin_group(bootstrap, group, start)
    print(f"[bench] publishing {count:,} facts over {sandboxes:,} sandboxes ...", flush=True)
    await publish(bootstrap, count, sandboxes)
    end = await end_offsets(bootstrap)
    total = sum(end[tp] - start[tp] for tp in end)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    pg = await asyncpg.connect(database_url)
    try:
        await _wait_for_live_projector(admin, end)
        proc = await asyncio.create_subprocess_exec(
            os.environ.get("BENCH_PROJECTOR_PYTHON", sys.executable),
            "-c",
            "from projector.main import main; main()",
            env=_projector_env(group, database_url, app_name),
        )
        try:
            samples = await _follow(admin, pg, group, app_name, proc.pid, start, end)
        finally:
            proc.terminate()
            await proc.wait()
    finally:
        await pg.close()
        await admin.close()
    print(flush=True)
    return _result(total, sandboxes, samples)


def _projector_env(group: str, database_url: str, app_name: str) -> dict[str, str]:
    sep = "&" if "?" in database_url else "?"
    return {
        **os.environ,
        "PROJECTOR_GROUP_ID": group,
        "PROJECTOR_PORT": "18182",
        "DATABASE_URL": f"{database_url}{sep}application_name={app_name}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
        + "/15",
        "LOG_LEVEL": "WARNING",
    }


async def live_projector_caught_up() -> None:
    """Waits until the live projector has folded everything on the topic so far: a measurement
    should not share the machine with the backlog the one before it left."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    end = await end_offsets(bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await _wait_for_live_projector(admin, end)
    finally:
        await admin.close()
    print(flush=True)


async def _wait_for_live_projector(
    admin: AIOKafkaAdminClient, end: dict[TopicPartition, int]
) -> None:
    """The live projector folds the same facts: let it finish first, so it does not compete."""
    live = load(Settings).projector_group_id
    deadline = time.monotonic() + _LIVE_WAIT_SECONDS
    while time.monotonic() < deadline:
        done = await committed(admin, live)
        if not done:
            return  # no live projector
        left = sum(max(0, end[tp] - done.get(tp, 0)) for tp in end)
        if left == 0:
            return
        print(f"\r[bench] waiting for the live projector: {left:,} facts left", end="", flush=True)
        await asyncio.sleep(1.0)
    print("\n[bench] the live projector did not catch up; measuring alongside it", flush=True)


async def _follow(
    admin: AIOKafkaAdminClient,
    pg: asyncpg.Connection,
    group: str,
    app_name: str,
    pid: int,
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
) -> list[_Sample]:
    total = sum(end[tp] - start[tp] for tp in end)
    began = time.perf_counter()
    samples = [_Sample(began, 0, _cpu(pid), {}, {})]
    while samples[-1].done < total:
        await asyncio.sleep(_POLL_SECONDS)
        done_at = await committed(admin, group)
        done = sum(min(end[tp], done_at.get(tp, start[tp])) - start[tp] for tp in end)
        pids = await pg.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", app_name
        )
        backends = {r["pid"]: _cpu(r["pid"]) for r in pids}
        servers = cpu.snapshot(RUN_DIR)
        samples.append(_Sample(time.perf_counter(), done, _cpu(pid), backends, servers))
        elapsed = samples[-1].at - began
        print(f"\r[bench] {done:,}/{total:,} facts, {elapsed:5.1f} s", end="", flush=True)
    return samples


def _result(total: int, sandboxes: int, samples: list[_Sample]) -> ProjectorResult:
    first = next(s for s in samples if s.done > 0)
    last = samples[-1]
    backends = sum(cpu_s - first.backends.get(pid, 0.0) for pid, cpu_s in last.backends.items())
    return ProjectorResult(
        facts=total,
        sandboxes=sandboxes,
        seconds=last.at - samples[0].at,
        steady_facts=last.done - first.done,
        steady_seconds=last.at - first.at,
        cpu_seconds=last.projector_cpu - first.projector_cpu,
        pg_cpu_seconds=backends,
        pg_server_cpu_seconds=_server(first, last, "postgres"),
        redis_cpu_seconds=_server(first, last, "redis"),
    )


def _server(first: _Sample, last: _Sample, part: str) -> float:
    return last.servers.get(part, 0.0) - first.servers.get(part, 0.0)


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else FACTS
    m = int(sys.argv[2]) if len(sys.argv) > 2 else SANDBOXES
    print(asyncio.run(measure(n, m)).line())

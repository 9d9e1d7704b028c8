"""The command path end to end (issue 16): 10,000 sandboxes due in one tick, against the E2B
simulator taking 1 s per pause, until every one is paused.

The real tick (`run_tick` and the ticker's publisher) judges the 10,000 and publishes their
pause commands and PAUSE_REQUESTED facts to `sandbox-commands` and `sandbox-lifecycle`; one
actuator process (the real `sandbox-actuator`, a consumer group of its own that starts at the
end of the topic) carries them out against a simulator started here with
E2B_SIM_PAUSE_LATENCY_MS=1000. Its read model is Redis database 13 (emptied first), so a
running stack's actuator finds no such sandboxes and leaves them alone (it reads each once);
a running stack's projector does fold the requests and outcomes of these made-up sandboxes
(`make bench` retires them afterwards, as its other measurements do theirs).

Settings the benchmark changes from the defaults, for one process to reach 200 pauses/s at 1 s
each: E2B_MAX_CONCURRENCY=256 (calls in flight; the default 32 allows ~32/s at 1 s a call) and
E2B_RATE_PER_SECOND=400 / E2B_RATE_BURST=400 (the call budget; the default 100/s caps it at
100/s, E2B itself allows ~666/s per team). ACTUATOR_MAX_IN_FLIGHT keeps its default, 256.

Prints the tick's duration, the time from the tick's start until the last pause answered, and
the pauses per second the actuator sustained (E2B's answers, from the simulator's call log).

    source .state/env.sh && uv run python -m bench.pause_throughput
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.enforcer_tick import LAYOUT, run_quietly_with
from enforcer.ticker.bootstrap import TICK_BATCH_BYTES
from enforcer.ticker.tick import TickOptions, run_tick
from sandbox_common import topics
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_publisher import KafkaPublisher, Shape
from sandbox_common.readmodel import Status, StatusDoc, encode_doc, keys
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.settings import KafkaSettings, load

ROOT = Path(__file__).resolve().parents[1]
DUE = int(os.environ.get("BENCH_PAUSES", "10000"))
KEY = "bench-pause-key"
ACTUATOR_ENV = {
    "E2B_MAX_CONCURRENCY": "256",
    "E2B_RATE_PER_SECOND": "400",
    "E2B_RATE_BURST": "400",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(code: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


async def _until_ok(url: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: process exited ({proc.returncode})")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {within}s")


async def _create(sim: str, count: int) -> list[str]:
    gate = asyncio.Semaphore(64)
    async with httpx.AsyncClient(base_url=sim, headers={"X-API-Key": KEY}, timeout=30) as c:

        async def one() -> str:
            async with gate:
                r = await c.post("/sandboxes", json={"templateID": "base", "timeout": 3600})
                r.raise_for_status()
                return str(r.json()["sandboxID"])

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def _seed(client: aioredis.Redis, sandbox_ids: list[str], now: datetime) -> None:
    """Each RUNNING and idle past its deadline, a microsecond apart."""
    await client.flushdb()
    async with client.pipeline(transaction=False) as pipe:
        for i, sid in enumerate(sandbox_ids):
            active = now - timedelta(seconds=300, microseconds=i)
            deadline = active + timedelta(seconds=180)
            doc = StatusDoc(
                sandbox_id=sid,
                project_id=f"bench-{i}",
                status=Status.RUNNING,
                last_active_at=active,
                status_changed_at=active,
                idle_deadline_at=deadline,
            )
            pipe.zadd(LAYOUT.idle_deadlines(LAYOUT.shard(sid)), {sid: deadline.timestamp()})
            pipe.hset(LAYOUT.doc(sid), keys.DOC_FIELD, encode_doc(doc))
        await pipe.execute()


async def _group_at_end(connection: KafkaConnection, group: str) -> None:
    """The actuator's new group starts at the end of sandbox-commands, not at its history."""
    admin = AIOKafkaAdminClient(**connection.client_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topics.COMMANDS])
    finally:
        await admin.close()
    tps = [TopicPartition(topics.COMMANDS, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**connection.client_kwargs(), group_id=group)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit(dict(await consumer.end_offsets(tps)))
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Result:
    due: int
    tick_ms: float
    all_paused_s: float
    pauses_per_s: float
    statuses: dict[int, int]
    sandbox_ids: list[str]  # made up for the measurement (run_all retires them afterwards)

    def lines(self) -> list[str]:
        answers = ", ".join(f"{n:,} x {s}" for s, n in sorted(self.statuses.items()))
        return [
            f"{self.due:,} due in one tick, E2B (simulator) taking 1 s per pause, one actuator: "
            f"tick {self.tick_ms:.0f} ms (publish included); all paused "
            f"{self.all_paused_s:.1f} s after the tick started (target <= 60 s)",
            f"one actuator sustained {self.pauses_per_s:.0f} pauses/s (target >= 200; "
            f"E2B's answers: {answers})",
        ]


async def _paused_times(sim: str) -> tuple[list[float], dict[int, int]]:
    async with httpx.AsyncClient(base_url=sim, timeout=30) as c:
        calls = (await c.get("/_sim/calls", params={"op": "pause"})).json()
    statuses: dict[int, int] = {}
    for call in calls:
        statuses[call["status"]] = statuses.get(call["status"], 0) + 1
    at = sorted(
        datetime.fromisoformat(c["at"].replace("Z", "+00:00")).timestamp()
        for c in calls
        if c["status"] == 204
    )
    return at, statuses


async def measure() -> Result:
    connection = load(KafkaSettings).kafka_connection()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
    logs = Path(os.environ.get("STATE_DIR", ROOT / ".state")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sim_port, act_port = _free_port(), _free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    sim = _start(
        "from e2b_sim.main import main; main()",
        {
            "E2B_SIM_PORT": str(sim_port),
            "E2B_SIM_API_KEY": KEY,
            "E2B_SIM_PAUSE_LATENCY_MS": "1000",
            "E2B_SIM_TICK_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        },
        logs / "bench-pause-sim.log",
    )
    actuator: subprocess.Popen[bytes] | None = None
    client = aioredis.Redis.from_url(redis_url)
    try:
        await _until_ok(f"{sim_url}/healthz", sim)
        print(f"[bench] creating {DUE:,} sandboxes in the simulator ...", flush=True)
        ids = await _create(sim_url, DUE)
        now = datetime.now(UTC)
        await _seed(client, ids, now)
        group = f"bench-actuator-{uuid.uuid4().hex[:8]}"
        await _group_at_end(connection, group)
        actuator = _start(
            "from enforcer.actuator.main import main; main()",
            {
                **ACTUATOR_ENV,
                "REDIS_URL": redis_url,
                "E2B_API_URL": sim_url,
                "E2B_API_KEY": KEY,
                "ACTUATOR_GROUP_ID": group,
                "ACTUATOR_PORT": str(act_port),
                "READ_MODEL_SHARDS": str(LAYOUT.shards),  # as seeded here
            },
            logs / "bench-pause-actuator.log",
        )
        await _until_ok(f"http://127.0.0.1:{act_port}/readyz", actuator)
        await asyncio.sleep(3)  # the group's first assignment
        publisher = KafkaPublisher(
            connection, 10.0, client_id="bench-ticker", shape=Shape(TICK_BATCH_BYTES)
        )
        await publisher.start()
        try:
            started = time.time()
            w0 = time.perf_counter()
            model = ReadModelReader(client, LAYOUT)
            report = await run_tick(now, model, publisher, TickOptions(1000))
            tick_ms = (time.perf_counter() - w0) * 1000
        finally:
            await publisher.stop()
        assert report.paused == DUE, report
        deadline = time.monotonic() + 180
        at: list[float] = []
        statuses: dict[int, int] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            at, statuses = await _paused_times(sim_url)
            if len(at) >= DUE:
                break
        if len(at) < DUE:
            raise RuntimeError(f"only {len(at):,} of {DUE:,} paused within 180 s: {statuses}")
        # The sustained rate: the middle 80% of the answers, ramp-up and tail left out.
        lo, hi = at[len(at) // 10], at[len(at) * 9 // 10]
        rate = (len(at) * 8 // 10) / max(hi - lo, 1e-9)
        return Result(DUE, tick_ms, at[-1] - started, rate, statuses, ids)
    finally:
        if actuator is not None:
            _stop(actuator)
        _stop(sim)
        await client.flushdb()
        await client.aclose()


def run() -> Result:
    return run_quietly_with(measure)


if __name__ == "__main__":
    for line in run().lines():
        print(line)

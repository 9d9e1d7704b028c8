"""Replay (issue 5): after a random stream of facts, PostgreSQL and Redis are dropped and
replayed from the topic, and come back identical; a replay killed half-way and run again ends
the same; --verify finds a difference and says which store has it."""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import subprocess
import sys
from typing import IO

import asyncpg
import pytest

from projector.replay.run import Replay
from projector.replay.verify import Differs
from tests.connected.replay_support import (
    ReplayStore,
    drop_state,
    project_live,
    publish,
    random_stream,
    snapshot,
    without_marker,
)

pytestmark = pytest.mark.connected


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_replay_after_dropping_both_stores_gives_the_same_state(
    store: ReplayStore, seed: int
) -> None:
    rng = random.Random(seed)
    await publish(store.settings.kafka_bootstrap_servers, store.topic, random_stream(rng, 40, 600))
    await project_live(store, rng)
    live = await snapshot(store)
    assert live["states"], "the stream projected nothing"
    verified = await Replay(store.settings, store.topic, io.StringIO()).run(verify=True)
    assert verified.differs is Differs.NOTHING, verified.differences

    await drop_state(store)
    report = await Replay(store.settings, store.topic, io.StringIO()).run(verify=False)
    assert report.poison > 0  # the stream had unreadable records
    assert report.duplicates > 0  # ... and facts delivered twice
    rebuilt = await snapshot(store)
    assert rebuilt["has_marker"]
    assert without_marker(rebuilt) == without_marker(live)
    assert live["policies"], "the stream set no policy"


async def test_verify_names_a_policy_the_topic_does_not_hold(store: ReplayStore) -> None:
    rng = random.Random(8)
    await publish(store.settings.kafka_bootstrap_servers, store.topic, random_stream(rng, 20, 400))
    await project_live(store, rng)
    conn = await asyncpg.connect(store.settings.database_url)
    try:
        subject = await conn.fetchval("SELECT subject FROM project_policies LIMIT 1")
        await conn.execute(
            "UPDATE project_policies SET policy = '{\"neverPause\": true}' WHERE subject = $1",
            subject,
        )
    finally:
        await conn.close()
    report = await Replay(store.settings, store.topic, io.StringIO()).run(verify=True)
    assert report.differs is Differs.POSTGRES
    assert any(subject in d and "policy" in d for d in report.differences), report.differences


async def test_verify_reports_which_store_differs(store: ReplayStore) -> None:
    rng = random.Random(7)
    await publish(store.settings.kafka_bootstrap_servers, store.topic, random_stream(rng, 20, 200))
    await project_live(store, rng)
    conn = await asyncpg.connect(store.settings.database_url)
    try:
        sid = await conn.fetchval("SELECT sandbox_id FROM sandboxes WHERE status = 'RUNNING'")
        await conn.execute("UPDATE sandboxes SET status = 'PAUSED' WHERE sandbox_id = $1", sid)
    finally:
        await conn.close()
    report = await Replay(store.settings, store.topic, io.StringIO()).run(verify=True)
    assert report.differs is Differs.POSTGRES
    assert any(sid in d and "status" in d for d in report.differences), report.differences


async def test_replay_killed_half_way_and_run_again_ends_the_same(
    store: ReplayStore,
) -> None:
    rng = random.Random(11)
    stream = random_stream(rng, 3000, 40_000)
    await publish(store.settings.kafka_bootstrap_servers, store.topic, stream)
    await project_live(store, rng)
    live = await snapshot(store)
    await drop_state(store)
    env = {
        **os.environ,
        "DATABASE_URL": store.settings.database_url,
        "REDIS_URL": store.settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": store.settings.kafka_bootstrap_servers,
    }
    command = [sys.executable, "-c", "from sandboxctl.cli import main; main()"]
    command += ["replay", "--topic", store.topic]
    # Killed twice: while reading the topic, then with the shadow tables and keys written.
    for moment in ("events/s", "shadow tables indexed"):
        proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
        assert proc.stderr is not None
        seen = await asyncio.to_thread(_wait_for, proc.stderr, moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert seen, f"the replay ended before {moment!r}"
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rebuilt = await snapshot(store)
    assert without_marker(rebuilt) == without_marker(live)


def _wait_for(stream: IO[str], text: str) -> bool:
    return any(text in line for line in stream)

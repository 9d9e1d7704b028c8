"""Issue 16: the actuator's commands run side by side (one lane per sandbox). A sandbox whose
pause keeps failing (its backoff) holds up no other sandbox, not even those on its partition;
offsets are never committed past it, so an actuator killed meanwhile leaves it to be redone,
and the commands after it that were done are not carried out twice (the command ledger). On
the code before (a FastStream subscriber, one command at a time per partition, four consumers)
both fail: the others on the failing one's partition waited for its backoff.

Real Kafka and Redis, the E2B simulator and the actuator as subprocesses. A sandbox the
simulator shows as "pausing" (a 409 "cannot be paused while in 'pausing' state", retried) is
the one that keeps failing; the others pause at once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from sandbox_common import topics
from sandbox_common.commands import Command, CommandType
from sandbox_common.readmodel import Layout, Status, StatusDoc, encode_doc, keys
from tests.connected import redis_mode
from tests.connected.conftest import Infra, start_group_at_end, topic_partitions
from tests.connected.e2b_sim_process import SimProcess, free_port, ticking
from tests.connected.helpers import (
    end_offsets,
    eventually,
    publish_commands,
    records_since,
    stop_quietly,
)
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected

KEY = "actuator-lanes-key"
JUDGED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    process = SimProcess(ticking(KEY)).start()
    yield process
    process.stop()


@pytest.fixture
async def api(sim: SimProcess, prepared: Infra) -> AsyncIterator[httpx.AsyncClient]:
    client = redis_mode.client(prepared.redis_url)
    try:
        await client.delete(keys.E2B_BUDGET)  # no call budget left over from other tests
    finally:
        await client.aclose()
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}) as c:
        assert (await c.post("/_sim/reset")).status_code == 200
        yield c


@asynccontextmanager
async def actuator(
    infra: Infra, sim: SimProcess, group: str, **env: str
) -> AsyncIterator[ServiceProcess]:
    port = free_port()
    process = ServiceProcess(
        "actuator",
        port,
        {
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
            "REDIS_URL": infra.redis_url,
            "E2B_API_URL": sim.url,
            "E2B_API_KEY": KEY,
            "ACTUATOR_GROUP_ID": group,
            "ACTUATOR_PORT": str(port),
            **env,
        },
        label=f"lanes-actuator-{port}",
    )
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        process.stop()


async def _new_group(infra: Infra) -> str:
    group = f"actuator-lanes-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(infra.kafka, group, topics.COMMANDS)
    return group


async def _create(api: httpx.AsyncClient) -> str:
    r = await api.post("/sandboxes", json={"templateID": "base", "timeout": 600})
    assert r.status_code == 201, r.text
    sandbox_id: str = r.json()["sandboxID"]
    return sandbox_id


async def _stuck(api: httpx.AsyncClient, transition_ms: int) -> str:
    """A sandbox E2B shows as "pausing" for `transition_ms`: every pause of ours meanwhile is
    answered 409 (transitional) and retried with backoff."""
    r = await api.patch("/_sim/faults", json={"transitionMs": transition_ms})
    assert r.status_code == 200, r.text
    sandbox_id = await _create(api)
    assert (await api.post(f"/sandboxes/{sandbox_id}/pause")).status_code == 204
    return sandbox_id


async def _partition_of(infra: Infra) -> Any:
    count = len(await topic_partitions(infra.kafka, topics.COMMANDS))
    every = list(range(count))

    def partition(sandbox_id: str) -> int:
        return int(DefaultPartitioner()(topics.record_key(sandbox_id), every, every))

    return partition


async def _due(infra: Infra, *sandbox_ids: str) -> list[Command]:
    """Documents showing each PAUSING since JUDGED, and a pause command for each."""
    client = redis_mode.client(infra.redis_url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for sid in sandbox_ids:
                doc = StatusDoc(
                    sandbox_id=sid,
                    project_id="proj-lanes",
                    status=Status.PAUSING,
                    last_active_at=JUDGED,
                    status_changed_at=JUDGED,
                )
                pipe.hset(
                    Layout().doc(sid),
                    mapping={keys.DOC_FIELD: encode_doc(doc), keys.REVISION_FIELD: 1},
                )
            await pipe.execute()
    finally:
        await client.aclose()
    return [
        Command(
            command_id=f"pause:{sid}:{JUDGED.isoformat()}",
            type=CommandType.PAUSE,
            sandbox_id=sid,
            issued_at=datetime.now(UTC),
            project_id="proj-lanes",
            judged_last_active_at=JUDGED,
        )
        for sid in sandbox_ids
    ]


async def _outcomes(infra: Infra, since: dict[TopicPartition, int]) -> dict[str, dict[str, Any]]:
    """The actuator's facts since `since`, by sandbox (the last one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for record in await records_since(infra.kafka, since):
        if record.value:
            fact = json.loads(record.value)
            if fact.get("source") == "enforcer" and fact["type"] != "sandbox.pause.requested":
                found[fact["sandbox_id"]] = fact
    return found


async def _pause_calls(api: httpx.AsyncClient, sandbox_id: str) -> list[int]:
    r = await api.get("/_sim/calls", params={"sandboxId": sandbox_id, "op": "pause"})
    return [c["status"] for c in r.json()]


async def test_a_sandbox_whose_pause_keeps_failing_holds_up_no_other(
    prepared: Infra, sim: SimProcess, api: httpx.AsyncClient
) -> None:
    partition = await _partition_of(prepared)
    stuck = await _stuck(api, transition_ms=60_000)
    others: list[str] = []
    beside = 0  # others on the stuck sandbox's partition, after it
    while len(others) < 50 or beside < 3:
        sid = await _create(api)
        if partition(sid) == partition(stuck):
            beside += 1
        elif len(others) >= 50:
            continue
        others.append(sid)
    group = await _new_group(prepared)
    # Every retry of the stuck one waits 2-4 s: its three attempts take at least 4 s.
    async with actuator(
        prepared,
        sim,
        group,
        ACTUATOR_MAX_ATTEMPTS="3",
        ACTUATOR_BACKOFF_BASE_SECONDS="4",
        ACTUATOR_BACKOFF_CAP_SECONDS="4",
    ):
        since = await end_offsets(prepared.kafka)
        issued = await _due(prepared, stuck, *others)
        started = time.monotonic()
        await publish_commands(prepared.kafka, *issued)  # the stuck one first

        async def all_paused() -> dict[str, dict[str, Any]] | None:
            found = await _outcomes(prepared, since)
            return found if all(sid in found for sid in others) else None

        found = await eventually(all_paused, within=30, interval=0.2)
        took = time.monotonic() - started
        assert {found[sid]["type"] for sid in others} == {"sandbox.lifecycle.paused"}
        # Paused while the stuck one still waits in its backoff, not after it.
        assert stuck not in found, found.get(stuck)
        assert took < 4, f"the others took {took:.1f}s"
        assert (await _pause_calls(api, stuck))[:2] == [204, 409]  # ours after the test's own

        async def stuck_gave_up() -> dict[str, Any] | None:
            return (await _outcomes(prepared, since)).get(stuck)

        gave_up = await eventually(stuck_gave_up, within=30, interval=0.3)
        assert gave_up["type"] == "sandbox.pause.cancelled"
        assert gave_up["data"]["reason"] == "e2b_gave_up"
        assert await _pause_calls(api, stuck) == [204, 409, 409, 409]


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await stop_quietly(consumer)


async def test_offsets_stop_below_an_unfinished_command_and_a_restart_redoes_it(
    prepared: Infra, sim: SimProcess, api: httpx.AsyncClient
) -> None:
    partition = await _partition_of(prepared)
    stuck = await _stuck(api, transition_ms=60_000)
    after = await _create(api)
    while partition(after) != partition(stuck):
        after = await _create(api)
    tp = TopicPartition(topics.COMMANDS, partition(stuck))
    group = await _new_group(prepared)
    first_offset = (await end_offsets(prepared.kafka, topics.COMMANDS))[tp]
    since = await end_offsets(prepared.kafka)
    # A backoff far longer than the test: the stuck command is unfinished when it is killed.
    slow = {"ACTUATOR_BACKOFF_BASE_SECONDS": "60", "ACTUATOR_BACKOFF_CAP_SECONDS": "60"}
    async with actuator(prepared, sim, group, **slow) as first:
        await publish_commands(prepared.kafka, *await _due(prepared, stuck, after))

        async def after_paused() -> bool:
            return after in await _outcomes(prepared, since)

        await eventually(after_paused, within=15, interval=0.2)
        await asyncio.sleep(1.5)  # past a commit (every 0.5 s)
        # Not past the stuck command (the first of the two), though the one after it is done.
        assert await _committed(prepared.kafka, group, tp) == first_offset
        assert await _pause_calls(api, stuck) == [204, 409]  # the test's own, then ours
        first.kill()
    assert stuck not in await _outcomes(prepared, since)

    # Meanwhile the sandbox was killed: the redone pause finds it gone (404, a killed fact).
    assert (await api.delete(f"/sandboxes/{stuck}")).status_code == 204
    fast = {"ACTUATOR_BACKOFF_BASE_SECONDS": "0.1", "ACTUATOR_BACKOFF_CAP_SECONDS": "0.2"}
    async with actuator(prepared, sim, group, **fast):

        async def stuck_done() -> dict[str, Any] | None:
            return (await _outcomes(prepared, since)).get(stuck)

        redone = await eventually(stuck_done, within=20, interval=0.3)
        assert redone["type"] == "sandbox.lifecycle.killed"
        assert await _pause_calls(api, stuck) == [204, 409, 404]

        async def committed_past_both() -> bool:
            return await _committed(prepared.kafka, group, tp) == first_offset + 2

        await eventually(committed_past_both, within=10, interval=0.3)
    # Redelivered after the restart, the command after it was not carried out twice.
    assert await _pause_calls(api, after) == [204]

"""The actuator end to end: real Kafka and Redis, the E2B simulator as a subprocess, and the
actuator's own FastStream app (in this process, under uvicorn) with its real adapters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer

from enforcer.actuator.app import build_app
from enforcer.settings import ActuatorSettings
from sandbox_common import topics
from sandbox_common.commands import Command, CommandType
from sandbox_common.readmodel import Layout, Status, StatusDoc, encode_doc, keys
from tests.connected import redis_mode
from tests.connected.conftest import Infra, topic_partitions
from tests.connected.e2b_sim_process import SimProcess, free_port
from tests.connected.helpers import (
    end_offsets,
    eventually,
    find_record,
    publish_commands,
    records_since,
    stop_quietly,
)

pytestmark = pytest.mark.connected

KEY = "actuator-sim-key"
JUDGED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    process = SimProcess({"E2B_SIM_API_KEY": KEY, "E2B_SIM_TICK_SECONDS": "0.05"}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def actuator(prepared: Infra, sim: SimProcess) -> AsyncIterator[str]:
    group = f"actuator-test-{uuid.uuid4().hex[:8]}"
    await _start_group_at_end(prepared.kafka, group)
    settings = ActuatorSettings(
        kafka_bootstrap_servers=prepared.kafka,
        redis_url=prepared.redis_url,
        redis_cluster=redis_mode.CLUSTER,
        e2b_api_url=sim.url,
        e2b_api_key=KEY,
        actuator_port=free_port(),
        actuator_group_id=group,
        actuator_max_attempts=4,
        actuator_backoff_base_seconds=0.05,
        actuator_backoff_cap_seconds=0.2,
    )
    config = uvicorn.Config(
        build_app(settings), host="127.0.0.1", port=settings.actuator_port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{settings.actuator_port}"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(url + "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, within=30)
    yield url
    server.should_exit = True
    await task


@pytest.fixture
async def api(sim: SimProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}) as client:
        assert (await client.post("/_sim/reset")).status_code == 200
        yield client


async def _start_group_at_end(bootstrap: str, group: str) -> None:
    """The test group starts at the end of sandbox-commands, not at its history."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topics.COMMANDS)
        assert tps, f"topic {topics.COMMANDS} not found: run infra/local/up.sh"
        consumer.assign(tps)
        await consumer.commit(dict(await consumer.end_offsets(tps)))
    finally:
        await stop_quietly(consumer)


async def _create(api: httpx.AsyncClient) -> str:
    r = await api.post("/sandboxes", json={"templateID": "base", "timeout": 300})
    assert r.status_code == 201, r.text
    sandbox_id: str = r.json()["sandboxID"]
    return sandbox_id


async def _write_doc(infra: Infra, sandbox_id: str, last_active_at: datetime) -> None:
    doc = StatusDoc(
        sandbox_id=sandbox_id,
        project_id="proj-actuator",
        status=Status.PAUSING,
        last_active_at=last_active_at,
        status_changed_at=last_active_at,
    )
    client = redis_mode.client(infra.redis_url)
    try:
        await client.hset(
            Layout().doc(sandbox_id),
            mapping={keys.DOC_FIELD: encode_doc(doc), keys.REVISION_FIELD: 1},
        )
    finally:
        await client.aclose()


async def _command(infra: Infra, sandbox_id: str) -> str:
    command = Command(
        command_id=f"pause:{sandbox_id}:{JUDGED.isoformat()}",
        type=CommandType.PAUSE,
        sandbox_id=sandbox_id,
        issued_at=datetime.now(UTC),
        project_id="proj-actuator",
        judged_last_active_at=JUDGED,
    )
    await publish_commands(infra.kafka, command)
    return command.command_id


async def _run(infra: Infra, sandbox_id: str, active: datetime = JUDGED) -> dict[str, Any]:
    """Publishes a pause command and returns the one fact the actuator answers with."""
    since = await end_offsets(infra.kafka)
    await _write_doc(infra, sandbox_id, active)
    command_id = await _command(infra, sandbox_id)

    async def facts() -> list[dict[str, Any]]:
        found = [json.loads(r.value) for r in await records_since(infra.kafka, since) if r.value]
        return [f for f in found if f["sandbox_id"] == sandbox_id]

    (fact,) = await eventually(facts, within=30, interval=0.3)
    assert isinstance(fact, dict)
    assert fact["source"] == "enforcer"
    assert fact["data"]["command_id"] == command_id
    return fact


async def _pause_calls(api: httpx.AsyncClient, sandbox_id: str) -> list[int]:
    r = await api.get("/_sim/calls", params={"sandboxId": sandbox_id, "op": "pause"})
    return [c["status"] for c in r.json()]


async def test_idle_sandbox_is_paused_once_and_a_paused_fact_published(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    sid = await _create(api)
    fact = await _run(prepared, sid)
    assert fact["type"] == "sandbox.lifecycle.paused"
    assert fact["data"]["e2b_status"] == 204
    assert await _pause_calls(api, sid) == [204]
    assert (await api.get(f"/sandboxes/{sid}")).json()["state"] == "paused"


async def test_a_carried_out_command_is_remembered_for_a_day_not_a_week(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    """Issue 15, item 1: the ledger's markers are bounded by ACTUATOR_LEDGER_TTL_SECONDS."""
    sid = await _create(api)
    fact = await _run(prepared, sid)
    client = redis_mode.client(prepared.redis_url)
    try:

        async def ttl() -> int | None:
            left = int(await client.ttl(keys.command_done(fact["data"]["command_id"])))
            return left if left > 0 else None

        assert 0 < await eventually(ttl, within=10) <= 24 * 3600
    finally:
        await client.aclose()


async def test_transitional_409_is_retried_then_paused_once(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    sid = await _create(api)
    r = await api.patch("/_sim/faults", json={"pauseStatus": 409, "pauseStatusCount": 1})
    assert r.status_code == 200
    fact = await _run(prepared, sid)
    assert fact["type"] == "sandbox.lifecycle.paused"
    assert await _pause_calls(api, sid) == [409, 204]


async def test_unknown_sandbox_is_a_killed_fact(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    sid = f"gone-{uuid.uuid4().hex[:10]}"
    fact = await _run(prepared, sid)
    assert fact["type"] == "sandbox.lifecycle.killed"
    assert fact["data"]["kill_reason"] == "not_found"
    assert await _pause_calls(api, sid) == [404]


async def test_activity_after_judging_cancels_without_a_pause_call(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    sid = await _create(api)
    fact = await _run(prepared, sid, active=JUDGED + timedelta(seconds=30))
    assert fact["type"] == "sandbox.pause.cancelled"
    assert fact["data"]["reason"] == "activity"
    assert await _pause_calls(api, sid) == []
    assert (await api.get(f"/sandboxes/{sid}")).json()["state"] == "running"


async def test_persistent_5xx_gives_up_cancels_and_dead_letters(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    sid = await _create(api)
    dlq_since = await end_offsets(prepared.kafka, topics.LIFECYCLE_DLQ)
    r = await api.patch("/_sim/faults", json={"pauseStatus": 500, "pauseStatusCount": 10})
    assert r.status_code == 200
    fact = await _run(prepared, sid)
    assert fact["type"] == "sandbox.pause.cancelled"
    assert fact["data"]["reason"] == "e2b_gave_up"
    assert await _pause_calls(api, sid) == [500, 500, 500, 500]
    dead = await find_record(prepared.kafka, dlq_since, sid.encode())
    assert dead is not None, f"no dead letter for {sid}"
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["dlq-original-topic"] == topics.COMMANDS
    assert "gave up after 4 attempts" in headers["dlq-reason"]


async def test_wake_resumes_a_paused_sandbox_through_connect(
    prepared: Infra, actuator: str, api: httpx.AsyncClient
) -> None:
    sid = await _create(api)
    assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 204
    since = await end_offsets(prepared.kafka)
    command = Command(
        command_id=f"resume:{sid}:test",
        type=CommandType.RESUME,
        sandbox_id=sid,
        issued_at=datetime.now(UTC),
        project_id="proj-actuator",
    )
    await publish_commands(prepared.kafka, command)

    async def resumed() -> list[dict[str, Any]]:
        found = [json.loads(r.value) for r in await records_since(prepared.kafka, since) if r.value]
        return [f for f in found if f["sandbox_id"] == sid and f["source"] == "enforcer"]

    (fact,) = await eventually(resumed, within=30, interval=0.3)
    assert fact["type"] == "sandbox.lifecycle.resumed"
    assert (await api.get(f"/sandboxes/{sid}")).json()["state"] == "running"
    calls = await api.get("/_sim/calls", params={"sandboxId": sid, "op": "connect"})
    assert [c["status"] for c in calls.json()] == [201]

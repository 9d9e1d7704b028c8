"""The idle ticker against the real stack: idle sandboxes go PAUSING with one pause command."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from sandbox_common import commands, envelope, topics
from sandbox_common.envelope import Envelope, FactType, Source
from tests.connected.conftest import Stack, service_port
from tests.connected.helpers import (
    ago,
    end_offsets,
    eventually,
    forget_other_tests_deadlines,
    post_webhook,
    records_since,
    status_of,
    token,
    unique,
    webhook,
)
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected


@pytest.fixture
async def tickers(stack: Stack) -> AsyncIterator[list[ServiceProcess]]:
    """Two enforcer replicas ticking every second: the lease must let only one act."""
    await forget_other_tests_deadlines(stack.infra.redis_url)
    env = {
        **stack.env,
        "ENFORCER_SCHEDULE": "1s",
        "ENFORCER_LEASE_SECONDS": "5",
        "ENFORCER_STUCK_AFTER_SECONDS": "15",
    }
    replicas = [
        ServiceProcess(
            "enforcer", port, {**env, "ENFORCER_PORT": str(port)}, label=f"enforcer-{port}"
        )
        for port in (service_port(18083), service_port(18085))
    ]
    await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas))
    try:
        yield replicas
    finally:
        for r in replicas:
            r.stop()


async def test_idle_sandbox_gets_exactly_one_pause_command_and_shows_pausing(
    client: httpx.AsyncClient, stack: Stack, tickers: list[ServiceProcess]
) -> None:
    before = await end_offsets(stack.infra.kafka, topics.COMMANDS)
    idle_project, idle = unique("proj"), unique("sbx")
    busy_project, busy = unique("proj"), unique("sbx")
    # Last active 200 s ago: past the default 180 s idle timeout the projector indexes.
    await post_webhook(client, stack, webhook("created", idle, idle_project, seconds=ago(200)))
    # Active now (not at the suite's T0, which may lie minutes back by the time this runs).
    await post_webhook(client, stack, webhook("created", busy, busy_project, seconds=ago(0)))

    async def pausing() -> bool:
        r = await status_of(client, stack, idle_project)
        return r.status_code == 200 and r.json()["status"] == "PAUSING"

    await eventually(pausing, within=10)
    await asyncio.sleep(3)  # several more ticks of both replicas
    issued = [c for c in await _commands_since(stack.infra.kafka, before) if c.sandbox_id == idle]
    assert len(issued) == 1
    assert issued[0].type is commands.CommandType.PAUSE
    busy_doc = (await status_of(client, stack, busy_project)).json()
    assert busy_doc["status"] == "RUNNING"
    for replica in tickers:
        metrics = (await client.get(f"{replica.url}/metrics")).text
        assert "enforcer_ticks_total" in metrics


async def _commands_since(
    bootstrap: str, since: dict[TopicPartition, int]
) -> list[commands.Command]:
    found = []
    for record in await records_since(bootstrap, since):
        # Other tests put poison on this topic on purpose: skip what isn't a command.
        with contextlib.suppress(commands.CommandError):
            found.append(commands.decode(record.value or b""))
    return found


async def test_heartbeats_move_the_deadline_and_keep_the_sandbox_running(
    client: httpx.AsyncClient, stack: Stack, tickers: list[ServiceProcess]
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    # 170 s idle: 10 s before the default 180 s deadline.
    created_at = ago(170)
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=created_at))
    await eventually(lambda: _status_is(client, stack, project, "RUNNING"))
    url = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
    before = await end_offsets(stack.infra.kafka, topics.COMMANDS)
    first = await client.post(url, json={"source": "ui"}, headers=token(stack, project))
    assert first.status_code == 202
    assert first.json() == {"sandboxId": sandbox, "recorded": True}
    again = await client.post(url, headers=token(stack, project))
    assert again.json()["recorded"] is False  # throttled: one fact per window

    async def moved() -> bool:
        doc = (await status_of(client, stack, project)).json()
        return str(doc["lastActiveAt"]) > webhook_time(created_at)

    await eventually(moved)
    # E2B's own end is unknown for this sandbox: the heartbeat also asks to push it out.
    kinds = [
        c.type for c in await _commands_since(stack.infra.kafka, before) if c.sandbox_id == sandbox
    ]
    assert kinds == [commands.CommandType.EXTEND_TIMEOUT]
    await asyncio.sleep(12)  # past the first deadline, with the tickers running every second
    assert await _status_is(client, stack, project, "RUNNING")
    other = await client.post(url, headers=token(stack, unique("proj")))
    assert other.status_code == 403
    missing = f"{stack.status_api.url}/api/projects/{unique('proj')}/sandbox/activity"
    assert (await client.post(missing, headers=token(stack, admin=True))).status_code == 404


def webhook_time(seconds: float) -> str:
    return str(json.loads(webhook("created", "x", None, seconds=seconds))["timestamp"])


async def _status_is(client: httpx.AsyncClient, stack: Stack, project: str, status: str) -> bool:
    r = await status_of(client, stack, project)
    return r.status_code == 200 and r.json()["status"] == status


async def test_a_sandbox_stuck_in_pausing_is_put_back_to_running(
    client: httpx.AsyncClient, stack: Stack, tickers: list[ServiceProcess]
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=ago(60)))
    # A pause requested 10 s ago whose command never reached the actuator (none runs here).
    requested_at = datetime.now(UTC) - timedelta(seconds=10)
    stuck = Envelope(
        event_id=unique("evt"),
        type=FactType.PAUSE_REQUESTED,
        source=Source.ENFORCER,
        sandbox_id=sandbox,
        project_id=project,
        occurred_at=requested_at,
        received_at=requested_at,
        data={"reason": "idle"},
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.LIFECYCLE, envelope.encode(stuck), key=topics.record_key(sandbox)
        )
    finally:
        await producer.stop()
    # PAUSING for about 5 s more, then the repair (stuck after 15 s) brings it back.
    await eventually(lambda: _status_is(client, stack, project, "PAUSING"), within=5)
    await eventually(lambda: _status_is(client, stack, project, "RUNNING"), within=15)
    doc = (await status_of(client, stack, project)).json()
    assert doc["statusChangedAt"] > requested_at.isoformat()[:19]

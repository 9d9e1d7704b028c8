"""The idle ticker against the real stack: idle sandboxes go PAUSING with one pause command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import TopicPartition

from sandbox_common import commands, topics
from tests.connected.conftest import Stack
from tests.connected.helpers import (
    end_offsets,
    eventually,
    post_webhook,
    records_since,
    status_of,
    unique,
    webhook,
)
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected


@pytest.fixture
async def tickers(stack: Stack) -> AsyncIterator[list[ServiceProcess]]:
    """Two enforcer replicas ticking every second: the lease must let only one act."""
    env = {**stack.env, "ENFORCER_SCHEDULE": "1s", "ENFORCER_LEASE_SECONDS": "5"}
    replicas = [
        ServiceProcess(
            "enforcer", port, {**env, "ENFORCER_PORT": str(port)}, label=f"enforcer-{port}"
        )
        for port in (18083, 18085)
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
    await post_webhook(client, stack, webhook("created", idle, idle_project, seconds=-200))
    await post_webhook(client, stack, webhook("created", busy, busy_project, seconds=0))

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

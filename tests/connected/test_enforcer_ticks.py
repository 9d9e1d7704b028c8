"""The idle ticker against the real stack: idle sandboxes go PAUSING with one pause command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from sandbox_common import commands, topics
from tests.connected.conftest import Stack, topic_partitions
from tests.connected.helpers import (
    eventually,
    post_webhook,
    status_of,
    stop_quietly,
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
    before = await _command_ends(stack.infra.kafka)
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


async def _command_ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await topic_partitions(bootstrap, topics.COMMANDS)))
    finally:
        await stop_quietly(consumer)


async def _commands_since(
    bootstrap: str, since: dict[TopicPartition, int]
) -> list[commands.Command]:
    ends = await _command_ends(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[commands.Command] = []
    try:
        wanted = {tp: end for tp, end in ends.items() if end > since.get(tp, 0)}
        if not wanted:
            return found
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, since.get(tp, 0))
        for _ in range(10):
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    # Other tests put poison on this topic on purpose: skip what isn't ours.
                    with contextlib.suppress(commands.CommandError):
                        found.append(commands.decode(record.value or b""))
            if sum(len(v) for v in batch.values()) == 0:
                break
        return found
    finally:
        await stop_quietly(consumer)

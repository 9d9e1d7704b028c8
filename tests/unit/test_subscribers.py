"""The projector's subscriber on FastStream's in-memory broker (TestKafkaBroker: no Kafka),
wired exactly as its app wires it, and the AsyncAPI documents of the projector and the actuator
(whose command loop consumes without FastStream: tests/unit/test_command_loop.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from enforcer.actuator.app import build_app as build_actuator
from enforcer.settings import ActuatorSettings
from projector.app import BatchSubscriber
from projector.app import build_app as build_projector
from projector.app import subscribe as subscribe_lifecycle
from projector.pipeline import Pipeline
from projector.settings import ProjectorSettings
from sandbox_common import envelope as env
from sandbox_common import topics
from sandbox_common.broker import build_broker
from sandbox_common.envelope import FactType
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.readmodel import Status
from tests.unit.test_projection_rules import fact
from tests.unit.test_projector_batches import MemoryDeadLetters, MemoryReadModel, to
from tests.unit.test_projector_pipeline import GuardedStore, MemoryOffsets, Retry

# No broker there: TestKafkaBroker stands in for it.
NOWHERE = KafkaConnection("127.0.0.1:1")
log = logging.getLogger("test")


@dataclass
class FlushedOffsets(MemoryOffsets):
    flushes: int = 0

    async def flush(self) -> None:
        self.flushes += 1


async def test_the_projector_folds_what_the_broker_delivers_and_commits_it() -> None:
    store, rm, offsets = GuardedStore(), MemoryReadModel(), FlushedOffsets()
    pipeline = Pipeline(store, to(store, rm, MemoryDeadLetters()), Retry(store, rm, attempts=1))
    subscriber = BatchSubscriber(pipeline, offsets_of=lambda _consumer: offsets)
    broker = build_broker(NOWHERE, log, durable=False, apply_types=False)
    subscribe_lifecycle(broker, subscriber, ProjectorSettings())
    async with TestKafkaBroker(broker) as test_broker:
        for f in (fact(FactType.CREATED, 0), fact(FactType.PAUSED, 5)):
            await test_broker.publish(env.encode(f), topic=topics.LIFECYCLE, key=b"sbx-1")
        await subscriber.drain()
    state, revision = store.rows["sbx-1"]
    assert (state.status, revision) == (Status.PAUSED, 2)
    assert rm.docs["sbx-1"][0].status is Status.PAUSED
    assert len(offsets.committed) == 2  # each delivery's own offset, after both stores
    assert offsets.flushes == 1  # drained on shutdown


async def test_a_poison_record_is_dead_lettered_not_folded() -> None:
    store, rm, dead = GuardedStore(), MemoryReadModel(), MemoryDeadLetters()
    offsets = FlushedOffsets()
    pipeline = Pipeline(store, to(store, rm, dead), Retry(store, rm, attempts=1))
    subscriber = BatchSubscriber(pipeline, offsets_of=lambda _consumer: offsets)
    broker = build_broker(NOWHERE, log, durable=False, apply_types=False)
    subscribe_lifecycle(broker, subscriber, ProjectorSettings())
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(b"not an envelope", topic=topics.LIFECYCLE)
        await subscriber.drain()
    assert [p.reason.split(":")[0] for p in dead.sent] == ["not a sandbox-lifecycle envelope"]
    assert store.rows == {}
    assert offsets.committed == [1]  # the partition moves on


@pytest.mark.parametrize(
    ("build", "channel"),
    [
        (lambda: build_projector(ProjectorSettings()), topics.LIFECYCLE),
        (lambda: build_actuator(ActuatorSettings(e2b_api_key="k")), topics.COMMANDS),
    ],
)
async def test_the_asyncapi_document_is_served(build: object, channel: str) -> None:
    app = build()  # type: ignore[operator]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        document = (await client.get("/asyncapi.json")).json()
        page = await client.get("/asyncapi")
    assert document["asyncapi"].startswith("3.")
    assert any(channel in c.get("address", "") for c in document["channels"].values())
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]

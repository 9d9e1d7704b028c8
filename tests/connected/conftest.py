"""Connected tier: real Kafka, PostgreSQL and Redis, and our services as real processes.

Addresses come from the environment that `make test` sets up (.state/infra.env). With
TEST_INFRA=containers and a Docker engine, testcontainers starts the three instead and creates
the topics (tests/connected/containers.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from projector.adapters.schema import migrate
from sandbox_common import topics
from tests.connected import redis_mode
from tests.connected.services import ServiceProcess

if TYPE_CHECKING:
    from tests.connected.replay_support import ReplayStore

pytestmark = pytest.mark.connected


@dataclass(frozen=True)
class Infra:
    kafka: str
    database_url: str
    redis_url: str


def _containers() -> Iterator[Infra]:  # pragma: no cover - needs a Docker engine
    from tests.connected.containers import started

    with started() as addresses:
        yield Infra(addresses.kafka, addresses.database_url, addresses.redis_url)


def _local() -> Iterator[Infra]:
    database_url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not database_url:
        pytest.fail("connected tests need the local infrastructure: run them with `make test`")
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if redis_mode.CLUSTER:
        # A cluster has database 0 only: the tests' own cluster (`make test REDIS_MODE=cluster`
        # starts it beside the one `make up` serves).
        test_url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
        if not test_url:
            pytest.fail("REDIS_CLUSTER=true needs TEST_REDIS_URL: run them with `make test`")
        yield Infra(kafka, database_url, test_url)
        return
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    # Database 15 keeps test documents apart from what `make up` serves on database 0.
    yield Infra(kafka, database_url, f"{redis_url}/15")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    source = _containers if os.environ.get("TEST_INFRA") == "containers" else _local
    # Every checkout on this machine shares one broker, the test topics, database and ports:
    # a second connected run waits here instead of interleaving with the first.
    default_lock = os.path.join(tempfile.gettempdir(), "e2b-lifecycle-connected.lock")
    lock_path = os.environ.get("CONNECTED_TEST_LOCK", default_lock)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from source()


async def reset_stores(database_url: str, redis_url: str) -> None:
    """Schema up to date, and no state left from an earlier run (the fault suite uses it too)."""
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        # project_policies: a default policy left by an earlier run would govern this one.
        await conn.execute(
            "TRUNCATE sandboxes, sandbox_events, projector_offsets, project_policies,"
            " notification_targets, notification_outbox"
        )
    finally:
        await conn.close()
    client = redis_mode.client(redis_url)
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
async def prepared(infra: Infra) -> Infra:
    await reset_stores(infra.database_url, infra.redis_url)
    return infra


@pytest.fixture
async def store(prepared: Infra) -> AsyncIterator[ReplayStore]:
    """A topic, schema and Redis db of the test's own (the replay and store-outage tests)."""
    from tests.connected.replay_support import replay_store  # it imports this module

    async for s in replay_store(prepared):
        yield s


async def topic_partitions(bootstrap: str, topic: str = topics.LIFECYCLE) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = sorted(p["partition"] for p in described.get("partitions", []))
    return [TopicPartition(topic, p) for p in parts]


async def start_group_at_end(bootstrap: str, group_id: str, topic: str = topics.LIFECYCLE) -> None:
    """A fresh test consumer group starts at the topic's end, not at its (long) history."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topic)
        assert tps, f"topic {topic} not found: run infra/local/up.sh"
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()  # ran long enough (commit) not to hit aiokafka#647


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15.0) as c:
        yield c


@dataclass
class Stack:
    infra: Infra
    env: dict[str, str]
    ingest: ServiceProcess
    projector: ServiceProcess
    status_api: ServiceProcess
    webhook_secret: str
    jwt_secret: str


def service_port(port: int) -> int:
    """A service's fixed test port, moved by CONNECTED_PORT_OFFSET: a second checkout may run
    its connected tests on infrastructure of its own (other STATE_DIR and ports, its own
    CONNECTED_TEST_LOCK) beside the first."""
    return port + int(os.environ.get("CONNECTED_PORT_OFFSET", "0"))


@pytest.fixture(scope="session")
async def stack(prepared: Infra) -> AsyncIterator[Stack]:
    group = f"projector-test-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(prepared.kafka, group)
    webhook_secret = f"test-webhook-{uuid.uuid4().hex}"
    jwt_secret = f"test-jwt-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": prepared.kafka,
        "DATABASE_URL": prepared.database_url,
        "REDIS_URL": prepared.redis_url,
        "REDIS_CLUSTER": "true" if redis_mode.CLUSTER else "false",
        "E2B_WEBHOOK_SECRET": webhook_secret,
        "STATUS_API_JWT_SECRET": jwt_secret,
        "PROJECTOR_GROUP_ID": group,
        "INGEST_PORT": str(service_port(18080)),
        "STATUS_API_PORT": str(service_port(18081)),
        "PROJECTOR_PORT": str(service_port(18082)),
        "INGEST_MAX_BODY_BYTES": "65536",
        # The hostile suites send thousands of refusals from 127.0.0.1 and expect each answered
        # 401: the per-address guard is tested on processes of its own (test_abuse_guard.py).
        "HTTP_AUTH_FAILURE_BURST": "0",
        # The tests' notification receivers listen on loopback; a failing one is tried again
        # within 4 s (test_notifications.py: a 30 s outage, then a dead letter).
        "NOTIFY_REACH": "loopback",
        "NOTIFY_BACKOFF_CAP_SECONDS": "4",
    }
    ingest = ServiceProcess("ingest", service_port(18080), env)
    projector = ServiceProcess("projector", service_port(18082), env)
    status_api = ServiceProcess("status-api", service_port(18081), env)
    services = [projector, ingest, status_api]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in services))
        yield Stack(prepared, env, ingest, projector, status_api, webhook_secret, jwt_secret)
    finally:
        for s in services:
            s.stop()

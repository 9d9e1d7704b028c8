"""Issue 16: every Kafka client over SASL_SSL (SCRAM, a CA of our own), as a managed Kafka asks.

The local broker always listens SASL_SSL besides PLAINTEXT; infra/local/kafka.sh writes how to
reach it (address, user, password, CA file) to `$STATE_DIR/kafka/sasl-ssl.env` on each start
(STATE_DIR defaults to this checkout's .state/; KAFKA_SASL_SSL_ENV names another file). These
tests find it there whatever mode `make up` ran in. No file means the broker was started
before it had the listener: the tests fail and say how to restart it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sandbox_common import e2b, topics
from sandbox_common.broker import build_broker
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.settings import KafkaSettings, load
from tests.connected.conftest import Infra
from tests.connected.helpers import eventually, unique, webhook
from tests.connected.services import ServiceProcess
from tests.connected.test_compression import activity_fact
from tests.connected.test_sandboxctl_ops import sandboxctl

pytestmark = pytest.mark.connected

ROOT = Path(__file__).parents[2]
REFUSED = "Kafka authentication failed for user {user} (SCRAM-SHA-512)"
log = logging.getLogger("test")


def listener() -> dict[str, str]:
    """The local broker's SASL_SSL listener, as infra/local/kafka.sh wrote it down."""
    state = Path(os.environ.get("STATE_DIR") or ROOT / ".state")
    path = Path(os.environ.get("KAFKA_SASL_SSL_ENV") or state / "kafka" / "sasl-ssl.env")
    if not path.is_file():
        pytest.fail(
            f"{path} missing: the local broker runs without its SASL_SSL listener; restart it "
            "(infra/local/kafka.sh stop, then make up)"
        )
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def sasl_ssl_env(mechanism: str = "SCRAM-SHA-512", password: str | None = None) -> dict[str, str]:
    """A process's environment for the listener, as `make up KAFKA_SECURITY=sasl_ssl` gives it."""
    found = listener()
    return {
        "KAFKA_BOOTSTRAP_SERVERS": found["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": found["KAFKA_SASL_USERNAME"],
        "KAFKA_SASL_PASSWORD": password or found["KAFKA_SASL_PASSWORD"],
        "KAFKA_SSL_CAFILE": found["KAFKA_SSL_CAFILE"],
    }


def connection(mechanism: str = "SCRAM-SHA-512") -> KafkaConnection:
    """Through the settings, as every process makes its own."""
    return load(KafkaSettings, sasl_ssl_env(mechanism)).kafka_connection()


@pytest.fixture
async def topic(infra: Infra) -> AsyncIterator[str]:
    """A topic of the test's own, made and removed over SASL_SSL too."""
    name = unique("sasl-ssl-test")
    admin = AIOKafkaAdminClient(**connection().client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
async def test_facts_are_published_and_consumed_over_sasl_ssl(topic: str, mechanism: str) -> None:
    kafka = connection(mechanism)
    by_ingest, by_consumer = unique("sbx"), unique("sbx")
    publisher = KafkaPublisher(kafka, 10, client_id="sasl-ssl-test")
    await publisher.start()
    try:
        assert publisher.connected, publisher.problem
        await publisher._send(topic, activity_fact(by_ingest), by_ingest, [])
    finally:
        await publisher.stop()

    broker = build_broker(kafka, log, durable=True, apply_types=False)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @broker.subscriber(topic, group_id=unique("sasl-ssl-test"), auto_offset_reset="earliest")
    async def got(fact: dict[str, Any]) -> None:  # FastStream decodes the JSON
        await received.put(fact)

    await broker.start()
    try:
        await broker.publish(
            activity_fact(by_consumer), topic=topic, key=topics.record_key(by_consumer)
        )
        facts = [await asyncio.wait_for(received.get(), 30) for _ in range(2)]
    finally:
        await broker.stop()
    assert {f["sandbox_id"] for f in facts} == {by_ingest, by_consumer}


def _log_size(service: ServiceProcess) -> int:
    """Its log file is appended to by every run: this run's lines come after this."""
    return service.log_path.stat().st_size if service.log_path.exists() else 0


async def _problems(service: ServiceProcess) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"{service.url}/readyz")
    return "" if answer.status_code == 200 else answer.text


async def test_a_refused_password_is_said_once_and_keeps_the_services_up_but_not_ready(
    prepared: Infra,
) -> None:
    wrong = f"not-the-password-{uuid.uuid4().hex}"
    secret = f"test-webhook-{uuid.uuid4().hex}"
    environment = {
        **sasl_ssl_env(password=wrong),
        "DATABASE_URL": prepared.database_url,
        "REDIS_URL": prepared.redis_url,
        "E2B_WEBHOOK_SECRET": secret,
        "STATUS_API_JWT_SECRET": f"test-jwt-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "INGEST_PORT": "18480",
        "STATUS_API_PORT": "18481",
        "PROJECTOR_PORT": "18482",
        "PROJECTOR_GROUP_ID": unique("projector-refused"),
    }
    refused = REFUSED.format(user=environment["KAFKA_SASL_USERNAME"])
    # ingest (a producer of its own) and the projector (a FastStream consumer) are not ready;
    # status-api serves its reads from Redis and says its writes cannot be made.
    unready = [
        ServiceProcess("ingest", 18480, environment, label="ingest-kafka-refused"),
        ServiceProcess("projector", 18482, environment, label="projector-kafka-refused"),
    ]
    status_api = ServiceProcess("status-api", 18481, environment, label="status-api-kafka-refused")
    services = [*unready, status_api]
    logged_from = {s.label: _log_size(s) for s in services}
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start, wait_ready=False) for s in services))
        for service in unready:
            problems = await eventually(partial(_problems, service), within=30, interval=0.5)
            assert refused in problems, problems
        await asyncio.sleep(8)  # attempts at 1, 2 and 4 s: the reason is not said again
        async with httpx.AsyncClient(timeout=5) as client:
            body = webhook("created", unique("sbx"), unique("proj"))
            answer = await client.post(
                f"{services[0].url}/api/webhooks/e2b",
                content=body,
                headers=e2b.signed_headers(secret, body),
            )
            readiness = await client.get(f"{status_api.url}/readyz")
        assert answer.status_code == 503  # E2B retries later
        assert readiness.status_code == 200
        assert any(refused in d for d in readiness.json()["degraded"]), readiness.text
        for service in services:
            assert service.proc is not None
            assert service.proc.poll() is None, f"{service.label} exited"
            if service is not status_api:
                assert refused in await _problems(service)
            with service.log_path.open(errors="replace") as lines:
                lines.seek(logged_from[service.label])
                logged = lines.read()
            assert logged.count(refused) == 1, logged
            assert wrong not in logged
    finally:
        for service in services:
            service.stop()


def test_sandboxctl_reads_the_topics_over_sasl_ssl(infra: Infra) -> None:
    done = sandboxctl(infra, "topics", "describe", "--json", env=sasl_ssl_env())
    assert done.returncode in (0, 3), done.stderr  # 3: the broker drifted, said in the document
    described = json.loads(done.stdout)
    assert topics.LIFECYCLE in json.dumps(described)

    refused = sandboxctl(infra, "topics", "describe", env=sasl_ssl_env(password="wrong"))
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "sandboxctl topics describe: " + REFUSED.format(user=sasl_ssl_env()["KAFKA_SASL_USERNAME"])
    ), refused.stderr

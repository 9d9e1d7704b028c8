"""The connected tier's container definitions (TEST_INFRA=containers), built and inspected without
a Docker engine: what Docker would be asked to run (image, environment, ports, command, the
readiness check). Starting them needs a Docker engine, which this machine does not have."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from testcontainers.core import container as tc_container
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from sandbox_common.kafka_connection import KafkaConnection
from sandboxctl import topics_cmd
from tests.connected import containers

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"
# What apache/kafka:4.x prints once the broker listens (KafkaRaftServer).
STARTED_LINE = "[2026-01-05 10:00:01,234] INFO [KafkaRaftServer nodeId=1] Kafka Server started"


class _NoEngine:
    """Stands in for testcontainers' Docker client: building a definition needs no engine."""

    def __init__(self, **_: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def no_docker_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc_container, "DockerClient", _NoEngine)


def _compose_kafka() -> dict[str, Any]:
    kafka: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]
    return kafka


def test_the_broker_is_the_compose_image_in_kraft_mode_on_a_fixed_advertised_port() -> None:
    broker = containers.kafka("docker.example", 39092)
    broker._configure()
    assert broker.image == _compose_kafka()["image"] == "apache/kafka:4.1.2"
    assert broker.ports == {"9092": 39092}
    assert broker.env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://docker.example:39092"
    assert broker.env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert broker.env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert "PLAINTEXT://:9092" in broker.env["KAFKA_LISTENERS"].split(",")
    # The image's own entrypoint (/etc/kafka/docker/run) reads this environment: no command.
    assert broker._command is None
    assert all(isinstance(v, str) for v in broker.env.values())


def test_the_broker_is_configured_as_docker_compose_configures_it() -> None:
    compose_env = {k: str(v) for k, v in _compose_kafka()["environment"].items()}
    broker_env = containers.kafka("localhost", 39092).env
    # Addresses differ (service name vs. the host's mapped port); every other setting agrees.
    addresses = {"KAFKA_ADVERTISED_LISTENERS", "KAFKA_CONTROLLER_QUORUM_VOTERS"}
    shared = set(compose_env) - addresses
    assert {k: broker_env.get(k) for k in shared} == {k: compose_env[k] for k in shared}
    assert broker_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert broker_env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"  # the image's data volume


def test_the_broker_counts_as_started_on_the_line_apache_kafka_prints() -> None:
    wait = containers.kafka("localhost", 39092)._wait_strategy
    assert isinstance(wait, LogMessageWaitStrategy)
    assert wait._message.search(STARTED_LINE)
    # Confluent's line, which testcontainers' KafkaContainer waits for, never comes from it.
    assert not wait._message.search("[KafkaServer id=1] started (kafka.server.KafkaServer)")
    assert wait._startup_timeout >= 60


def test_postgres_and_redis_match_the_local_infrastructure() -> None:
    pg = containers.postgres()
    pg._configure()
    assert pg.image.startswith("postgres:16")
    assert pg.env["POSTGRES_DB"] == "sandboxes"
    assert pg.ports == {"5432": None}
    assert pg.driver == ""  # asyncpg reads postgresql://, not postgresql+psycopg2://
    rd = containers.redis()
    rd._configure()
    assert rd.image.startswith("redis:7")
    assert rd.ports == {"6379": None}
    command = str(rd._command)
    assert re.search(r"--appendonly no\b", command)
    assert "--save ''" in command


def test_topics_are_created_with_the_project_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """started() creates the topics through sandboxctl's own use case, as the local path does."""
    created: list[tuple[str, list[str]]] = []

    class FakeAdmin:
        def __init__(self, connection: KafkaConnection, timeout_seconds: float) -> None:
            self.bootstrap = connection.bootstrap_servers

        async def __aenter__(self) -> FakeAdmin:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def fake_create(admin: FakeAdmin, specs: list[Any]) -> list[str]:
        created.append((admin.bootstrap, [s.name for s in specs]))
        return []

    monkeypatch.setattr(containers, "KafkaAdmin", FakeAdmin)
    monkeypatch.setattr(topics_cmd, "create", fake_create)
    asyncio.run(containers.create_topics("h:1", {"LIFECYCLE_PARTITIONS": "3"}))
    assert created == [
        (
            "h:1",
            [
                "sandbox-lifecycle",
                "sandbox-commands",
                "sandbox-lifecycle.dlq",
                "sandbox-notifications.dlq",
                "sandbox-state",
            ],
        )
    ]

"""The connected tier's infrastructure in containers (TEST_INFRA=containers, needs a Docker engine):
Kafka from the apache/kafka image in KRaft mode, PostgreSQL and Redis, then the project's topics,
created by the same code as `sandboxctl topics create` (the compose init and the Helm hook).

testcontainers' KafkaContainer drives Confluent's image (its `with_kraft()` refuses any tag
below 7.0.0, so `apache/kafka:4.1.2` raises ValueError): the broker is a generic container here,
configured the way docker-compose.yml configures it. The definitions are built apart from
starting them, so tests/unit/test_infra_containers.py inspects them without a Docker engine.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from sandbox_common.kafka_connection import KafkaConnection
from sandboxctl import topic_specs, topics_cmd
from sandboxctl.kafka_admin import KafkaAdmin

KAFKA_IMAGE = "apache/kafka:4.1.2"  # the image docker-compose.yml runs
POSTGRES_IMAGE = "postgres:16-alpine"
REDIS_IMAGE = "redis:7-alpine"
KAFKA_PORT = 9092
# Logged by KafkaRaftServer once the broker listens; the topics are created right after.
KAFKA_STARTED = r"Kafka Server started"
KAFKA_START_SECONDS = 120
DATABASE = "sandboxes"


@dataclass(frozen=True)
class Addresses:
    kafka: str
    database_url: str
    redis_url: str


def kafka_env(advertised: str) -> dict[str, str]:
    """One KRaft node (broker and controller). `advertised` is host:port as the tests reach it."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{KAFKA_PORT},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{advertised}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        # As in production: topics come from the topic layout, never from a typo.
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
    }


def kafka(advertised_host: str, host_port: int) -> DockerContainer:
    """The broker on a fixed host port: a client is told to come back to the advertised
    address, so that address must be known before the broker starts."""
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(KAFKA_PORT, host_port)
    for key, value in kafka_env(f"{advertised_host}:{host_port}").items():
        container.with_env(key, value)
    wait = LogMessageWaitStrategy(KAFKA_STARTED).with_startup_timeout(KAFKA_START_SECONDS)
    return container.waiting_for(wait)


def postgres() -> PostgresContainer:
    return PostgresContainer(
        POSTGRES_IMAGE, username=DATABASE, password=DATABASE, dbname=DATABASE, driver=None
    )


def redis() -> RedisContainer:
    # No persistence, as docker-compose.yml and infra/local/redis.sh run it.
    return RedisContainer(REDIS_IMAGE).with_command("redis-server --appendonly no --save ''")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


async def create_topics(bootstrap: str, env: Mapping[str, str]) -> list[str]:
    async with KafkaAdmin(KafkaConnection(bootstrap), timeout_seconds=30.0) as admin:
        return await topics_cmd.create(admin, topic_specs.wanted(env))


@contextmanager
def started() -> Iterator[Addresses]:  # pragma: no cover - needs a Docker engine
    host = DockerClient().host()
    with ExitStack() as stack:
        broker = stack.enter_context(kafka(host, free_port()))
        pg = stack.enter_context(postgres())
        rd = stack.enter_context(redis())
        bootstrap = f"{host}:{broker.get_exposed_port(KAFKA_PORT)}"
        asyncio.run(create_topics(bootstrap, os.environ))
        redis_url = f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0"
        yield Addresses(bootstrap, pg.get_connection_url(), redis_url)

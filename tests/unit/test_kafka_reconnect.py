"""A Kafka client that cannot connect keeps trying with backoff and says why once; the consumers'
broker does not give up at start (FastStream's own start fails once and never consumes)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from sandbox_common import kafka_reconnect
from sandbox_common.broker import build_broker
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_reconnect import ConnectionState, keep_trying
from sandbox_common.probes import failing

# Port 9 (discard) on loopback: refused at once, no broker involved.
NOWHERE = KafkaConnection("127.0.0.1:9")


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []

    async def pause(seconds: float) -> None:
        taken.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", pause)
    return taken


@pytest.fixture
def reasons(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What diagnose finds, in turn (the last one repeats)."""
    found: list[str] = []

    async def diagnose(connection: KafkaConnection, timeout: float = 5.0) -> str | None:  # noqa: ASYNC109
        return found.pop(0) if len(found) > 1 else found[0]

    monkeypatch.setattr(kafka_reconnect, "diagnose", diagnose)
    return found


async def test_it_tries_again_with_doubling_pauses_and_says_each_reason_once(
    pauses: list[float], reasons: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    reasons.extend(["refused: wrong password"] * 4 + ["not reachable"] * 3)
    attempts = 0

    async def connect() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 7:
            raise KafkaConnectionError("Unable to bootstrap")

    state = ConnectionState(NOWHERE, "ingest's producer")
    with caplog.at_level(logging.INFO, logger=kafka_reconnect.__name__):
        await keep_trying(connect, state, first_delay=1, max_delay=8)
    assert attempts == 8
    assert pauses == [1, 2, 4, 8, 8, 8, 8]
    assert [r.getMessage() for r in caplog.records] == [
        "ingest's producer cannot connect: refused: wrong password",
        "ingest's producer cannot connect: not reachable",
        "ingest's producer connected to Kafka at 127.0.0.1:9 (PLAINTEXT)",
    ]
    assert state.problem is None


async def test_what_is_not_a_connection_failure_is_not_retried(pauses: list[float]) -> None:
    async def connect() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await keep_trying(connect, ConnectionState(NOWHERE, "x"))
    assert pauses == []


async def test_the_consumers_broker_keeps_trying_and_its_probe_says_why() -> None:
    broker = build_broker(NOWHERE, logging.getLogger("test"), durable=True)
    starting = asyncio.create_task(broker.start())
    try:
        done, _ = await asyncio.wait([starting], timeout=3)
        assert not done, "the start gave up"
        assert broker.problem is not None
        assert broker.problem.startswith("Kafka not reachable at 127.0.0.1:9 (PLAINTEXT): ")
        problems = await failing(broker, {})
        assert problems == [f"kafka: {broker.problem}"]
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)

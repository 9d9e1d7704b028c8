"""Poison records go to `sandbox-lifecycle.dlq` with the reason and where they came from."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from projector.handlers import Poison
from sandbox_common import dead_letters, topics


class KafkaDeadLetters:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def send(self, poison: Poison) -> None:
        await self._broker.publish(
            poison.record.value or b"",
            topic=topics.LIFECYCLE_DLQ,
            key=poison.record.key,
            headers=dead_letters.headers(poison.record, poison.reason),
        )

"""Poison records go to `sandbox-lifecycle.dlq` with the reason and where they came from."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from projector.handlers import Poison
from sandbox_common import topics


def dlq_headers(poison: Poison) -> dict[str, str]:
    r = poison.record
    return {
        "dlq-reason": poison.reason[:1000],
        "dlq-original-topic": r.topic,
        "dlq-original-partition": str(r.partition),
        "dlq-original-offset": str(r.offset),
    }


class KafkaDeadLetters:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def send(self, poison: Poison) -> None:
        await self._broker.publish(
            poison.record.value or b"",
            topic=topics.LIFECYCLE_DLQ,
            headers=dlq_headers(poison),
        )

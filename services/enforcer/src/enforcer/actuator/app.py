"""`sandbox-actuator`: a FastStream subscriber on `sandbox-commands` that carries commands out
against E2B, plus /healthz, /readyz, /metrics and the AsyncAPI document (/asyncapi), under
uvicorn."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from enforcer.actuator import metrics
from enforcer.actuator.bootstrap import ActuatorParts
from enforcer.actuator.carry_out import Actuator
from enforcer.settings import ActuatorSettings
from sandbox_common import topics
from sandbox_common.broker import build_broker, consumer_app, wire_schema
from sandbox_common.commands import Command
from sandbox_common.dead_letters import Record

log = logging.getLogger("enforcer.actuator")
_REDELIVERY_PAUSE_SECONDS = 1.0


class CommandSubscriber:
    """One record of `sandbox-commands` -> the use case. The offset is committed only after
    the resulting fact (or dead letter) is published; an error rewinds to the command, so it
    is carried out again, never skipped."""

    def __init__(self, actuator: Actuator, redelivery_pause_seconds: float = 1.0) -> None:
        self._actuator = actuator
        self._pause = redelivery_pause_seconds

    async def __call__(
        self, body: Annotated[bytes | None, wire_schema(Command)], msg: KafkaMessage
    ) -> None:
        """`body` is not decoded here (None): the use case decodes and dead-letters the raw
        record itself; its annotation documents the record in the AsyncAPI document."""
        raw = msg.raw_message[0] if isinstance(msg.raw_message, tuple) else msg.raw_message
        try:
            handled = await self._actuator.handle(
                Record(raw.topic, raw.partition, raw.offset, raw.value)
            )
        except Exception:
            # The NACK redelivers at once: without a pause a store outage is a hot loop (the
            # fault suite counted 25,000 attempts in 6 s of Redis down).
            await asyncio.sleep(self._pause)
            raise
        metrics.PAUSES.labels(outcome=handled.outcome).inc()
        if handled.attempts > 1:
            metrics.RETRIES.inc(handled.attempts - 1)


async def _no_decode(msg: StreamMessage[Any]) -> None:
    """The use case decodes (and dead-letters) the raw bytes itself."""
    return


def subscribe(
    broker: KafkaBroker, subscriber: CommandSubscriber, group_id: str, workers: int
) -> None:
    broker.subscriber(
        topics.COMMANDS,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_no_decode,
        # Consumers in this process (one partition is handled by one of them, in order): a
        # command in backoff then blocks only its own partitions.
        max_workers=workers,
        title="sandbox-commands:carry-out",
        description="Carries out pause, resume (wake) and extend-timeout commands against "
        "E2B; publishes the outcome as a fact on sandbox-lifecycle.",
    )(subscriber.__call__)


def build_app(settings: ActuatorSettings) -> AsgiFastStream:
    broker = build_broker(settings.kafka_connection(), log, durable=True)
    parts = ActuatorParts(settings, broker)
    subscribe(
        broker,
        CommandSubscriber(parts.actuator, _REDELIVERY_PAUSE_SECONDS),
        settings.actuator_group_id,
        settings.actuator_workers,
    )
    return consumer_app(broker, parts, log)

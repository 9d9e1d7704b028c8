"""`sandbox-actuator`: the command loop on `sandbox-commands` (command_loop.py: aiokafka's
consumer, committed at the low watermark) carrying commands out against E2B, plus /healthz,
/readyz, /metrics and the AsyncAPI document (/asyncapi), under uvicorn. The FastStream broker
publishes the facts and dead letters; it consumes nothing."""

from __future__ import annotations

import logging
from typing import Annotated

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker

from enforcer.actuator.bootstrap import ActuatorParts
from enforcer.settings import ActuatorSettings
from sandbox_common import topics
from sandbox_common.broker import build_broker, consumer_app, wire_schema
from sandbox_common.commands import Command

log = logging.getLogger("enforcer.actuator")


def documented_subscription(group_id: str) -> KafkaBroker:
    """The subscription as the AsyncAPI document shows it. A broker that is never started:
    the command loop, not FastStream, consumes the topic."""
    broker = KafkaBroker(logger=log)

    async def carry_out(body: Annotated[bytes, wire_schema(Command)]) -> None:
        return None

    broker.subscriber(
        topics.COMMANDS,
        group_id=group_id,
        title="sandbox-commands:carry-out",
        description="Carries out pause, resume (wake) and extend-timeout commands against "
        "E2B, side by side across sandboxes and in order per sandbox; publishes the outcome "
        "as a fact on sandbox-lifecycle.",
    )(carry_out)
    return broker


def build_app(settings: ActuatorSettings) -> AsgiFastStream:
    broker = build_broker(settings.kafka_connection(), log, durable=True)
    parts = ActuatorParts(settings, broker)
    return consumer_app(
        broker,
        parts,
        log,
        draining=[parts.commands.stop],
        documented=documented_subscription(settings.actuator_group_id),
    )

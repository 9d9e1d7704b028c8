"""`sandbox-actuator`: a FastStream subscriber on `sandbox-commands` that carries commands out
against E2B, plus /healthz, /readyz and /metrics, under uvicorn."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from enforcer import actuator_metrics as metrics
from enforcer.actuator_bootstrap import ActuatorOptions, Resources
from sandbox_common import logging as jsonlog
from sandbox_common import topics
from sandbox_common.consumer_lag import LagMonitor
from sandbox_common.dead_letters import Record
from sandbox_common.probes import probe_routes
from sandbox_common.settings import Settings

log = logging.getLogger("enforcer.actuator")
_REDELIVERY_PAUSE_SECONDS = 1.0


def build_app(settings: Settings, options: ActuatorOptions | None = None) -> AsgiFastStream:
    opts = options or ActuatorOptions()
    # acks=all + idempotence: a fact is acknowledged by every in-sync replica before the
    # command's offset is committed.
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        logger=log,
        log_level=logging.DEBUG,
    )
    resources = Resources(settings, opts, broker)
    lag = LagMonitor(
        settings.kafka_bootstrap_servers,
        opts.group_id,
        topics.COMMANDS,
        settings.consumer_lag_interval_seconds,
    )

    @broker.subscriber(
        topics.COMMANDS,
        group_id=opts.group_id,
        auto_offset_reset="earliest",
        # The offset is committed only after the fact (or dead letter) is published; an error
        # rewinds to the command, so it is carried out again, never skipped.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_no_decode,  # the use case decodes (and dead-letters) the raw bytes itself
        max_workers=opts.workers,
    )
    async def on_command(msg: KafkaMessage) -> None:
        raw = msg.raw_message[0] if isinstance(msg.raw_message, tuple) else msg.raw_message
        try:
            handled = await resources.actuator.handle(
                Record(raw.topic, raw.partition, raw.offset, raw.value)
            )
        except Exception:
            # The NACK redelivers at once: without a pause a store outage is a hot loop (the
            # fault suite counted 25,000 attempts in 6 s of Redis down).
            await asyncio.sleep(_REDELIVERY_PAUSE_SECONDS)
            raise
        metrics.PAUSES.labels(outcome=handled.outcome).inc()
        if handled.attempts > 1:
            metrics.RETRIES.inc(handled.attempts - 1)

    return AsgiFastStream(
        broker,
        asgi_routes=probe_routes(resources.problems),
        on_startup=[resources.open, lag.start],
        after_shutdown=[lag.stop, resources.close],
        logger=log,
    )


async def _no_decode(msg: StreamMessage[Any]) -> None:
    return None


def main() -> None:
    settings = Settings.from_env().require("e2b_api_key")
    opts = ActuatorOptions.from_settings(settings)
    jsonlog.configure("actuator", settings.log_level)
    uvicorn.run(
        build_app(settings, opts), host=opts.host, port=opts.port, log_config=None, lifespan="on"
    )

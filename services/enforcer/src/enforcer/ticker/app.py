"""`sandbox-enforcer`: the idle ticker (and the reconciler beside it), with health, readiness
and metrics over HTTP."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from enforcer.settings import TickerSettings
from enforcer.ticker.bootstrap import TickerParts
from sandbox_common.broker import build_broker
from sandbox_common.probes import probe_routes

log = logging.getLogger("enforcer")


def build_app(settings: TickerSettings) -> AsgiFastStream:
    broker = build_broker(settings.kafka_bootstrap_servers, log, durable=True)
    parts = TickerParts(settings, broker)
    return AsgiFastStream(
        broker,
        asgi_routes=probe_routes(parts.problems),
        after_startup=[parts.start],
        on_shutdown=[parts.stop],
        logger=log,
    )

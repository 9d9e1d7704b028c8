"""`sandbox-enforcer`: the idle ticker (and the reconciler beside it), with health, readiness
and metrics over HTTP."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from enforcer.settings import TickerSettings
from enforcer.ticker.bootstrap import TickerParts
from sandbox_common.broker import build_broker, consumer_app

log = logging.getLogger("enforcer")


def build_app(settings: TickerSettings) -> AsgiFastStream:
    broker = build_broker(settings.kafka_connection(), log, durable=True)
    parts = TickerParts(settings, broker)
    # Nothing to document: the ticker publishes only.
    return consumer_app(broker, parts, log, draining=[parts.stop], documented=False)

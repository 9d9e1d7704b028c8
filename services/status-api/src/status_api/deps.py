"""What the route handlers share, built once by app.build_app and passed to each route module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox_common.kafka_publisher import KafkaPublisher
from status_api.access import Gate
from status_api.adapters.postgres import HistoryStore
from status_api.adapters.redis import RedisThrottle, StatusReader
from status_api.change_hub import ChangeHub


@dataclass(frozen=True)
class Deps:
    gate: Gate
    reader: StatusReader
    history: HistoryStore
    hub: ChangeHub
    throttle: RedisThrottle
    publisher: KafkaPublisher
    clock: Callable[[], datetime]
    warn_before: timedelta
    keep_alive: timedelta
    sse_keepalive_seconds: float
    default_idle_seconds: int

"""What the route handlers share, built once by app.build_app and passed to each route module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.readmodel import DeadlineRule
from sandbox_common.readmodel.coordination import ActivityThrottle
from sandbox_common.readmodel.reader import ReadModelReader
from status_api.access import Gate
from status_api.adapters.postgres import HistoryStore
from status_api.adapters.tickets import StreamTickets
from status_api.change_hub import ChangeHub
from status_api.policies import Policies
from status_api.receivers import Receivers
from status_api.savings import SavingsLedger
from status_api.stream_slots import StreamSlots
from status_api.warn_policy import WarnPolicy


@dataclass(frozen=True)
class Deps:
    gate: Gate
    reader: ReadModelReader
    history: HistoryStore
    hub: ChangeHub
    throttle: ActivityThrottle
    publisher: KafkaPublisher
    clock: Callable[[], datetime]
    warn: WarnPolicy
    keep_alive: timedelta
    sse_keepalive_seconds: float
    deadline_rule: DeadlineRule
    tickets: StreamTickets
    slots: StreamSlots
    policies: Policies
    # STATUS_API_BUSY_MAX_SECONDS: how far ahead a heartbeat's busyUntil may reach.
    busy_max: timedelta = timedelta(days=1)
    # Projects' notification receivers (None: not set up, 503).
    receivers: Receivers | None = None
    # The savings ledger (None: not set up, 503).
    savings: SavingsLedger | None = None

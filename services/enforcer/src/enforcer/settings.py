"""What the enforcer's processes are given: the ticker's (with the reconciler beside it) and
the actuator's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from enforcer.schedule import ScheduleError, parse_schedule
from sandbox_common.settings import (
    E2BApiSettings,
    KafkaSettings,
    LogSettings,
    NonNegative,
    Port,
    Positive,
    PostgresSettings,
    ProjectKeySettings,
    RedisSettings,
    RegretSettings,
    Seconds,
    SettingsError,
)


@dataclass(frozen=True, kw_only=True)
class TickerSettings(
    KafkaSettings,
    RedisSettings,
    PostgresSettings,
    E2BApiSettings,
    ProjectKeySettings,
    RegretSettings,
    LogSettings,
):
    """The ticker process, which also runs the reconciler (PostgreSQL, E2B's list)."""

    LISTEN_ON: ClassVar[tuple[str, str]] = ("enforcer_host", "enforcer_port")

    enforcer_schedule: str = "*/2 * * * *"
    # Off: no ticks at all. Dry run: ticks log and count what they would pause, and act on none
    # (the seed's rollback plan, and a careful first rollout).
    enforcer_enabled: bool = True
    enforcer_dry_run: bool = False
    enforcer_host: str = "127.0.0.1"
    enforcer_port: Port = 8083
    # Sandboxes judged (and pause requests published) per batch; a tick pages through every
    # due sandbox, batch after batch (bounded memory and Redis replies, not bounded work).
    enforcer_batch_size: Positive = 1000
    enforcer_lease_seconds: Positive = 60
    # PAUSING/STARTING for longer than this is repaired (see ticker/repair.py).
    enforcer_stuck_after_seconds: Positive = 300
    # The reconciler: when it compares our state with E2B's list, and how long its corrective
    # facts may wait for the broker.
    reconciler_schedule: str = "*/5 * * * *"
    reconciler_enabled: bool = True
    # GETs per pass to read E2B's own lifecycle (auto-pause, auto-resume) of sandboxes not read
    # yet: a new fleet of 100k is read over many passes instead of in one burst.
    reconciler_lifecycle_reads: NonNegative = 100
    # The adaptive idle rule's learner (enforcer/learner): when it recomputes the timeouts of
    # projects whose policy is adaptive, and from how many days of their history.
    adaptive_idle_schedule: str = "7 * * * *"
    adaptive_idle_enabled: bool = True
    adaptive_idle_lookback_days: Positive = 14
    # Pre-warming (enforcer/prewarm): how often it looks for expected returns (a pre-warm is
    # at most this late) of projects whose policy pre-warms.
    prewarm_schedule: str = "* * * * *"
    prewarm_enabled: bool = True
    ingest_publish_timeout_seconds: Seconds = 10.0

    def __post_init__(self) -> None:
        schedules = (
            "enforcer_schedule",
            "reconciler_schedule",
            "adaptive_idle_schedule",
            "prewarm_schedule",
        )
        for name in schedules:
            try:
                parse_schedule(getattr(self, name), name.upper())
            except ScheduleError as exc:
                raise SettingsError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class ActuatorSettings(KafkaSettings, RedisSettings, E2BApiSettings, LogSettings):
    REQUIRED: ClassVar[tuple[str, ...]] = ("e2b_api_key",)
    LISTEN_ON: ClassVar[tuple[str, str]] = ("actuator_host", "actuator_port")

    actuator_host: str = "127.0.0.1"
    actuator_port: Port = 8084
    actuator_group_id: str = "sandbox-actuator"
    # Commands fetched and not finished (carried out side by side, one at a time per sandbox);
    # at the bound, fetching pauses. E2B calls in flight are capped apart (E2B_MAX_CONCURRENCY).
    actuator_max_in_flight: Positive = 256
    actuator_max_attempts: Positive = 5
    actuator_backoff_base_seconds: Seconds = 1.0
    actuator_backoff_cap_seconds: Seconds = 10.0
    # How long a carried-out command id is remembered (Redis memory grows with it).
    actuator_ledger_ttl_seconds: Positive = 24 * 3600
    # The E2B timeout a woken sandbox gets (connect's required `timeout`).
    e2b_resume_timeout_seconds: Positive = 300
    # How often the actuator measures its group's lag (kafka_consumer_lag_*).
    consumer_lag_interval_seconds: Seconds = 15.0

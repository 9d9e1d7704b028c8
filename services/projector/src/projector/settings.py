"""What the projector is given: Kafka, PostgreSQL, Redis, the read model's rules, its knobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sandbox_common.settings import (
    IdleSettings,
    KafkaSettings,
    LogSettings,
    NonNegative,
    NonNegativeSeconds,
    NotifySettings,
    Port,
    Positive,
    PostgresSettings,
    RedisSettings,
    Seconds,
)


@dataclass(frozen=True, kw_only=True)
class ProjectorSettings(
    KafkaSettings, RedisSettings, PostgresSettings, IdleSettings, NotifySettings, LogSettings
):
    LISTEN_ON: ClassVar[tuple[str, str]] = ("projector_host", "projector_port")

    projector_host: str = "127.0.0.1"
    projector_port: Port = 8082
    # Under a backlog, larger batches cost less per fact (one transaction, fewer round trips):
    # bench/projector_throughput.py gave about 16,000 facts/s at 2,000 and 24,000-28,000 at
    # 10,000. Without a backlog a batch holds whatever came in its 50 ms.
    projector_batch_size: Positive = 10_000
    projector_group_id: str = "sandbox-projector"
    # Sandbox states kept in memory between batches (0: read every one back from PostgreSQL).
    projector_state_cache_size: NonNegative = 100_000
    killed_tombstone_ttl_seconds: Positive = 7 * 24 * 3600
    # How often the projector measures its group's lag (kafka_consumer_lag_*).
    consumer_lag_interval_seconds: Seconds = 15.0
    # How often the projector checks that Redis still holds the read model (its marker key),
    # rebuilding it from PostgreSQL when not; 0 turns the check off.
    read_model_check_seconds: NonNegativeSeconds = 10.0
    # History (sandbox_events) kept, in days of occurred_at: older daily partitions are dropped
    # whole (projector.history_retention); 0 keeps it for ever.
    history_retention_days: NonNegative = 90
    # The policies in force are reloaded from PostgreSQL when it says they changed (LISTEN) and
    # at least this often, in case a notice was missed.
    policy_reload_seconds: Seconds = 60.0
    # After a policy change the RUNNING sandboxes it governs are judged again at once, and once
    # more this much later (a replica that folded one with the old policy meanwhile).
    policy_reindex_second_pass_seconds: NonNegativeSeconds = 5.0

"""Settings, read from the environment once at start-up and passed down (never read at import).

Every name here is documented in the README; secrets are kept out of repr() so they can never
reach a log line by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    e2b_webhook_secret: str = field(default="", repr=False)
    e2b_api_key: str = field(default="", repr=False)
    e2b_api_url: str = "https://api.e2b.app"
    status_api_jwt_secret: str = field(default="", repr=False)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = field(
        default="postgresql://sandboxes:sandboxes@127.0.0.1:5432/sandboxes", repr=False
    )
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    # Bounded pools: a burst waits for a connection instead of opening thousands of them.
    redis_max_connections: int = 64
    idle_timeout_seconds: int = 180
    enforcer_schedule: str = "*/2 * * * *"
    # Off: no ticks at all. Dry run: ticks log and count what they would pause, and act on none
    # (the seed's rollback plan, and a careful first rollout).
    enforcer_enabled: bool = True
    enforcer_dry_run: bool = False
    enforcer_host: str = "127.0.0.1"
    enforcer_port: int = 8083
    # Most sandboxes judged in one tick; the rest wait for the next (bounded work per tick).
    enforcer_batch_size: int = 1000
    enforcer_lease_seconds: int = 60
    # PAUSING/STARTING for longer than this is repaired (see enforcer/repair.py).
    enforcer_stuck_after_seconds: int = 300
    actuator_host: str = "127.0.0.1"
    actuator_port: int = 8084
    actuator_group_id: str = "sandbox-actuator"
    # Consumers in one actuator process: a command in backoff holds up only its own partitions.
    actuator_workers: int = 4
    actuator_max_attempts: int = 5
    actuator_backoff_base_seconds: float = 1.0
    actuator_backoff_cap_seconds: float = 10.0
    # Toward E2B: per-call timeout, concurrent calls, and a token bucket well under E2B's
    # 20,000 requests / 30 s per team.
    e2b_timeout_seconds: float = 10.0
    e2b_max_concurrency: int = 32
    e2b_rate_per_second: float = 100.0
    e2b_rate_burst: int = 100
    # The E2B timeout a woken sandbox gets (connect's required `timeout`).
    e2b_resume_timeout_seconds: int = 300
    project_metadata_key: str = "projectId"
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    ingest_max_body_bytes: int = 256 * 1024
    ingest_publish_timeout_seconds: float = 10.0
    ingest_dedupe_ttl_seconds: int = 7 * 24 * 3600
    # No deliberate wait: aiokafka keeps one produce request in flight and gathers everything
    # that arrives meanwhile into the next one, so under load records are batched anyway, and
    # a linger only adds its full value to every webhook's latency.
    ingest_kafka_linger_ms: int = 0
    status_api_host: str = "127.0.0.1"
    status_api_port: int = 8081
    # At most one activity fact per sandbox per this many seconds: a flood of heartbeats costs
    # a Redis SET each, not a Kafka record each (a few % of the idle window, as Coder does).
    activity_throttle_seconds: float = 10.0
    # While a user is active, E2B's timeout is kept at least half this far ahead (set to this).
    e2b_keep_alive_seconds: int = 600
    status_api_publish_timeout_seconds: float = 5.0
    # A pauseImminent warning goes out this long before a RUNNING sandbox's idle deadline.
    status_api_warn_before_seconds: int = 30
    # SSE keep-alive comments: proxies drop connections that stay silent for a minute or so.
    status_api_sse_keepalive_seconds: float = 15.0
    # Requests per second per token (a burst of twice that), 0 = unlimited.
    status_api_rate_limit_per_second: float = 50.0
    # Comma-separated origins allowed by CORS ('*' for any); empty: no CORS headers at all.
    status_api_cors_origins: str = ""
    # Changes kept in the Redis change feed for SSE clients that resume with Last-Event-ID.
    change_feed_max_length: int = 50_000
    projector_host: str = "127.0.0.1"
    projector_port: int = 8082
    # Under a backlog, larger batches cost less per fact (one transaction, fewer round trips):
    # bench/projector_throughput.py gave about 16,000 facts/s at 2,000 and 24,000-28,000 at
    # 10,000. Without a backlog a batch holds whatever came in its 50 ms.
    projector_batch_size: int = 10_000
    projector_group_id: str = "sandbox-projector"
    # Sandbox states kept in memory between batches (0: read every one back from PostgreSQL).
    projector_state_cache_size: int = 100_000
    killed_tombstone_ttl_seconds: int = 7 * 24 * 3600
    # How often the projector and the actuator measure their group's lag (kafka_consumer_lag_*).
    consumer_lag_interval_seconds: float = 15.0

    # How often the projector checks that Redis still holds the read model (its marker key),
    # rebuilding it from PostgreSQL when not; 0 turns the check off.
    read_model_check_seconds: float = 10.0
    # The reconciler (in the enforcer process): when it compares our state with E2B's list.
    reconciler_schedule: str = "*/5 * * * *"
    reconciler_enabled: bool = True
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = source.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw, f.default)
        return cls(**values)  # type: ignore[arg-type]

    def require(self, *names: str) -> Settings:
        """Fail fast, naming the variable, when a service starts without a setting it needs."""
        missing = [n.upper() for n in names if not getattr(self, n)]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")
        return self


def _convert(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name.upper()}={raw!r} is not a {type(default).__name__}") from exc
    return raw

"""The capacity model behind docs/CAPACITY.md: pure arithmetic from measured costs (CPU per
webhook of each part, bytes per sandbox, marker and fact) and stated assumptions to replicas,
partitions, cores, memory and disk at a webhook rate or a fleet size. No I/O: bench/capacity.py
reads bench/results.json and writes the document."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GIB = 1024**3
DAY = 86_400
# The parts whose CPU the bench measures per webhook (bench/cpu.py's PARTS less status-api,
# which webhooks do not reach).
PARTS = ("ingest", "projector", "kafka", "postgres", "redis")


@dataclass(frozen=True, kw_only=True)
class Measured:
    """Figures of one `make bench` run (bench/results.json)."""

    cpu_us_per_webhook: dict[str, float]  # PARTS -> CPU microseconds per webhook
    status_api_peak_reads_per_s: float  # one replica, closed loop
    redis_bytes_per_sandbox: float  # document, project pointer, index entries
    redis_bytes_per_feed_entry: float
    redis_bytes_per_dedupe_marker: float
    postgres_bytes_per_sandbox: float  # `sandboxes` row with its indexes
    postgres_bytes_per_history_row: float  # on disk, averaged over the history measured


@dataclass(frozen=True, kw_only=True)
class Assumptions:
    """What the bench cannot measure, each with its reason in docs/CAPACITY.md."""

    headroom: float = 2.0  # capacity planned per unit of measured load (peaks, noise, failover)
    replica_cores: float = 1.0  # a service replica is one Python process: one event loop
    min_replicas: int = 2  # one may be drained or restarted at any time
    redis_cores: float = 1.0  # Redis runs commands on one thread
    postgres_primary_cores: float = 16.0  # a large primary; writes do not scale out
    kafka_replication_factor: int = 3  # the bench's broker was one node without replicas
    dedupe_ttl_seconds: int = 3600  # INGEST_DEDUPE_TTL_SECONDS
    change_feed_entries: int = 50_000  # CHANGE_FEED_MAX_LENGTH
    history_retention_days: int = 90  # HISTORY_RETENTION_DAYS
    history_bytes_per_fact_soak: float = 780.0  # growth in the 30-minute soak (RELIABILITY.md)
    redis_maxmemory_bytes: float = 2 * 10**9  # REDIS_MAXMEMORY's default, 2gb
    min_partitions: int = 12  # the chart's kafka.topics.lifecyclePartitions
    partition_growth: float = 2.0  # partitions fixed at install: room to double the consumers
    running_share: float = 0.2  # of the fleet RUNNING (polled) at a time
    poll_seconds: float = 30.0  # pollAfterMs while RUNNING
    e2b_calls_per_sandbox_day: float = 4.0  # our pauses and wakes of one sandbox a day
    e2b_budget_per_s: float = 100.0  # E2B_RATE_PER_SECOND
    e2b_team_limit_per_s: float = 20_000 / 30  # E2B's per-team rate limit
    webhook_rates: tuple[int, ...] = (1_000, 10_000, 100_000)
    fleet_sizes: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)


def _replicas(cores: float, a: Assumptions) -> int:
    return max(a.min_replicas, math.ceil(cores / a.replica_cores))


@dataclass(frozen=True)
class RatePlan:
    """What `rate` webhooks a second need (each becomes one fact)."""

    rate: int
    cores: dict[str, float]  # PARTS -> cores, headroom included
    ingest_replicas: int
    projector_replicas: int
    partitions: int
    redis_shards: int
    redis_markers_gib: float
    history_gib_per_day: float
    history_gib_retained: float


def history_bytes_per_fact(m: Measured, a: Assumptions) -> float:
    """The larger of the soak's growth rate and the measured average on disk."""
    return max(m.postgres_bytes_per_history_row, a.history_bytes_per_fact_soak)


def plan_rate(rate: int, m: Measured, a: Assumptions) -> RatePlan:
    cores = {p: rate * m.cpu_us_per_webhook[p] / 1e6 * a.headroom for p in PARTS}
    cores["kafka"] *= a.kafka_replication_factor  # each follower writes every record again
    projector = _replicas(cores["projector"], a)
    per_day = rate * DAY * history_bytes_per_fact(m, a) / GIB
    return RatePlan(
        rate=rate,
        cores=cores,
        ingest_replicas=_replicas(cores["ingest"], a),
        projector_replicas=projector,
        partitions=max(a.min_partitions, math.ceil(projector * a.partition_growth)),
        redis_shards=max(1, math.ceil(cores["redis"] / a.redis_cores)),
        redis_markers_gib=rate * a.dedupe_ttl_seconds * m.redis_bytes_per_dedupe_marker / GIB,
        history_gib_per_day=per_day,
        history_gib_retained=per_day * a.history_retention_days,
    )


@dataclass(frozen=True)
class FleetPlan:
    """What a fleet of `sandboxes` needs, whatever the webhook rate."""

    sandboxes: int
    redis_read_model_gib: float
    postgres_state_gib: float
    status_reads_per_s: float
    status_api_replicas: int
    e2b_calls_per_s: float


def plan_fleet(sandboxes: int, m: Measured, a: Assumptions) -> FleetPlan:
    feed = a.change_feed_entries * m.redis_bytes_per_feed_entry
    reads = sandboxes * a.running_share / a.poll_seconds
    return FleetPlan(
        sandboxes=sandboxes,
        redis_read_model_gib=(sandboxes * m.redis_bytes_per_sandbox + feed) / GIB,
        postgres_state_gib=sandboxes * m.postgres_bytes_per_sandbox / GIB,
        status_reads_per_s=reads,
        status_api_replicas=_replicas(reads / m.status_api_peak_reads_per_s * a.headroom, a),
        e2b_calls_per_s=sandboxes * a.e2b_calls_per_sandbox_day / DAY,
    )


@dataclass(frozen=True)
class Ceiling:
    """Where one part that does not scale out by adding replicas is full."""

    part: str
    limit: float  # webhooks/s or sandboxes, before headroom
    unit: str
    why: str = field(compare=False)


def webhook_ceilings(m: Measured, a: Assumptions) -> list[Ceiling]:
    """Webhook rates at which a single-instance part is at 100% of its cores, lowest first."""
    cpu = m.cpu_us_per_webhook
    found = [
        Ceiling(
            "Redis (one instance)", a.redis_cores * 1e6 / cpu["redis"], "webhooks/s", "one thread"
        ),
        Ceiling(
            f"projector at {a.min_partitions} partitions",
            a.min_partitions * a.replica_cores * 1e6 / cpu["projector"],
            "webhooks/s",
            "one consumer per partition",
        ),
        Ceiling(
            "PostgreSQL primary",
            a.postgres_primary_cores * 1e6 / cpu["postgres"],
            "webhooks/s",
            f"{a.postgres_primary_cores:g} cores, one writer",
        ),
    ]
    return sorted(found, key=lambda c: c.limit)


def fleet_ceilings(m: Measured, a: Assumptions) -> list[Ceiling]:
    """Fleet sizes at which a bounded resource is full, lowest first."""
    feed = a.change_feed_entries * m.redis_bytes_per_feed_entry
    found = [
        Ceiling(
            "Redis maxmemory (read model alone)",
            (a.redis_maxmemory_bytes - feed) / m.redis_bytes_per_sandbox,
            "sandboxes",
            "REDIS_MAXMEMORY",
        ),
        Ceiling(
            "E2B budget (E2B_RATE_PER_SECOND)",
            a.e2b_budget_per_s * DAY / a.e2b_calls_per_sandbox_day,
            "sandboxes",
            "our pacing",
        ),
        Ceiling(
            "E2B's team rate limit",
            a.e2b_team_limit_per_s * DAY / a.e2b_calls_per_sandbox_day,
            "sandboxes",
            "20,000 / 30 s",
        ),
    ]
    return sorted(found, key=lambda c: c.limit)

"""Prometheus metrics of the projector (default registry, served on /metrics), and what one
batch adds to them."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from sandbox_common import topics
from sandbox_common.dead_letters import Record
from sandbox_common.e2b import LifecycleType
from sandbox_common.envelope import FactType
from sandbox_common.readmodel.reader import Memory

if TYPE_CHECKING:
    from projector.handlers import BatchOutcome

log = logging.getLogger("projector")

FACTS = Counter("projector_facts_total", "Facts folded into the stores", ["type"])
# A record written straight to the topic can carry any type: each new label value would be a new
# series for good. Types we do not know are counted together.
_KNOWN_TYPES = frozenset({*FactType, *LifecycleType})
OTHER_TYPE = "other"


def fact_type_label(fact_type: str) -> str:
    return fact_type if fact_type in _KNOWN_TYPES else OTHER_TYPE


FLAPS = Counter(
    "projector_flaps_detected_total",
    "Idle pauses of ours undone by a resume within IDLE_FLAP_WINDOW_SECONDS (flapping facts "
    "published; a batch retried after publishing counts again)",
)
POISON = Counter("projector_poison_total", "Records sent to the dead-letter topic", ["reason"])
REDIS_MEMORY_USED = Gauge("redis_memory_used_bytes", "Redis used_memory (INFO memory)")
REDIS_MEMORY_MAX = Gauge("redis_memory_max_bytes", "Redis maxmemory (0: no limit)")
REDIS_BOUNDED = Gauge(
    "redis_memory_bounded",
    "1 when Redis has a maxmemory with the noeviction policy (what the read model needs)",
)
READ_MODEL_REBUILDS = Counter(
    "projector_read_model_rebuilds_total",
    "Rebuilds of the Redis read model from PostgreSQL, by why (missing: the marker was gone;"
    " other_server: it was written on another Redis, e.g. before a failover)",
    ["reason"],
)
BATCH_SECONDS = Histogram(
    "projector_batch_seconds",
    "Time to project one batch into PostgreSQL and Redis",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LATENCY_SECONDS = Histogram(
    "projector_latency_seconds",
    "From ingest receiving a fact to it being readable in Redis",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter("projector_batch_retries_total", "Batches retried after a store error")
LAST_BATCH = Gauge("projector_last_batch_timestamp_seconds", "When the last batch was projected")


def observe_batch(outcome: BatchOutcome, records: Sequence[Record], seconds: float) -> None:
    """One batch written: its duration, facts by type, freshness, and each poison record."""
    BATCH_SECONDS.observe(seconds)
    LAST_BATCH.set_to_current_time()
    now = datetime.now(UTC)
    by_type = Tally(p.fact.type for p in outcome.facts)
    for fact_type, count in by_type.items():
        FACTS.labels(type=fact_type_label(fact_type)).inc(count)
    if outcome.facts:
        # One observation per batch (its oldest fact): per-fact observations cost more CPU than
        # the insight they add.
        oldest = min(p.fact.received_at for p in outcome.facts)
        LATENCY_SECONDS.observe(max(0.0, (now - oldest).total_seconds()))
    for poison in outcome.poison:
        POISON.labels(reason=poison.reason.split(":")[0][:60]).inc()
        log.error(
            "poison record sent to %s: %s",
            topics.LIFECYCLE_DLQ,
            poison.reason,
            extra={
                "topic": poison.record.topic,
                "partition": poison.record.partition,
                "offset": poison.record.offset,
            },
        )
    log.debug("projected %d records in %.1f ms", len(records), seconds * 1000)


def observe_redis_memory(memory: Memory) -> None:
    REDIS_MEMORY_USED.set(memory.used_bytes)
    REDIS_MEMORY_MAX.set(memory.max_bytes)
    REDIS_BOUNDED.set(1 if memory.bounded else 0)


POLICY_REINDEX_CHECKED = Counter(
    "projector_policy_reindex_checked_total",
    "Live (RUNNING, PAUSED) sandboxes judged again after the policies in force changed (scope:"
    " project, or"
    " all for the default, a changed setting or a start)",
    ["scope"],
)
POLICY_REINDEX_MOVED = Counter(
    "projector_policy_reindex_moved_total",
    "Of those, sandboxes whose idle deadline moved (a new revision, their document rewritten)",
    ["scope"],
)
POLICY_REINDEX_RUNNING = Gauge(
    "projector_policy_reindex_running", "Re-indexes under way (1 while one runs)"
)
POLICY_RELOADS = Counter(
    "projector_policy_reloads_total",
    "Reloads of the policies in force from PostgreSQL, by what asked for them",
    ["trigger"],
)
NOTIFICATIONS = Counter(
    "projector_notifications_total",
    "Notification deliveries by outcome: delivered, retried (the receiver failed; tried again "
    "later), dead_lettered (to sandbox-notifications.dlq), unregistered (receiver removed)",
    ["outcome"],
)

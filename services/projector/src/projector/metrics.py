"""Prometheus metrics of the projector (default registry, served on /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from sandbox_common.e2b import LifecycleType
from sandbox_common.envelope import FactType

FACTS = Counter("projector_facts_total", "Facts folded into the stores", ["type"])
# A record written straight to the topic can carry any type: each new label value would be a new
# series for good. Types we do not know are counted together.
_KNOWN_TYPES = frozenset({*FactType, *LifecycleType})
OTHER_TYPE = "other"


def fact_type_label(fact_type: str) -> str:
    return fact_type if fact_type in _KNOWN_TYPES else OTHER_TYPE


POISON = Counter("projector_poison_total", "Records sent to the dead-letter topic", ["reason"])
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

"""Prometheus metrics of the projector (default registry, served on /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

FACTS = Counter("projector_facts_total", "Facts folded into the stores", ["type"])
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

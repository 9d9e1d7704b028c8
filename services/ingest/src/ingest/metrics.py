"""Prometheus metrics of ingest."""

from prometheus_client import Counter, Histogram

from sandbox_common.request_timing import request_histogram

WEBHOOKS = Counter(
    "ingest_webhooks_total",
    "Webhook deliveries by outcome",
    ["outcome"],  # accepted, duplicate, rejected_signature, rejected_payload, unavailable
)
REJECTED = Counter(
    "ingest_webhooks_rejected_total",
    "Webhook deliveries refused, by reason",
    ["reason"],  # signature_missing, signature_mismatch, malformed, too_large
)
PUBLISH_SECONDS = Histogram(
    "ingest_publish_seconds",
    "Time for the broker to acknowledge one event (acks=all)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUEST_SECONDS = request_histogram("ingest_request_seconds", "ingest")

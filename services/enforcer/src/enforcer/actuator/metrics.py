"""Prometheus metrics of the actuator (default registry, served on /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

PAUSES = Counter(
    "actuator_pause_commands_total",
    "Pause commands handled, by outcome (paused, already_paused, gone, cancelled, ...)",
    ["outcome"],
)
RETRIES = Counter("actuator_pause_retries_total", "Pause calls repeated after a retryable answer")
E2B_SECONDS = Histogram(
    "actuator_e2b_request_seconds",
    "E2B API call latency, by operation and HTTP status (or timeout/error)",
    ["operation", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge(
    "actuator_commands_in_flight",
    "Commands fetched and not finished yet (being carried out, or waiting to retry)",
)

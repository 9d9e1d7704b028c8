"""Prometheus metrics of status-api."""

from prometheus_client import Counter

READS = Counter("status_api_reads_total", "Status reads by route and outcome", ["route", "outcome"])
ACTIVITY = Counter(
    "status_api_activity_total", "Heartbeats, by whether they became a fact", ["recorded"]
)

"""Prometheus metrics of status-api."""

from prometheus_client import Counter, Gauge

from sandbox_common.request_timing import request_histogram

READS = Counter("status_api_reads_total", "Status reads by route and outcome", ["route", "outcome"])
ACTIVITY = Counter(
    "status_api_activity_total", "Heartbeats, by whether they became a fact", ["recorded"]
)
REFUSED = Counter(
    "status_api_refused_total", "Requests refused before any read, by reason", ["reason"]
)
SSE_CLIENTS = Gauge("status_api_sse_clients", "Server-sent event streams open", ["stream"])
SSE_EVENTS = Counter("status_api_sse_events_total", "Events sent on streams", ["event"])
SSE_DROPPED = Counter(
    "status_api_sse_overflows_total", "Streams closed because their client fell too far behind"
)
SSE_SNAPSHOTS = Counter(
    "status_api_sse_snapshots_total",
    "Current states sent instead of missed changes (reason: resume, rebuild)",
    ["reason"],
)
WARNINGS = Counter(
    "status_api_deadline_warnings_total",
    "Warnings put on the feed (event: pauseImminent, lifetimeEnding)",
    ["event"],
)
# The hot reads too (the fast lane): "well under 50 ms" is read off its 0.05 bucket.
REQUEST_SECONDS = request_histogram("status_api_request_seconds", "status-api")

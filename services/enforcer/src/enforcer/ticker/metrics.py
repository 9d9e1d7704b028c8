"""Prometheus metrics of the ticker."""

from prometheus_client import Counter, Gauge, Histogram

TICKS = Counter("enforcer_ticks_total", "Ticks by outcome", ["outcome"])  # ran, not_leader, error
TICK_SECONDS = Histogram(
    "enforcer_tick_seconds",
    "Duration of one tick, its publishing (acknowledged) and repair included",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Per tick, so a tick that judged 10,000 shows as one, not as 10,000 checks spread out.
_PER_TICK = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
TICK_JUDGED = Histogram(
    "enforcer_tick_sandboxes_judged", "Due sandboxes judged by one tick", buckets=_PER_TICK
)
TICK_REQUESTS = Histogram(
    "enforcer_tick_pause_requests", "Pause commands issued by one tick", buckets=_PER_TICK
)
CHECKED = Counter("enforcer_sandboxes_checked_total", "Due sandboxes judged by ticks")
PAUSE_REQUESTS = Counter("enforcer_pause_requests_total", "Pause commands issued")
WOULD_PAUSE = Counter("enforcer_dry_run_would_pause_total", "Pauses a dry-run tick did not issue")
ERRORS = Counter("enforcer_pause_request_errors_total", "Pause requests that failed to publish")
LAST_TICK = Gauge("enforcer_last_tick_timestamp_seconds", "When this replica last ran a tick")
REPAIRED = Counter(
    "enforcer_repaired_total", "Sandboxes repaired after sticking in PAUSING/STARTING"
)
DELETE_REQUESTS = Counter(
    "enforcer_delete_requests_total",
    "Kill commands published for paused sandboxes a project policy deletes"
    " (deleteAfterPausedSeconds)",
)

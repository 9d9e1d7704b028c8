from prometheus_client import Counter

PREWARMS = Counter(
    "enforcer_prewarms_total",
    "Expected returns pre-warming acted on, by outcome (resumed, over_budget, not_paused)",
    ["outcome"],
)
RUNS = Counter("enforcer_prewarm_runs_total", "Pre-warming runs by outcome", ["outcome"])

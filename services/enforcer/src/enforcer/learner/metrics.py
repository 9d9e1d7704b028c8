from prometheus_client import Counter, Gauge

ADAPTIVE_PROJECTS = Gauge(
    "enforcer_adaptive_idle_projects", "Projects whose policy learns its idle timeout (last run)"
)
ADAPTIVE_UPDATES = Counter(
    "enforcer_adaptive_idle_updates_total", "Learned idle timeouts published (policy amendments)"
)
RUNS = Counter("enforcer_adaptive_idle_runs_total", "Learner runs by outcome", ["outcome"])

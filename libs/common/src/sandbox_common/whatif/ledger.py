"""Many sandboxes replayed under several idle rules side by side, summed per project and for
the fleet: the policy in force against a candidate, the seed's cron, or no enforcement."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sandbox_common.policies import Policy
from sandbox_common.whatif.replay import Figures, Frame, IdleRule, replay
from sandbox_common.whatif.trace import Trace

# The system this project replaces: a 2-minute cron pausing after 3 minutes idle.
SEED_RULE = IdleRule(timeout=180, tick=120)
NO_ENFORCEMENT = IdleRule(timeout=None)

RuleOf = Callable[[Trace], IdleRule]


def idle_rule(policy: Policy, own_idle_seconds: int | None, tick: float) -> IdleRule:
    """The idle rule of a sandbox under `policy` (already resolved down to the settings): its
    own metadata's timeout wins, as it does for live deadlines; neverPause pauses never."""
    if policy.never_pause:
        return IdleRule(timeout=None, tick=tick)
    timeout = own_idle_seconds or policy.idle_seconds()
    return IdleRule(timeout=timeout, tick=tick)


@dataclass(slots=True)
class Ledger:
    """Figures per scenario, per project (None: sandboxes of no project) and in total."""

    scenarios: tuple[str, ...]
    projects: dict[str | None, dict[str, Figures]] = field(default_factory=dict)
    total: dict[str, Figures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.total = {name: Figures() for name in self.scenarios}


def tally(
    traces: Iterable[Trace],
    scenarios: Mapping[str, RuleOf],
    frame: Frame,
) -> Ledger:
    ledger = Ledger(tuple(scenarios))
    for trace in traces:
        row = ledger.projects.get(trace.project_id)
        if row is None:
            row = ledger.projects[trace.project_id] = {name: Figures() for name in scenarios}
        for name, rule_of in scenarios.items():
            figures = replay(trace, rule_of(trace), frame)
            row[name].add(figures)
            ledger.total[name].add(figures)
    return ledger

"""A sandbox's demand as the topic recorded it: when someone used it (its creation, a resume, a
heartbeat), when it ended, its size, and the idle timeout its own metadata asked for.

Demand is read from the facts the idle rule itself reads (envelope.MOVES_LAST_ACTIVITY). Under
the policy in force a paused sandbox sends no heartbeats, so the demand inside a pause is only
its end (the user's return, a resume): a candidate that pauses later than the policy in force
did is judged on what the topic could see. `busyUntil` is not replayed (a heartbeat counts as
one moment of use).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox_common.envelope import MOVES_LAST_ACTIVITY, FactType
from sandbox_common.policies.effective import sandbox_level

# E2B's defaults for a sandbox whose size no fact told (its base template).
DEFAULT_VCPUS = 2
DEFAULT_MEMORY_MB = 512
_USES = frozenset(t.value for t in MOVES_LAST_ACTIVITY)


@dataclass(slots=True)
class Trace:
    sandbox_id: str
    project_id: str | None = None
    # Epoch seconds of every use, in the order read (facts may come shuffled): see moments().
    uses: list[float] = field(default_factory=list)
    ended_at: float | None = None
    vcpus: int | None = None
    memory_mb: int | None = None
    # idleTimeoutSeconds from the sandbox's own metadata (it wins over any policy).
    own_idle_seconds: int | None = None

    def moments(self) -> list[float]:
        """Uses in time order, none after the sandbox ended."""
        ordered = sorted(self.uses)
        if self.ended_at is not None:
            ordered = [t for t in ordered if t <= self.ended_at]
        return ordered

    @property
    def size(self) -> tuple[int, int]:
        return (self.vcpus or DEFAULT_VCPUS, self.memory_mb or DEFAULT_MEMORY_MB)


class Traces:
    """Folds facts, in any order, into one Trace per sandbox."""

    def __init__(self) -> None:
        self.by_sandbox: dict[str, Trace] = {}
        self.facts = 0

    def add(
        self,
        fact_type: str,
        sandbox_id: str,
        project_id: str | None,
        at: float,
        data: Mapping[str, Any],
    ) -> None:
        self.facts += 1
        trace = self.by_sandbox.get(sandbox_id)
        if trace is None:
            trace = self.by_sandbox[sandbox_id] = Trace(sandbox_id)
        if project_id and trace.project_id is None:
            trace.project_id = project_id
        if fact_type in _USES:
            trace.uses.append(at)
            metadata = data.get("metadata")
            if isinstance(metadata, dict) and trace.own_idle_seconds is None:
                trace.own_idle_seconds = sandbox_level(metadata).idle_timeout_seconds
        elif fact_type == FactType.KILLED:
            trace.ended_at = at if trace.ended_at is None else min(trace.ended_at, at)
        if fact_type in (FactType.PAUSED, FactType.KILLED):
            execution = data.get("execution")
            if isinstance(execution, dict):
                trace.vcpus = _positive(execution.get("vcpu_count")) or trace.vcpus
                trace.memory_mb = _positive(execution.get("memory_mb")) or trace.memory_mb

    def of_projects(self, projects: Iterable[str] | None) -> list[Trace]:
        wanted = None if projects is None else set(projects)
        return [
            t
            for t in self.by_sandbox.values()
            if t.uses and (wanted is None or t.project_id in wanted)
        ]


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

"""What actually happened to a sandbox, from its lifecycle facts in time order: how long it ran
and stayed paused, its pauses and the ones the user undid at once (regrets), how long each wake
waited for E2B's resume, and what its running cost by E2B's own figures. The savings ledger
sets this beside the seed's cron and no enforcement replayed on the same demand (replay.py).

Facts before the frame may be missing (the history read starts at the frame): the first fact
seen tells the state the sandbox was in (a resume or a wake: it was paused; anything else:
running).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sandbox_common.envelope import MOVES_LAST_ACTIVITY, FactType
from sandbox_common.facts import PREWARM
from sandbox_common.whatif.ledger import NO_ENFORCEMENT, SEED_RULE
from sandbox_common.whatif.replay import Figures, Frame, replay
from sandbox_common.whatif.trace import Trace

_USES = frozenset(t.value for t in MOVES_LAST_ACTIVITY)
_RETURNS = frozenset({FactType.WAKE_REQUESTED.value, FactType.RESUMED.value})
# The first fact read is one of these: the sandbox was paused before it.
_WAS_PAUSED = frozenset(
    {FactType.RESUMED.value, FactType.WAKE_REQUESTED.value, FactType.WAKE_FAILED.value}
)
_ENDS_PREWARM = frozenset({FactType.ACTIVITY.value, FactType.PAUSED.value, FactType.KILLED.value})
MS = 1000.0


@dataclass(slots=True)
class Actual:
    sandboxes: int = 0
    running_seconds: float = 0.0
    paused_seconds: float = 0.0
    pauses: int = 0
    regrets: int = 0
    cost: float = 0.0
    # Seconds each wake (a user's, an API's; not a pre-warm) waited for E2B's resume.
    resume_waits: list[float] = field(default_factory=list)
    # Pre-warms (wakes ahead of an expected return), those the user used while it ran (hits),
    # and the running time they cost: from the resume to the first use, or to the next pause.
    prewarms: int = 0
    prewarm_hits: int = 0
    prewarm_seconds: float = 0.0

    def add(self, other: Actual) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class Seen:
    """One fact as the ledger reads it."""

    type: str
    at: float  # epoch seconds
    data: Mapping[str, Any]


def actual(facts: Iterable[Seen], frame: Frame) -> tuple[Actual, Trace]:
    """The sandbox's figures inside the frame, and its demand (for the baselines)."""
    ordered = sorted(facts, key=lambda f: f.at)
    walk = _Walk(frame, ordered[0] if ordered else None)
    for fact in ordered:
        walk.step(fact)
    return walk.finish()


class _Walk:
    def __init__(self, frame: Frame, first: Seen | None) -> None:
        self.frame = frame
        self.out = Actual(sandboxes=1)
        self.trace = Trace("")
        self.running = first is not None and first.type not in _WAS_PAUSED
        # A sandbox whose creation is not in the facts read existed when the frame began.
        if first is None or first.type == FactType.CREATED:
            self.since = first.at if first else frame.end
        else:
            self.since = min(first.at, frame.start)
            if self.running:  # for the baselines: running then is as if used then
                self.trace.uses.append(self.since)
        self.paused_at: float | None = None
        self.wake_at: float | None = None
        self.prewarm_asked = False
        self.prewarmed_at: float | None = None
        self.executed_ms = 0.0

    def inside(self, at: float) -> bool:
        return self.frame.start <= at < self.frame.end

    def step(self, fact: Seen) -> None:
        if self.trace.ended_at is not None:
            return  # a late fact after the kill changes nothing
        at, kind = fact.at, fact.type
        self.prewarming(fact)
        if kind in _USES:
            self.trace.uses.append(at)
        if kind in _RETURNS:
            self.returned(at)
        if kind == FactType.WAKE_REQUESTED and self.wake_at is None:
            # Nobody waits for a pre-warm: only the others' resumes are waits.
            self.wake_at = None if fact.data.get("reason") == PREWARM else at
        elif kind == FactType.WAKE_FAILED:
            self.wake_at = None
        elif kind == FactType.PAUSED and self.running:
            self.out.running_seconds += _inside(self.since, at, self.frame)
            self.running, self.since, self.paused_at = False, at, at
            self.out.pauses += self.inside(at)
        elif kind == FactType.RESUMED and not self.running:
            self.out.paused_seconds += _inside(self.since, at, self.frame)
            self.running, self.since = True, at
            if self.wake_at is not None and self.inside(at):
                self.out.resume_waits.append(at - self.wake_at)
            self.wake_at = None
        elif kind == FactType.KILLED:
            _close(self.out, self.running, self.since, at, self.frame)
            self.trace.ended_at = at
        _size(self.trace, fact)
        if kind in (FactType.PAUSED, FactType.KILLED) and self.inside(at):
            self.executed_ms += _execution_ms(fact)

    def prewarming(self, fact: Seen) -> None:
        """A pre-warm's wake, its resume, and what came of it: a use while it ran (a hit), or
        the next pause or kill (nobody came)."""
        at, kind = fact.at, fact.type
        if kind == FactType.WAKE_REQUESTED and fact.data.get("reason") == PREWARM:
            self.prewarm_asked = True
            self.out.prewarms += self.inside(at)
        elif kind == FactType.WAKE_FAILED:
            self.prewarm_asked = False
        elif kind == FactType.RESUMED and self.prewarm_asked and not self.running:
            self.prewarm_asked, self.prewarmed_at = False, at
        elif self.prewarmed_at is not None and kind in _ENDS_PREWARM:
            self.out.prewarm_seconds += _inside(self.prewarmed_at, at, self.frame)
            self.out.prewarm_hits += kind == FactType.ACTIVITY and self.inside(at)
            self.prewarmed_at = None

    def returned(self, at: float) -> None:
        """A wake or a resume: the end of a pause, a regret if it came soon."""
        if self.paused_at is None:
            return
        if at - self.paused_at <= self.frame.regret_seconds and self.inside(self.paused_at):
            self.out.regrets += 1
        self.paused_at = None

    def finish(self) -> tuple[Actual, Trace]:
        if self.trace.ended_at is None:
            _close(self.out, self.running, self.since, self.frame.end, self.frame)
        if self.prewarmed_at is not None:  # pre-warmed, nobody yet
            self.out.prewarm_seconds += _inside(self.prewarmed_at, self.frame.end, self.frame)
        per_second = self.frame.prices.per_second(*self.trace.size)
        # E2B's own figure of each run (execution_time) where it told us, else our clock's.
        seconds = self.executed_ms / MS if self.executed_ms else self.out.running_seconds
        self.out.cost = seconds * per_second
        return self.out, self.trace


def _close(out: Actual, running: bool, since: float, until: float, frame: Frame) -> None:
    if running:
        out.running_seconds += _inside(since, until, frame)
    else:
        out.paused_seconds += _inside(since, until, frame)


def _inside(a: float, b: float, frame: Frame) -> float:
    return max(0.0, min(b, frame.end) - max(a, frame.start))


def _execution(fact: Seen) -> Mapping[str, Any]:
    execution = fact.data.get("execution")
    return execution if isinstance(execution, dict) else {}


def _execution_ms(fact: Seen) -> float:
    value = _execution(fact).get("execution_time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _size(trace: Trace, fact: Seen) -> None:
    execution = _execution(fact)
    vcpus, memory = execution.get("vcpu_count"), execution.get("memory_mb")
    if isinstance(vcpus, int) and vcpus > 0:
        trace.vcpus = vcpus
    if isinstance(memory, int) and memory > 0:
        trace.memory_mb = memory


@dataclass(slots=True)
class Savings:
    """What happened, beside the seed's cron and no enforcement on the same demand."""

    actual: Actual = field(default_factory=Actual)
    seed: Figures = field(default_factory=Figures)
    unenforced: Figures = field(default_factory=Figures)

    def add(self, facts: Iterable[Seen], frame: Frame) -> None:
        happened, trace = actual(facts, frame)
        self.actual.add(happened)
        self.seed.add(replay(trace, SEED_RULE, frame))
        self.unenforced.add(replay(trace, NO_ENFORCEMENT, frame))

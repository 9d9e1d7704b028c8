"""Projection rules: fold lifecycle facts into one sandbox's state. Pure: no I/O, no clock.

Facts arrive twice, late and shuffled (E2B delivers at least once, in no order). So every field
is a register that only moves forward along a total order of facts, the `Stamp` (E2B time, then
a fixed rank of the type, then the event id). Folding is then commutative, associative and
idempotent: any order and duplication of the same facts ends in the same state as the ordered,
deduplicated sequence. `killed` is absorbing, so a late fact never brings a sandbox back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sandbox_common.envelope import MOVES_LAST_ACTIVITY, Envelope, FactType, Source
from sandbox_common.facts import StateView, state_view
from sandbox_common.readmodel import Status

# Tie-break for facts with the same timestamp: the later step of a lifecycle wins.
_RANK = {
    FactType.CREATED: 0,
    FactType.UPDATED: 1,
    FactType.WAKE_REQUESTED: 2,
    FactType.RESUMED: 3,
    FactType.PAUSE_REQUESTED: 4,
    FactType.PAUSE_CANCELLED: 5,
    FactType.WAKE_FAILED: 6,
    FactType.PAUSED: 7,
    FactType.KILLED: 8,
}
_STATUS_OF = {
    FactType.CREATED: Status.RUNNING,
    FactType.RESUMED: Status.RUNNING,
    FactType.PAUSE_REQUESTED: Status.PAUSING,
    FactType.PAUSE_CANCELLED: Status.RUNNING,
    FactType.WAKE_REQUESTED: Status.STARTING,
    FactType.WAKE_FAILED: Status.PAUSED,
    FactType.PAUSED: Status.PAUSED,
    FactType.KILLED: Status.KILLED,
}
# Facts that prove the sandbox was in use at that moment.
_ACTIVITY = MOVES_LAST_ACTIVITY
# How many of the latest idle pauses and resumes a state keeps: what flap detection looks at.
RECENT = 8

# Facts that may join the recent cycles (`_cycles` says which do).
_CYCLE_FACTS = frozenset({FactType.RESUMED, FactType.PAUSED})
# Facts that start a run of the sandbox: E2B counts its maximum instance length from there (a
# resume starts a new instance, with a new start time).
_RUN_STARTS = frozenset({FactType.CREATED, FactType.RESUMED})


class Stamp(NamedTuple):
    """Ordered by its fields, in this order (a tuple: cheap to build and compare, once per
    register per fact)."""

    at: datetime
    rank: int
    event_id: str

    @classmethod
    def of(cls, fact: Envelope) -> Stamp:
        return cls(fact.occurred_at, _RANK.get(fact.type, -1), fact.event_id)


@dataclass(frozen=True)
class SandboxState:
    sandbox_id: str
    status: Status | None = None
    last_active_at: datetime | None = None
    timeout_at: datetime | None = None
    project_id: str | None = None
    team_id: str | None = None
    template_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    first_seen_at: datetime | None = None
    last_event_at: datetime | None = None
    # The stamp of the fact that last wrote each register (status, timeout, project, ...).
    stamps: dict[str, Stamp] = field(default_factory=dict)
    # E2B's own lifecycle, once read from E2B: "pause" or "kill" at its timeout; wakes on traffic.
    on_timeout: str | None = None
    auto_resume: bool | None = None
    # The latest RECENT idle pauses of ours and resumes (any), oldest first: grow-only sets cut
    # to their newest members, so merging them stays order-free. Flapping is read from them.
    idle_pauses: tuple[datetime, ...] = ()
    resumes: tuple[datetime, ...] = ()
    # An agent or backend said its task runs until then (a heartbeat's busyUntil): the idle
    # deadline is held at least that far. The latest heartbeat that says so decides.
    busy_until: datetime | None = None

    @property
    def status_changed_at(self) -> datetime | None:
        """When the fact that set the current status happened."""
        stamp = self.stamps.get("status")
        return stamp.at if stamp is not None else None

    @property
    def run_started_at(self) -> datetime | None:
        """When the current (or last) run began: the latest created or resumed fact."""
        stamp = self.stamps.get("run")
        return stamp.at if stamp is not None else None

    @property
    def killed(self) -> bool:
        return self.status is Status.KILLED

    @property
    def visible(self) -> bool:
        """Served by status-api: known status and not a tombstone."""
        return self.status is not None and not self.killed


def evolve(state: SandboxState | None, fact: Envelope) -> SandboxState:
    """Apply one fact. Unknown fact types only move the "seen" times."""
    current = state or SandboxState(sandbox_id=fact.sandbox_id)
    stamp = Stamp.of(fact)
    at = fact.occurred_at
    changes: dict[str, Any] = {
        "first_seen_at": _min(current.first_seen_at, at),
        "last_event_at": _max(current.last_event_at, at),
    }
    if fact.type in _ACTIVITY:
        changes["last_active_at"] = _max(current.last_active_at, at)
    stamps = dict(current.stamps)

    def write(register: str, **values: Any) -> None:
        held = stamps.get(register)
        if held is None or stamp > held:
            stamps[register] = stamp
            changes.update(values)

    status = _STATUS_OF.get(fact.type)
    if status is Status.KILLED and not current.killed:
        stamps["status"] = stamp  # absorbing: a kill beats any stamp
        changes["status"] = status
    elif status is Status.KILLED or (status is not None and not current.killed):
        write("status", status=status)
    if fact.type in _RUN_STARTS:
        write("run")  # the stamp is the register: its time is the run's start
    view = state_view(fact)
    if fact.type in _CYCLE_FACTS:
        changes.update(_cycles(current, fact, view))
    _write_data(fact, view, write)
    changes["stamps"] = stamps
    return _replace(current, changes)


def _write_data(fact: Envelope, view: StateView, write: Callable[..., None]) -> None:
    """The registers a fact's data and subject set, each if this fact is their newest."""
    if view.on_timeout is not None or view.auto_resume is not None:
        write("lifecycle", on_timeout=view.on_timeout, auto_resume=view.auto_resume)
    if view.set_timeout is not None:
        write("timeout", timeout_at=view.set_timeout)
    if view.busy_until is not None:
        write("busy", busy_until=view.busy_until)
    if view.metadata is not None:
        write("metadata", metadata=dict(view.metadata))
    if fact.project_id is not None or view.metadata is not None:
        write("project", project_id=fact.project_id)
    if fact.team_id is not None:
        write("team", team_id=fact.team_id)
    if view.template_id is not None:
        write("template", template_id=view.template_id)


def _replace(state: SandboxState, changes: dict[str, Any]) -> SandboxState:
    """`dataclasses.replace` without running `__init__` again (which costs as much as the rest
    of `evolve`): a copy of the fields, then the changed ones. `changes` names fields only."""
    new = object.__new__(SandboxState)
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new


def fold(state: SandboxState | None, facts: list[Envelope]) -> SandboxState | None:
    for fact in facts:
        state = evolve(state, fact)
    return state


def _cycles(current: SandboxState, fact: Envelope, view: StateView) -> dict[str, Any]:
    """A resume (anyone's), or an idle pause of ours, joins the recent cycles."""
    if fact.type is FactType.RESUMED:
        return {"resumes": _recent(current.resumes, fact.occurred_at)}
    if fact.type is FactType.PAUSED and fact.source is Source.ENFORCER and view.reason == "idle":
        return {"idle_pauses": _recent(current.idle_pauses, fact.occurred_at)}
    return {}


def _recent(times: tuple[datetime, ...], at: datetime) -> tuple[datetime, ...]:
    if at in times:
        return times
    return tuple(sorted((*times, at))[-RECENT:])


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _max(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a

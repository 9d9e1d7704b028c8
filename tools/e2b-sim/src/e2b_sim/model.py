"""The simulator's sandbox model: states, the sandbox record, and what a decision yields.

Values only; the decisions that move between states are in `domain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sandbox_common.e2b import LifecycleType


class State(StrEnum):
    RUNNING = "running"
    PAUSING = "pausing"  # transitional: reads show "paused", a second pause gets 409 (retry)
    PAUSED = "paused"
    KILLING = "killing"  # transitional: connect gets 409 "being killed", reads get 404
    KILLED = "killed"


@dataclass(frozen=True, slots=True)
class Sandbox:
    sandbox_id: str
    template_id: str
    execution_id: str  # new on create and on every resume, as E2B's sandbox_execution_id
    started_at: datetime
    end_at: datetime
    state: State = State.RUNNING
    metadata: dict[str, str] = field(default_factory=dict)
    auto_pause: bool = False  # lifecycle.onTimeout "pause" (else "kill")
    auto_resume: bool = False  # lifecycle.autoResume: traffic wakes it when paused
    # What an auto-resume sets the timeout to: E2B keeps the create's timeout for it.
    auto_resume_timeout: int = 300
    # E2B's maximum instance length, captured at start: no run lives longer.
    max_length: timedelta = timedelta(hours=24)
    cpu_count: int = 2
    memory_mb: int = 512
    stopped_at: datetime | None = None  # when the current execution stopped running
    settles_at: datetime | None = None  # end of a transitional state
    kill_reason: str = "request"


@dataclass(frozen=True, slots=True)
class Emitted:
    """A lifecycle event to record and deliver; `data` is event_data without the metadata."""

    type: LifecycleType
    sandbox: Sandbox
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    sandbox: Sandbox | None = None  # the new state to store; None leaves the store unchanged
    events: tuple[Emitted, ...] = ()
    message: str = ""


def visible_state(sb: Sandbox | None) -> str | None:
    """What GET/list show: pausing reads as paused; killing and killed are gone (404)."""
    if sb is None or sb.state in (State.KILLING, State.KILLED):
        return None
    return "running" if sb.state is State.RUNNING else "paused"


def execution(sb: Sandbox, now: datetime) -> dict[str, Any]:
    """event_data.execution: the current (or last) run; execution_time in milliseconds."""
    end = sb.stopped_at or now
    return {
        "started_at": rfc3339(sb.started_at),
        "vcpu_count": sb.cpu_count,
        "memory_mb": sb.memory_mb,
        "execution_time": int((end - sb.started_at).total_seconds() * 1000),
    }


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")

"""The status document the projector writes to Redis and status-api serves (camelCase JSON),
and how it is made from a sandbox's projected state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import msgspec

from sandbox_common.policies.book import NO_GOVERNS, NO_POLICIES, PolicyBook
from sandbox_common.readmodel.deadlines import DeadlineRule, PauseReason


class Status(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    # A tombstone: never served (404), kept so a late event cannot bring the sandbox back.
    KILLED = "KILLED"


# States that wait for an answer (the actuator's, or E2B's); the enforcer repairs stuck ones.
TRANSITIONAL = frozenset({Status.PAUSING, Status.STARTING})

# How often a client should poll in each state (the seed's adaptive intervals); None: don't.
POLL_AFTER_MS: dict[Status, int | None] = {
    Status.STARTING: 5000,
    Status.PAUSING: 5000,
    Status.RUNNING: 30000,
    Status.PAUSED: None,
    Status.KILLED: None,
}


class StatusDoc(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    project_id: str | None
    status: Status
    last_active_at: datetime | None
    status_changed_at: datetime | None
    timeout_at: datetime | None = None
    team_id: str | None = None
    template_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # When the enforcer pauses a RUNNING sandbox (None in any other status, or never paused):
    # once idle long enough, or earlier when a policy pauses it whatever the activity.
    idle_deadline_at: datetime | None = None
    # Why it is paused then: idle (activity moves the deadline), maxRunningTime or quietHours
    # (a policy's, activity does not move it). None when there is no deadline.
    pause_reason: PauseReason | None = None
    # Until when an agent or backend said it is busy (RUNNING only): the idle deadline is not
    # before it.
    busy_until: datetime | None = None
    # When a PAUSED sandbox is deleted (E2B kill) by its project's policy (deleteAfterPaused-
    # Seconds after it was paused); None in any other status, or when no policy deletes it.
    delete_at: datetime | None = None
    # When E2B ends a RUNNING sandbox's run whatever its activity (its maximum instance length;
    # None in any other status, or when the run's start is unknown).
    max_lifetime_at: datetime | None = None
    # E2B's own lifecycle, once read from E2B (None until then): E2B pauses it at its timeout
    # instead of killing it; traffic to it wakes it.
    auto_pause: bool | None = None
    auto_resume: bool | None = None
    # The idle timeout's factor: above 1 while its idle pauses keep being undone at once.
    idle_backoff: int = 1
    # Monotonic per sandbox: a write with a lower revision never replaces a higher one.
    revision: int = 0
    updated_at: datetime | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StatusDoc)


def encode_doc(doc: StatusDoc) -> bytes:
    return _encoder.encode(doc)


def decode_doc(payload: bytes | str) -> StatusDoc:
    return _decoder.decode(payload)


class DocSource(Protocol):
    """What a status document is made from: the projector's state of one sandbox."""

    @property
    def sandbox_id(self) -> str: ...
    @property
    def status(self) -> Status | None: ...
    @property
    def status_changed_at(self) -> datetime | None: ...
    @property
    def last_active_at(self) -> datetime | None: ...
    @property
    def timeout_at(self) -> datetime | None: ...
    @property
    def project_id(self) -> str | None: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def template_id(self) -> str | None: ...
    @property
    def metadata(self) -> dict[str, str]: ...
    @property
    def run_started_at(self) -> datetime | None: ...
    @property
    def on_timeout(self) -> str | None: ...
    @property
    def auto_resume(self) -> bool | None: ...
    @property
    def idle_pauses(self) -> Sequence[datetime]: ...
    @property
    def resumes(self) -> Sequence[datetime]: ...
    @property
    def busy_until(self) -> datetime | None: ...


def to_doc(
    state: DocSource,
    revision: int,
    now: datetime,
    rule: DeadlineRule,
    book: PolicyBook = NO_POLICIES,
) -> StatusDoc | None:
    """None while no fact has said what state the sandbox is in. `book`: the policies in force
    (a project's idle timeout; never pause: no idle deadline at all)."""
    if state.status is None:
        return None
    running = state.status is Status.RUNNING
    governs = book.governs(state.project_id)
    active_at = state.last_active_at if running and not governs.never_pause else None
    run_start = state.run_started_at if running else None
    # Most sandboxes were never idle-paused: no flap to look for (this runs for every write).
    idle_pauses = state.idle_pauses
    backoff = rule.backoff(len(rule.flaps(idle_pauses, state.resumes))) if idle_pauses else 1
    meta = state.metadata
    idle = rule.deadline(active_at, meta, backoff, governs.idle_seconds) if active_at else None
    busy = state.busy_until
    if idle is not None and busy is not None and busy > idle:
        idle = busy  # an agent's task runs until then (a policy's forced pause still comes)
    deadline, reason = idle, PauseReason.IDLE if idle else None
    if run_start is not None and governs is not NO_GOVERNS:
        forced = rule.forced_pause(run_start, governs)
        if forced is not None and (deadline is None or forced.at < deadline):
            deadline, reason = forced
    delete_at = None
    paused_at = state.status_changed_at if state.status is Status.PAUSED else None
    if paused_at is not None and governs.delete_after_paused_seconds is not None:
        delete_at = paused_at + timedelta(seconds=governs.delete_after_paused_seconds)
    return StatusDoc(
        sandbox_id=state.sandbox_id,
        project_id=state.project_id,
        status=state.status,
        last_active_at=state.last_active_at,
        status_changed_at=state.status_changed_at,
        timeout_at=state.timeout_at,
        team_id=state.team_id,
        template_id=state.template_id,
        metadata=state.metadata,
        idle_deadline_at=deadline,
        pause_reason=reason,
        delete_at=delete_at,
        busy_until=state.busy_until if running else None,
        max_lifetime_at=rule.hard_end(run_start) if run_start else None,
        auto_pause=None if state.on_timeout is None else state.on_timeout == "pause",
        auto_resume=state.auto_resume,
        idle_backoff=backoff,
        revision=revision,
        updated_at=now,
    )


def transitional_since(doc: StatusDoc) -> datetime | None:
    """When the sandbox entered PAUSING or STARTING (the transitional index's score)."""
    return doc.status_changed_at if doc.status in TRANSITIONAL else None

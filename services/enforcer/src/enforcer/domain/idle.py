"""Idle policy as pure functions: a sandbox's deadline, and whether to pause it now.

No I/O and no clock: the ticker and the actuator pass `now` and the status document in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox_common.policies import Governs
from sandbox_common.readmodel import DeadlineRule, PauseReason, Status, StatusDoc


def deadline(doc: StatusDoc) -> datetime | None:
    """When a RUNNING sandbox becomes idle enough to pause; None when it is not running.

    The projector computes it (sandbox_common.readmodel.deadlines) when it writes the document, so
    the index the ticker scans and the decision here can never disagree."""
    if doc.status is not Status.RUNNING or doc.last_active_at is None:
        return None
    return doc.idle_deadline_at


# A policy's pauses that come whatever the activity.
FORCED = frozenset({PauseReason.MAX_RUNNING_TIME, PauseReason.QUIET_HOURS})


@dataclass(frozen=True)
class PauseCommand:
    command_id: str
    sandbox_id: str
    project_id: str | None
    # The activity time the decision was based on: newer activity cancels an idle pause.
    judged_last_active_at: datetime
    deadline: datetime
    idle_seconds: int
    reason: PauseReason = PauseReason.IDLE


def command_id(sandbox_id: str, judged_last_active_at: datetime) -> str:
    """Deterministic: two tickers, or one tick replayed, judging the same idleness agree."""
    return f"pause:{sandbox_id}:{judged_last_active_at.isoformat()}"


def decide(doc: StatusDoc, now: datetime) -> PauseCommand | None:
    due = deadline(doc)
    if due is None or now < due or doc.last_active_at is None:
        return None
    return PauseCommand(
        command_id=command_id(doc.sandbox_id, doc.last_active_at),
        sandbox_id=doc.sandbox_id,
        project_id=doc.project_id,
        judged_last_active_at=doc.last_active_at,
        deadline=due,
        idle_seconds=int((now - doc.last_active_at).total_seconds()),
        reason=doc.pause_reason or PauseReason.IDLE,
    )


def extended_end(now: datetime, seconds: int, known: StatusDoc | None) -> datetime:
    """E2B's end once an extend-only refresh of `seconds` was accepted: at least now + seconds,
    never earlier than the end we knew, and never past the run's hard end (E2B caps a refresh
    at the maximum instance length: e2b-dev/infra, orchestrator keep_alive.go)."""
    end = now + timedelta(seconds=seconds)
    if known is None:
        return end
    if known.timeout_at is not None:
        end = max(end, known.timeout_at)
    if known.max_lifetime_at is not None:
        end = min(end, known.max_lifetime_at)
    return end


def still_due(command: PauseCommand, current: StatusDoc | None) -> bool:
    """The actuator's re-check just before calling E2B: drop the pause when the sandbox is gone,
    no longer running, or (an idle pause) was active after the command was judged."""
    if current is None or current.status not in (Status.RUNNING, Status.PAUSING):
        return False
    if command.reason in FORCED:
        return True
    return current.last_active_at is None or current.last_active_at <= command.judged_last_active_at


def policy_allows(
    doc: StatusDoc, governs: Governs, now: datetime, reason: PauseReason = PauseReason.IDLE
) -> bool:
    """The actuator's re-judgement against the policies in force just before it pauses: a
    deadline index written before a policy change may still show the old deadline for a few
    seconds. A forced pause: while its rule is still in force. Never pause: no. A policy idle
    timeout: only once the sandbox's own deadline under it has passed (its metadata override,
    then the policy's, times its flap back-off). No policy timeout: the setting decides, and
    the deadline judged with it stands."""
    if reason is PauseReason.MAX_RUNNING_TIME:
        return governs.max_running_seconds is not None
    if reason is PauseReason.QUIET_HOURS:
        return governs.quiet_hours is not None
    if governs.never_pause:
        return False
    if governs.idle_seconds is None or doc.last_active_at is None:
        return True
    # The policy's timeout stands in for the setting: the metadata still comes first.
    rule = DeadlineRule(default_seconds=governs.idle_seconds)
    return now >= rule.deadline(doc.last_active_at, doc.metadata, doc.idle_backoff)


def pause_reason(raw: object) -> PauseReason:
    """A pause command's reason: an operator's, or one this version does not know, is judged
    like an idle pause (activity cancels it)."""
    known = {r.value: r for r in PauseReason}
    return known.get(raw, PauseReason.IDLE) if isinstance(raw, str) else PauseReason.IDLE

"""A project policy's delete of a paused sandbox (deleteAfterPausedSeconds) as pure functions:
when the ticker asks for it, and the actuator's re-judgement just before it calls E2B.

No I/O and no clock: the callers pass `now`, the status document and the policies in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox_common.policies import Governs
from sandbox_common.readmodel import Status, StatusDoc

REASON = "deleteAfterPaused"


@dataclass(frozen=True)
class DeleteCommand:
    command_id: str
    sandbox_id: str
    project_id: str | None
    # When the pause it follows began: a resume and a new pause make another delete.
    paused_since: datetime
    deadline: datetime


def command_id(sandbox_id: str, paused_since: datetime) -> str:
    """Deterministic: two ticks judging the same pause agree."""
    return f"delete:{sandbox_id}:{paused_since.isoformat()}"


def decide_delete(doc: StatusDoc, now: datetime) -> DeleteCommand | None:
    if doc.status is not Status.PAUSED or doc.delete_at is None or doc.status_changed_at is None:
        return None
    if now < doc.delete_at:
        return None
    return DeleteCommand(
        command_id=command_id(doc.sandbox_id, doc.status_changed_at),
        sandbox_id=doc.sandbox_id,
        project_id=doc.project_id,
        paused_since=doc.status_changed_at,
        deadline=doc.delete_at,
    )


def still_deletable(
    current: StatusDoc | None, governs: Governs, paused_since: datetime | None, now: datetime
) -> bool:
    """Still paused since the pause the command judged (not resumed meanwhile, not a later
    pause), and the policy in force still deletes it by now."""
    if current is None or current.status is not Status.PAUSED or paused_since is None:
        return False
    if current.status_changed_at != paused_since or governs.delete_after_paused_seconds is None:
        return False
    return now >= paused_since + timedelta(seconds=governs.delete_after_paused_seconds)

"""The facts the actuator publishes: pure builders, with event ids derived from the command id
so a redelivered command re-publishes the same fact (the projector dedupes it by event id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox_common.commands import Command
from sandbox_common.envelope import Envelope, FactType, Source


def _fact(
    command: Command, fact_type: FactType, suffix: str, now: datetime, data: dict[str, Any]
) -> Envelope:
    return Envelope(
        event_id=f"{command.command_id}:{suffix}",
        type=fact_type,
        source=Source.ENFORCER,
        sandbox_id=command.sandbox_id,
        project_id=command.project_id,
        occurred_at=now,
        received_at=now,
        data={**data, "command_id": command.command_id},
    )


def paused(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    # Published at once so the state flips without waiting for E2B's (maybe lost) webhook.
    return _fact(
        command, FactType.PAUSED, "paused", now, {"reason": "idle", "e2b_status": e2b_status}
    )


def killed(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    return _fact(
        command,
        FactType.KILLED,
        "killed",
        now,
        {"kill_reason": "not_found", "e2b_status": e2b_status},
    )


def cancelled(command: Command, now: datetime, reason: str) -> Envelope:
    """Back to RUNNING: activity came after judging, or E2B never accepted the pause."""
    return _fact(command, FactType.PAUSE_CANCELLED, "cancelled", now, {"reason": reason})


def resumed(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    # RUNNING at once, last activity refreshed: waking is the user coming back.
    return _fact(
        command, FactType.RESUMED, "resumed", now, {"reason": "wake", "e2b_status": e2b_status}
    )


def wake_failed(command: Command, now: datetime, reason: str) -> Envelope:
    return _fact(command, FactType.WAKE_FAILED, "wake-failed", now, {"reason": reason[:300]})


def timeout_set(command: Command, now: datetime, end: datetime) -> Envelope:
    """E2B's new end, known at once (E2B's own `updated` webhook may come late, or not at all)."""
    return _fact(
        command,
        FactType.UPDATED,
        "timeout-set",
        now,
        {"set_timeout": end.isoformat(), "reason": "keep_alive"},
    )

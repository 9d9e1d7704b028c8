"""The facts the actuator publishes: pure builders, with event ids derived from the command id
so a redelivered command re-publishes the same fact (the projector dedupes it by event id)."""

from __future__ import annotations

from datetime import datetime

from sandbox_common.commands import Command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import FactData, Lifecycle, Origin, Undone, new_fact
from sandbox_common.payloads import Subject


def _fact(
    command: Command, fact_type: FactType, suffix: str, now: datetime, payload: FactData
) -> Envelope:
    return new_fact(
        fact_type,
        payload,
        Subject(command.sandbox_id, command.project_id),
        Origin(f"{command.command_id}:{suffix}", Source.ENFORCER, now),
    )


def paused(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    # Published at once so the state flips without waiting for E2B's (maybe lost) webhook.
    payload = Lifecycle(reason="idle", e2b_status=e2b_status, command_id=command.command_id)
    return _fact(command, FactType.PAUSED, "paused", now, payload)


def killed(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    payload = Lifecycle(
        kill_reason="not_found", e2b_status=e2b_status, command_id=command.command_id
    )
    return _fact(command, FactType.KILLED, "killed", now, payload)


def deleted(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    """Killed at E2B because the project's policy deletes sandboxes paused this long."""
    payload = Lifecycle(
        kill_reason="deleteAfterPaused", e2b_status=e2b_status, command_id=command.command_id
    )
    return _fact(command, FactType.KILLED, "killed", now, payload)


def cancelled(command: Command, now: datetime, reason: str) -> Envelope:
    """Back to RUNNING: activity came after judging, or E2B never accepted the pause."""
    payload = Undone(reason=reason, command_id=command.command_id)
    return _fact(command, FactType.PAUSE_CANCELLED, "cancelled", now, payload)


def resumed(command: Command, now: datetime, e2b_status: int | None) -> Envelope:
    # RUNNING at once, last activity refreshed: waking is the user coming back.
    payload = Lifecycle(reason="wake", e2b_status=e2b_status, command_id=command.command_id)
    return _fact(command, FactType.RESUMED, "resumed", now, payload)


def wake_failed(command: Command, now: datetime, reason: str) -> Envelope:
    payload = Undone(reason=reason[:300], command_id=command.command_id)
    return _fact(command, FactType.WAKE_FAILED, "wake-failed", now, payload)


def timeout_set(command: Command, now: datetime, end: datetime) -> Envelope:
    """E2B's new end, known at once (E2B's own `updated` webhook may come late, or not at all)."""
    payload = Lifecycle(reason="keep_alive", set_timeout=end, command_id=command.command_id)
    return _fact(command, FactType.UPDATED, "timeout-set", now, payload)

"""Use cases that ask the actuator to act on E2B: a user wakes a paused sandbox (resume, then
STARTING at once: sandbox_common.wake), an operator pauses one from the dashboard (pause, then
PAUSING at once). The command goes out before the fact, as for a wake."""

from __future__ import annotations

from sandbox_common.commands import CommandType, PauseOrder, new_command
from sandbox_common.envelope import FactType, Source
from sandbox_common.facts import Origin, PauseRequested, new_fact
from sandbox_common.readmodel import Status, StatusDoc
from sandbox_common.wake import Publisher, asked, command_then_fact, request_wake

__all__ = ["request_pause", "request_wake"]


async def request_pause(doc: StatusDoc, operator: str | None, publisher: Publisher) -> Status:
    """An operator's pause of a RUNNING sandbox. Like the enforcer's, it is judged against the
    last activity seen now: a user active after this moment makes the actuator drop it."""
    if doc.status is not Status.RUNNING or doc.last_active_at is None:
        return doc.status
    operator = operator or "unknown"
    now, command_id, subject = asked(CommandType.PAUSE, doc)
    await command_then_fact(
        publisher,
        new_command(
            PauseOrder(source=Source.API.value, reason="operator", operator=operator),
            subject,
            command_id=command_id,
            issued_at=now,
            judged_last_active_at=doc.last_active_at,
        ),
        new_fact(
            FactType.PAUSE_REQUESTED,
            PauseRequested(command_id=command_id, reason="operator", operator=operator),
            subject,
            Origin(f"{command_id}:requested", Source.API, now),
        ),
    )
    return Status.PAUSING

"""Use cases that ask the actuator to act on E2B: a user wakes a paused sandbox (resume, then
STARTING at once), an operator pauses one from the dashboard (pause, then PAUSING at once).

The command goes out before the fact: if the fact were published and the command lost, the
sandbox would show STARTING or PAUSING with nothing behind it (the enforcer repairs that, but
only after minutes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol

from sandbox_common.commands import Command, CommandType, PauseOrder, ResumeOrder, new_command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Origin, PauseRequested, WakeRequested, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import Status, StatusDoc

# Already up, or on its way: waking again would only repeat the E2B call.
_AWAKE = frozenset({Status.RUNNING, Status.STARTING})


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...

    async def publish_command(self, command: Command) -> None: ...


async def request_wake(doc: StatusDoc, source: Source, publisher: Publisher) -> Status:
    """The status the sandbox is in now, as far as the caller should show it."""
    if doc.status in _AWAKE:
        return doc.status
    now, command_id, subject = _asked(CommandType.RESUME, doc)
    await _command_then_fact(
        publisher,
        new_command(
            ResumeOrder(source=source.value), subject, command_id=command_id, issued_at=now
        ),
        new_fact(
            FactType.WAKE_REQUESTED,
            WakeRequested(command_id=command_id),
            subject,
            Origin(f"{command_id}:requested", source, now),
        ),
    )
    return Status.STARTING


async def request_pause(doc: StatusDoc, operator: str | None, publisher: Publisher) -> Status:
    """An operator's pause of a RUNNING sandbox. Like the enforcer's, it is judged against the
    last activity seen now: a user active after this moment makes the actuator drop it."""
    if doc.status is not Status.RUNNING or doc.last_active_at is None:
        return doc.status
    operator = operator or "unknown"
    now, command_id, subject = _asked(CommandType.PAUSE, doc)
    await _command_then_fact(
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


def _asked(command_type: CommandType, doc: StatusDoc) -> tuple[datetime, str, Subject]:
    """Now, a new command id, and the sandbox asked about."""
    command_id = f"{command_type.value}:{doc.sandbox_id}:{uuid.uuid4().hex}"
    return datetime.now(UTC), command_id, Subject(doc.sandbox_id, doc.project_id, doc.team_id)


async def _command_then_fact(publisher: Publisher, command: Command, fact: Envelope) -> None:
    await publisher.publish_command(command)
    await publisher.publish(fact)

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

from sandbox_common.commands import (
    Command,
    CommandData,
    CommandType,
    PauseOrder,
    ResumeOrder,
    new_command,
)
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import FactData, PauseRequested, WakeRequested, new_fact
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
    command_id = _command_id(CommandType.RESUME, doc)
    await _command_then_fact(
        publisher,
        doc,
        command_id,
        ResumeOrder(source=source.value),
        FactType.WAKE_REQUESTED,
        WakeRequested(command_id=command_id),
        source,
    )
    return Status.STARTING


async def request_pause(doc: StatusDoc, operator: str | None, publisher: Publisher) -> Status:
    """An operator's pause of a RUNNING sandbox. Like the enforcer's, it is judged against the
    last activity seen now: a user active after this moment makes the actuator drop it."""
    if doc.status is not Status.RUNNING or doc.last_active_at is None:
        return doc.status
    operator = operator or "unknown"
    command_id = _command_id(CommandType.PAUSE, doc)
    await _command_then_fact(
        publisher,
        doc,
        command_id,
        PauseOrder(source=Source.API.value, reason="operator", operator=operator),
        FactType.PAUSE_REQUESTED,
        PauseRequested(command_id=command_id, reason="operator", operator=operator),
        Source.API,
        judged_last_active_at=doc.last_active_at,
    )
    return Status.PAUSING


def _command_id(command_type: CommandType, doc: StatusDoc) -> str:
    return f"{command_type.value}:{doc.sandbox_id}:{uuid.uuid4().hex}"


async def _command_then_fact(
    publisher: Publisher,
    doc: StatusDoc,
    command_id: str,
    order: CommandData,
    fact_type: FactType,
    payload: FactData,
    source: Source,
    *,
    judged_last_active_at: datetime | None = None,
) -> None:
    now = datetime.now(UTC)
    await publisher.publish_command(
        new_command(
            order,
            command_id=command_id,
            sandbox_id=doc.sandbox_id,
            issued_at=now,
            project_id=doc.project_id,
            judged_last_active_at=judged_last_active_at,
        )
    )
    await publisher.publish(
        new_fact(
            fact_type,
            payload,
            event_id=f"{command_id}:requested",
            sandbox_id=doc.sandbox_id,
            source=source,
            at=now,
            project_id=doc.project_id,
            team_id=doc.team_id,
        )
    )

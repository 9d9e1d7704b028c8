"""Use cases that ask the actuator to act on E2B: a user wakes a paused sandbox (resume, then
STARTING at once), an operator pauses one from the dashboard (pause, then PAUSING at once).

The command goes out before the fact: if the fact were published and the command lost, the
sandbox would show STARTING or PAUSING with nothing behind it (the enforcer repairs that, but
only after minutes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from sandbox_common.commands import Command, CommandType
from sandbox_common.envelope import Envelope, FactType, Source
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
    await _command_then_fact(
        publisher, doc, CommandType.RESUME, FactType.WAKE_REQUESTED, source, {}, None
    )
    return Status.STARTING


async def request_pause(doc: StatusDoc, operator: str | None, publisher: Publisher) -> Status:
    """An operator's pause of a RUNNING sandbox. Like the enforcer's, it is judged against the
    last activity seen now: a user active after this moment makes the actuator drop it."""
    if doc.status is not Status.RUNNING or doc.last_active_at is None:
        return doc.status
    data = {"reason": "operator", "operator": operator or "unknown"}
    await _command_then_fact(
        publisher,
        doc,
        CommandType.PAUSE,
        FactType.PAUSE_REQUESTED,
        Source.API,
        data,
        doc.last_active_at,
    )
    return Status.PAUSING


async def _command_then_fact(
    publisher: Publisher,
    doc: StatusDoc,
    command_type: CommandType,
    fact_type: FactType,
    source: Source,
    data: dict[str, Any],
    judged_last_active_at: datetime | None,
) -> None:
    now = datetime.now(UTC)
    command_id = f"{command_type.value}:{doc.sandbox_id}:{uuid.uuid4().hex}"
    await publisher.publish_command(
        Command(
            command_id=command_id,
            type=command_type,
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            issued_at=now,
            judged_last_active_at=judged_last_active_at,
            data={"source": source.value, **data},
        )
    )
    await publisher.publish(
        Envelope(
            event_id=f"{command_id}:requested",
            type=fact_type,
            source=source,
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            team_id=doc.team_id,
            occurred_at=now,
            received_at=now,
            data={"command_id": command_id, **data},
        )
    )

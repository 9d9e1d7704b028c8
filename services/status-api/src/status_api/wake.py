"""Use case: a user asks to wake a paused sandbox. A resume command goes to the actuator (which
calls E2B's connect), then a WAKE_REQUESTED fact shows STARTING at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol

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
    now = datetime.now(UTC)
    command_id = f"resume:{doc.sandbox_id}:{uuid.uuid4().hex}"
    # Command first: if the fact were published and the command lost, the sandbox would show
    # STARTING with nothing behind it.
    await publisher.publish_command(
        Command(
            command_id=command_id,
            type=CommandType.RESUME,
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            issued_at=now,
            data={"source": source.value},
        )
    )
    await publisher.publish(
        Envelope(
            event_id=f"{command_id}:requested",
            type=FactType.WAKE_REQUESTED,
            source=source,
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            team_id=doc.team_id,
            occurred_at=now,
            received_at=now,
            data={"command_id": command_id},
        )
    )
    return Status.STARTING

"""Waking a paused sandbox: a resume command for the actuator (E2B `connect`), then the fact
that shows it STARTING at once. Asked by a user through status-api, or by the enforcer's
pre-warming ahead of an expected return (`reason` "prewarm").

The command goes out before the fact: if the fact were published and the command lost, the
sandbox would show STARTING with nothing behind it (the enforcer repairs that, but only after
minutes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol

from sandbox_common.commands import Command, CommandType, ResumeOrder, new_command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import PREWARM, Origin, WakeRequested, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import Status, StatusDoc

# Already up, or on its way: waking again would only repeat the E2B call.
AWAKE = frozenset({Status.RUNNING, Status.STARTING})
__all__ = ["AWAKE", "PREWARM", "Publisher", "asked", "command_then_fact", "request_wake"]


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...

    async def publish_command(self, command: Command) -> None: ...


async def request_wake(
    doc: StatusDoc, source: Source, publisher: Publisher, reason: str | None = None
) -> Status:
    """The status the sandbox is in now, as far as the caller should show it."""
    if doc.status in AWAKE:
        return doc.status
    now, command_id, subject = asked(CommandType.RESUME, doc)
    await command_then_fact(
        publisher,
        new_command(
            ResumeOrder(source=source.value), subject, command_id=command_id, issued_at=now
        ),
        new_fact(
            FactType.WAKE_REQUESTED,
            WakeRequested(command_id=command_id, reason=reason),
            subject,
            Origin(f"{command_id}:requested", source, now),
        ),
    )
    return Status.STARTING


def asked(command_type: CommandType, doc: StatusDoc) -> tuple[datetime, str, Subject]:
    """Now, a new command id, and the sandbox asked about."""
    command_id = f"{command_type.value}:{doc.sandbox_id}:{uuid.uuid4().hex}"
    return datetime.now(UTC), command_id, Subject(doc.sandbox_id, doc.project_id, doc.team_id)


async def command_then_fact(publisher: Publisher, command: Command, fact: Envelope) -> None:
    await publisher.publish_command(command)
    await publisher.publish(fact)

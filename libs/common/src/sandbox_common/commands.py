"""Intents on `sandbox-commands` (pause, resume, extend timeout), each with a deterministic id.

A command says what we want done to a sandbox; what actually happened comes back as a fact
on `sandbox-lifecycle` (see envelope.py). Keyed by sandbox id like the facts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import msgspec

from sandbox_common.payloads import Payload, Subject, Wire

SCHEMA_VERSION = 1


class CommandType(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    EXTEND_TIMEOUT = "extend_timeout"
    # Delete the sandbox at E2B (kill): a policy's deleteAfterPausedSeconds ran out.
    KILL = "kill"


class Command(msgspec.Struct, frozen=True, kw_only=True):
    command_id: str
    type: CommandType
    sandbox_id: str
    issued_at: datetime
    project_id: str | None = None
    # For a pause: the last activity the enforcer judged idle; newer activity cancels it.
    judged_last_active_at: datetime | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION


class CommandData(Payload, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[CommandType]


class PauseOrder(CommandData, frozen=True, kw_only=True, omit_defaults=True):
    """Why: idle (the enforcer's judgement) or an operator's request (status-api)."""

    TYPE = CommandType.PAUSE
    source: str | None = None
    idle_seconds: int | None = None
    reason: str
    operator: str | None = None


class KillOrder(CommandData, frozen=True, kw_only=True, omit_defaults=True):
    """Why: a project policy's delete after so long paused (`deleteAfterPaused`)."""

    TYPE = CommandType.KILL
    reason: str
    paused_since: datetime | None = None


class ResumeOrder(CommandData, frozen=True, kw_only=True, omit_defaults=True):
    TYPE = CommandType.RESUME
    source: str


class ExtendTimeoutOrder(CommandData, frozen=True, kw_only=True, omit_defaults=True):
    """Keep-alive: E2B's end moves to now + timeout_seconds."""

    TYPE = CommandType.EXTEND_TIMEOUT
    timeout_seconds: int


def new_command(
    payload: CommandData,
    subject: Subject,
    *,
    command_id: str,
    issued_at: datetime,
    judged_last_active_at: datetime | None = None,
) -> Command:
    return Command(
        command_id=command_id,
        type=payload.TYPE,
        sandbox_id=subject.sandbox_id,
        issued_at=issued_at,
        project_id=subject.project_id,
        judged_last_active_at=judged_last_active_at,
        data=payload.to_data(),
    )


def extend_timeout_seconds(command: Command, default: int) -> int:
    """The timeout an extend-timeout command asks for (ExtendTimeoutOrder)."""
    return int(command.data.get("timeout_seconds", default))


class CommandError(ValueError):
    """A record on sandbox-commands that is not a readable command (dead-lettered)."""


_wire = Wire(Command, CommandError, "not a sandbox command")
encode = _wire.encode


def decode(payload: bytes) -> Command:
    command = _wire.decode(payload)
    if command.schema_version > SCHEMA_VERSION:
        raise CommandError(f"command schema_version {command.schema_version} is too new")
    return command

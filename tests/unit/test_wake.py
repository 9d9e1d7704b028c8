"""Waking a sandbox: a resume command first, then STARTING; an awake sandbox is left alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sandbox_common.commands import Command, CommandType
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.readmodel import Status, StatusDoc
from status_api.actions import request_pause, request_wake
from tests.unit.test_projection_rules import T0


def doc(status: Status) -> StatusDoc:
    return StatusDoc(
        sandbox_id="sbx-1", project_id="p1", status=status, last_active_at=T0, status_changed_at=T0
    )


@dataclass
class Sent:
    order: list[Command | Envelope] = field(default_factory=list)

    async def publish(self, envelope: Envelope) -> None:
        self.order.append(envelope)

    async def publish_command(self, command: Command) -> None:
        self.order.append(command)


@pytest.mark.parametrize("status", [Status.PAUSED, Status.PAUSING])
async def test_a_paused_sandbox_gets_a_resume_command_then_shows_starting(status: Status) -> None:
    sent = Sent()
    assert await request_wake(doc(status), Source.UI, sent) is Status.STARTING
    command, fact = sent.order
    assert isinstance(command, Command)
    assert isinstance(fact, Envelope)
    assert command.type is CommandType.RESUME
    assert command.sandbox_id == "sbx-1"
    assert fact.type == FactType.WAKE_REQUESTED
    assert fact.data["command_id"] == command.command_id


@pytest.mark.parametrize("status", [Status.RUNNING, Status.STARTING])
async def test_an_awake_sandbox_is_left_alone(status: Status) -> None:
    sent = Sent()
    assert await request_wake(doc(status), Source.API, sent) is status
    assert sent.order == []


async def test_an_operator_pause_is_judged_against_the_activity_seen_now() -> None:
    sent = Sent()
    assert await request_pause(doc(Status.RUNNING), "ops", sent) is Status.PAUSING
    command, fact = sent.order
    assert isinstance(command, Command)
    assert isinstance(fact, Envelope)
    assert command.type is CommandType.PAUSE
    assert command.judged_last_active_at == T0
    assert fact.type == FactType.PAUSE_REQUESTED
    assert fact.data["reason"] == "operator"
    assert fact.event_id == f"{command.command_id}:requested"


@pytest.mark.parametrize("status", [Status.PAUSED, Status.PAUSING, Status.STARTING])
async def test_only_a_running_sandbox_is_paused_by_an_operator(status: Status) -> None:
    sent = Sent()
    assert await request_pause(doc(status), "ops", sent) is status
    assert sent.order == []

"""Facts and commands are built one way (typed payloads -> `data`), and the records they make
are the records the system always wrote: same keys, same values, same time format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from enforcer.actuator import facts as actuator_facts
from enforcer.domain.idle import PauseCommand
from enforcer.ticker.repair import repair_fact
from enforcer.ticker.tick import pause_messages
from sandbox_common import envelope as env
from sandbox_common.commands import Command, CommandType, ExtendTimeoutOrder, new_command
from sandbox_common.envelope import FactType, Source
from sandbox_common.facts import Lifecycle, Origin, PauseRequested, new_fact, state_view
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import Status, StatusDoc

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
JUDGED = NOW - timedelta(minutes=4)


def test_the_enforcers_pause_request_keeps_its_shape() -> None:
    command = PauseCommand("pause:s:1", "s", "p", JUDGED, JUDGED + timedelta(minutes=3), 240)
    order, fact = pause_messages(command, NOW)
    assert (order.type, order.data) == (
        CommandType.PAUSE,
        {"idle_seconds": 240, "reason": "idle"},
    )
    assert order.judged_last_active_at == JUDGED
    assert (fact.type, fact.source, fact.event_id) == (
        FactType.PAUSE_REQUESTED,
        Source.ENFORCER,
        "pause:s:1:requested",
    )
    assert fact.data == {
        "command_id": "pause:s:1",
        "reason": "idle",
        "idle_seconds": 240,
        "idle_since": JUDGED.isoformat(),
        "deadline": (JUDGED + timedelta(minutes=3)).isoformat(),
    }
    assert fact.occurred_at == fact.received_at == NOW


def test_the_actuators_facts_keep_their_shape() -> None:
    command = Command(command_id="c", type=CommandType.PAUSE, sandbox_id="s", issued_at=NOW)
    assert actuator_facts.paused(command, NOW, 204).data == {
        "reason": "idle",
        "e2b_status": 204,
        "command_id": "c",
    }
    assert actuator_facts.killed(command, NOW, 404).data == {
        "kill_reason": "not_found",
        "e2b_status": 404,
        "command_id": "c",
    }
    assert actuator_facts.cancelled(command, NOW, "activity").data == {
        "reason": "activity",
        "command_id": "c",
    }
    assert actuator_facts.timeout_set(command, NOW, NOW).data == {
        "reason": "keep_alive",
        "set_timeout": NOW.isoformat(),
        "command_id": "c",
    }


def test_a_repair_keeps_its_shape() -> None:
    since = NOW - timedelta(minutes=10)
    doc = StatusDoc(
        sandbox_id="s",
        project_id="p",
        status=Status.PAUSING,
        last_active_at=since,
        status_changed_at=since,
    )
    fact = repair_fact(doc, NOW, NOW - timedelta(minutes=5))
    assert fact is not None
    assert fact.type is FactType.PAUSE_CANCELLED
    assert fact.data == {"reason": "stuck", "stuck_since": since.isoformat(), "status": "PAUSING"}


def test_a_payload_belongs_to_its_fact_types_only() -> None:
    with pytest.raises(TypeError, match="PauseRequested"):
        new_fact(
            FactType.PAUSED,
            PauseRequested(command_id="c", reason="idle"),
            Subject("s"),
            Origin("e", Source.ENFORCER, NOW),
        )


def test_a_command_payload_names_its_type() -> None:
    command = new_command(
        ExtendTimeoutOrder(timeout_seconds=600), Subject("s"), command_id="x", issued_at=NOW
    )
    assert (command.type, command.data) == (CommandType.EXTEND_TIMEOUT, {"timeout_seconds": 600})


def test_an_unknown_fact_type_or_source_is_kept_not_refused() -> None:
    fact = new_fact(FactType.CREATED, Lifecycle(), Subject("s"), Origin("e", Source.ENFORCER, NOW))
    raw = env.encode(fact).replace(b"sandbox.lifecycle.created", b"sandbox.lifecycle.snapshotted")
    raw = raw.replace(b'"enforcer"', b'"a-newer-service"')
    read = env.decode(raw)
    assert read.type == "sandbox.lifecycle.snapshotted"
    assert isinstance(read.type, FactType)
    assert not read.type.known
    assert read.source == "a-newer-service"
    assert FactType.CREATED.known
    assert env.decode(env.encode(read)) == read


def test_the_state_view_reads_what_the_projection_needs_and_nothing_malformed() -> None:
    fact = new_fact(FactType.UPDATED, Lifecycle(), Subject("s"), Origin("e", Source.API, NOW))

    def view(**data: object) -> tuple[object, ...]:
        return tuple(state_view(msgspec.structs.replace(fact, data=data)))

    nothing = (None,) * 7
    assert view() == nothing
    assert view(
        set_timeout=NOW.isoformat(),
        metadata={"a": "b"},
        template_id="base",
        reason="idle",
        on_timeout="pause",
        auto_resume=True,
        busy_until=NOW.isoformat(),
    ) == (NOW, {"a": "b"}, "base", "idle", "pause", True, NOW)
    assert (
        view(
            set_timeout="soon",
            metadata="x",
            template_id=7,
            reason=1,
            on_timeout="explode",
            auto_resume="yes",
            busy_until="later",
        )
        == nothing
    )
    assert view(metadata={}) == nothing

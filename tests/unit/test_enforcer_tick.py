"""One tick with in-memory index, documents and publisher: who gets paused, and how."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from enforcer.ticker.tick import TickOptions, pause_messages, run_tick
from projector.domain import fold
from sandbox_common.commands import Command, CommandType
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.readmodel import DeadlineRule, Status, StatusDoc

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def running(sandbox_id: str, idle_for: int, idle_timeout: int = 180) -> StatusDoc:
    active = NOW - timedelta(seconds=idle_for)
    return StatusDoc(
        sandbox_id=sandbox_id,
        project_id=f"{sandbox_id}-p",
        status=Status.RUNNING,
        last_active_at=active,
        status_changed_at=active,
        idle_deadline_at=DeadlineRule(idle_timeout).deadline(active, {}),
    )


@dataclass
class Memory:
    docs: dict[str, StatusDoc]
    sent: list[tuple[Command, Envelope]] = field(default_factory=list)
    fail_for: set[str] = field(default_factory=set)
    commands: dict[str, Command] = field(default_factory=dict)
    asked_limit: int | None = None

    async def running_count(self) -> int:
        return sum(1 for d in self.docs.values() if d.idle_deadline_at is not None)

    async def due(self, now: datetime, limit: int) -> list[str]:
        self.asked_limit = limit
        due = sorted(
            (d.idle_deadline_at, sid)
            for sid, d in self.docs.items()
            if d.idle_deadline_at and d.idle_deadline_at <= now
        )
        return [sid for _, sid in due][:limit]

    async def by_id(self, ids: Sequence[str]) -> dict[str, StatusDoc]:
        return {i: self.docs[i] for i in ids if i in self.docs}

    async def publish_command(self, command: Command) -> None:
        if command.sandbox_id in self.fail_for:
            raise ConnectionError("kafka down")
        self.commands[command.sandbox_id] = command

    async def publish(self, fact: Envelope) -> None:
        # The command went out first, always.
        self.sent.append((self.commands.pop(fact.sandbox_id), fact))


async def test_only_sandboxes_past_their_deadline_are_paused() -> None:
    mem = Memory({"idle": running("idle", 200), "busy": running("busy", 30)})
    report = await run_tick(NOW, mem, mem, TickOptions(batch_size=100, dry_run=False))
    assert (report.running, report.checked, report.paused, report.errors) == (2, 1, 1, 0)
    ((command, fact),) = mem.sent
    assert command.type is CommandType.PAUSE
    assert command.sandbox_id == "idle"
    assert command.judged_last_active_at == NOW - timedelta(seconds=200)
    assert fact.type == FactType.PAUSE_REQUESTED
    assert fact.source == Source.ENFORCER
    assert fact.event_id == f"{command.command_id}:requested"
    assert fact.data["idle_seconds"] == 200


async def test_dry_run_counts_and_sends_nothing() -> None:
    mem = Memory({"idle": running("idle", 200)})
    report = await run_tick(NOW, mem, mem, TickOptions(batch_size=100, dry_run=True))
    assert (report.would_pause, report.paused) == (1, 0)
    assert mem.sent == []


async def test_a_failed_publish_is_counted_and_the_rest_still_go_out() -> None:
    mem = Memory({"a": running("a", 300), "b": running("b", 300)}, fail_for={"a"})
    report = await run_tick(NOW, mem, mem, TickOptions(batch_size=100, dry_run=False))
    assert (report.paused, report.errors) == (1, 1)
    assert [c.sandbox_id for c, _ in mem.sent] == ["b"]


async def test_work_per_tick_is_bounded_by_the_batch_size() -> None:
    mem = Memory({f"s{i}": running(f"s{i}", 200 + i) for i in range(10)})
    report = await run_tick(NOW, mem, mem, TickOptions(batch_size=3, dry_run=False))
    assert mem.asked_limit == 3
    assert report.paused == 3


async def test_two_tickers_judging_the_same_idleness_issue_the_same_command_id() -> None:
    mem = Memory({"idle": running("idle", 200)})
    await run_tick(NOW, mem, mem, TickOptions(batch_size=10, dry_run=False))
    await run_tick(NOW + timedelta(seconds=5), mem, mem, TickOptions(batch_size=10, dry_run=False))
    first, second = (c.command_id for c, _ in mem.sent)
    assert first == second


class Requested:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def already(self, command_ids: Sequence[str]) -> set[str]:
        return self.ids & set(command_ids)

    async def remember(self, command_id: str) -> None:
        self.ids.add(command_id)


async def test_the_same_idleness_is_not_requested_again_and_never_undoes_a_pause() -> None:
    # The projector lags (a crash, a database outage): the second tick still sees RUNNING and
    # judges the same idleness again, after the pause was carried out.
    mem, requested = Memory({"idle": running("idle", 200)}), Requested()
    first_tick = await run_tick(
        NOW, mem, mem, TickOptions(batch_size=100, dry_run=False), requested
    )
    later = NOW + timedelta(seconds=3)
    again = await run_tick(later, mem, mem, TickOptions(batch_size=100, dry_run=False), requested)
    ((first_cmd, first),) = mem.sent
    assert (again.checked, again.paused) == (1, 0)
    paused = Envelope(
        event_id="paused-1",
        type=FactType.PAUSED,
        source=Source.ENFORCER,
        sandbox_id="idle",
        project_id="idle-p",
        occurred_at=NOW + timedelta(seconds=1),
        received_at=NOW + timedelta(seconds=1),
        data={"command_id": first_cmd.command_id},
    )
    state = fold(None, [first, paused])
    assert state is not None
    assert state.status is Status.PAUSED
    # What the second tick would have published without the ledger: it undoes the pause.
    _, copy = pause_messages(first_tick.commands[0], later)
    undone = fold(None, [first, paused, copy])
    assert undone is not None
    assert undone.status is Status.PAUSING


async def test_the_found_line_counts_the_running_sandboxes_and_carries_the_due_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The seed's dashboards read X in "Found X running sandboxes to check" as the fleet running.
    mem = Memory(
        {"idle": running("idle", 200), "busy": running("busy", 30), "b2": running("b2", 5)}
    )
    with caplog.at_level(logging.INFO, logger="enforcer"):
        await run_tick(NOW, mem, mem, TickOptions(batch_size=100, dry_run=True))
    (found,) = [r for r in caplog.records if "running sandboxes to check" in r.getMessage()]
    assert found.getMessage() == "[Sandbox Idle Enforcer] Found 3 running sandboxes to check"
    assert (found.__dict__["running"], found.__dict__["due"]) == (3, 1)

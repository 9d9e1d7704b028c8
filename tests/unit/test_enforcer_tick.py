"""One tick with in-memory index, documents and publisher: who gets paused, and how."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from enforcer.domain.idle import PauseCommand, decide
from enforcer.ticker.tick import TickOptions, pause_messages, run_tick
from projector.domain import fold
from sandbox_common.commands import Command, CommandType
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.readmodel import DeadlineRule, PauseReason, Status, StatusDoc
from sandbox_common.readmodel.reader import DueMark, DuePlace

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
    pages: int = 0
    bulk_calls: int = 0

    async def running_count(self) -> int:
        return sum(1 for d in self.docs.values() if d.idle_deadline_at is not None)

    async def due_count(self, now: datetime) -> int:
        return len(self._due(now))

    async def due_page(
        self, now: datetime, limit: int, place: DuePlace | None = None
    ) -> tuple[list[DueMark], DuePlace | None]:
        """As one shard of the Redis index pages: by (deadline, id), after the place given.
        Documents stay until the test changes them (the projector has not folded the
        PAUSE_REQUESTED yet)."""
        self.asked_limit = limit
        self.pages += 1
        due = self._due(now)
        after = place.after if place is not None else None
        if after is not None:
            due = [
                m for m in due if (m.deadline, m.sandbox_id) > (after.deadline, after.sandbox_id)
            ]
        page = due[:limit]
        return page, DuePlace(0, page[-1]) if len(page) == limit else None

    def _due(self, now: datetime) -> list[DueMark]:
        return sorted(
            (
                DueMark(sid, d.idle_deadline_at.timestamp())
                for sid, d in self.docs.items()
                if d.idle_deadline_at and d.idle_deadline_at <= now
            ),
            key=lambda m: (m.deadline, m.sandbox_id),
        )

    async def by_id(self, ids: Sequence[str]) -> dict[str, StatusDoc]:
        return {i: self.docs[i] for i in ids if i in self.docs}

    async def publish_commands_all(self, issued: Sequence[Command]) -> list[BaseException | None]:
        self.bulk_calls += 1
        out: list[BaseException | None] = []
        for command in issued:
            if command.sandbox_id in self.fail_for:
                out.append(ConnectionError("kafka down"))
            else:
                self.commands[command.sandbox_id] = command
                out.append(None)
        return out

    async def publish_all(self, facts: Sequence[Envelope]) -> list[BaseException | None]:
        # The command went out first, always.
        self.sent.extend((self.commands.pop(f.sandbox_id), f) for f in facts)
        return [None] * len(facts)


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


async def test_a_tick_judges_every_due_sandbox_in_batches() -> None:
    """Issue 16: 2,500 due with batches of 1,000 are all asked for in one tick (the tick used to
    judge one batch and leave the rest for the next tick, silently)."""
    mem = Memory({f"s{i}": running(f"s{i}", 200 + i % 50) for i in range(2500)})
    mem.docs["busy"] = running("busy", 30)
    report = await run_tick(NOW, mem, mem, TickOptions(batch_size=1000, dry_run=False))
    assert (report.checked, report.paused, report.batches) == (2500, 2500, 3)
    assert mem.asked_limit == 1000
    assert len({c.sandbox_id for c, _ in mem.sent}) == 2500
    assert mem.bulk_calls == 3  # one bulk publish per batch, not one awaited send per command


async def test_due_sandboxes_that_cannot_be_acted_on_do_not_make_an_endless_tick() -> None:
    """Already requested: they stay in the index (the projector has not folded the request yet)
    and the tick pages past them instead of reading them again and again."""
    mem, requested = Memory({f"s{i}": running(f"s{i}", 300) for i in range(7)}), Requested()
    requested.ids = {c.command_id for c in (_decide(d) for d in mem.docs.values())}
    report = await run_tick(NOW, mem, mem, TickOptions(batch_size=2, dry_run=False), requested)
    assert (report.checked, report.paused, mem.pages) == (7, 0, 4)


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

    async def remember_all(self, command_ids: Sequence[str]) -> None:
        self.ids |= set(command_ids)


def _decide(doc: StatusDoc) -> PauseCommand:
    command = decide(doc, NOW)
    assert command is not None
    return command


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


def test_a_policys_forced_pause_is_requested_and_explained_with_its_reason() -> None:
    """The history says why: the pause-requested fact and the command carry the policy's
    reason, which the actuator reads to not let activity cancel it."""
    doc = msgspec.structs.replace(running("forced", 10), pause_reason=PauseReason.QUIET_HOURS)
    doc = msgspec.structs.replace(doc, idle_deadline_at=NOW - timedelta(seconds=1))
    command = _decide(doc)
    assert command.reason is PauseReason.QUIET_HOURS
    order, fact = pause_messages(command, NOW)
    assert order.data["reason"] == "quietHours"
    assert (fact.type, fact.data["reason"]) == (FactType.PAUSE_REQUESTED, "quietHours")
    # An idle one stays "idle", as the seed's dashboards expect.
    assert pause_messages(_decide(running("idle", 200)), NOW)[1].data["reason"] == "idle"

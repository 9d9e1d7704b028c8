"""A project policy's delete of paused sandboxes (issue 17, item 3), without a broker: the
document's delete time, the ticker's kill requests (each once, explained), and the index the
writers keep it in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from enforcer.domain.deletes import decide_delete
from enforcer.ticker.deletes import request_deletes
from projector.domain import SandboxState, Stamp
from sandbox_common.commands import Command, CommandType
from sandbox_common.envelope import Envelope, FactType
from sandbox_common.policies import Policy, PolicyBook
from sandbox_common.readmodel import DeadlineRule, Status, StatusDoc, keys, to_doc
from sandbox_common.readmodel.writer import script_calls

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAY = 86_400
BOOK = PolicyBook(None, {"p1": Policy(delete_after_paused_seconds=DAY)})


def paused(sid: str, since: datetime, project: str = "p1") -> StatusDoc:
    state = SandboxState(
        sid,
        Status.PAUSED,
        last_active_at=since,
        project_id=project,
        stamps={"status": Stamp(since, 0, "e")},
    )
    doc = to_doc(state, 1, T0, DeadlineRule(180), BOOK)
    assert doc is not None
    return doc


def test_a_paused_sandbox_of_a_deleting_project_shows_when_it_goes() -> None:
    assert paused("a", T0).delete_at == T0 + timedelta(days=1)
    assert paused("b", T0, "p2").delete_at is None
    running = SandboxState("c", Status.RUNNING, last_active_at=T0, project_id="p1")
    doc = to_doc(running, 1, T0, DeadlineRule(180), BOOK)
    assert doc is not None
    assert doc.delete_at is None


def test_the_delete_index_is_written_with_the_document() -> None:
    doc = paused("a", T0)
    ((call_keys, argv),) = script_calls(keys.Layout(), [doc], 3600, 1000)
    assert call_keys[4] == keys.Layout().deletes(keys.Layout().shard("a"))
    assert f"{(T0 + timedelta(days=1)).timestamp():.3f}".encode() in argv[0]


def test_a_delete_is_decided_once_its_time_has_come() -> None:
    doc = paused("a", T0)
    assert decide_delete(doc, T0 + timedelta(hours=23)) is None
    command = decide_delete(doc, T0 + timedelta(days=1))
    assert command is not None
    assert command.command_id == f"delete:a:{T0.isoformat()}"


@dataclass
class Fleet:
    docs: dict[str, StatusDoc]
    commands: list[Command] = field(default_factory=list)
    facts: list[Envelope] = field(default_factory=list)
    remembered: set[str] = field(default_factory=set)

    async def due_deletes(self, now: datetime, limit: int) -> list[str]:
        return sorted(
            sid for sid, d in self.docs.items() if d.delete_at is not None and d.delete_at <= now
        )[:limit]

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        return {s: self.docs[s] for s in sandbox_ids if s in self.docs}

    async def publish_commands_all(self, issued: Sequence[Command]) -> list[BaseException | None]:
        self.commands.extend(issued)
        return [None] * len(issued)

    async def publish_all(self, facts: Sequence[Envelope]) -> list[BaseException | None]:
        self.facts.extend(facts)
        return [None] * len(facts)

    async def already(self, command_ids: Sequence[str]) -> set[str]:
        return self.remembered & set(command_ids)

    async def remember_all(self, command_ids: Sequence[str]) -> None:
        self.remembered |= set(command_ids)


async def test_a_tick_asks_for_each_due_delete_once_with_its_reason_in_the_history() -> None:
    fleet = Fleet({"a": paused("a", T0), "b": paused("b", T0 + timedelta(hours=5))})
    later = T0 + timedelta(days=1, hours=1)
    assert await request_deletes(later, fleet, fleet, fleet, 100) == 1
    (command,) = fleet.commands
    assert (command.type, command.sandbox_id) == (CommandType.KILL, "a")
    assert command.data == {"reason": "deleteAfterPaused", "paused_since": T0.isoformat()}
    (fact,) = fleet.facts
    assert (fact.type, fact.data["reason"]) == (FactType.DELETE_REQUESTED, "deleteAfterPaused")
    # The next tick, before the kill lands: not asked again.
    assert await request_deletes(later + timedelta(seconds=1), fleet, fleet, fleet, 100) == 0
    assert len(fleet.commands) == 1

"""Heartbeats: throttled into activity facts that move the last activity, never the status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from projector.domain import fold
from sandbox_common.commands import Command, CommandType
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.kafka_publisher import BrokerUnavailableError
from sandbox_common.readmodel import DeadlineRule, Status, StatusDoc, to_doc
from status_api.activity import Heartbeat, needs_more_e2b_time, record_activity
from tests.unit.test_projection_rules import T0, fact

# E2B's own end is far ahead: no keep-alive needed unless a test says otherwise.
DOC = StatusDoc(
    sandbox_id="sbx-1",
    project_id="p1",
    status=Status.RUNNING,
    last_active_at=T0,
    status_changed_at=T0,
    team_id="team-1",
    timeout_at=datetime.now(UTC) + timedelta(hours=1),
)


@dataclass
class Memory:
    taken: set[str] = field(default_factory=set)
    published: list[Envelope] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    down: bool = False

    async def first_in_window(self, sandbox_id: str) -> bool:
        if sandbox_id in self.taken:
            return False
        self.taken.add(sandbox_id)
        return True

    async def forget(self, sandbox_id: str) -> None:
        self.taken.discard(sandbox_id)

    async def publish(self, envelope: Envelope) -> None:
        if self.down:
            raise BrokerUnavailableError("down")
        self.published.append(envelope)

    async def publish_command(self, command: Command) -> None:
        self.commands.append(command)


async def test_a_flood_of_heartbeats_becomes_one_fact_per_window() -> None:
    mem = Memory()
    results = [await record_activity(DOC, Heartbeat(Source.UI), mem, mem) for _ in range(50)]
    assert [r.recorded for r in results].count(True) == 1
    (published,) = mem.published
    assert published.type == FactType.ACTIVITY
    assert published.source == Source.UI
    assert (published.sandbox_id, published.project_id) == ("sbx-1", "p1")


async def test_a_heartbeat_that_was_not_recorded_does_not_throttle_the_next() -> None:
    mem = Memory(down=True)
    with pytest.raises(BrokerUnavailableError):
        await record_activity(DOC, Heartbeat(Source.API), mem, mem)
    mem.down = False
    assert (await record_activity(DOC, Heartbeat(Source.API), mem, mem)).recorded


def test_activity_moves_last_activity_but_not_the_status() -> None:
    later = T0 + timedelta(seconds=100)
    activity = Envelope(
        event_id="a1",
        type=FactType.ACTIVITY,
        source=Source.UI,
        sandbox_id="sbx-1",
        project_id="p1",
        occurred_at=later,
        received_at=datetime.now(UTC),
    )
    paused = fold(None, [fact(FactType.CREATED, 0), fact(FactType.PAUSED, 50), activity])
    assert paused is not None
    assert paused.status is Status.PAUSED
    assert paused.last_active_at == later
    pausing = fold(None, [fact(FactType.CREATED, 0), fact(FactType.PAUSE_REQUESTED, 50), activity])
    assert pausing is not None
    assert pausing.status is Status.PAUSING  # the actuator's re-check turns this into a cancel


async def test_e2b_timeout_is_pushed_out_when_it_gets_close_and_only_then() -> None:
    keep_alive = timedelta(minutes=10)
    near = msgspec.structs.replace(DOC, timeout_at=datetime.now(UTC) + timedelta(minutes=2))
    mem = Memory()
    result = await record_activity(near, Heartbeat(Source.UI), mem, mem, keep_alive)
    assert (result.recorded, result.extended) == (True, True)
    (command,) = mem.commands
    assert command.type is CommandType.EXTEND_TIMEOUT
    assert command.data == {"timeout_seconds": 600}
    far = Memory()
    assert not (await record_activity(DOC, Heartbeat(Source.UI), far, far, keep_alive)).extended
    assert far.commands == []
    paused = msgspec.structs.replace(near, status=Status.PAUSED)
    assert not needs_more_e2b_time(paused, datetime.now(UTC), keep_alive)
    unknown = msgspec.structs.replace(DOC, timeout_at=None)
    assert needs_more_e2b_time(unknown, datetime.now(UTC), keep_alive)
    # E2B's end already is the run's hard end: no refresh can move it, so none is asked for.
    at_hard_end = msgspec.structs.replace(near, max_lifetime_at=near.timeout_at)
    assert not needs_more_e2b_time(at_hard_end, datetime.now(UTC), keep_alive)


async def test_an_agents_busy_heartbeat_is_never_throttled_away_and_keeps_e2b_up_for_it() -> None:
    mem = Memory()
    now = datetime.now(UTC)
    until = now + timedelta(minutes=40)
    beats = [Heartbeat(Source.UI), Heartbeat(Source.AGENT, until), Heartbeat(Source.AGENT, until)]
    results = [await record_activity(DOC, beat, mem, mem) for beat in beats]
    assert [r.recorded for r in results] == [True, True, True]
    assert [(f.source, f.data.get("busy_until")) for f in mem.published] == [
        (Source.UI, None),
        (Source.AGENT, until.isoformat()),
        (Source.AGENT, until.isoformat()),
    ]
    # E2B's own end (an hour ahead) is far enough for the heartbeat and the task alike.
    assert mem.commands == []
    # Twenty minutes ahead is far enough for 10 minutes of keep-alive, not for the task's 40:
    # a refresh as long as the task (E2B takes at most an hour per refresh).
    near = msgspec.structs.replace(DOC, timeout_at=now + timedelta(minutes=20))
    await record_activity(near, Heartbeat(Source.AGENT, until), mem, mem)
    (command,) = mem.commands
    assert command.data["timeout_seconds"] >= 40 * 60 - 2
    assert Heartbeat(Source.AGENT, now + timedelta(hours=5)).keep_alive(
        now, timedelta(minutes=10)
    ) == timedelta(hours=1)


def test_busy_until_holds_the_idle_deadline_until_the_latest_heartbeat_says_otherwise() -> None:
    def beat(at: int, until: datetime | None) -> Envelope:
        return Envelope(
            event_id=f"b{at}",
            type=FactType.ACTIVITY,
            source=Source.AGENT,
            sandbox_id="sbx-1",
            project_id="p1",
            occurred_at=T0 + timedelta(seconds=at),
            received_at=datetime.now(UTC),
            data={"busy_until": until.isoformat()} if until else {},
        )

    rule = DeadlineRule(180)
    hold = T0 + timedelta(hours=2)
    state = fold(None, [fact(FactType.CREATED, 0), beat(10, hold)])
    assert state is not None
    doc = to_doc(state, 1, T0, rule)
    assert doc is not None
    assert (doc.idle_deadline_at, doc.busy_until) == (hold, hold)
    # A heartbeat without busyUntil (a browser's) leaves the hold; the agent's release ends it.
    state = fold(state, [beat(20, None)])
    assert state is not None
    assert state.busy_until == hold
    released = fold(state, [beat(30, T0 + timedelta(seconds=30))])
    assert released is not None
    doc = to_doc(released, 2, T0, rule)
    assert doc is not None
    assert doc.idle_deadline_at == T0 + timedelta(seconds=30 + 180)
    # An old heartbeat delivered late does not put the hold back.
    late = fold(released, [beat(15, hold)])
    assert late is not None
    assert late.busy_until == T0 + timedelta(seconds=30)

"""Heartbeats: throttled into activity facts that move the last activity, never the status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from projector.domain import fold
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.kafka_publisher import BrokerUnavailableError
from sandbox_common.readmodel import Status, StatusDoc
from status_api.activity import record_activity
from tests.unit.test_projection_rules import T0, fact

DOC = StatusDoc(
    sandbox_id="sbx-1",
    project_id="p1",
    status=Status.RUNNING,
    last_active_at=T0,
    status_changed_at=T0,
    team_id="team-1",
)


@dataclass
class Memory:
    taken: set[str] = field(default_factory=set)
    published: list[Envelope] = field(default_factory=list)
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


async def test_a_flood_of_heartbeats_becomes_one_fact_per_window() -> None:
    mem = Memory()
    results = [await record_activity(DOC, Source.UI, mem, mem) for _ in range(50)]
    assert [r.recorded for r in results].count(True) == 1
    (published,) = mem.published
    assert published.type == FactType.ACTIVITY
    assert published.source == Source.UI
    assert (published.sandbox_id, published.project_id) == ("sbx-1", "p1")


async def test_a_heartbeat_that_was_not_recorded_does_not_throttle_the_next() -> None:
    mem = Memory(down=True)
    with pytest.raises(BrokerUnavailableError):
        await record_activity(DOC, Source.API, mem, mem)
    mem.down = False
    assert (await record_activity(DOC, Source.API, mem, mem)).recorded


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

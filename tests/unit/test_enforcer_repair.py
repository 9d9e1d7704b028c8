"""Repair of sandboxes stuck in PAUSING or STARTING: pure decision and the use case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from enforcer.ticker.repair import repair_fact, repair_stuck
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.readmodel import Status, StatusDoc

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(minutes=5)


def doc(status: Status, since: datetime, sandbox_id: str = "sbx-1") -> StatusDoc:
    return StatusDoc(
        sandbox_id=sandbox_id,
        project_id="p1",
        status=status,
        last_active_at=since - timedelta(minutes=3),
        status_changed_at=since,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(Status.PAUSING, FactType.PAUSE_CANCELLED), (Status.STARTING, FactType.WAKE_FAILED)],
)
def test_a_sandbox_stuck_past_the_cutoff_is_put_back(status: Status, expected: FactType) -> None:
    fact = repair_fact(doc(status, CUTOFF - timedelta(seconds=1)), NOW, CUTOFF)
    assert fact is not None
    assert (fact.type, fact.source, fact.data["reason"]) == (expected, Source.ENFORCER, "stuck")


@pytest.mark.parametrize(
    "stuck",
    [
        doc(Status.PAUSING, CUTOFF + timedelta(seconds=1)),
        doc(Status.RUNNING, CUTOFF - timedelta(1)),
        doc(Status.PAUSED, CUTOFF - timedelta(hours=1)),
    ],
    ids=["not-long-enough", "running", "paused"],
)
def test_others_are_left_alone(stuck: StatusDoc) -> None:
    assert repair_fact(stuck, NOW, CUTOFF) is None


def test_the_same_stay_always_gives_the_same_repair_event_id() -> None:
    stuck = doc(Status.PAUSING, CUTOFF - timedelta(minutes=1))
    first, second = repair_fact(stuck, NOW, CUTOFF), repair_fact(stuck, NOW + timedelta(1), CUTOFF)
    assert first is not None
    assert second is not None
    assert first.event_id == second.event_id


@dataclass
class Memory:
    docs: dict[str, StatusDoc]
    published: list[Envelope] = field(default_factory=list)

    async def entered_before(self, cutoff: datetime, limit: int) -> list[str]:
        return [
            sid
            for sid, d in self.docs.items()
            if d.status_changed_at and d.status_changed_at <= cutoff
        ][:limit]

    async def by_id(self, ids: Sequence[str]) -> dict[str, StatusDoc]:
        return {i: self.docs[i] for i in ids}

    async def publish(self, fact: Envelope) -> None:
        self.published.append(fact)


async def test_repair_publishes_one_fact_per_stuck_sandbox() -> None:
    mem = Memory(
        {
            "a": doc(Status.PAUSING, CUTOFF - timedelta(minutes=1), "a"),
            "b": doc(Status.STARTING, CUTOFF - timedelta(minutes=2), "b"),
            "c": doc(Status.PAUSING, NOW - timedelta(seconds=5), "c"),
        }
    )
    repaired = await repair_stuck(NOW, mem, mem, stuck_after=timedelta(minutes=5), batch_size=100)
    assert repaired == 2
    assert sorted(f.sandbox_id for f in mem.published) == ["a", "b"]

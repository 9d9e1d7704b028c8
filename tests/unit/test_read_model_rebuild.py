"""The projector puts the read model back when Redis comes back empty, and only then."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

from projector.domain import SandboxState
from projector.handlers import Projected
from projector.rebuild import rebuild_if_lost
from sandbox_common.readmodel import Status

TTL = timedelta(days=7)


class FakeStates:
    def __init__(self, count: int) -> None:
        self.rows = [
            Projected(SandboxState(f"sbx-{i}", status=Status.RUNNING), i + 1) for i in range(count)
        ]
        self.killed_since: datetime | None = None

    async def all_states(
        self, chunk: int, killed_since: datetime
    ) -> AsyncIterator[list[Projected]]:
        self.killed_since = killed_since
        for i in range(0, len(self.rows), chunk):
            yield self.rows[i : i + chunk]


class FakeReadModel:
    def __init__(self) -> None:
        self.published: list[Projected] = []

    async def publish(self, projected: Sequence[Projected]) -> None:
        self.published.extend(projected)


class FakeMark:
    def __init__(self, value: str | None) -> None:
        self.value = value
        self.wipe_during_rebuild = False

    async def complete(self) -> bool:
        return self.value == "complete"

    async def begin_rebuild(self) -> str:
        self.value = "rebuilding:t1"
        if self.wipe_during_rebuild:
            self.value = None
        return "rebuilding:t1"

    async def finish_rebuild(self, token: str) -> bool:
        if self.value != token:
            return False
        self.value = "complete"
        return True


async def test_a_complete_read_model_is_left_alone() -> None:
    states, read_model, mark = FakeStates(3), FakeReadModel(), FakeMark("complete")
    assert await rebuild_if_lost(states, read_model, mark, TTL) is None
    assert read_model.published == []


async def test_an_emptied_redis_gets_every_sandbox_back_then_the_mark() -> None:
    states, read_model, mark = FakeStates(1201), FakeReadModel(), FakeMark(None)
    assert await rebuild_if_lost(states, read_model, mark, TTL, chunk=500) == 1201
    assert read_model.published == states.rows
    assert mark.value == "complete"
    assert states.killed_since is not None
    assert abs((datetime.now(UTC) - TTL - states.killed_since).total_seconds()) < 5


async def test_redis_emptied_again_mid_rebuild_leaves_the_mark_unset() -> None:
    states, read_model, mark = FakeStates(10), FakeReadModel(), FakeMark(None)
    mark.wipe_during_rebuild = True
    assert await rebuild_if_lost(states, read_model, mark, TTL) == 10
    assert mark.value is None  # the next check rebuilds again

"""The pipeline with in-memory stores: a batch is folded while the one before it is written, and
stored in PostgreSQL while the one before it goes to Redis; offsets are committed batch by batch,
and a failed write is retried or sought back, never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from projector.domain import SandboxState
from projector.handlers import PolicyChange, Positioned, Projected, project_batch
from projector.pipeline import Pipeline
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import FactType
from sandbox_common.readmodel import Status
from tests.unit.test_projection_rules import fact
from tests.unit.test_projector_batches import (
    MemoryDeadLetters,
    MemoryReadModel,
    MemoryStore,
    records,
    to,
)


@dataclass
class GuardedStore(MemoryStore):
    """MemoryStore with the revision guard and a reader, failing its next `fail_saves` saves."""

    fail_saves: int = 0
    saves: int = 0

    async def states(self, ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]:
        return await self.load(ids)

    async def save(
        self,
        changed: Sequence[Projected],
        facts: Sequence[Positioned],
        offsets: Sequence[tuple[str, int, int]],
        policies: Sequence[PolicyChange] = (),
    ) -> frozenset[str]:
        self.saves += 1
        if self.fail_saves > 0:
            self.fail_saves -= 1
            raise ConnectionError("postgres down")
        for p in changed:
            held = self.rows.get(p.state.sandbox_id)
            if (held[1] if held else 0) != p.revision - 1:
                raise RuntimeError("revision guard")
        return await super().save(changed, facts, offsets, policies)


@dataclass
class MemoryOffsets:
    committed: list[int] = field(default_factory=list)  # last offset + 1 of each commit
    sought: list[dict[tuple[str, int], int]] = field(default_factory=list)

    async def commit(self, records: Sequence[Record]) -> None:
        self.committed.append(max(r.offset for r in records) + 1)

    def seek(self, positions: Mapping[tuple[str, int], int]) -> None:
        self.sought.append(dict(positions))


@dataclass
class GatedReadModel(MemoryReadModel):
    """Holds each publish until `gate` is set; fails the next `fail` publishes."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail: int = 0
    published: list[list[str]] = field(default_factory=list)

    async def publish(self, projected: Sequence[Projected]) -> None:
        await self.gate.wait()
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("redis down")
        self.published.append(sorted(p.state.sandbox_id for p in projected))
        await super().publish(projected)


def batches(*sizes: int) -> list[list[Record]]:
    kinds = [FactType.CREATED, FactType.PAUSED, FactType.RESUMED, FactType.PAUSED]
    flat = records(*(fact(kinds[i % 4], i) for i in range(sum(sizes))))
    out, start = [], 0
    for size in sizes:
        out.append(flat[start : start + size])
        start += size
    return out


LIFECYCLE_0 = ("sandbox-lifecycle", 0)


@dataclass
class Retry:
    """The batch-at-a-time path, without backoff."""

    store: GuardedStore
    rm: MemoryReadModel
    attempts: int

    async def project(self, recs: Sequence[Record]) -> None:
        for attempt in range(self.attempts):
            try:
                await project_batch(recs, to(self.store, self.rm, MemoryDeadLetters()))
                return
            except ConnectionError:
                if attempt == self.attempts - 1:
                    raise


def pipeline(store: GuardedStore, rm: MemoryReadModel, attempts: int = 1) -> Pipeline:
    return Pipeline(store, to(store, rm, MemoryDeadLetters()), Retry(store, rm, attempts))


async def test_batches_are_written_in_order_and_committed_one_by_one() -> None:
    store, rm, offsets = GuardedStore(), MemoryReadModel(), MemoryOffsets()
    pipe = pipeline(store, rm)
    for batch in batches(2, 3, 1):
        await pipe.submit(batch, offsets)
    await pipe.drain()
    assert offsets.committed == [2, 5, 6]
    assert store.rows["sbx-1"] == (rm.docs["sbx-1"][0], 3)  # one revision per batch
    assert rm.docs["sbx-1"][0].status is Status.PAUSED
    assert len(store.history) == 6


async def test_a_failed_write_is_retried_and_the_next_batch_folded_again() -> None:
    store, rm, offsets = GuardedStore(fail_saves=1), MemoryReadModel(), MemoryOffsets()
    pipe = pipeline(store, rm, attempts=2)
    first, second = batches(2, 2)
    await pipe.submit(first, offsets)
    await pipe.submit(second, offsets)
    await pipe.drain()
    assert offsets.committed == [2, 4]
    assert offsets.sought == []
    assert store.rows["sbx-1"][1] == 2
    assert len(store.history) == 4


async def test_a_write_that_keeps_failing_seeks_back_it_and_the_batch_fetched_after_it() -> None:
    store, rm, offsets = GuardedStore(fail_saves=10), MemoryReadModel(), MemoryOffsets()
    pipe = pipeline(store, rm, attempts=2)
    first, second = batches(2, 2)
    await pipe.submit(first, offsets)
    await pipe.submit(second, offsets)
    assert offsets.committed == []
    # The second batch was fetched before the seek (its records start past it): sought back to
    # the first batch's records again, not to its own.
    assert offsets.sought == [{LIFECYCLE_0: 0}, {LIFECYCLE_0: 0}]
    assert store.rows == {}
    # Redelivered once the stores answer again: written as if nothing happened.
    store.fail_saves = 0
    await pipe.submit(first, offsets)
    await pipe.submit(second, offsets)
    await pipe.drain()
    assert offsets.committed == [2, 4]
    assert store.rows["sbx-1"][1] == 2


async def test_reading_states_failing_falls_back_to_the_batch_at_a_time_path() -> None:
    store, rm, offsets = GuardedStore(), MemoryReadModel(), MemoryOffsets()

    async def broken(ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]:
        raise ConnectionError("postgres down")

    pipe = pipeline(store, rm)
    store.states = broken  # type: ignore[method-assign]
    await pipe.submit(batches(2)[0], offsets)
    assert offsets.committed == [2]
    assert store.rows["sbx-1"][1] == 1


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (4,)])
async def test_pipelined_and_whole_batches_end_in_the_same_state(sizes: tuple[int, ...]) -> None:
    store, rm, offsets = GuardedStore(), MemoryReadModel(), MemoryOffsets()
    pipe = pipeline(store, rm)
    for batch in batches(*sizes):
        await pipe.submit(batch, offsets)
    await pipe.drain()
    whole = GuardedStore()
    await project_batch(batches(4)[0], to(whole, MemoryReadModel(), MemoryDeadLetters()))
    assert store.rows["sbx-1"][0] == whole.rows["sbx-1"][0]


async def test_the_next_batch_is_stored_while_the_one_before_goes_to_redis() -> None:
    store, rm, offsets = GuardedStore(), GatedReadModel(), MemoryOffsets()
    pipe = pipeline(store, rm)
    first, second = batches(2, 2)
    await pipe.submit(first, offsets)
    await pipe.submit(second, offsets)
    await asyncio.sleep(0)
    assert store.saves == 2  # both in PostgreSQL, neither in Redis yet
    assert offsets.committed == []
    rm.gate.set()
    await pipe.drain()
    assert offsets.committed == [2, 4]
    assert rm.docs["sbx-1"] == store.rows["sbx-1"]
    assert rm.docs["sbx-1"][1] == 2


async def test_redis_failing_under_a_stored_batch_redoes_it_before_the_next_is_published() -> None:
    store, rm, offsets = GuardedStore(), GatedReadModel(fail=1), MemoryOffsets()
    pipe = pipeline(store, rm)
    first, second = batches(2, 2)
    await pipe.submit(first, offsets)
    await pipe.submit(second, offsets)
    rm.gate.set()
    await pipe.drain()
    assert offsets.committed == [2, 4]
    assert offsets.sought == []
    # The redone first batch already finds the second one's state in PostgreSQL: Redis gets the
    # newest state either way, and never an older one after it.
    assert rm.docs["sbx-1"] == store.rows["sbx-1"]
    assert rm.docs["sbx-1"][0].status is Status.PAUSED


async def test_redis_failing_for_good_seeks_back_both_batches_then_their_redelivery_lands() -> None:
    store, rm, offsets = GuardedStore(), GatedReadModel(fail=10), MemoryOffsets()
    pipe = pipeline(store, rm, attempts=1)
    first, second = batches(2, 2)
    await pipe.submit(first, offsets)
    await pipe.submit(second, offsets)
    rm.gate.set()
    await pipe.drain()
    assert offsets.committed == []
    assert offsets.sought == [{LIFECYCLE_0: 0}, {LIFECYCLE_0: 0}]
    rm.fail = 0
    for batch in (first, second):
        await pipe.submit(batch, offsets)
    await pipe.drain()
    assert offsets.committed == [2, 4]
    assert rm.docs["sbx-1"] == store.rows["sbx-1"]


async def test_only_partitions_sought_back_refuse_batches_fetched_before_the_seek() -> None:
    store, rm, offsets = GuardedStore(), MemoryReadModel(), MemoryOffsets()
    pipe = pipeline(store, rm, attempts=1)
    a, b, c = batches(2, 2, 2)
    other = [Record("sandbox-lifecycle", 1, 40 + i, r.value) for i, r in enumerate(c)]
    store.fail_saves = 10
    await pipe.submit(a, offsets)  # partition 0 sought back to 0
    await pipe.drain()
    store.fail_saves = 0
    await pipe.submit(other, offsets)  # partition 1 only: written
    await pipe.submit(b, offsets)  # partition 0 past 0: fetched before the seek, refused
    await pipe.drain()
    assert offsets.committed == [42]
    assert offsets.sought == [{LIFECYCLE_0: 0}, {LIFECYCLE_0: 0}]
    await pipe.submit(a, offsets)  # from where partition 0 was sought to: written
    await pipe.submit(b, offsets)
    await pipe.drain()
    assert offsets.committed == [42, 2, 4]
    assert len(store.history) == 6
    assert rm.docs["sbx-1"] == store.rows["sbx-1"]

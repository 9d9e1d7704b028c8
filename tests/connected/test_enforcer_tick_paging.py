"""Issue 16, the tick's Redis side on a real Redis (one of the test's own): the due part of the
deadline index is paged by place, ties of equal deadlines included, so a tick judges every due
sandbox although none leaves the index meanwhile; the pause-request markers of a whole batch
are one sorted set, read and written in one command each, and forgotten after their time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from enforcer.ticker.tick import TickOptions, run_tick
from sandbox_common.commands import Command
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import Layout, Status, StatusDoc, encode_doc, keys
from sandbox_common.readmodel.coordination import RequestedPauses
from sandbox_common.readmodel.reader import DueMark, DuePlace, ReadModelReader
from tests.connected.own_redis import own_redis

pytestmark = pytest.mark.connected

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Counting:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.facts: list[Envelope] = []

    async def publish_commands_all(self, issued: Sequence[Command]) -> list[BaseException | None]:
        self.commands.extend(issued)
        return [None] * len(issued)

    async def publish_all(self, facts: Sequence[Envelope]) -> list[BaseException | None]:
        self.facts.extend(facts)
        return [None] * len(facts)


async def _seed(client: aioredis.Redis, layout: Layout, due: int, later: int) -> None:
    """`due` sandboxes past their deadline, in groups of 7 sharing one deadline (ties), and
    `later` not due yet."""
    async with client.pipeline(transaction=False) as pipe:
        for i in range(due + later):
            is_due = i < due
            step = timedelta(milliseconds=i // 7)
            active = NOW - timedelta(seconds=400) + step if is_due else NOW - timedelta(seconds=10)
            deadline = active + timedelta(seconds=180)
            sid = f"sbx-{i:05d}"
            pipe.zadd(layout.idle_deadlines(layout.shard(sid)), {sid: deadline.timestamp()})
            doc = StatusDoc(
                sandbox_id=sid,
                project_id="p",
                status=Status.RUNNING,
                last_active_at=active,
                status_changed_at=active,
                idle_deadline_at=deadline,
            )
            pipe.hset(layout.doc(sid), keys.DOC_FIELD, encode_doc(doc))
        await pipe.execute()


@pytest.mark.parametrize(
    ("shards", "page_size"),
    [(1, 10), (4, 300)],  # one shard, pages ending inside groups of equal deadlines; shards
)
async def test_a_tick_pages_through_every_due_sandbox_ties_included(
    shards: int, page_size: int
) -> None:
    layout = Layout(shards)
    async with own_redis() as url:
        client = aioredis.Redis.from_url(url)
        try:
            await _seed(client, layout, due=2_500, later=300)
            model = ReadModelReader(client, layout)
            pages: list[list[DueMark]] = []
            place: DuePlace | None = DuePlace()
            while place is not None:
                page, place = await model.due_page(NOW, page_size, place)
                pages.append(page)
            seen = [m.sandbox_id for page in pages for m in page]
            assert sorted(seen) == [f"sbx-{i:05d}" for i in range(2_500)]  # each once
            assert max(len(p) for p in pages) == page_size
            for shard in layout.all:  # oldest first within a shard, ties by id
                mine = [m for p in pages for m in p if layout.shard(m.sandbox_id) == shard]
                assert mine == sorted(mine, key=lambda m: (m.deadline, m.sandbox_id))
            publisher = Counting()
            report = await run_tick(NOW, model, publisher, TickOptions(batch_size=1_000))
            assert (report.checked, report.paused) == (2_500, 2_500)
            assert report.batches >= 3
            assert len({c.sandbox_id for c in publisher.commands}) == 2_500
        finally:
            await client.aclose()


async def test_pause_requests_are_remembered_for_a_while_in_one_sorted_set() -> None:
    async with own_redis() as url:
        client = aioredis.Redis.from_url(url)
        clock = [1_000_000.0]
        try:
            requested = RequestedPauses(client, ttl_seconds=300, clock=lambda: clock[0])
            await requested.remember_all([f"pause:{i}" for i in range(1_000)])
            assert await requested.already(["pause:3", "pause:999", "pause:x"]) == {
                "pause:3",
                "pause:999",
            }
            assert await client.zcard(keys.PAUSES_REQUESTED) == 1_000
            clock[0] += 301  # past their time: forgotten, and pruned by the next write
            assert await requested.already(["pause:3"]) == set()
            await requested.remember_all(["pause:new"])
            assert await client.zcard(keys.PAUSES_REQUESTED) == 1
        finally:
            await client.aclose()

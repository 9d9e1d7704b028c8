"""The sharded read model on a real Redis, one server or a Redis Cluster (REDIS_CLUSTER=true,
`make test REDIS_MODE=cluster`): every script and multi-key read runs (a cluster refuses one
that crosses slots), the writes spread over the cluster's masters, reads and the change feed
merge the shards, and a deployment upgrading from the unsharded layout is rebuilt from
PostgreSQL with the old keys dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from projector.domain import SandboxState
from projector.handlers import Projected
from projector.read_model_rebuild import rebuild_if_missing
from sandbox_common.policies import Placed
from sandbox_common.readmodel import DeadlineRule, Layout, Status, keys
from sandbox_common.readmodel.document import to_doc
from sandbox_common.readmodel.feed import ChangeFeed, Warning, entry_position
from sandbox_common.readmodel.marker import Stale
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.shadow import ShadowWriter
from sandbox_common.readmodel.writer import DocumentWriter
from status_api.change_hub import ChangeHub
from tests.connected import redis_mode
from tests.connected.conftest import Infra
from tests.connected.helpers import unique

pytestmark = pytest.mark.connected

RULE = DeadlineRule(180)
LAYOUT = Layout()


@pytest.fixture
async def redis(prepared: Infra) -> AsyncIterator[aioredis.Redis]:
    client = redis_mode.client(prepared.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def _states(prefix: str, count: int, now: datetime) -> list[Projected]:
    """`count` RUNNING sandboxes, the even ones idle long enough to be due."""
    return [
        Projected(
            SandboxState(
                sandbox_id=f"{prefix}-{n}",
                status=Status.RUNNING,
                project_id=f"{prefix}-p{n}",
                last_active_at=now - timedelta(seconds=600 if n % 2 == 0 else 10),
                last_event_at=now,
            ),
            1,
        )
        for n in range(count)
    ]


async def _write(redis: aioredis.Redis, projected: list[Projected], now: datetime) -> None:
    writer = DocumentWriter(redis, 60, 10_000, LAYOUT)
    docs = [to_doc(p.state, p.revision, now, RULE) for p in projected]
    await writer.write([d for d in docs if d is not None])


async def test_writes_reads_and_the_due_query_span_every_shard(redis: aioredis.Redis) -> None:
    now = datetime.now(UTC)
    prefix = unique("layout")
    projected = _states(prefix, 200, now)
    await _write(redis, projected, now)
    reader = ReadModelReader(redis, LAYOUT)

    ids = [p.state.sandbox_id for p in projected]
    assert {LAYOUT.shard(i) for i in ids} == set(LAYOUT.all)  # 200 sandboxes reach every shard
    docs = await reader.by_id(ids)
    assert set(docs) == set(ids)
    served = await reader.by_project(f"{prefix}-p7")
    assert served is not None
    assert served.sandbox_id == f"{prefix}-7"
    assert await reader.pointers([f"{prefix}-p3"]) == {f"{prefix}-p3": f"{prefix}-3"}

    # The due ones from every shard, oldest first (ours are the only due ones of this age).
    due = await reader.due(now - timedelta(seconds=600 - 180 - 1), limit=1000)
    ours = [d for d in due if d.startswith(prefix)]
    assert sorted(ours) == sorted(i for n, i in enumerate(ids) if n % 2 == 0)
    assert (await reader.summary(now)).idle_indexed >= 200
    assert len(await reader.due(now, limit=5)) == 5

    if redis_mode.CLUSTER:
        # Each master holds part of the model: no slot takes every write.
        cluster: Any = redis
        primaries = cluster.get_primaries()
        sizes = [await cluster.dbsize(target_nodes=node) for node in primaries]
        assert len(sizes) == 3
        assert all(size > 0 for size in sizes), sizes


async def test_the_change_feed_is_merged_and_resumed_across_shards(redis: aioredis.Redis) -> None:
    now = datetime.now(UTC)
    feed = ChangeFeed(redis, 10_000, LAYOUT)
    hub = ChangeHub(feed)
    await hub.start()
    try:
        before = hub.head
        prefix = unique("feed")
        projected = _states(prefix, 40, now)
        await _write(redis, projected, now)
        # A warning goes to its sandbox's shard, once.
        sandbox = projected[0].state.sandbox_id
        warning = Warning(sandbox, f"{prefix}-p0", 1, "idle:1", b"{}")
        assert await feed.warn_once([warning, warning], 60) == [True, False]
        head = before
        for shard in LAYOUT.all:
            newest = await feed.newest_id(shard)
            if newest is not None:
                head = head.moved(shard, entry_position(newest))
        missed = await hub.since(before, None, head)
        assert missed is not None
        ours = [c for c in missed if c.sandbox_id.startswith(prefix)]
        assert {c.sandbox_id for c in ours} == {p.state.sandbox_id for p in projected}
        assert {c.shard for c in ours} == {LAYOUT.shard(c.sandbox_id) for c in ours}
        assert len({c.shard for c in ours}) > 8
        # A project's resume gets its own sandbox's changes only, and its warning.
        mine = await hub.since(before, f"{prefix}-p0", head)
        assert mine is not None
        assert [(c.sandbox_id, c.kind.value) for c in mine] == [
            (sandbox, "doc"),
            (sandbox, "warning"),
        ]
    finally:
        await hub.stop()


class _Snapshot:
    """PostgreSQL as the rebuild reads it: these states, and every other live sandbox exists."""

    def __init__(self, projected: list[Projected]) -> None:
        self._projected = projected

    async def states(self) -> list[Projected]:
        return self._projected

    async def policies(self) -> list[Placed]:
        return []

    async def existing(self, sandbox_ids: Collection[str]) -> set[str]:
        return set(sandbox_ids)  # other tests' sandboxes: not ours to remove


def _snapshots(projected: list[Projected]) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def snapshots() -> AsyncIterator[_Snapshot]:
        yield _Snapshot(projected)

    return snapshots


async def test_the_unsharded_layout_is_rebuilt_from_postgresql_and_dropped(
    redis: aioredis.Redis,
) -> None:
    """An upgrade: the Redis still holds the layout before sharding (one global index, feed,
    marker without a layout). The projector must rebuild, not serve from keys it no longer
    reads, and the old keys must go."""
    now = datetime.now(UTC)
    prefix = unique("upgrade")
    projected = _states(prefix, 30, now)
    old_doc = f"sbx:sandbox:{prefix}-0"
    old_keys = [old_doc, "sbx:idle-deadlines", "sbx:changes", f"sbx:project:{prefix}-p0:sandbox"]
    await redis.hset(old_doc, mapping={keys.DOC_FIELD: b"{}", keys.REVISION_FIELD: 1})
    await redis.zadd("sbx:idle-deadlines", {f"{prefix}-0": 1.0})
    await redis.xadd("sbx:changes", {"k": "doc"})
    await redis.set(f"sbx:project:{prefix}-p0:sandbox", f"{prefix}-0")
    await redis.set(keys.READ_MODEL_MARKER, msgspec.json.encode({"by": "projector", "server": "x"}))

    reader = ReadModelReader(redis, LAYOUT)
    assert await reader.staleness() is Stale.LAYOUT
    feed = ChangeFeed(redis, 10_000, LAYOUT)
    before = [await feed.newest_id(shard) or "0-0" for shard in LAYOUT.all]
    shadow = ShadowWriter(redis, 60, LAYOUT)
    assert await rebuild_if_missing(_snapshots(projected), shadow, reader, RULE, by="test")
    # One reset for the whole swap (streams re-read once, from the whole new model).
    resets = [
        fields
        for shard in LAYOUT.all
        for _, fields in await feed.after(shard, before[shard], 10_000)
        if fields[b"k"] == b"reset"
    ]
    assert len(resets) == 1
    assert await reader.staleness() is None
    assert not await redis.exists(*old_keys)
    served = await reader.by_project(f"{prefix}-p0")
    assert served is not None
    assert served.sandbox_id == f"{prefix}-0"
    assert f"{prefix}-0" in await reader.idle_deadlines()
    # Rebuilt on this layout and these primaries: nothing more to do.
    assert not await rebuild_if_missing(_snapshots(projected), shadow, reader, RULE, by="test")
    # Another shard count is another layout again.
    assert await ReadModelReader(redis, Layout(8)).staleness() is Stale.LAYOUT


async def test_one_shards_chunks_are_written_in_their_order(redis: aioredis.Redis) -> None:
    """Chunks of one shard run one after the other on a cluster too (as a pipeline runs them):
    run at once, a later revision's chunk could land first and the earlier ones be refused."""
    now = datetime.now(UTC)
    prefix = unique("order")
    state = _states(prefix, 1, now)[0].state
    docs = [to_doc(state, revision, now, RULE) for revision in range(1, 6_001)]
    shard = LAYOUT.shard(state.sandbox_id)
    feed = ChangeFeed(redis, 10_000, LAYOUT)
    before = await feed.newest_id(shard) or "0-0"
    await DocumentWriter(redis, 60, 100_000, LAYOUT).write([d for d in docs if d is not None])
    written = await feed.after(shard, before, 10_000)
    ours = [f for _, f in written if f[b"s"] == state.sandbox_id.encode()]
    assert [int(f[b"r"]) for f in ours] == list(range(1, 6_001))

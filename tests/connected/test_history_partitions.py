"""The history (`sandbox_events`) is partitioned by the day a fact occurred: partitions made ahead,
a fact outside them still stored (default partition) and moved to its day later, whole
partitions dropped past HISTORY_RETENTION_DAYS (`sandbox_history prune`), a fact's copies stored
once across all of it, and the hot reads on index scans of the partitions they need only."""

from __future__ import annotations

import dataclasses
import io
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from projector.adapters.history_partitions import maintain
from projector.adapters.postgres import PostgresStore, PostgresTransaction
from projector.handlers import Positioned
from projector.history_retention import DAYS_AHEAD, partition_name
from projector.replay.run import Replay
from projector.replay.verify import Differs
from sandbox_common import envelope as env
from sandbox_common.envelope import Envelope, FactType, Source
from status_api.adapters.postgres import HistoryStore
from tests.connected.conftest import Infra
from tests.connected.replay_support import ReplayStore, project_live, publish, replay_store
from tests.connected.test_sandboxctl_ops import sandboxctl

pytestmark = pytest.mark.connected

NOW = datetime.now(UTC)


def _fact(sandbox: str, at: datetime, n: int = 0, kind: FactType = FactType.UPDATED) -> Positioned:
    """A fact of its own project (`proj-<sandbox>`): which sandbox a project serves is not at
    stake here."""
    return Positioned(
        Envelope(
            event_id=f"{sandbox}-{at.isoformat()}-{n}",
            type=kind,
            source=Source.E2B_WEBHOOK,
            sandbox_id=sandbox,
            project_id=f"proj-{sandbox}",
            occurred_at=at,
            received_at=NOW,
            data={"n": n},
        ),
        "sandbox-lifecycle-test",
        0,
        n,
    )


@pytest.fixture
async def pool(prepared: Infra) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    p = await asyncpg.create_pool(prepared.database_url, min_size=1, max_size=2)
    try:
        yield p
    finally:
        await p.close()


async def _save(pool: asyncpg.Pool[asyncpg.Record], facts: list[Positioned]) -> None:
    async with PostgresStore(pool).transaction() as tx:
        await tx.save([], facts, [])


async def _where(pool: asyncpg.Pool[asyncpg.Record], sandbox: str) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT event_id, tableoid::regclass::text AS part FROM sandbox_events"
        " WHERE sandbox_id = $1",
        sandbox,
    )
    return {r["event_id"]: r["part"] for r in rows}


async def test_prune_drops_the_partitions_past_the_window_and_keeps_the_rest(
    prepared: Infra, pool: asyncpg.Pool[asyncpg.Record]
) -> None:
    kind = await pool.fetchval(
        "SELECT relkind::text FROM pg_class WHERE oid = 'sandbox_events'::regclass"
    )
    assert kind == "p"  # partitioned
    sandbox = f"hist-{uuid.uuid4().hex[:8]}"
    ages = [200, 100, 10, 0]
    facts = [_fact(sandbox, NOW - timedelta(days=age), n) for n, age in enumerate(ages)]
    await _save(pool, facts)
    async with pool.acquire() as conn:
        await maintain(conn, NOW, 0)  # keep all: each day split out of the default partition
    where = await _where(pool, sandbox)
    days = [(NOW - timedelta(days=age)).date() for age in ages]
    assert [where[f.fact.event_id] for f in facts] == [
        partition_name("sandbox_events", d) for d in days
    ]

    pruned = sandboxctl(prepared, "history", "prune", env={"HISTORY_RETENTION_DAYS": "90"})
    assert pruned.returncode == 0, pruned.stderr
    assert f"dropped {partition_name('sandbox_events', days[0])}" in pruned.stdout
    assert f"dropped {partition_name('sandbox_events', days[1])}" in pruned.stdout
    assert "HISTORY_RETENTION_DAYS=90" in pruned.stdout
    assert sorted(await _where(pool, sandbox)) == sorted(f.fact.event_id for f in facts[2:])

    # The kept facts delivered again (a redelivered batch): still one row each.
    await _save(pool, facts[2:])
    assert len(await _where(pool, sandbox)) == 2
    again = sandboxctl(prepared, "history", "prune", "--json", env={"HISTORY_RETENTION_DAYS": "90"})
    assert msgspec.json.decode(again.stdout)["dropped"] == []


async def test_a_fact_beyond_the_partitions_made_ahead_is_stored_then_moved_to_its_day(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    sandbox = f"hist-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await maintain(conn, NOW, 0)
    later = NOW + timedelta(days=DAYS_AHEAD + 30)
    fact = _fact(sandbox, later)
    # An earlier run of this test made its day's partition: not there now, as on a fresh table.
    await pool.execute(f"DROP TABLE IF EXISTS {partition_name('sandbox_events', later.date())}")
    await _save(pool, [fact])  # no partition for its day: refused by no one
    assert await _where(pool, sandbox) == {fact.fact.event_id: "sandbox_events_default"}
    async with pool.acquire() as conn:
        done = await maintain(conn, later - timedelta(days=1), 0)  # its day comes in range
    assert done is not None
    assert partition_name("sandbox_events", later.date()) in done.created
    await _save(pool, [fact])  # and a copy arriving now finds the one already there
    assert await _where(pool, sandbox) == {
        fact.fact.event_id: partition_name("sandbox_events", later.date())
    }


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


class ExplainingPool:
    """Stands in for the pool a store reads through: each query is explained, not run."""

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self._conn = conn
        self.plans: list[list[dict[str, Any]]] = []

    async def _explain(self, query: str, *args: object) -> None:
        raw = await self._conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
        self.plans.append(list(_nodes(msgspec.json.decode(raw)[0]["Plan"])))

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        await self._explain(query, *args)
        return []

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        await self._explain(query, *args)
        return None

    async def fetchval(self, query: str, *args: object) -> object:
        await self._explain(query, *args)
        return None

    async def execute(self, query: str, *args: object) -> str:
        await self._explain(query, *args)
        return "INSERT 0 0"


def _scans(nodes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(node type, relation) of every scan of the history."""
    return [
        (n["Node Type"], n["Relation Name"])
        for n in nodes
        if n.get("Relation Name", "").startswith("sandbox_events")
    ]


async def _fill(pool: asyncpg.Pool[asyncpg.Record], days: int, sandboxes: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    ids = [f"hist-x-{run}-{i}" for i in range(sandboxes)]
    # Days back, each in its partition, and a few far ahead of the partitions: in the default.
    facts = [
        _fact(sid, NOW - timedelta(days=d, minutes=n), n)
        for d in [*range(days), -DAYS_AHEAD - 60, -DAYS_AHEAD - 61, -DAYS_AHEAD - 62]
        for sid in ids
        for n in range(3)
    ]
    for start in range(0, len(facts), 5_000):
        await _save(pool, facts[start : start + 5_000])
    async with pool.acquire() as conn:
        await maintain(conn, NOW, 0)
        await conn.execute("ANALYZE sandbox_events")
    return ids


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_the_hot_history_reads_and_writes_use_the_indexes_and_prune_partitions(
    pool: asyncpg.Pool[asyncpg.Record], plan_cache_mode: str
) -> None:
    ids = await _fill(pool, days=30, sandboxes=300)
    async with pool.acquire() as conn:
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'sandbox_events'::regclass"
        )
        await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        explaining = ExplainingPool(conn)  # type: ignore[arg-type]
        store = HistoryStore(explaining)
        await store.page(ids[0], None, 50)
        await store.page(ids[0], (NOW - timedelta(days=20), "~"), 50)
        await store.last_activity(ids[0])
        await PostgresTransaction(explaining)._insert_new_events(  # type: ignore[arg-type]
            [_row(_fact(ids[0], NOW - timedelta(days=3), 99))]
        )
        await conn.execute("RESET plan_cache_mode")
    first, before, last, insert = explaining.plans
    for nodes in (first, before, last, insert):
        assert not [s for s in _scans(nodes) if s[0] == "Seq Scan"], nodes
    for nodes in (first, before, last):
        # A bitmap heap scan reads the rows its bitmap index scan found: index-driven too.
        assert {t for t, _ in _scans(nodes)} <= {
            "Index Scan",
            "Index Only Scan",
            "Bitmap Heap Scan",
        }
        # The sandbox's index, not a walk of the primary key.
        assert all("pkey" not in n["Index Name"] for n in nodes if "Index Name" in n), nodes
    # A page before a time reads only the partitions up to that day.
    read = len(_scans(before)) - sum(n.get("Subplans Removed", 0) for n in before)
    assert read <= partitions - 20, before


def _row(p: Positioned) -> tuple[Any, ...]:
    from projector.adapters.postgres import history_row

    return history_row(p.fact, p.topic, p.partition, p.offset)


@pytest.fixture
async def replay_schema(prepared: Infra) -> AsyncIterator[ReplayStore]:
    async for s in replay_store(prepared):
        yield s


async def test_a_replay_rebuilds_the_days_partitions_within_the_retention_window(
    replay_schema: ReplayStore,
) -> None:
    """The live history kept 90 days (the 200-day-old facts pruned); a replay of the whole topic
    folds every fact into the states but rebuilds only the window's history, into partitions
    under the live names, with the live indexes; --verify agrees before and after."""
    store = dataclasses.replace(
        replay_schema,
        settings=dataclasses.replace(replay_schema.settings, history_retention_days=90),
    )
    run = uuid.uuid4().hex[:6]
    sandboxes = [f"rp-hist-{run}-{i}" for i in range(5)]
    ages = {FactType.CREATED: 200, FactType.UPDATED: 10, FactType.ACTIVITY: 0}
    stream = [
        env.encode(_fact(sid, NOW - timedelta(days=age), n, kind).fact)
        for sid in sandboxes
        for n, (kind, age) in enumerate(ages.items())
    ]
    await publish(store.settings.kafka_bootstrap_servers, store.topic, stream + stream[:3])
    await project_live(store, random.Random(5))
    conn = await asyncpg.connect(store.settings.database_url)
    try:
        await maintain(conn, NOW, 0)
        await maintain(conn, NOW, 90)  # the 200-day-old day dropped whole
        verified = await Replay(store.settings, store.topic, io.StringIO()).run(verify=True)
        assert verified.differs is Differs.NOTHING, verified.differences

        report = await Replay(store.settings, store.topic, io.StringIO()).run(verify=False)
        assert report.sandboxes == len(sandboxes)
        history = await conn.fetch(
            "SELECT type, tableoid::regclass::text AS part FROM sandbox_events"
        )
        assert sorted(r["type"] for r in history) == sorted(
            [FactType.UPDATED.value, FactType.ACTIVITY.value] * len(sandboxes)
        )
        assert {r["part"] for r in history} == {
            partition_name("sandbox_events", (NOW - timedelta(days=age)).date()) for age in (10, 0)
        }
        parts = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'sandbox_events'::regclass"
        )
        assert not [r for r in parts if "shadow" in r["relname"]]
        assert "sandbox_events_default" in {r["relname"] for r in parts}
        indexes = await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def"
            " FROM pg_index WHERE indrelid = 'sandbox_events'::regclass"
        )
        assert {r["name"] for r in indexes} == {"sandbox_events_pkey", "sandbox_events_sandbox_idx"}
        first_seen = await conn.fetchval(
            "SELECT min(first_seen_at) FROM sandboxes WHERE sandbox_id = ANY($1::text[])",
            sandboxes,
        )
        assert first_seen < NOW - timedelta(days=199)  # the pruned facts still made the state
        again = await Replay(store.settings, store.topic, io.StringIO()).run(verify=True)
        assert again.differs is Differs.NOTHING, again.differences
    finally:
        await conn.close()

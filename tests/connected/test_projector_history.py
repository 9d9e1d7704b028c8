"""The projector's history table keeps one row per event id, whichever way a batch is written.

Small batches go in with one INSERT, large ones with COPY; a redelivered large batch makes COPY
fail on a known event id and falls back to the INSERT that skips it. Each path is driven here
against the real PostgreSQL, on a redelivery and on a duplicate inside one batch.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from projector.adapters.postgres import COPY_MIN_ROWS, PostgresStore
from projector.handlers import Positioned
from sandbox_common.envelope import Envelope, FactType, Source
from tests.connected.conftest import Infra

pytestmark = pytest.mark.connected


def _facts(count: int, offset: int = 0) -> list[Positioned]:
    run = uuid.uuid4().hex[:8]
    t0 = datetime.now(UTC)
    return [
        Positioned(
            Envelope(
                event_id=f"hist-{run}-{i}",
                type=FactType.UPDATED,
                source=Source.E2B_WEBHOOK,
                sandbox_id=f"hist-{run}-{i % 7}",
                project_id="hist-p",
                occurred_at=t0 + timedelta(milliseconds=i),
                received_at=t0,
                data={"n": i},
            ),
            "sandbox-lifecycle-test",
            0,
            offset + i,
        )
        for i in range(count)
    ]


async def _write(store: PostgresStore, facts: list[Positioned]) -> None:
    async with store.transaction() as tx:
        await tx.save([], facts, [])


async def _rows(pool: asyncpg.Pool[asyncpg.Record], facts: list[Positioned]) -> dict[str, int]:
    ids = sorted({p.fact.event_id for p in facts})
    rows = await pool.fetch(
        "SELECT event_id, count(*) AS n FROM sandbox_events WHERE event_id = ANY($1::text[])"
        " GROUP BY event_id",
        ids,
    )
    return {r["event_id"]: r["n"] for r in rows}


@pytest.mark.parametrize("size", [3, COPY_MIN_ROWS + 50], ids=["insert", "copy"])
async def test_each_event_is_stored_once_on_redelivery_and_duplicates(
    prepared: Infra, size: int
) -> None:
    pool = await asyncpg.create_pool(prepared.database_url, min_size=1, max_size=2)
    try:
        store = PostgresStore(pool)
        facts = _facts(size)
        await _write(store, facts)
        await _write(store, facts)  # the batch delivered again after a crash
        # A batch holding some known facts, one of them twice, and new ones.
        more = _facts(size, offset=size)
        mixed = [*facts[: size // 2], facts[0], *more]
        await _write(store, mixed)

        stored = await _rows(pool, [*facts, *more])
        assert len(stored) == 2 * size
        assert set(stored.values()) == {1}
        sample = await pool.fetchrow(
            "SELECT data, kafka_offset FROM sandbox_events WHERE event_id = $1",
            more[-1].fact.event_id,
        )
        assert sample is not None
        assert sample["kafka_offset"] == 2 * size - 1
    finally:
        await pool.close()

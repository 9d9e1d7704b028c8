"""PostgreSQL side of a replay: shadow tables filled by COPY, indexed after the load, then
swapped in by renames inside one transaction that also holds the live projector off.

Shadow tables copy the live tables' columns (`LIKE`) and, after the load, their indexes and
constraints under `r_`-prefixed names that take the live names once the old tables are gone.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from projector.adapters.postgres import (
    HISTORY_COLUMNS,
    POLICIES_CHANGED,
    POLICY_COLUMNS,
    STATE_COLUMNS,
    insert_new_events,
    state_from_row,
    upsert_policies,
)
from projector.adapters.postgres_snapshot import try_rebuild_lock

STATES, HISTORY, OFFSETS = "sandboxes", "sandbox_events", "projector_offsets"
# A handful of rows (one per project with a policy): replaced whole inside the swap.
POLICIES = "project_policies"
ALL = (STATES, HISTORY)
# replay --from-snapshot: the history is not rebuilt (the snapshot holds states only); the
# tail's facts go into the live history table, each event id once.
STATES_ONLY = (STATES,)
# Rebuilt rows start this far above every live revision: a write the live projector had in
# flight before the swap (a lower revision) never replaces a rebuilt Redis document, and its
# writes after the swap (higher ones) always do.
REVISION_HEADROOM = 1_000_000

if TYPE_CHECKING:
    Conn = asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]


def shadow_name(table: str) -> str:
    return f"{table}_shadow"


class ShadowTables:
    def __init__(self, conn: Conn, swapped: tuple[str, ...] = ALL) -> None:
        self._conn = conn
        self._swapped = swapped

    async def lock(self) -> bool:
        return await try_rebuild_lock(self._conn)

    async def prepare(self) -> None:
        """Fresh, empty shadow tables (a previous interrupted run's are dropped)."""
        await self._conn.execute("SET synchronous_commit = off")
        for table in self._swapped:
            await self._conn.execute(f"DROP TABLE IF EXISTS {shadow_name(table)}")
            # LIKE copies no storage parameters (the live fillfactor keeps updates HOT).
            options = await self._conn.fetchval(
                "SELECT reloptions FROM pg_class WHERE oid = $1::regclass", table
            )
            with_options = f" WITH ({', '.join(options)})" if options else ""
            partitioned = await self._conn.fetchval("SELECT pg_get_partkeydef($1::regclass)", table)
            by = f" PARTITION BY {partitioned}" if partitioned else ""
            await self._conn.execute(
                f"CREATE TABLE {shadow_name(table)} (LIKE {table} INCLUDING DEFAULTS){by}"
                + with_options
            )
            # The live table's partitions as they are now (the history's days and default):
            # the projector's partition upkeep mends whatever changes before the swap.
            for child, bound in await _partitions(self._conn, table):
                await self._conn.execute(
                    f"CREATE TABLE {_shadow_partition(table, child)}"
                    f" PARTITION OF {shadow_name(table)} {bound}"
                )

    async def offsets(self, topic: str) -> dict[int, int]:
        """How far the live projector has folded each partition (no lock: a hint)."""
        return await _offsets(self._conn, topic)

    async def revision_base(self) -> int:
        live = await self._conn.fetchval("SELECT coalesce(max(revision), 0) FROM sandboxes")
        return int(live) + REVISION_HEADROOM

    async def copy_history(self, rows: Iterable[tuple[Any, ...]]) -> None:
        if HISTORY not in self._swapped:
            await insert_new_events(self._conn, list(rows))
            return
        await self._conn.copy_records_to_table(
            shadow_name(HISTORY), records=rows, columns=HISTORY_COLUMNS
        )

    async def copy_states(self, rows: Iterable[tuple[Any, ...]]) -> None:
        await self._conn.copy_records_to_table(
            shadow_name(STATES), records=rows, columns=STATE_COLUMNS
        )

    async def build_indexes(self) -> None:
        """The live tables' indexes and constraints, built once the rows are in (faster)."""
        for table in self._swapped:
            for index in await _indexes(self._conn, table):
                if index["constraint"]:
                    # Built by the constraint itself: a partitioned table takes no USING INDEX.
                    await self._conn.execute(
                        f"ALTER TABLE {shadow_name(table)} ADD CONSTRAINT"
                        f" r_{index['constraint']} {index['constraint_def']}"
                    )
                else:
                    await self._conn.execute(_retarget(index["def"], index["name"], table))
            await self._conn.execute(f"ANALYZE {shadow_name(table)}")

    @asynccontextmanager
    async def swap(self, topic: str) -> AsyncIterator[Swap]:
        """Locks the live tables (the live projector waits), yields the live offsets for the
        caller's catch-up, and on a clean exit renames the shadow tables into place."""
        async with self._conn.transaction():
            await self._conn.execute(
                f"LOCK TABLE {STATES}, {HISTORY}, {OFFSETS}, {POLICIES} IN ACCESS EXCLUSIVE MODE"
            )
            swap = Swap(self._conn, await _offsets(self._conn, topic), self._swapped)
            yield swap
            await swap.finish(topic)

    @asynccontextmanager
    async def frozen(self, topic: str) -> AsyncIterator[Frozen]:
        """For --verify: the live projector cannot write while the caller compares."""
        async with self._conn.transaction(isolation="repeatable_read"):
            await self._conn.execute(f"LOCK TABLE {STATES}, {OFFSETS}, {POLICIES} IN SHARE MODE")
            yield Frozen(self._conn, await _offsets(self._conn, topic))

    async def drop(self) -> None:
        for table in self._swapped:
            await self._conn.execute(f"DROP TABLE IF EXISTS {shadow_name(table)}")


class Frozen:
    def __init__(self, conn: Conn, offsets: dict[int, int]) -> None:
        self._conn = conn
        self.offsets = offsets

    async def states(self) -> dict[str, Any]:
        rows = await self._conn.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM {STATES}")  # noqa: S608
        return {r["sandbox_id"]: state_from_row(r) for r in rows}

    async def policies(self) -> dict[str, tuple[Any, ...]]:
        """subject -> its row, in POLICY_COLUMNS order (the JSON policy decoded)."""
        rows = await self._conn.fetch(f"SELECT {', '.join(POLICY_COLUMNS)} FROM {POLICIES}")  # noqa: S608
        return {r["subject"]: policy_compared(tuple(r.values())) for r in rows}

    async def history_ids(self, since: datetime | None) -> set[tuple[str, datetime]]:
        """The history's keys, from `since` on (older rows are retention's to drop)."""
        rows = await self._conn.fetch(
            f"SELECT event_id, occurred_at FROM {HISTORY}"  # noqa: S608
            " WHERE $1::timestamptz IS NULL OR occurred_at >= $1",
            since,
        )
        return {(r["event_id"], r["occurred_at"]) for r in rows}


class Swap:
    def __init__(self, conn: Conn, offsets: dict[int, int], swapped: tuple[str, ...]) -> None:
        self._conn = conn
        self._swapped = swapped
        self.live_offsets = offsets
        self.next_offsets: dict[int, int] = {}

    async def replace_states(self, sandbox_ids: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        await self._conn.execute(
            f"DELETE FROM {shadow_name(STATES)} WHERE sandbox_id = ANY($1::text[])",  # noqa: S608
            list(sandbox_ids),
        )
        await self._conn.copy_records_to_table(
            shadow_name(STATES), records=rows, columns=STATE_COLUMNS
        )

    async def replace_policies(self, rows: list[tuple[Any, ...]]) -> None:
        await self._conn.execute(f"DELETE FROM {POLICIES}")  # noqa: S608
        if rows:
            await upsert_policies(self._conn, rows)
        # The live projectors reload them when the swap commits.
        await self._conn.execute(POLICIES_CHANGED)

    async def add_history(self, rows: list[tuple[Any, ...]]) -> None:
        if rows and HISTORY not in self._swapped:
            await insert_new_events(self._conn, rows)
        elif rows:
            await self._conn.copy_records_to_table(
                shadow_name(HISTORY), records=rows, columns=HISTORY_COLUMNS
            )

    async def finish(self, topic: str) -> None:
        offsets = sorted(self.next_offsets.items())
        await self._conn.execute(
            f"INSERT INTO {OFFSETS} (topic, partition, next_offset)"  # noqa: S608
            " SELECT $1, * FROM unnest($2::int[], $3::bigint[])"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset ="
            f" GREATEST({OFFSETS}.next_offset, EXCLUDED.next_offset), updated_at = now()",
            topic,
            [p for p, _ in offsets],
            [o for _, o in offsets],
        )
        for table in self._swapped:
            live_indexes = await _indexes(self._conn, table)
            await self._conn.execute(f"ALTER TABLE {table} RENAME TO {table}_retired")
            await self._conn.execute(f"ALTER TABLE {shadow_name(table)} RENAME TO {table}")
            await self._conn.execute(f"DROP TABLE {table}_retired")
            for child, _ in await _partitions(self._conn, table):  # their names are free too
                await self._conn.execute(
                    f"ALTER TABLE {child} RENAME TO {table}{child.removeprefix(shadow_name(table))}"
                )
            for index in live_indexes:  # the names are free again: take them over
                if index["constraint"]:
                    await self._conn.execute(
                        f"ALTER TABLE {table} RENAME CONSTRAINT r_{index['constraint']}"
                        f" TO {index['constraint']}"
                    )
                else:
                    await self._conn.execute(
                        f"ALTER INDEX r_{index['name']} RENAME TO {index['name']}"
                    )


def policy_compared(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A policy row as --verify compares it: the JSON policy as a value, no store times."""
    subject, project, policy, event_id, set_at, actor, partition, offset = row
    value = json.loads(policy) if isinstance(policy, str) else policy
    return (subject, project, value, event_id, set_at, actor, partition, offset)


async def _offsets(conn: Conn, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        f"SELECT partition, next_offset FROM {OFFSETS} WHERE topic = $1",  # noqa: S608
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def _partitions(conn: Conn, table: str) -> list[tuple[str, str]]:
    """(name, bound) of each partition of `table` (none unless it is partitioned)."""
    rows = await conn.fetch(
        "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass ORDER BY c.relname",
        table,
    )
    return [(r["name"], r["bound"]) for r in rows]


def _shadow_partition(table: str, partition: str) -> str:
    """sandbox_events_p20260101 -> sandbox_events_shadow_p20260101 (back again at the swap)."""
    if not partition.startswith(table):
        raise RuntimeError(f"cannot shadow partition {partition}: not named after {table}")
    return shadow_name(table) + partition.removeprefix(table)


async def _indexes(conn: Conn, table: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS def,"
        " c.conname AS constraint, pg_get_constraintdef(c.oid) AS constraint_def"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid"
        " WHERE x.indrelid = $1::regclass ORDER BY i.relname",
        table,
    )


def _retarget(definition: str, name: str, table: str) -> str:
    """`CREATE [UNIQUE] INDEX name ON [ONLY] [schema.]table USING ...` -> the same on the shadow
    (without ONLY: on a partitioned shadow, the index is built on every partition)."""
    pattern = rf"^(CREATE (?:UNIQUE )?INDEX) {re.escape(name)} ON (?:ONLY )?((?:\w+\.)?){table} "
    retargeted, count = re.subn(pattern, rf"\1 r_{name} ON \g<2>{shadow_name(table)} ", definition)
    if count != 1:
        raise RuntimeError(f"cannot rebuild index {name}: unexpected definition {definition!r}")
    return retargeted

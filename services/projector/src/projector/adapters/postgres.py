"""PostgreSQL side of the projection: load states, save states + history + offsets atomically."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import asyncpg
import msgspec

from projector.adapters.notification_outbox import enqueue
from projector.domain import SandboxState, Stamp
from projector.handlers import PolicyChange, Positioned, Projected
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import Status
from sandbox_common.state_columns import (
    decode_cycles,
    decode_lifecycle,
    encode_cycles,
    encode_lifecycle,
)

STATE_COLUMNS = (
    "sandbox_id",
    "project_id",
    "team_id",
    "template_id",
    "status",
    "last_active_at",
    "timeout_at",
    "metadata",
    "stamps",
    "first_seen_at",
    "last_event_at",
    "revision",
    "lifecycle",
    "recent_cycles",
)
_COLUMNS = ", ".join(STATE_COLUMNS)
HISTORY_COLUMNS = (
    "event_id",
    "sandbox_id",
    "type",
    "source",
    "project_id",
    "occurred_at",
    "received_at",
    "data",
    "schema_version",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)


# Below this many facts a batch's history goes in with one INSERT: COPY inside a savepoint takes
# four round trips (savepoint, column lookup, copy, release), which is most of a small batch's
# write at 1,000 facts/s, where batches hold a few dozen facts and latency is what counts.
COPY_MIN_ROWS = 200


class ConcurrentWriteError(RuntimeError):
    """Another projector wrote the same sandbox meanwhile (a rebalance overlap): retry the batch."""


class StateCache:
    """The states this projector last committed, so a batch need not read them back.

    Safe because every write is guarded by the revision it was computed from: if another writer
    (a rebalance overlap, a replay's swap) changed a row, the guarded upsert fails, the batch is
    retried, and a failed transaction empties the cache. Entries enter only after a commit.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[SandboxState, int]] = OrderedDict()

    def get(self, sandbox_id: str) -> tuple[SandboxState, int] | None:
        entry = self._entries.get(sandbox_id)
        if entry is not None:
            self._entries.move_to_end(sandbox_id)
        return entry

    def split(
        self, sandbox_ids: Sequence[str]
    ) -> tuple[dict[str, tuple[SandboxState, int]], list[str]]:
        """The cached entries among `sandbox_ids`, and the ids not cached."""
        found: dict[str, tuple[SandboxState, int]] = {}
        missing: list[str] = []
        for sandbox_id in sandbox_ids:
            entry = self.get(sandbox_id)
            if entry is None:
                missing.append(sandbox_id)
            else:
                found[sandbox_id] = entry
        return found, missing

    def put(self, projected: Iterable[Projected]) -> None:
        if self._size <= 0:
            return
        for p in projected:
            self._entries[p.state.sandbox_id] = (p.state, p.revision)
            self._entries.move_to_end(p.state.sandbox_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class Pool(Protocol):
    """What the store uses of a pool (asyncpg's, or sandbox_common.postgres_pool's)."""

    def acquire(
        self,
    ) -> AbstractAsyncContextManager[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]: ...

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]: ...

    async def fetchval(self, query: str, *args: object) -> object: ...


class PostgresStore:
    def __init__(self, pool: Pool, cache_size: int = 0) -> None:
        self._pool = pool
        self._cache = StateCache(cache_size)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                tx = PostgresTransaction(conn, self._cache)
                yield tx
        except BaseException:
            self._cache.clear()  # whatever it held may be what made the write fail
            raise
        self._cache.put(tx.written)  # committed

    async def states(self, sandbox_ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]:
        """Current states and revisions, outside any transaction (no row locks): for a batch
        folded ahead of its write, whose revision guard catches a row changed meanwhile."""
        found, missing = self._cache.split(sandbox_ids)
        if missing:
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM sandboxes WHERE sandbox_id = ANY($1::text[])",  # noqa: S608
                missing,
            )
            read = [Projected(state_from_row(r), r["revision"]) for r in rows]
            self._cache.put(read)  # committed rows: as good as what a commit leaves
            found.update((p.state.sandbox_id, (p.state, p.revision)) for p in read)
        return found

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


class PostgresTransaction:
    def __init__(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        cache: StateCache | None = None,
    ) -> None:
        self._conn = conn
        self._cache = cache or StateCache(0)
        # What the cache learns once this transaction commits: states read, then states written.
        self.written: list[Projected] = []

    async def load(self, sandbox_ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]:
        """Current states and revisions: from the cache, the rest from the table (row-locked
        in a fixed order, no deadlocks)."""
        found, missing = self._cache.split(sandbox_ids)
        if missing:
            rows = await self._conn.fetch(
                f"SELECT {_COLUMNS} FROM sandboxes WHERE sandbox_id = ANY($1::text[])"  # noqa: S608
                " ORDER BY sandbox_id FOR UPDATE",
                missing,
            )
            for r in rows:
                entry = (state_from_row(r), r["revision"])
                found[r["sandbox_id"]] = entry
                self.written.append(Projected(*entry))  # cached too, unless changed below
        return found

    async def save(
        self,
        changed: Sequence[Projected],
        facts: Sequence[Positioned],
        offsets: Iterable[tuple[str, int, int]],
        policies: Sequence[PolicyChange] = (),
    ) -> frozenset[str]:
        if changed:
            await self._upsert_states(changed)
            self.written.extend(changed)  # after the loaded states: the newer ones win
        if facts:
            await self._insert_history(facts)
            await enqueue(self._conn, (p.fact for p in facts))
        refused: frozenset[str] = frozenset()
        if policies:
            refused = await self._stale_amendments(policies)
            await upsert_policies(
                self._conn, [policy_row(c) for c in policies if c.subject not in refused]
            )
            # Delivered at commit: every replica reloads the policies in force at once.
            await self._conn.execute(POLICIES_CHANGED)
        offsets = list(offsets)
        await self._conn.execute(
            "INSERT INTO projector_offsets (topic, partition, next_offset)"
            " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset ="
            " GREATEST(projector_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
            *_columns(offsets, 3),
        )
        return refused

    async def _stale_amendments(self, policies: Sequence[PolicyChange]) -> frozenset[str]:
        """Subjects whose amendment amends a policy no longer in force. One already applied
        (a redelivered batch) is in force itself and goes through, so its state record is
        written again like the rest of the batch."""
        amending = {c.subject: c for c in policies if c.amends is not None}
        if not amending:
            return frozenset()
        rows = await self._conn.fetch(
            "SELECT subject, event_id FROM project_policies WHERE subject = ANY($1::text[])",
            list(amending),
        )
        in_force = {r["subject"]: r["event_id"] for r in rows}
        return frozenset(
            subject
            for subject, change in amending.items()
            if in_force.get(subject) not in (change.amends, change.fact.fact.event_id)
        )

    async def _insert_history(self, facts: Sequence[Positioned]) -> None:
        rows = [history_row(p.fact, p.topic, p.partition, p.offset) for p in facts]
        if len(rows) < COPY_MIN_ROWS:
            await self._insert_new_events(rows)
            return
        try:
            # COPY costs PostgreSQL a third less than INSERT .. ON CONFLICT. A fact seen before
            # (a redelivered batch, a duplicate inside this one) fails it as a whole: then the
            # insert that skips known event ids, from the savepoint.
            async with self._conn.transaction():
                await self._conn.copy_records_to_table(
                    "sandbox_events", records=rows, columns=HISTORY_COLUMNS
                )
            return
        except asyncpg.UniqueViolationError:
            pass
        await self._insert_new_events(rows)

    async def _insert_new_events(self, rows: Sequence[tuple[Any, ...]]) -> None:
        await insert_new_events(self._conn, rows)

    async def _upsert_states(self, changed: Sequence[Projected]) -> None:
        # In id order, as `load` locks them: a batch retried alongside the next one's write
        # (see pipeline.py) then waits for it instead of deadlocking with it.
        rows = sorted(state_row(p.state, p.revision) for p in changed)
        cols = _columns(rows, 14)
        # The revision guard turns a lost update during a rebalance overlap into a retry: a row
        # it refuses is not counted in the status ("INSERT 0 <rows written>").
        status = await self._conn.execute(
            f"INSERT INTO sandboxes ({_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
            " $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
            " $7::timestamptz[], $8::jsonb[], $9::jsonb[], $10::timestamptz[],"
            " $11::timestamptz[], $12::bigint[], $13::jsonb[], $14::jsonb[])"
            " ON CONFLICT (sandbox_id) DO UPDATE SET project_id = EXCLUDED.project_id,"
            " team_id = EXCLUDED.team_id, template_id = EXCLUDED.template_id,"
            " status = EXCLUDED.status, last_active_at = EXCLUDED.last_active_at,"
            " timeout_at = EXCLUDED.timeout_at, metadata = EXCLUDED.metadata,"
            " stamps = EXCLUDED.stamps, first_seen_at = EXCLUDED.first_seen_at,"
            " last_event_at = EXCLUDED.last_event_at, revision = EXCLUDED.revision,"
            " lifecycle = EXCLUDED.lifecycle, recent_cycles = EXCLUDED.recent_cycles,"
            " updated_at = now()"
            " WHERE sandboxes.revision = EXCLUDED.revision - 1",
            *cols,
        )
        written = int(status.rsplit(" ", 1)[1])
        if written != len(changed):
            raise ConcurrentWriteError(
                f"{len(changed) - written} sandbox row(s) changed under this batch"
            )


# Said in the transaction that changes `project_policies` (delivered when it commits); the
# projectors listen for it (adapters/policy_rows.py).
POLICIES_CHANNEL = "sandbox_policies"
POLICIES_CHANGED = f"SELECT pg_notify('{POLICIES_CHANNEL}', '')"

POLICY_COLUMNS = (
    "subject",
    "project_id",
    "policy",
    "event_id",
    "set_at",
    "actor",
    "kafka_partition",
    "kafka_offset",
)


def policy_row(change: PolicyChange) -> tuple[Any, ...]:
    """One `project_policies` row, in POLICY_COLUMNS order (the live upsert and replay)."""
    fact = change.fact.fact
    return (
        change.subject,
        change.project_id,
        _json(msgspec.to_builtins(change.policy)),
        fact.event_id,
        fact.occurred_at,
        fact.data.get("actor"),
        change.fact.partition,
        change.fact.offset,
    )


async def upsert_policies(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Each subject's row replaced by a later fact only: a redelivered batch (an earlier
    offset on the same partition) never puts an older policy back."""
    await conn.execute(
        f"INSERT INTO project_policies ({', '.join(POLICY_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
        " $1::text[], $2::text[], $3::jsonb[], $4::text[], $5::timestamptz[], $6::text[],"
        " $7::int[], $8::bigint[])"
        " ON CONFLICT (subject) DO UPDATE SET project_id = EXCLUDED.project_id,"
        " policy = EXCLUDED.policy, event_id = EXCLUDED.event_id, set_at = EXCLUDED.set_at,"
        " actor = EXCLUDED.actor, kafka_partition = EXCLUDED.kafka_partition,"
        " kafka_offset = EXCLUDED.kafka_offset, updated_at = now()"
        " WHERE project_policies.kafka_partition <> EXCLUDED.kafka_partition"
        " OR project_policies.kafka_offset < EXCLUDED.kafka_offset",
        *_columns(list(rows), len(POLICY_COLUMNS)),
    )


async def insert_new_events(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """History rows (`history_row`), each fact once: one already there is skipped. A fact's
    copies share their occurred_at, the partition key (migration 004)."""
    await conn.execute(
        "INSERT INTO sandbox_events (event_id, sandbox_id, type, source, project_id,"
        " occurred_at, received_at, data, schema_version, kafka_topic, kafka_partition,"
        " kafka_offset) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
        " $5::text[], $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $9::int[],"
        " $10::text[], $11::int[], $12::bigint[])"
        " ON CONFLICT (event_id, occurred_at) DO NOTHING",
        *_columns(rows, 12),
    )


def history_row(fact: Envelope, topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    """One `sandbox_events` row, in `HISTORY_COLUMNS` order."""
    return (
        fact.event_id,
        fact.sandbox_id,
        fact.type,
        fact.source,
        fact.project_id,
        fact.occurred_at,
        fact.received_at,
        _json(fact.data),
        fact.schema_version,
        topic,
        partition,
        offset,
    )


def state_row(s: SandboxState, revision: int) -> tuple[Any, ...]:
    """One `sandboxes` row, in `STATE_COLUMNS` order (the live upsert and replay's COPY)."""
    return (
        s.sandbox_id,
        s.project_id,
        s.team_id,
        s.template_id,
        s.status.value if s.status else None,
        s.last_active_at,
        s.timeout_at,
        _json(s.metadata),
        _json(s.stamps),  # {register: [time, rank, event id]}
        s.first_seen_at,
        s.last_event_at,
        revision,
        encode_lifecycle(s.on_timeout, s.auto_resume, s.busy_until),
        encode_cycles(s.idle_pauses, s.resumes),
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows -> one list per column, the shape `unnest($1::t[], ...)` takes."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


_encoder = msgspec.json.Encoder()
_stamps = msgspec.json.Decoder(dict[str, Stamp])


def _json(value: object) -> str:
    return _encoder.encode(value).decode()


def state_from_row(row: asyncpg.Record) -> SandboxState:
    stamps = _stamps.decode(row["stamps"])
    lifecycle = decode_lifecycle(row["lifecycle"])
    cycles = decode_cycles(row["recent_cycles"])
    return SandboxState(
        sandbox_id=row["sandbox_id"],
        status=Status(row["status"]) if row["status"] else None,
        last_active_at=row["last_active_at"],
        timeout_at=row["timeout_at"],
        project_id=row["project_id"],
        team_id=row["team_id"],
        template_id=row["template_id"],
        metadata=msgspec.json.decode(row["metadata"]),
        first_seen_at=row["first_seen_at"],
        last_event_at=row["last_event_at"],
        stamps=stamps,
        on_timeout=lifecycle.on_timeout,
        auto_resume=lifecycle.auto_resume,
        idle_pauses=cycles.idle_pauses,
        resumes=cycles.resumes,
        busy_until=lifecycle.busy_until,
    )

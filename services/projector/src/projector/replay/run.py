"""Use case: replay a topic from its first offset into shadow tables and keys, then swap them in
(or, with --verify, compare the rebuilt state with the live one and change nothing).

From a snapshot (`--from-snapshot`): the states start as the compacted `sandbox-state` topic
holds them, and the topic is read from each partition's watermark on (snapshots.py says why
nothing before it is missed). Only the `sandboxes` table is swapped: the history is kept, and
the tail's facts are added to it, each event id once.

Offsets: the rebuild reads up to the topic's end as it was at the start (E), then catches up to
the live projector (L, its offsets table) while holding the live tables, so the swapped state is
the fold of exactly the records below max(E, L) per partition, and the offsets table says so.
The live projector resumes from its own Kafka commit (at most L): records it folds a second
time change nothing, because the fold is idempotent.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

import asyncpg

from projector.adapters.postgres import history_row, policy_row, state_row
from projector.handlers import Positioned
from projector.history_retention import retention_start
from projector.replay import compare
from projector.replay.fold import Rebuild
from projector.replay.kafka_source import Offsets, TopicReader
from projector.replay.pg_shadow import ALL, STATES_ONLY, ShadowTables
from projector.replay.progress import Progress
from projector.replay.snapshot_source import read_snapshot
from projector.replay.verify import Differs
from projector.settings import ProjectorSettings
from sandbox_common.policies import PolicyBook
from sandbox_common.readmodel import StatusDoc, to_doc
from sandbox_common.readmodel.marker import Written
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.shadow import ShadowWriter, pointers

_FLUSH_ROWS = 50_000
# Catch up without holding the live projector off until the gap is this small.
_CLOSE_ENOUGH = 2_000


class ReplayError(RuntimeError):
    """A replay cannot run (another one holds the lock, the topic is missing, ...)."""


@dataclass
class ReplayReport:
    records: int
    facts: int
    poison: int
    duplicates: int
    sandboxes: int
    seconds: float
    offsets: Offsets
    redis: tuple[int, int, int] = (0, 0, 0)
    differences: list[str] = field(default_factory=list)
    differs: Differs = Differs.NOTHING

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds else 0.0
        return (
            f"{self.records:,} records ({self.facts:,} facts, {self.poison:,} unreadable,"
            f" {self.duplicates:,} repeated) -> {self.sandboxes:,} sandboxes in"
            f" {self.seconds:.1f} s ({rate:,.0f} events/s)"
        )


def _gap(end: Offsets, target: Offsets) -> int:
    return sum(max(0, o - end.get(p, 0)) for p, o in target.items())


def _upto(end: Offsets, live: Offsets) -> Offsets:
    return {p: max(end.get(p, 0), live.get(p, 0)) for p in end.keys() | live.keys()}


class _HistorySink:
    """Copies history rows while the next records are read (one COPY in flight at a time)."""

    def __init__(self, tables: ShadowTables, rebuild: Rebuild) -> None:
        self._tables = tables
        self._rebuild = rebuild
        self._task: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        await self.wait()
        rows = [history_row(h.fact, h.topic, h.partition, h.offset) for h in self._rebuild.drain()]
        if rows:
            self._task = asyncio.create_task(self._tables.copy_history(rows))

    async def wait(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await task


@dataclass(frozen=True)
class _Context:
    """What one replay reads from, folds into and reports on."""

    reader: TopicReader
    tables: ShadowTables
    live_model: ReadModelReader
    rebuild: Rebuild
    progress: Progress

    async def read(self, start: Offsets, end: Offsets, sink: _HistorySink | None = None) -> None:
        rebuild = self.rebuild
        async for batch in self.reader.read(start, end):
            for r in batch:
                rebuild.add(r.value, r.topic, r.partition, r.offset)
            if sink is not None and len(rebuild.pending) >= _FLUSH_ROWS:
                await sink.flush()
            self.progress.update(rebuild.records)


class Replay:
    """`state_topic`: rebuild from that snapshot topic plus the tail of `topic` (--from-snapshot);
    None: from the topic's first offset."""

    def __init__(
        self,
        settings: ProjectorSettings,
        topic: str,
        stream: TextIO | None = None,
        state_topic: str | None = None,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._stream = stream
        self._state_topic = state_topic
        self._rule = settings.deadline_rule()

    async def run(self, *, verify: bool) -> ReplayReport:
        # Millions of long-lived, acyclic objects (facts, states): the cyclic collector would
        # rescan them over and over for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return await self._run(verify=verify)
        finally:
            if collecting:
                gc.enable()

    async def _run(self, *, verify: bool) -> ReplayReport:
        s = self._settings
        conn = await asyncpg.connect(s.database_url)
        client = s.redis()
        try:
            async with TopicReader(s.kafka_connection(), self._topic) as reader:
                tables = ShadowTables(conn, ALL if self._state_topic is None else STATES_ONLY)
                if not await tables.lock():
                    raise ReplayError("another replay or rebuild holds the lock; try again later")
                rebuild = Rebuild(
                    keep_history=not verify,
                    history_since=retention_start(datetime.now(UTC), s.history_retention_days),
                )
                start, end = await self._start(reader, rebuild), await reader.ends()
                ctx = _Context(
                    reader,
                    tables,
                    ReadModelReader(client, s.redis_layout()),
                    rebuild,
                    Progress(_gap(start, end), self._stream),
                )
                if verify:
                    report = await self._verify(ctx, start, end)
                else:
                    redis_model = ShadowWriter(
                        client, s.killed_tombstone_ttl_seconds, s.redis_layout()
                    )
                    report = await self._swap(ctx, redis_model, start, end)
                report.seconds = ctx.progress.elapsed
                return report
        finally:
            await client.aclose()
            await conn.close()

    async def _start(self, reader: TopicReader, rebuild: Rebuild) -> Offsets:
        """Where the topic is read from, with the states a snapshot already holds."""
        first = await reader.starts()
        if self._state_topic is None:
            return first
        try:
            snapshot = await read_snapshot(self._settings.kafka_connection(), self._state_topic)
        except LookupError as exc:
            raise ReplayError(f"{exc}: replay without --from-snapshot") from exc
        rebuild.states.update(snapshot.states)
        for fact, partition, offset in snapshot.policies.values():
            # Where it was read from the lifecycle: a later policy fact of the tail replaces it.
            rebuild.keep_policy(Positioned(fact, self._topic, partition, offset))
        return snapshot.tail_starts(first)

    async def _swap(
        self, ctx: _Context, redis_model: ShadowWriter, start: Offsets, end: Offsets
    ) -> ReplayReport:
        tables, rebuild, progress = ctx.tables, ctx.rebuild, ctx.progress
        await tables.prepare()
        await redis_model.clear()
        base = await tables.revision_base()
        sink = _HistorySink(tables, rebuild)
        await ctx.read(start, end, sink)
        await sink.flush()
        await sink.wait()
        progress.update(rebuild.records, force=True)
        progress.phase(f"folded {len(rebuild.states):,} sandboxes; writing their state")
        rebuild.take_touched()
        await tables.copy_states(state_row(st, base) for st in rebuild.states.values())
        now, book = datetime.now(UTC), rebuild.book()
        await asyncio.gather(
            tables.build_indexes(), redis_model.write(self._docs(rebuild, base, now), now)
        )
        progress.phase("shadow tables indexed and shadow keys written; catching up")
        for _ in range(5):  # without holding the live projector: it keeps serving meanwhile
            target = _upto(end, await tables.offsets(self._topic))
            if _gap(end, target) < _CLOSE_ENOUGH:
                break
            await ctx.read(end, target)
            end = target
        # Before the live projector is held: every document in Redis now comes from records the
        # rebuild reads below. Listed after the swap, it would name sandboxes the live projector
        # created meanwhile, which the rebuild never saw, as stale.
        live_before = await ctx.live_model.all_sandbox_ids()
        async with tables.swap(self._topic) as swap:
            target = _upto(end, swap.live_offsets)
            await ctx.read(end, target)
            end = target
            touched = sorted(rebuild.take_touched() | _governed(rebuild, book))
            await swap.replace_states(
                touched, [state_row(rebuild.states[sid], base) for sid in touched]
            )
            await swap.add_history(
                [history_row(h.fact, h.topic, h.partition, h.offset) for h in rebuild.drain()]
            )
            await swap.replace_policies([policy_row(c) for c in rebuild.policies.values()])
            swap.next_offsets = end
        progress.phase("PostgreSQL swapped; swapping Redis")
        await redis_model.write(self._docs(rebuild, base, now, touched), now)
        await redis_model.write_pointers(pointers(rebuild.states.values()))
        await redis_model.mark_stale(live_before - rebuild.states.keys())
        await redis_model.replace_policies(rebuild.placed())
        swapped = await redis_model.swap(base, Written("replay", now, self._topic))
        progress.phase(f"Redis swapped: {swapped[0]:,} documents, {swapped[2]:,} stale removed")
        return self._report(rebuild, end, progress, redis=swapped)

    async def _verify(self, ctx: _Context, start: Offsets, end: Offsets) -> ReplayReport:
        tables, rebuild, progress = ctx.tables, ctx.rebuild, ctx.progress
        await ctx.read(start, end)
        progress.update(rebuild.records, force=True)
        await self._wait_for_live(tables, end, progress)
        async with tables.frozen(self._topic) as frozen:
            target = _upto(end, frozen.offsets)
            await ctx.read(end, target)
            end = target
            history = await frozen.history_ids(rebuild.history_since)
            if self._state_topic is not None:  # only the tail's facts were read
                history &= rebuild.seen
            pg = compare.postgres(rebuild, await frozen.states(), history, await frozen.policies())
            rd = await compare.redis(
                ctx.live_model, rebuild.states.values(), self._rule, rebuild.book()
            )
        report = self._report(rebuild, end, progress)
        report.differences = pg + rd
        report.differs = (Differs.POSTGRES if pg else Differs.NOTHING) | (
            Differs.REDIS if rd else Differs.NOTHING
        )
        return report

    async def _wait_for_live(self, tables: ShadowTables, end: Offsets, progress: Progress) -> None:
        """The live projector may be a little behind the topic's end: give it time."""
        for _ in range(60):
            live = await tables.offsets(self._topic)
            behind = {p: o - live.get(p, 0) for p, o in end.items() if o > live.get(p, 0)}
            if not behind:
                return
            await asyncio.sleep(0.5)
        progress.phase(f"live projector still behind the topic's end: {behind} (compared anyway)")

    def _docs(
        self, rebuild: Rebuild, revision: int, now: datetime, only: list[str] | None = None
    ) -> list[StatusDoc]:
        states = rebuild.states.values() if only is None else (rebuild.states[s] for s in only)
        book = rebuild.book()
        docs = (to_doc(st, revision, now, self._rule, book) for st in states)
        return [doc for doc in docs if doc is not None]

    def _report(
        self,
        rebuild: Rebuild,
        end: Offsets,
        progress: Progress,
        redis: tuple[int, int, int] = (0, 0, 0),
    ) -> ReplayReport:
        return ReplayReport(
            records=rebuild.records,
            facts=rebuild.records - rebuild.poison,
            poison=rebuild.poison,
            duplicates=rebuild.duplicates,
            sandboxes=len(rebuild.states),
            seconds=progress.elapsed,
            offsets=dict(sorted(end.items())),
            redis=redis,
        )


def _governed(rebuild: Rebuild, before: PolicyBook) -> set[str]:
    """Sandboxes whose documents the shadow holds with other policies than the rebuild's
    final ones (a policy fact read while catching up): written again like the touched ones."""
    default_changed, projects = rebuild.book().changed_scopes(before)
    if default_changed:
        return set(rebuild.states)
    if not projects:
        return set()
    return {sid for sid, st in rebuild.states.items() if st.project_id in projects}

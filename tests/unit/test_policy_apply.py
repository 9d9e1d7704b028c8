"""Policies applied (issue 17, item 2), without a broker: the deadline a document shows under
the policies in force, which documents a re-index moves, and when the keeper re-indexes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from projector.domain import SandboxState, Stamp
from projector.handlers import Projected
from projector.policy_apply import ALL, PolicyKeeper, Reindex, Reindexed, stale
from sandbox_common.policies import Placed, Policy, PolicyBook, QuietHours
from sandbox_common.readmodel import DeadlineRule, PauseReason, Status, StatusDoc, to_doc

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RULE = DeadlineRule(default_seconds=180)


def running(sid: str, project: str | None = "p1", **metadata: str) -> SandboxState:
    return SandboxState(
        sid, Status.RUNNING, last_active_at=T0, project_id=project, metadata=dict(metadata)
    )


def deadline(state: SandboxState, book: PolicyBook) -> datetime | None:
    doc = to_doc(state, 1, T0, RULE, book)
    assert doc is not None
    return doc.idle_deadline_at


def test_the_deadline_follows_metadata_then_project_then_default_then_setting() -> None:
    book = PolicyBook(Policy(idle_timeout_seconds=600), {"p1": Policy(idle_timeout_seconds=3600)})
    assert deadline(running("a"), book) == T0 + timedelta(hours=1)
    assert deadline(running("b", "p2"), book) == T0 + timedelta(minutes=10)
    assert deadline(running("c", None), book) == T0 + timedelta(minutes=10)
    assert deadline(running("d", idleTimeoutSeconds="60"), book) == T0 + timedelta(minutes=1)
    assert deadline(running("e"), PolicyBook()) == T0 + timedelta(minutes=3)
    # A project that sets other fields only inherits the default's timeout.
    book = PolicyBook(Policy(idle_timeout_seconds=600), {"p1": Policy(warn_before_seconds=5)})
    assert deadline(running("f"), book) == T0 + timedelta(minutes=10)


def test_never_pause_leaves_no_idle_deadline_and_a_project_can_turn_it_back_off() -> None:
    book = PolicyBook(Policy(never_pause=True), {"p1": Policy(never_pause=False)})
    assert deadline(running("a", "p2"), book) is None
    assert deadline(running("b"), book) == T0 + timedelta(minutes=3)
    assert deadline(running("c", "p3", idleTimeoutSeconds="60"), book) is None


def test_changed_scopes_name_what_a_re_index_must_judge() -> None:
    before = PolicyBook(None, {"p1": Policy(idle_timeout_seconds=60), "p2": Policy()})
    after = PolicyBook(None, {"p1": Policy(idle_timeout_seconds=90), "p3": Policy()})
    # p2 and p3 set nothing that moves a deadline: neither is re-indexed.
    assert after.changed_scopes(before) == (False, frozenset({"p1"}))
    # A default of 60 s: p1's sandboxes keep their 60 s, p2's move from the setting's.
    assert PolicyBook(Policy(idle_timeout_seconds=60)).changed_scopes(before) == (
        True,
        frozenset({"p2"}),
    )
    # Warnings and quiet hours do not move an idle deadline (yet): nothing to re-index.
    assert PolicyBook(Policy(warn_before_seconds=30)).changed_scopes(PolicyBook()) == (
        False,
        frozenset(),
    )


@pytest.mark.parametrize(
    ("doc_revision", "doc_deadline", "expected"),
    [
        (4, T0 + timedelta(minutes=3), True),  # written with the old policy
        (4, T0 + timedelta(hours=1), False),  # already right
        (3, T0 + timedelta(minutes=3), False),  # the live projector is writing it now
        (5, T0 + timedelta(minutes=3), False),  # written after this row was read
    ],
)
def test_only_a_document_at_the_rows_revision_with_another_deadline_is_stale(
    doc_revision: int, doc_deadline: datetime, expected: bool
) -> None:
    book = PolicyBook(None, {"p1": Policy(idle_timeout_seconds=3600)})
    row = Projected(running("a"), 4)
    stored = StatusDoc(
        sandbox_id="a",
        project_id="p1",
        status=Status.RUNNING,
        last_active_at=T0,
        status_changed_at=T0,
        idle_deadline_at=doc_deadline,
        pause_reason=PauseReason.IDLE,
        revision=doc_revision,
    )
    assert stale(row, stored, RULE, book, T0) is expected
    assert stale(row, None, RULE, book, T0) is False


@dataclass
class Store:
    """PostgreSQL's RUNNING rows and Redis's documents, as the re-index sees them."""

    rows: dict[str, Projected]
    docs: dict[str, StatusDoc] = field(default_factory=dict)
    written: list[StatusDoc] = field(default_factory=list)
    pages: list[tuple[str | None, str]] = field(default_factory=list)

    async def page(self, project_id: str | None, after: str, limit: int) -> list[Projected]:
        self.pages.append((project_id, after))
        chosen = sorted(
            (sid, p)
            for sid, p in self.rows.items()
            if sid > after and (project_id is None or p.state.project_id == project_id)
        )
        return [p for _, p in chosen[:limit]]

    async def bump(self, judged: Sequence[Projected]) -> list[Projected]:
        out = []
        for p in judged:
            if self.rows[p.state.sandbox_id].revision == p.revision:
                self.rows[p.state.sandbox_id] = Projected(p.state, p.revision + 1)
                out.append(self.rows[p.state.sandbox_id])
        return out

    async def write(self, docs: Sequence[StatusDoc]) -> None:
        self.written.extend(docs)
        self.docs.update((d.sandbox_id, d) for d in docs)

    async def stored(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        return {sid: self.docs[sid] for sid in sandbox_ids if sid in self.docs}


class _Docs:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def docs(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        return await self._store.stored(sandbox_ids)


def fleet(books: PolicyBook, n: int = 2500) -> Store:
    """n RUNNING sandboxes, a third each of p1, p2 and p3, documents written under `books`."""
    rows = {f"s{i:05d}": Projected(running(f"s{i:05d}", f"p{i % 3 + 1}"), 1) for i in range(n)}
    store = Store(rows)
    for p in rows.values():
        doc = to_doc(p.state, p.revision, T0, RULE, books)
        assert doc is not None
        store.docs[p.state.sandbox_id] = doc
    return store


async def test_a_re_index_moves_the_governed_deadlines_only_with_a_new_revision_each() -> None:
    store = fleet(PolicyBook())
    book = PolicyBook(None, {"p2": Policy(idle_timeout_seconds=3600)})
    reindex = Reindex(store, _Docs(store), store, RULE, lambda: book)
    done = await reindex.run("p2")
    assert (done.checked, done.moved) == (833, 833)
    assert {d.sandbox_id for d in store.written} == {
        sid for sid, p in store.rows.items() if p.state.project_id == "p2"
    }
    assert all(d.revision == 2 for d in store.written)
    assert {d.idle_deadline_at for d in store.written} == {T0 + timedelta(hours=1)}
    # Paged, not read whole.
    assert len(store.pages) == 2
    # A second pass finds nothing left to move.
    store.written.clear()
    assert (await reindex.run("p2")).moved == 0
    assert store.written == []


async def test_a_re_index_of_everything_leaves_right_documents_alone() -> None:
    store = fleet(PolicyBook(None, {"p1": Policy(idle_timeout_seconds=60)}))
    book = PolicyBook(Policy(idle_timeout_seconds=600), {"p1": Policy(idle_timeout_seconds=60)})
    done = await Reindex(store, _Docs(store), store, RULE, lambda: book).run(ALL)
    assert done.checked == 2500
    # p1's documents already show its own 60 s; p2 and p3 move to the default's 10 minutes.
    assert done.moved == 2500 - 834
    assert all(d.project_id != "p1" for d in store.written)


@dataclass
class Source:
    placed: list[Placed]
    loads: int = 0

    async def load(self) -> list[Placed]:
        self.loads += 1
        return list(self.placed)


@dataclass
class RedisPolicies:
    written: list[Placed] = field(default_factory=list)

    async def write(self, placed: Sequence[Placed]) -> None:
        self.written.extend(placed)


@dataclass
class Runs:
    scopes: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def run(self, scope: str) -> Reindexed:
        self.scopes.append(scope)
        if self.gate is not None:
            await self.gate.wait()
        return Reindexed()


def keeper(source: Source, runs: Runs) -> PolicyKeeper:
    k = PolicyKeeper(source, RedisPolicies(), second_pass_seconds=0.01)
    k.reindex = runs
    return k


async def _settle(k: PolicyKeeper) -> None:
    for _ in range(200):
        if all(t.done() for t in k._passes.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("re-indexes still running")


async def test_a_start_judges_every_sandbox_twice_then_a_project_change_judges_that_project() -> (
    None
):
    source = Source([Placed("p1", 0, 5, Policy(idle_timeout_seconds=60))])
    runs = Runs()
    k = keeper(source, runs)
    await k.load()
    assert k.book.governs("p1").idle_seconds == 60
    await _settle(k)
    assert runs.scopes == [ALL, ALL]  # the second pass catches a write that raced the first
    runs.scopes.clear()
    source.placed = [
        Placed("p1", 0, 5, Policy(idle_timeout_seconds=60)),
        Placed("p2", 1, 9, Policy(never_pause=True)),
    ]
    await k.refresh("notify")
    await _settle(k)
    assert runs.scopes == ["p2", "p2"]
    runs.scopes.clear()
    await k.refresh("periodic")  # nothing changed: nothing judged
    await _settle(k)
    assert runs.scopes == []
    source.placed.append(Placed(None, 2, 1, Policy(idle_timeout_seconds=900)))
    await k.refresh("notify")
    await _settle(k)
    assert runs.scopes == [ALL, ALL]
    await k.close()


async def test_a_change_during_a_re_index_asks_for_two_more_passes_not_a_parallel_one() -> None:
    source, gate = Source([]), asyncio.Event()
    runs = Runs(gate=gate)
    k = keeper(source, runs)
    source.placed = [Placed("p1", 0, 1, Policy(idle_timeout_seconds=60))]
    await k.refresh("notify")
    await asyncio.sleep(0.01)
    source.placed = [Placed("p1", 0, 2, Policy(idle_timeout_seconds=90))]
    await k.refresh("notify")
    await asyncio.sleep(0.01)
    assert runs.scopes == ["p1"]  # one at a time
    gate.set()
    await _settle(k)
    assert runs.scopes == ["p1", "p1", "p1"]
    await k.close()


async def test_a_batchs_policy_facts_go_to_redis_then_into_the_book() -> None:
    from projector.handlers import PolicyChange, Positioned
    from sandbox_common.envelope import Source as FactSource
    from sandbox_common.facts import Origin, policy_fact, policy_subject

    policy = Policy(idle_timeout_seconds=120)
    fact = policy_fact("p9", policy, Origin("e1", FactSource.ADMIN, T0))
    source = Source([Placed("p9", 2, 7, policy)])
    runs = Runs()
    k = keeper(source, runs)
    change = PolicyChange(
        policy_subject("p9"), "p9", policy, Positioned(fact, "sandbox-lifecycle", 2, 7)
    )
    await k.applied([change])
    assert k.redis.written == [Placed("p9", 2, 7, policy)]  # type: ignore[attr-defined]
    assert k.book.governs("p9").idle_seconds == 120
    await _settle(k)
    assert runs.scopes == ["p9", "p9"]
    await k.close()


def test_a_placed_policy_round_trips_through_its_redis_entry() -> None:
    from sandbox_common.readmodel.policies import Entry

    entry = Entry(3, 11, Policy(idle_timeout_seconds=120, never_pause=False))
    raw = msgspec.json.encode(entry)
    assert msgspec.json.decode(raw, type=Entry) == entry


async def test_a_change_while_waiting_for_the_second_pass_is_judged_at_once() -> None:
    source, runs = Source([]), Runs()
    k = PolicyKeeper(source, RedisPolicies(), second_pass_seconds=60)
    k.reindex = runs
    source.placed = [Placed("p1", 0, 1, Policy(idle_timeout_seconds=60))]
    await k.refresh("notify")
    await asyncio.sleep(0.01)
    assert runs.scopes == ["p1"]  # the second pass is a minute away
    source.placed = [Placed("p1", 0, 2, Policy(never_pause=True))]
    await k.refresh("notify")
    await asyncio.sleep(0.01)
    assert runs.scopes == ["p1", "p1"]  # not a minute later
    await k.close()


def started(sid: str, at: datetime, project: str = "p1") -> SandboxState:
    """RUNNING since `at` (its run's start), active at T0."""
    return SandboxState(
        sid,
        Status.RUNNING,
        last_active_at=T0,
        project_id=project,
        stamps={"run": Stamp(at, 0, "e")},
    )


def pause(state: SandboxState, book: PolicyBook) -> tuple[datetime | None, str | None]:
    doc = to_doc(state, 1, T0, RULE, book)
    assert doc is not None
    return doc.idle_deadline_at, doc.pause_reason


def test_a_maximum_running_time_pauses_whatever_the_activity() -> None:
    run = T0 - timedelta(minutes=50)
    hour = PolicyBook(None, {"p1": Policy(max_lifetime_seconds=3600)})
    # Idle at T0 + 3 min, but the hour since the run began ends at T0 + 10 min: idle first.
    assert pause(started("a", run), hour) == (T0 + timedelta(minutes=3), PauseReason.IDLE)
    # With a long idle timeout the running time comes first.
    long_idle = PolicyBook(
        None, {"p1": Policy(max_lifetime_seconds=3600, idle_timeout_seconds=7200)}
    )
    assert pause(started("a", run), long_idle) == (
        T0 + timedelta(minutes=10),
        PauseReason.MAX_RUNNING_TIME,
    )
    # Never pause stops idle pauses only: the running time still ends the run.
    never = PolicyBook(None, {"p1": Policy(max_lifetime_seconds=3600, never_pause=True)})
    assert pause(started("a", run), never) == (
        T0 + timedelta(minutes=10),
        PauseReason.MAX_RUNNING_TIME,
    )
    # Another project's rule is not this sandbox's.
    assert pause(started("b", run, "p2"), never)[1] is PauseReason.IDLE


def test_quiet_hours_pause_at_the_first_window_after_the_run_began() -> None:
    quiet = QuietHours(start="12:30", end="13:00", timezone="UTC")
    book = PolicyBook(None, {"p1": Policy(quiet_hours=quiet, idle_timeout_seconds=7200)})
    assert pause(started("a", T0 - timedelta(hours=1)), book) == (
        T0 + timedelta(minutes=30),
        PauseReason.QUIET_HOURS,
    )
    # A run begun inside a window (12:40, the user came back) is paused at tomorrow's.
    inside = T0 + timedelta(minutes=40)
    week = PolicyBook(None, {"p1": Policy(quiet_hours=quiet, idle_timeout_seconds=7 * 86_400)})
    assert pause(started("b", inside), week) == (
        T0 + timedelta(days=1, minutes=30),
        PauseReason.QUIET_HOURS,
    )

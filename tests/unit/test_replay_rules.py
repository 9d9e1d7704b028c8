"""Replay's pure parts: the bulk fold (the projector's rules, history deduplicated, unreadable
records skipped), the comparisons behind --verify, the project pointers, and dlq redrive's
judgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from projector.domain import SandboxState
from projector.replay.fold import Rebuild
from projector.replay.verify import compare_history, compare_scores, compare_served, compare_states
from sandbox_common import dead_letters, topics
from sandbox_common import envelope as env
from sandbox_common.envelope import FactType
from sandbox_common.readmodel import Status
from sandbox_common.readmodel.shadow import pointers
from sandboxctl.dlq import judge
from tests.unit.test_projection_rules import fact

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_bulk_fold_dedupes_history_skips_poison_and_matches_the_live_fold() -> None:
    created, paused = fact(FactType.CREATED, 0), fact(FactType.PAUSED, 10)
    rebuild = Rebuild()
    for i, value in enumerate(
        [env.encode(paused), b"{oops", env.encode(created), env.encode(paused), None]
    ):
        rebuild.add(value, "t", 0, i)
    assert rebuild.records == 5
    assert rebuild.poison == 2
    assert rebuild.duplicates == 1
    assert [h.fact.event_id for h in rebuild.drain()] == [paused.event_id, created.event_id]
    assert rebuild.drain() == []
    state = rebuild.states[created.sandbox_id]
    assert state.status is Status.PAUSED
    assert rebuild.take_touched() == {created.sandbox_id}
    assert rebuild.take_touched() == set()


def test_compare_states_names_each_field_that_differs() -> None:
    a = SandboxState("s1", status=Status.RUNNING, project_id="p")
    b = SandboxState("s1", status=Status.PAUSED, project_id="p")
    diffs = compare_states({"s1": a, "s2": a}, {"s1": b, "s3": b})
    assert any("s1: status" in d for d in diffs)
    assert any("s2: missing live" in d for d in diffs)
    assert any("s3: only live" in d for d in diffs)
    assert not [d for d in diffs if "project_id" in d]
    assert compare_states({"s1": a}, {"s1": a}) == []


def test_the_rebuilt_history_keeps_the_retention_window_and_keys_on_the_partition_key() -> None:
    """Facts before the window make the state but no history row (retention dropped them live);
    a copy with the same id and occurred_at is one row, one re-published at another time is two,
    as the live table's (event_id, occurred_at) key stores them."""
    old, created = fact(FactType.CREATED, -86_400), fact(FactType.UPDATED, 0)
    again_later = msgspec.structs.replace(created, occurred_at=created.occurred_at + timedelta(1))
    rebuild = Rebuild(history_since=created.occurred_at)
    for i, f in enumerate([old, created, created, again_later]):
        rebuild.add(env.encode(f), "t", 0, i)
    assert [(h.fact.event_id, h.fact.occurred_at) for h in rebuild.drain()] == [
        (created.event_id, created.occurred_at),
        (created.event_id, again_later.occurred_at),
    ]
    assert rebuild.duplicates == 1
    assert rebuild.states[old.sandbox_id].first_seen_at == old.occurred_at


def test_compare_history_scores_and_served() -> None:
    assert compare_history({("e1", T0), ("e2", T0)}, {("e2", T0), ("e3", T0)}) == [
        "postgres history: event e1 at 2026-11-27T12:00:00+00:00 missing live",
        "postgres history: event e3 at 2026-11-27T12:00:00+00:00 only live",
    ]
    assert compare_scores("idle", {"a": 1.0001}, {"a": 1.0}) == []
    assert len(compare_scores("idle", {"a": 1.0, "b": 2.0}, {"a": 3.0})) == 2
    assert compare_served({"p": "s1"}, {"p": "s1", "q": None}) == []
    assert compare_served({"p": "s1"}, {"p": None}) == [
        "redis project p: serves rebuilt=s1 live=None"
    ]


def test_a_project_points_at_its_newest_live_sandbox() -> None:
    def st(sid: str, status: Status, at: int) -> SandboxState:
        return SandboxState(
            sid, status=status, project_id="p", last_event_at=T0 + timedelta(seconds=at)
        )

    assert pointers([st("old", Status.PAUSED, 1), st("new", Status.RUNNING, 5)]) == {"p": "new"}
    assert pointers([st("old", Status.PAUSED, 1), st("dead", Status.KILLED, 9)]) == {"p": "old"}
    assert pointers([st("dead", Status.KILLED, 9)]) == {}


def test_redrive_only_takes_what_reads_now_and_never_loops() -> None:
    good = env.encode(fact(FactType.CREATED, 0))
    origin = [(dead_letters.ORIGINAL_TOPIC, topics.LIFECYCLE.encode())]
    assert judge(origin, good, 3).redrive
    assert not judge(origin, b"{oops", 3).redrive
    assert "still unreadable" in judge(origin, b"{oops", 3).why
    tired = [*origin, (dead_letters.REDRIVE_COUNT, b"3")]
    assert not judge(tired, good, 3).redrive
    assert not judge([(dead_letters.ORIGINAL_TOPIC, b"elsewhere")], good, 3).redrive

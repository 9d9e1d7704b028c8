"""Projection rules: ordering, duplicates and tombstones, as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from projector.domain import SandboxState, evolve, fold
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.readmodel import DeadlineRule, Status, to_doc

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fact(
    kind: FactType | str,
    seconds: float,
    *,
    event_id: str | None = None,
    project: str | None = "p1",
    source: Source = Source.E2B_WEBHOOK,
    **data: object,
) -> Envelope:
    payload: dict[str, object] = dict(data)
    if project is not None:
        payload.setdefault("metadata", {"projectId": project})
    return Envelope(
        event_id=event_id or f"{kind}-{seconds}",
        type=FactType(kind),
        source=source,
        sandbox_id="sbx-1",
        project_id=project,
        team_id="team-1",
        occurred_at=T0 + timedelta(seconds=seconds),
        received_at=T0,
        data=payload,
    )


def test_created_is_running_and_active_at_event_time() -> None:
    state = evolve(None, fact(FactType.CREATED, 0))
    assert state.status is Status.RUNNING
    assert state.last_active_at == T0
    assert state.project_id == "p1"
    assert state.visible


def test_paused_then_resumed_refreshes_last_active() -> None:
    state = fold(
        None, [fact(FactType.CREATED, 0), fact(FactType.PAUSED, 10), fact(FactType.RESUMED, 20)]
    )
    assert state is not None
    assert state.status is Status.RUNNING
    assert state.last_active_at == T0 + timedelta(seconds=20)


def test_older_event_never_overwrites_newer_state() -> None:
    state = fold(
        None, [fact(FactType.CREATED, 0), fact(FactType.PAUSED, 30), fact(FactType.RESUMED, 20)]
    )
    assert state is not None
    assert state.status is Status.PAUSED
    # ...but the late resume still proves activity at t=20.
    assert state.last_active_at == T0 + timedelta(seconds=20)


def test_duplicate_changes_nothing() -> None:
    once = fold(None, [fact(FactType.CREATED, 0), fact(FactType.PAUSED, 5)])
    twice = fold(once, [fact(FactType.PAUSED, 5)])
    assert once == twice


def test_killed_is_a_tombstone_that_late_events_cannot_revive() -> None:
    state = fold(
        None, [fact(FactType.CREATED, 0), fact(FactType.KILLED, 10), fact(FactType.RESUMED, 60)]
    )
    assert state is not None
    assert state.status is Status.KILLED
    assert not state.visible


def test_updated_syncs_timeout_and_metadata() -> None:
    end = "2026-11-27T13:00:00Z"
    state = fold(
        None,
        [
            fact(FactType.CREATED, 0),
            fact(
                FactType.UPDATED,
                5,
                set_timeout=end,
                project="p2",
                metadata={"projectId": "p2", "tier": "pro"},
            ),
        ],
    )
    assert state is not None
    assert state.timeout_at == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    assert state.metadata == {"projectId": "p2", "tier": "pro"}
    assert state.project_id == "p2"
    assert state.status is Status.RUNNING


def test_pause_request_shows_pausing_until_e2b_answers_or_it_is_cancelled() -> None:
    requested = fold(None, [fact(FactType.CREATED, 0), fact(FactType.PAUSE_REQUESTED, 200)])
    assert requested is not None
    assert requested.status is Status.PAUSING
    assert requested.last_active_at == T0  # a pause request is not activity
    paused = fold(requested, [fact(FactType.PAUSED, 201)])
    assert paused is not None
    assert paused.status is Status.PAUSED
    cancelled = fold(requested, [fact(FactType.PAUSE_CANCELLED, 202)])
    assert cancelled is not None
    assert cancelled.status is Status.RUNNING


def test_wake_shows_starting_until_resumed_or_failed() -> None:
    paused = [fact(FactType.CREATED, 0), fact(FactType.PAUSED, 10)]
    starting = fold(None, [*paused, fact(FactType.WAKE_REQUESTED, 20)])
    assert starting is not None
    assert starting.status is Status.STARTING
    resumed = fold(starting, [fact(FactType.RESUMED, 21)])
    assert resumed is not None
    assert resumed.status is Status.RUNNING
    assert resumed.last_active_at == T0 + timedelta(seconds=21)
    failed = fold(starting, [fact(FactType.WAKE_FAILED, 25)])
    assert failed is not None
    assert failed.status is Status.PAUSED


def test_unknown_type_is_ignored_for_status() -> None:
    state = fold(None, [fact(FactType.CREATED, 0), fact("sandbox.lifecycle.checkpointed", 9)])
    assert state is not None
    assert state.status is Status.RUNNING
    assert state.last_event_at == T0 + timedelta(seconds=9)


def test_event_without_metadata_keeps_project() -> None:
    state = fold(None, [fact(FactType.CREATED, 0), fact(FactType.PAUSED, 5, project=None)])
    assert state is not None
    assert state.project_id == "p1"


_kinds = st.sampled_from([*FactType, "sandbox.lifecycle.checkpointed"])


@st.composite
def histories(draw: st.DrawFn) -> list[Envelope]:
    count = draw(st.integers(min_value=1, max_value=12))
    facts = []
    for i in range(count):
        kind = draw(_kinds)
        # Few distinct seconds, so equal timestamps (tie-breaks) are common.
        second = draw(st.integers(min_value=0, max_value=5))
        project = draw(st.sampled_from([None, "p1", "p2"]))
        extra: dict[str, object] = {}
        if kind == FactType.UPDATED and draw(st.booleans()):
            extra["set_timeout"] = (T0 + timedelta(minutes=draw(st.integers(0, 9)))).isoformat()
        if draw(st.booleans()):
            extra["template_id"] = draw(st.sampled_from(["base", "py"]))
        source = Source.E2B_WEBHOOK
        if kind == FactType.PAUSED and draw(st.booleans()):
            source, extra["reason"] = Source.ENFORCER, "idle"  # our idle pause: a flap candidate
        if kind == FactType.UPDATED and draw(st.booleans()):
            extra["on_timeout"] = draw(st.sampled_from(["pause", "kill"]))
            extra["auto_resume"] = draw(st.booleans())
        facts.append(fact(kind, second, event_id=f"e{i}", project=project, source=source, **extra))
    return facts


@settings(max_examples=400)
@given(histories(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_and_duplication_ends_in_the_ordered_deduplicated_state(
    facts: list[Envelope], rnd: random.Random, dup_factor: int
) -> None:
    ordered = sorted(facts, key=lambda f: (f.occurred_at, f.event_id))
    expected = _ordered_fold(ordered)
    shuffled = facts + [rnd.choice(facts) for _ in range(dup_factor * len(facts))]
    rnd.shuffle(shuffled)
    assert fold(None, shuffled) == expected


def _ordered_fold(facts: list[Envelope]) -> SandboxState | None:
    """Reference: apply in (time, rank) order, each event once, with the tombstone rule."""
    seen: set[str] = set()
    state: SandboxState | None = None
    for f in sorted(facts, key=lambda f: (f.occurred_at, _rank(f), f.event_id)):
        if f.event_id not in seen:
            seen.add(f.event_id)
            state = evolve(state, f)
    return state


def _rank(f: Envelope) -> int:
    order = [
        FactType.CREATED,
        FactType.UPDATED,
        FactType.WAKE_REQUESTED,
        FactType.RESUMED,
        FactType.PAUSE_REQUESTED,
        FactType.PAUSE_CANCELLED,
        FactType.WAKE_FAILED,
        FactType.PAUSED,
        FactType.KILLED,
    ]
    return order.index(FactType(f.type)) if f.type in set(order) else -1


def test_a_runs_hard_end_counts_from_its_latest_start_in_any_order() -> None:
    facts = [
        fact(FactType.CREATED, 0),
        fact(FactType.PAUSED, 100),
        fact(FactType.RESUMED, 200),
        fact(FactType.UPDATED, 300),
    ]
    rule = DeadlineRule(180, max_lifetime_seconds=3600)
    for order in (facts, facts[::-1], [facts[2], facts[0], facts[3], facts[1]]):
        state = fold(None, order)
        assert state is not None
        # E2B starts a new instance on resume: its maximum length counts from there.
        assert state.run_started_at == T0 + timedelta(seconds=200)
        doc = to_doc(state, 1, T0, rule)
        assert doc is not None
        assert doc.max_lifetime_at == T0 + timedelta(seconds=3800)
    paused = fold(None, facts[:2])
    assert paused is not None
    shown = to_doc(paused, 1, T0, rule)
    assert shown is not None
    assert shown.max_lifetime_at is None  # only a RUNNING sandbox has a run to end


def test_our_idle_pauses_and_all_resumes_are_kept_newest_few_in_any_order() -> None:
    idle = [fact(FactType.PAUSED, 10 * i, source=Source.ENFORCER, reason="idle") for i in range(12)]
    e2b_pause = fact(FactType.PAUSED, 5)  # E2B's own (or the app's): not ours, not a flap
    resumes = [fact(FactType.RESUMED, 10 * i + 3) for i in range(3)]
    facts = [*idle, e2b_pause, *resumes]
    for order in (facts, facts[::-1]):
        state = fold(None, order)
        assert state is not None
        assert state.idle_pauses == tuple(T0 + timedelta(seconds=10 * i) for i in range(4, 12))
        assert state.resumes == tuple(T0 + timedelta(seconds=10 * i + 3) for i in range(3))


def test_e2b_lifecycle_read_from_e2b_is_shown_as_auto_pause_and_auto_resume() -> None:
    rule = DeadlineRule(180)
    created = fold(None, [fact(FactType.CREATED, 0)])
    assert created is not None
    unknown = to_doc(created, 1, T0, rule)
    assert unknown is not None
    assert (unknown.auto_pause, unknown.auto_resume) == (None, None)
    read = evolve(created, fact(FactType.UPDATED, 5, on_timeout="pause", auto_resume=True))
    shown = to_doc(read, 2, T0, rule)
    assert shown is not None
    assert (shown.auto_pause, shown.auto_resume) == (True, True)
    # An older reading never replaces a newer one.
    older = evolve(read, fact(FactType.UPDATED, 1, on_timeout="kill", auto_resume=False))
    assert (older.on_timeout, older.auto_resume) == ("pause", True)


def test_flapping_backs_off_the_idle_deadline_from_the_second_flap() -> None:
    rule = DeadlineRule(60, flap_window_seconds=120)

    def cycle(start: int) -> list[Envelope]:
        # Our idle pause at `start`, undone by a resume 30 s later (a probe woke it).
        return [
            fact(FactType.PAUSED, start, source=Source.ENFORCER, reason="idle"),
            fact(FactType.RESUMED, start + 30),
        ]

    facts = [fact(FactType.CREATED, 0), *cycle(100)]
    state = fold(None, facts)
    assert state is not None
    assert len(rule.flaps(state.idle_pauses, state.resumes)) == 1
    once = to_doc(state, 1, T0, rule)
    assert once is not None
    assert once.idle_backoff == 1  # once may be a user coming back
    state = fold(state, cycle(300))
    assert state is not None
    twice = to_doc(state, 2, T0, rule)
    assert twice is not None
    assert twice.idle_backoff == 2
    assert twice.idle_deadline_at == T0 + timedelta(seconds=330 + 120)
    state = fold(state, [*cycle(600), *cycle(900), *cycle(1200)])
    assert state is not None
    capped = to_doc(state, 3, T0, rule)
    assert capped is not None
    assert capped.idle_backoff == 8  # 2, 4, 8: capped
    # A resume long after the pause is a user coming back, not a flap.
    late = fold(None, [fact(FactType.CREATED, 0), *cycle(100)[:1], fact(FactType.RESUMED, 400)])
    assert late is not None
    assert rule.flaps(late.idle_pauses, late.resumes) == []


def test_flaps_a_day_older_than_the_latest_idle_pause_are_forgotten() -> None:
    rule = DeadlineRule(60)
    day = 24 * 3600
    facts = [
        fact(FactType.PAUSED, 0, source=Source.ENFORCER, reason="idle"),
        fact(FactType.RESUMED, 10),
        fact(FactType.PAUSED, 100, source=Source.ENFORCER, reason="idle"),
        fact(FactType.RESUMED, 110),
        fact(FactType.PAUSED, day + 200, source=Source.ENFORCER, reason="idle"),
    ]
    state = fold(None, facts)
    assert state is not None
    assert rule.flaps(state.idle_pauses, state.resumes) == []
    assert rule.backoff(0) == rule.backoff(1) == 1

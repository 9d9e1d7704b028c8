"""Reconciliation rules (pure): which corrective facts a difference with E2B's list yields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from enforcer.reconciler.rules import Known, Upstream, missing_upstream, plan
from sandbox_common.envelope import FactType, Source
from sandbox_common.readmodel import Status

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
END = NOW + timedelta(minutes=10)


def up(sid: str, state: str = "running", end: datetime | None = END) -> Upstream:
    return Upstream(sid, state, NOW - timedelta(minutes=1), end, {"projectId": f"p-{sid}"}, "base")


def known(sid: str, status: Status | None, timeout: datetime | None = END) -> Known:
    return Known(sid, status, timeout)


def kinds(result: object) -> list[tuple[str, str]]:
    return [(f.sandbox_id, f.type) for f in result.facts]  # type: ignore[attr-defined]


def test_nothing_to_do_when_both_agree() -> None:
    result = plan(
        {"a": known("a", Status.RUNNING), "b": known("b", Status.PAUSED)},
        {"a": up("a"), "b": up("b", "paused")},
        set(),
        observed_at=NOW,
        project_key="projectId",
    )
    assert result.facts == []


def test_a_sandbox_we_never_heard_of_is_created_then_paused_with_its_project() -> None:
    result = plan({}, {"x": up("x", "paused")}, set(), observed_at=NOW, project_key="projectId")
    assert kinds(result) == [("x", FactType.CREATED), ("x", FactType.PAUSED)]
    created = result.facts[0]
    assert created.source == Source.RECONCILER
    assert created.project_id == "p-x"
    assert created.occurred_at == NOW - timedelta(minutes=1)  # E2B's startedAt
    assert created.data["metadata"] == {"projectId": "p-x"}
    assert result.unknown == ["x"]


def test_missed_pause_and_resume_and_timeout_are_corrected_at_the_observation_time() -> None:
    result = plan(
        {
            "p": known("p", Status.RUNNING),
            "r": known("r", Status.PAUSED),
            "t": known("t", Status.RUNNING, NOW),
        },
        {"p": up("p", "paused"), "r": up("r"), "t": up("t")},
        set(),
        observed_at=NOW,
        project_key="projectId",
    )
    assert sorted(kinds(result)) == [
        ("p", FactType.PAUSED),
        ("r", FactType.RESUMED),
        ("t", FactType.UPDATED),
    ]
    assert all(f.occurred_at == NOW for f in result.facts)
    timeout = next(f for f in result.facts if f.type == FactType.UPDATED)
    assert timeout.data["set_timeout"] == END.isoformat()


def test_our_own_transitions_are_left_to_the_actuator() -> None:
    result = plan(
        {"a": known("a", Status.PAUSING), "b": known("b", Status.STARTING)},
        {"a": up("a"), "b": up("b", "paused")},
        set(),
        observed_at=NOW,
        project_key="projectId",
    )
    assert result.facts == []


def test_only_confirmed_missing_sandboxes_are_killed_and_killed_ones_stay_killed() -> None:
    ours = {
        "gone": known("gone", Status.RUNNING),
        "flaky": known("flaky", Status.PAUSED),
        "dead": known("dead", Status.KILLED),
    }
    assert missing_upstream(ours, {}) == ["flaky", "gone"]
    result = plan(ours, {"dead": up("dead")}, {"gone"}, observed_at=NOW, project_key="projectId")
    assert kinds(result) == [("gone", FactType.KILLED)]
    assert result.facts[0].data["kill_reason"] == "not found upstream"


def test_corrections_of_one_pass_have_stable_ids() -> None:
    listed = {"x": up("x")}
    first = plan({}, listed, set(), observed_at=NOW, project_key="projectId")
    again = plan({}, listed, set(), observed_at=NOW + timedelta(minutes=5), project_key="projectId")
    # The creation is the same fact whenever it is observed (E2B's startedAt names it).
    assert first.facts[0].event_id == again.facts[0].event_id


async def test_a_sandbox_e2b_will_not_answer_for_is_left_alone_and_the_pass_goes_on() -> None:
    """Found in CI: a sandbox id of "." (from the hostile-input suite) made E2B's API answer 405
    for its confirming GET, and that one error ended the whole pass."""
    from datetime import UTC, datetime

    from enforcer.reconciler.reconcile import InventoryError, PassOptions, Ports, reconcile
    from enforcer.reconciler.rules import Known
    from sandbox_common.envelope import Envelope
    from sandbox_common.readmodel import Status

    class Known2:
        async def alive(self) -> dict[str, Known]:
            return {
                sid: Known(sandbox_id=sid, status=Status.RUNNING, timeout_at=None)
                for sid in (".", "gone-1")
            }

        async def lookup(self, sandbox_ids: object) -> dict[str, Known]:
            return {}

    class Inventory:
        async def list_all(self) -> dict[str, Upstream]:
            return {}

        async def exists(self, sandbox_id: str) -> bool:
            if sandbox_id == ".":
                raise InventoryError("get . answered 405")
            return False

        async def details(self, sandbox_id: str) -> Upstream | None:
            raise AssertionError("nothing listed: no lifecycle to read")

    published: list[Envelope] = []

    class Sink:
        async def publish(self, envelope: Envelope) -> None:
            published.append(envelope)

    result = await reconcile(datetime.now(UTC), Ports(Known2(), Inventory(), Sink()), PassOptions())
    assert set(result.killed) == {"gone-1"}
    assert {f.sandbox_id for f in published} == {"gone-1"}


async def test_e2b_lifecycle_is_read_for_a_bounded_number_of_unread_sandboxes_per_pass() -> None:
    import dataclasses

    from enforcer.reconciler.reconcile import PassOptions, Ports, reconcile
    from projector.domain import fold
    from sandbox_common.envelope import Envelope

    listed = {sid: up(sid) for sid in ("a", "b", "c", "d")}
    ours = {
        "a": Known("a", Status.RUNNING, END, lifecycle_known=False),
        "b": Known("b", Status.RUNNING, END, lifecycle_known=False),
        "c": Known("c", Status.RUNNING, END, lifecycle_known=True),  # read already
        "d": Known("d", Status.RUNNING, END, lifecycle_known=False),  # E2B's answer won't say
    }
    asked: list[str] = []

    class Store:
        async def alive(self) -> dict[str, Known]:
            return dict(ours)

        async def lookup(self, sandbox_ids: object) -> dict[str, Known]:
            return {}

    class Inventory:
        async def list_all(self) -> dict[str, Upstream]:
            return dict(listed)

        async def exists(self, sandbox_id: str) -> bool:
            return True

        async def details(self, sandbox_id: str) -> Upstream | None:
            asked.append(sandbox_id)
            if sandbox_id == "d":
                return listed["d"]  # no lifecycle in the answer
            return dataclasses.replace(listed[sandbox_id], on_timeout="pause", auto_resume=True)

    published: list[Envelope] = []

    class Sink:
        async def publish(self, envelope: Envelope) -> None:
            published.append(envelope)

    ports = Ports(Store(), Inventory(), Sink())
    one = await reconcile(NOW, ports, PassOptions(lifecycle_reads=1))
    assert asked == ["a"]  # the bound: one GET this pass
    assert one.lifecycle_read == ["a"]
    ((fact),) = published
    assert (fact.type, fact.source, fact.data["on_timeout"], fact.data["auto_resume"]) == (
        FactType.UPDATED,
        Source.RECONCILER,
        "pause",
        True,
    )
    state = fold(None, [fact])
    assert state is not None
    assert (state.on_timeout, state.auto_resume, state.status) == ("pause", True, None)
    asked.clear()
    await reconcile(NOW, ports, PassOptions(lifecycle_reads=10))
    assert asked == ["a", "b", "d"]  # never "c"; "d" is asked again next pass
    assert [f.sandbox_id for f in published[1:]] == ["a", "b"]

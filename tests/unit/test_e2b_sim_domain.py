"""The simulator's sandbox state machine: pure decisions, the codes of reference/e2b.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from e2b_sim import domain, views
from e2b_sim.domain import Sandbox, State
from e2b_sim.settings import SimSettings
from e2b_sim.store import ListQuery, Store
from sandbox_common.e2b import LifecycleType

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=90)
NO_WAIT = timedelta(0)


def sandbox(**changes: Any) -> Sandbox:
    base = Sandbox(
        sandbox_id="isb1",
        template_id="base",
        execution_id="exec-1",
        started_at=T0,
        end_at=T0 + timedelta(minutes=5),
        metadata={"projectId": "p1"},
    )
    return replace(base, **changes)


def types(outcome: domain.Outcome) -> list[str]:
    return [e.type for e in outcome.events]


def test_create_emits_created() -> None:
    outcome = domain.create(sandbox())
    assert (outcome.status, types(outcome)) == (201, [LifecycleType.CREATED])


def test_pause_running_then_already_paused() -> None:
    outcome = domain.pause(sandbox(), LATER, NO_WAIT)
    assert outcome.status == 204
    assert outcome.sandbox is not None
    assert outcome.sandbox.state is State.PAUSED
    (event,) = outcome.events
    assert event.type is LifecycleType.PAUSED
    assert event.data["execution"] == {
        "started_at": "2026-11-27T12:00:00Z",
        "vcpu_count": 2,
        "memory_mb": 512,
        "execution_time": 90_000,
    }
    again = domain.pause(outcome.sandbox, LATER, NO_WAIT)
    assert (again.status, again.sandbox, again.events) == (409, None, ())
    assert "already paused" in again.message


def test_pause_unknown_or_killed_is_404() -> None:
    assert domain.pause(None, T0, NO_WAIT).status == 404
    assert domain.pause(sandbox(state=State.KILLED), T0, NO_WAIT).status == 404


def test_pause_with_a_transition_window() -> None:
    outcome = domain.pause(sandbox(), T0, timedelta(seconds=2))
    pausing = outcome.sandbox
    assert pausing is not None
    assert (outcome.status, pausing.state, outcome.events) == (204, State.PAUSING, ())
    busy = domain.pause(pausing, T0, NO_WAIT)
    assert busy.status == 409
    assert busy.message == "Sandbox cannot be paused while in 'pausing' state"
    assert domain.visible_state(pausing) == "paused"
    assert domain.settle(pausing, T0 + timedelta(seconds=1)) is None
    settled = domain.settle(pausing, T0 + timedelta(seconds=2))
    assert settled is not None
    assert types(settled) == [LifecycleType.PAUSED]


def test_connect_running_extends_only() -> None:
    sb = sandbox()
    shorter = domain.connect(sb, 10, "exec-2", T0)
    assert (shorter.status, shorter.events) == (200, ())
    longer = domain.connect(sb, 600, "exec-2", T0)
    assert longer.status == 200
    assert longer.sandbox is not None
    assert longer.sandbox.end_at == T0 + timedelta(seconds=600)
    assert longer.sandbox.execution_id == "exec-1"  # not resumed: same execution
    assert longer.events[0].data == {"set_timeout": "2026-11-27T12:10:00Z"}


def test_connect_paused_resumes_with_new_execution() -> None:
    paused = sandbox(state=State.PAUSED, stopped_at=T0)
    outcome = domain.connect(paused, 60, "exec-2", LATER)
    assert (outcome.status, types(outcome)) == (201, [LifecycleType.RESUMED])
    assert outcome.sandbox is not None
    assert outcome.sandbox.state is State.RUNNING
    assert outcome.sandbox.execution_id == "exec-2"
    assert outcome.sandbox.end_at == LATER + timedelta(seconds=60)


def test_connect_while_pausing_finishes_the_pause_then_resumes() -> None:
    pausing = sandbox(state=State.PAUSING, settles_at=LATER)
    outcome = domain.connect(pausing, 60, "exec-2", T0)
    assert (outcome.status, types(outcome)) == (201, [LifecycleType.PAUSED, LifecycleType.RESUMED])


@pytest.mark.parametrize(
    ("sb", "status"),
    [(None, 404), (sandbox(state=State.KILLED), 404), (sandbox(state=State.KILLING), 409)],
)
def test_connect_gone_or_being_killed(sb: Sandbox | None, status: int) -> None:
    assert domain.connect(sb, 60, "exec-2", T0).status == status


def test_resume_is_409_when_running_and_201_when_paused() -> None:
    assert domain.resume(sandbox(), 60, "exec-2", T0).status == 409
    assert domain.resume(sandbox(state=State.PAUSED), 60, "exec-2", T0).status == 201


def test_set_timeout_can_shorten_and_needs_running() -> None:
    outcome = domain.set_timeout(sandbox(), 30, LATER)
    assert outcome.status == 204
    assert outcome.sandbox is not None
    assert outcome.sandbox.end_at == LATER + timedelta(seconds=30)
    assert types(outcome) == [LifecycleType.UPDATED]
    assert domain.set_timeout(sandbox(state=State.PAUSED), 30, T0).status == 409
    assert domain.set_timeout(None, 30, T0).status == 404


def test_refresh_extends_only() -> None:
    sb = sandbox()
    assert domain.refresh(sb, 5, T0) == domain.Outcome(204, sb)
    longer = domain.refresh(sb, 3600, T0)
    assert longer.sandbox is not None
    assert longer.sandbox.end_at == T0 + timedelta(hours=1)


def test_kill_then_404() -> None:
    outcome = domain.kill(sandbox(), LATER, NO_WAIT)
    assert outcome.status == 204
    (event,) = outcome.events
    assert event.data["kill_reason"] == "request"
    assert event.data["execution"]["execution_time"] == 90_000
    assert outcome.sandbox is not None
    assert domain.kill(outcome.sandbox, LATER, NO_WAIT).status == 404
    assert domain.visible_state(outcome.sandbox) is None


def test_kill_of_a_paused_sandbox_counts_execution_until_the_pause() -> None:
    paused = sandbox(state=State.PAUSED, stopped_at=T0 + timedelta(seconds=10))
    (event,) = domain.kill(paused, LATER, NO_WAIT).events
    assert event.data["execution"]["execution_time"] == 10_000


def test_timeout_kills_or_auto_pauses() -> None:
    due = T0 + timedelta(minutes=5)
    assert domain.settle(sandbox(), due - timedelta(seconds=1)) is None
    killed = domain.settle(sandbox(), due)
    assert killed is not None
    assert killed.events[0].data["kill_reason"] == "timeout"
    paused = domain.settle(sandbox(auto_pause=True), due)
    assert paused is not None
    assert types(paused) == [LifecycleType.PAUSED]
    assert "kill_reason" not in paused.events[0].data  # a pause carries no reason


def test_paused_sandboxes_do_not_expire() -> None:
    assert domain.settle(sandbox(state=State.PAUSED), T0 + timedelta(days=1)) is None


# -- E2B's maximum instance length (orchestrator KeepAliveFor) -----------------------------

SHORT = timedelta(minutes=10)  # a sandbox that may run 10 minutes from its start


def test_extending_never_passes_the_maximum_instance_length() -> None:
    sb = sandbox(max_length=SHORT)
    capped_end = T0 + SHORT
    for outcome in (
        domain.set_timeout(sb, 3600, LATER),
        domain.refresh(sb, 3600, LATER),
        domain.connect(sb, 3600, "exec-2", LATER),
    ):
        assert outcome.sandbox is not None
        assert outcome.sandbox.end_at == capped_end
        assert outcome.events[0].data == {"set_timeout": "2026-11-27T12:10:00Z"}
    assert domain.connect(sb, 3600, "exec-2", LATER).status == 200


def test_past_the_maximum_instance_length_extending_is_refused() -> None:
    sb = sandbox(max_length=SHORT, end_at=T0 + SHORT)
    past = T0 + SHORT + timedelta(seconds=1)
    for outcome in (
        domain.set_timeout(sb, 60, past),
        domain.refresh(sb, 60, past),
        domain.connect(sb, 60, "exec-2", past),
    ):
        assert (outcome.status, outcome.sandbox, outcome.events) == (400, None, ())
        assert outcome.message == "Max instance length exceeded"


def test_at_exactly_the_maximum_length_a_timeout_ends_the_run_now() -> None:
    at_limit = T0 + SHORT
    outcome = domain.set_timeout(sandbox(max_length=SHORT), 60, at_limit)
    assert outcome.status == 204
    assert outcome.sandbox is not None
    assert outcome.sandbox.end_at == at_limit


def test_the_maximum_length_counts_from_the_start_of_the_current_run() -> None:
    paused = sandbox(max_length=SHORT, state=State.PAUSED, stopped_at=LATER)
    resumed_at = T0 + timedelta(hours=2)
    resumed = domain.connect(paused, 300, "exec-2", resumed_at).sandbox
    assert resumed is not None
    assert resumed.started_at == resumed_at
    extended = domain.set_timeout(resumed, 3600, resumed_at + timedelta(minutes=1)).sandbox
    assert extended is not None
    assert extended.end_at == resumed_at + SHORT


def test_refresh_extends_by_at_least_fifteen_seconds() -> None:
    sb = sandbox(end_at=T0 + timedelta(seconds=5))
    outcome = domain.refresh(sb, 0, T0)
    assert outcome.sandbox is not None
    assert outcome.sandbox.end_at == T0 + timedelta(seconds=15)


@pytest.mark.parametrize(
    ("timeout", "limit", "message"),
    [
        (86_401, timedelta(hours=24), "Timeout cannot be greater than 24 hours"),
        (11, timedelta(seconds=10), "Timeout cannot be greater than 10 seconds"),
    ],
)
def test_a_timeout_above_the_team_limit_is_refused(
    timeout: int, limit: timedelta, message: str
) -> None:
    refused = domain.timeout_refusal(timeout, limit)
    assert refused is not None
    assert (refused.status, refused.message) == (400, message)
    assert domain.timeout_refusal(timeout - 1, limit) is None


def test_resume_of_a_sandbox_being_killed_is_not_found() -> None:
    assert domain.resume(sandbox(state=State.KILLING), 60, "exec-2", T0).status == 404


# -- traffic reaching a sandbox (auto-resume) ------------------------------------------------


def test_traffic_to_a_running_sandbox_changes_nothing() -> None:
    sb = sandbox(auto_resume=True)
    assert domain.traffic(sb, "exec-2", LATER) == domain.Outcome(200, sb)


def test_traffic_resumes_a_paused_sandbox_with_auto_resume_as_e2b_does() -> None:
    paused = sandbox(state=State.PAUSED, stopped_at=T0, auto_pause=True, auto_resume=True)
    outcome = domain.traffic(replace(paused, auto_resume_timeout=600), "exec-2", LATER)
    assert (outcome.status, types(outcome)) == (201, [LifecycleType.RESUMED])
    resumed = outcome.sandbox
    assert resumed is not None
    assert (resumed.state, resumed.execution_id) == (State.RUNNING, "exec-2")
    assert resumed.end_at == LATER + timedelta(seconds=600)  # the create's timeout again


def test_auto_resume_timeout_has_a_one_minute_floor_and_the_length_cap() -> None:
    paused = sandbox(state=State.PAUSED, stopped_at=T0, auto_resume=True)
    short = domain.traffic(replace(paused, auto_resume_timeout=5), "exec-2", LATER).sandbox
    assert short is not None
    assert short.end_at == LATER + timedelta(seconds=60)
    long = replace(paused, auto_resume_timeout=7200, max_length=SHORT)
    capped = domain.traffic(long, "exec-2", LATER).sandbox
    assert capped is not None
    assert capped.end_at == LATER + SHORT


def test_traffic_while_pausing_finishes_the_pause_then_resumes() -> None:
    pausing = sandbox(state=State.PAUSING, settles_at=LATER, auto_resume=True)
    outcome = domain.traffic(pausing, "exec-2", T0)
    assert types(outcome) == [LifecycleType.PAUSED, LifecycleType.RESUMED]


def test_traffic_to_a_paused_sandbox_without_auto_resume_leaves_it_paused() -> None:
    outcome = domain.traffic(sandbox(state=State.PAUSED, stopped_at=T0), "exec-2", LATER)
    assert (outcome.status, outcome.sandbox, outcome.events) == (409, None, ())
    assert "auto-resume is off" in outcome.message


@pytest.mark.parametrize(
    "sb", [None, sandbox(state=State.KILLED), sandbox(state=State.KILLING, auto_resume=True)]
)
def test_traffic_to_a_gone_sandbox_is_not_found(sb: Sandbox | None) -> None:
    assert domain.traffic(sb, "exec-2", LATER).status == 404


# -- what the API shows: lifecycle, list filters, the setting ------------------------------


def test_details_carry_e2b_lifecycle_and_list_items_do_not() -> None:
    detail = views.detail(sandbox(auto_pause=True, auto_resume=True))
    assert detail["lifecycle"] == {"onTimeout": "pause", "autoResume": True}
    assert views.detail(sandbox())["lifecycle"] == {"onTimeout": "kill", "autoResume": False}
    assert "lifecycle" not in views.listed(sandbox())
    for required in ("clientID", "envdVersion", "diskSizeMB", "cpuCount", "memoryMB", "alias"):
        assert required in detail


def test_list_query_orders_and_filters() -> None:
    store = Store(lambda: T0, lambda _: None)
    for n, template in enumerate(["base", "py", "base"]):
        store.apply(
            domain.create(
                sandbox(
                    sandbox_id=f"i{n}", template_id=template, started_at=T0 + timedelta(seconds=n)
                )
            )
        )
    newest_first, _ = store.page(ListQuery(), 10, None)
    assert [sb.sandbox_id for sb in newest_first] == ["i2", "i1", "i0"]
    oldest_first, token = store.page(ListQuery(ascending=True), 2, None)
    assert [sb.sandbox_id for sb in oldest_first] == ["i0", "i1"]
    rest, _ = store.page(ListQuery(ascending=True), 2, token)
    assert [sb.sandbox_id for sb in rest] == ["i2"]
    base, _ = store.page(ListQuery(template="base"), 10, None)
    assert [sb.sandbox_id for sb in base] == ["i2", "i0"]
    later, _ = store.page(ListQuery(started_after=T0 + timedelta(seconds=1)), 10, None)
    assert [sb.sandbox_id for sb in later] == ["i2", "i1"]


def test_max_instance_length_setting() -> None:
    assert SimSettings.from_env({}).max_instance_seconds == 86_400
    env = {"E2B_SIM_MAX_INSTANCE_SECONDS": "3600"}
    assert SimSettings.from_env(env).max_instance_seconds == 3600
    with pytest.raises(ValueError, match="at least 1"):
        SimSettings.from_env({"E2B_SIM_MAX_INSTANCE_SECONDS": "0"})

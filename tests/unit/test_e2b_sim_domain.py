"""The simulator's sandbox state machine: pure decisions, the codes of reference/e2b.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from e2b_sim import domain
from e2b_sim.domain import Sandbox, State
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

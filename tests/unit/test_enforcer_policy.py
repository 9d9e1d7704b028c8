"""Idle policy and schedule: pure functions of the enforcer, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enforcer.domain.idle import command_id, deadline, decide, still_due
from enforcer.schedule import ScheduleError, parse_schedule
from sandbox_common.readmodel import IDLE_OVERRIDE_KEY, DeadlineRule, Status, StatusDoc

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def doc(
    status: Status = Status.RUNNING,
    active: datetime | None = T0,
    meta: dict[str, str] | None = None,
) -> StatusDoc:
    """A document as the projector writes it: the deadline is computed there (idle 180 s)."""
    meta = meta or {}
    due = DeadlineRule(180).deadline(active, meta) if active and status is Status.RUNNING else None
    return StatusDoc(
        sandbox_id="sbx-1",
        project_id="p1",
        status=status,
        last_active_at=active,
        status_changed_at=T0,
        metadata=dict(meta),
        idle_deadline_at=due,
    )


def test_deadline_is_last_activity_plus_the_idle_timeout() -> None:
    assert deadline(doc()) == T0 + timedelta(seconds=180)
    override = doc(meta={IDLE_OVERRIDE_KEY: "600"})
    assert deadline(override) == T0 + timedelta(seconds=600)


@pytest.mark.parametrize("status", [Status.PAUSED, Status.PAUSING, Status.STARTING, Status.KILLED])
def test_only_running_sandboxes_have_a_deadline(status: Status) -> None:
    assert deadline(doc(status)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("600", 600), ("abc", 180), ("5", 180), (str(30 * 24 * 3600), 180), ("-1", 180)],
)
def test_metadata_overrides_the_timeout_within_bounds(value: str, expected: int) -> None:
    assert DeadlineRule(180).timeout({IDLE_OVERRIDE_KEY: value}) == timedelta(seconds=expected)


def test_decide_pauses_only_once_the_deadline_has_passed() -> None:
    assert decide(doc(), T0 + timedelta(seconds=179)) is None
    command = decide(doc(), T0 + timedelta(seconds=200))
    assert command is not None
    assert command.idle_seconds == 200
    assert command.deadline == T0 + timedelta(seconds=180)
    assert command.judged_last_active_at == T0


def test_command_id_is_deterministic_and_changes_with_new_activity() -> None:
    now = T0 + timedelta(seconds=500)
    first, second = decide(doc(), now), decide(doc(), now + timedelta(seconds=60))
    assert first is not None
    assert second is not None
    assert first.command_id == second.command_id == command_id("sbx-1", T0)
    later = decide(doc(active=T0 + timedelta(seconds=10)), now)
    assert later is not None
    assert later.command_id != first.command_id


def test_activity_after_the_command_cancels_it() -> None:
    command = decide(doc(), T0 + timedelta(seconds=200))
    assert command is not None
    assert still_due(command, doc())
    assert still_due(command, doc(Status.PAUSING))
    assert not still_due(command, doc(active=T0 + timedelta(seconds=190)))
    assert not still_due(command, doc(Status.PAUSED))
    assert not still_due(command, None)


def test_interval_schedule_ticks_on_aligned_boundaries() -> None:
    every_5s = parse_schedule("5s")
    assert every_5s.next_after(T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=5)
    assert every_5s.next_after(T0 + timedelta(seconds=5)) == T0 + timedelta(seconds=10)
    assert parse_schedule("2m").interval == timedelta(minutes=2)


def test_cron_schedule_default_every_two_minutes() -> None:
    cron = parse_schedule("*/2 * * * *")
    assert cron.next_after(T0 + timedelta(seconds=30)) == T0 + timedelta(minutes=2)


def test_missed_ticks_coalesce_into_the_next_one() -> None:
    cron = parse_schedule("*/2 * * * *")
    # After a 10-minute outage the next tick is the first one after now, not five in a row.
    assert cron.next_after(T0 + timedelta(minutes=10, seconds=1)) == T0 + timedelta(minutes=12)


@pytest.mark.parametrize("text", ["", "soon", "0s", "* * * *", "61 * * * *", "*/2 * * * * *"])
def test_bad_schedules_name_the_setting(text: str) -> None:
    with pytest.raises(ScheduleError, match="ENFORCER_SCHEDULE"):
        parse_schedule(text)

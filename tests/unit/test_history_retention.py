"""The history's partition planner: which daily partitions to make ahead, which have aged out of
the retention window, and where a replay starts rebuilding the history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from projector.history_retention import (
    DAYS_AHEAD,
    day_of,
    default_partition,
    partition_name,
    plan,
    retention_start,
)

NOW = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
TODAY = date(2026, 3, 10)


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def test_retention_start_is_midnight_utc_of_the_day_n_days_back() -> None:
    assert retention_start(NOW, 90) == datetime(2025, 12, 10, tzinfo=UTC)
    # The same instant seen in another zone gives the same UTC day.
    local = NOW.astimezone(timezone(timedelta(hours=5)))
    assert retention_start(local, 1) == datetime(2026, 3, 9, tzinfo=UTC)
    assert retention_start(NOW, 0) is None


def test_names_round_trip_and_other_tables_are_not_ours() -> None:
    name = partition_name("sandbox_events", TODAY)
    assert name == "sandbox_events_p20260310"
    assert day_of("sandbox_events", name) == TODAY
    assert day_of("sandbox_events", default_partition("sandbox_events")) is None
    assert day_of("sandbox_events", "sandbox_events_shadow_p20260310") is None
    assert day_of("sandbox_events", "sandbox_events_p20261340") is None


def test_a_fresh_table_gets_today_and_the_days_ahead() -> None:
    p = plan(NOW, 90, [], [])
    assert p.create == tuple(_days(TODAY, DAYS_AHEAD + 1))
    assert p.drop == ()
    assert p.purge_before == datetime(2025, 12, 10, tzinfo=UTC)


def test_partitions_before_the_window_are_dropped_and_the_first_kept_day_stays() -> None:
    existing = _days(date(2025, 12, 1), 100)
    p = plan(NOW, 90, existing, [])
    assert p.drop == tuple(_days(date(2025, 12, 1), 9))  # up to 9 December
    assert date(2025, 12, 10) not in p.drop
    assert p.create == tuple(d for d in _days(TODAY, DAYS_AHEAD + 1) if d not in existing)


def test_retention_zero_keeps_every_partition() -> None:
    p = plan(NOW, 0, _days(date(2020, 1, 1), 30), [date(2019, 5, 1)])
    assert p.drop == ()
    assert p.purge_before is None
    assert date(2019, 5, 1) in p.create  # split out of the default, kept for ever


def test_days_in_the_default_partition_are_split_out_within_the_window_only() -> None:
    too_old, late, ahead, far = (
        date(2025, 1, 1),
        date(2026, 3, 1),
        TODAY + timedelta(days=DAYS_AHEAD),
        TODAY + timedelta(days=400),
    )
    p = plan(NOW, 90, _days(TODAY, DAYS_AHEAD + 1), [too_old, late, ahead, far])
    assert p.create == (late,)
    assert p.purge_before is not None
    assert too_old < p.purge_before.date()  # its rows are deleted from the default instead


@pytest.mark.parametrize("retention", [1, 7, 90])
def test_nothing_to_do_once_the_plan_is_applied(retention: int) -> None:
    first = plan(NOW, retention, _days(date(2025, 1, 1), 500), [date(2026, 3, 2)])
    have = (set(_days(date(2025, 1, 1), 500)) | set(first.create)) - set(first.drop)
    again = plan(NOW, retention, have, [])
    assert again.create == ()
    assert again.drop == ()

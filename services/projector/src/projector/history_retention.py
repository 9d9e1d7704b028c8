"""Which daily partitions of the history (`sandbox_events`) should exist, and which have aged out.

Pure: given the time, the retention setting and the partitions there are, it says what to create
and what to drop; `adapters/history_partitions.py` does it in PostgreSQL.

A partition holds the facts that *occurred* on one UTC day ([day, day + 1)). The history keeps
the facts that occurred on or after `retention_start`; a partition is dropped whole once its day
is before that, so a fact is kept for at least `retention_days` and at most one day more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# Partitions made ahead of time: a projector down this long still finds its day's partition,
# and later facts go to the default partition, never refused.
DAYS_AHEAD = 7
_DAY = re.compile(r"_p(\d{8})$")


def partition_name(parent: str, day: date) -> str:
    return f"{parent}_p{day:%Y%m%d}"


def default_partition(parent: str) -> str:
    """Where a fact goes whose day has no partition (late, far future, or not split out yet)."""
    return f"{parent}_default"


def day_of(parent: str, name: str) -> date | None:
    """The day a partition named by `partition_name` holds; None for any other name."""
    match = _DAY.search(name)
    if match is None or name != f"{parent}{match.group(0)}":
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


def retention_start(now: datetime, retention_days: int) -> datetime | None:
    """The oldest `occurred_at` the history keeps (midnight UTC of the day `retention_days` before
    `now`), or None when it keeps every fact (`retention_days` 0). A replay rebuilds the history
    from this time on: older facts are gone from the live table too."""
    if retention_days <= 0:
        return None
    day = (now.astimezone(UTC) - timedelta(days=retention_days)).date()
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True)
class HistoryPlan:
    create: tuple[date, ...]  # days that get a partition (rows of those days move out of default)
    drop: tuple[date, ...]  # partitions dropped whole: every fact in them is before the window
    purge_before: datetime | None  # the default partition's facts before this are deleted


def plan(
    now: datetime, retention_days: int, existing: Iterable[date], in_default: Iterable[date]
) -> HistoryPlan:
    """`existing`: the days that have a partition; `in_default`: the days of the facts held by
    the default partition. Today and the next `DAYS_AHEAD` days get a partition, and so does any
    day of the default partition's facts within the window (up to the same horizon: a fact
    dated years ahead stays in the default rather than making a partition kept for years)."""
    today = now.astimezone(UTC).date()
    horizon = today + timedelta(days=DAYS_AHEAD)
    start = retention_start(now, retention_days)
    first_day = start.date() if start is not None else date.min
    have = set(existing)
    wanted = {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
    wanted |= {day for day in in_default if first_day <= day <= horizon}
    return HistoryPlan(
        create=tuple(sorted(wanted - have)),
        drop=tuple(sorted(day for day in have if day < first_day)),
        purge_before=start,
    )

"""status-api's savings ledger without PostgreSQL: the period it answers, and the report made of
each sandbox's facts (figures as tests/unit/test_whatif.py computes them by hand)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from sandbox_common.envelope import FactType
from sandbox_common.whatif.actual import Seen
from sandbox_common.whatif.replay import Prices
from status_api.savings import MAX_PERIOD, PeriodError, SavingsLedger, period

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
T = NOW - timedelta(hours=2)


def test_the_period_is_the_last_week_unless_asked_and_at_most_a_month() -> None:
    assert period(None, None, NOW) == (NOW - timedelta(days=7), NOW)
    assert period(T, None, NOW) == (T, NOW)
    with pytest.raises(PeriodError, match="earlier"):
        period(NOW, T, NOW)
    with pytest.raises(PeriodError, match="at most 31 days"):
        period(NOW - MAX_PERIOD - timedelta(seconds=1), NOW, NOW)
    with pytest.raises(PeriodError, match="UTC offset"):
        period(T.replace(tzinfo=None), None, NOW)


class Facts:
    def __init__(self) -> None:
        self.asked: list[tuple[str | None, datetime, datetime]] = []

    async def of_project(
        self, project_id: str, since: datetime, until: datetime
    ) -> AsyncIterator[list[Seen]]:
        self.asked.append((project_id, since, until))
        t = T.timestamp()
        yield [
            Seen(FactType.CREATED.value, t, {}),
            Seen(FactType.PAUSED.value, t + 400, {}),
            Seen(FactType.WAKE_REQUESTED.value, t + 500, {}),
            Seen(FactType.RESUMED.value, t + 512, {}),
        ]
        yield [Seen(FactType.ACTIVITY.value, t + 10, {})]  # older than the period: running

    async def of_fleet(self, since: datetime, until: datetime) -> AsyncIterator[list[Seen]]:
        self.asked.append((None, since, until))
        for _ in ():
            yield []


async def test_a_report_sums_the_projects_sandboxes_with_their_waits() -> None:
    facts = Facts()
    ledger = SavingsLedger(facts, Prices(1.0, 0.0), 300, lambda: NOW)
    report = await ledger.report("p1", T, None)
    assert facts.asked == [("p1", T, NOW)]
    assert report.sandboxes == 2
    # The first: ran 400 s, paused 112 s, then ran to now; the second ran the whole period.
    assert report.running_seconds == 400 + (7200 - 512) + 7200
    assert (report.pauses, report.regrets, report.regret_rate) == (1, 1, 1.0)
    assert (report.resume_waits.count, report.resume_waits.mean_seconds) == (1, 12.0)
    assert report.cost == report.running_seconds * 2  # no E2B figures: 2 vCPUs by default
    assert report.no_enforcement is not None
    assert report.no_enforcement.running_seconds_avoided == 112
    empty = await ledger.report(None, None, None)
    assert (empty.project_id, empty.sandboxes, empty.resume_waits.mean_seconds) == (None, 0, None)

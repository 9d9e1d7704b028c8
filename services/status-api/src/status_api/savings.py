"""Use case: the savings ledger of a project, or of the fleet, over a period (issue 18, item
3): what the sandboxes actually cost and how long they ran and stayed paused, beside what the
seed's cron (a 2-minute tick, 3 minutes idle) and no enforcement at all would have made of the
same activity (sandbox_common/whatif)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from sandbox_common.whatif.actual import Savings, Seen
from sandbox_common.whatif.replay import Figures, Frame, Prices

# The longest period one request may ask for: a fleet's month is already millions of facts.
MAX_PERIOD = timedelta(days=31)
DEFAULT_PERIOD = timedelta(days=7)


class PeriodError(ValueError):
    """A period the ledger does not answer (a 400 with this message)."""


class SavingsFacts(Protocol):
    def of_project(
        self, project_id: str, since: datetime, until: datetime
    ) -> AsyncIterator[list[Seen]]: ...

    def of_fleet(self, since: datetime, until: datetime) -> AsyncIterator[list[Seen]]: ...


class Baseline(msgspec.Struct, frozen=True, rename="camel"):
    running_seconds: float
    pauses: int
    regrets: int
    cost: float
    # How much less ran (and cost) than under this baseline: the savings.
    running_seconds_avoided: float
    cost_avoided: float


class ResumeWaits(msgspec.Struct, frozen=True, rename="camel"):
    count: int
    mean_seconds: float | None
    max_seconds: float | None


class Prewarms(msgspec.Struct, frozen=True, rename="camel"):
    """Wakes ahead of an expected return: how many, how many the user used while they ran
    (`hits`, `hitRate`), the running time they cost, and of the returns to a sandbox that had
    been paused (a hit, or a wake someone waited for) the share that found it RUNNING."""

    count: int
    hits: int
    hit_rate: float | None
    running_seconds: float
    returns_found_running: float | None


class SavingsReport(msgspec.Struct, frozen=True, rename="camel"):
    project_id: str | None  # null: the whole fleet
    since: datetime = msgspec.field(name="from")
    until: datetime = msgspec.field(name="to")
    sandboxes: int = 0
    running_seconds: float = 0.0
    paused_seconds: float = 0.0
    pauses: int = 0
    regrets: int = 0
    regret_rate: float = 0.0
    resume_waits: ResumeWaits = ResumeWaits(0, None, None)
    prewarms: Prewarms = Prewarms(0, 0, None, 0.0, None)
    cost: float = 0.0
    seed: Baseline | None = None
    no_enforcement: Baseline | None = None
    regret_window_seconds: float = 0.0
    price_vcpu_second: float = 0.0
    price_gib_second: float = 0.0


def period(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The period asked ([from, to), UTC), by default the last 7 days up to now."""
    end = until or now
    start = since or end - DEFAULT_PERIOD
    if start.tzinfo is None or end.tzinfo is None:
        raise PeriodError("from and to must carry a UTC offset (2026-12-01T00:00:00Z)")
    if start >= end:
        raise PeriodError("from must be earlier than to")
    if end - start > MAX_PERIOD:
        raise PeriodError(f"a period of at most {MAX_PERIOD.days} days")
    return start, end


class SavingsLedger:
    def __init__(
        self,
        facts: SavingsFacts,
        prices: Prices,
        regret_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._facts = facts
        self._prices = prices
        self._regret = regret_seconds
        self.clock = clock

    async def report(
        self, project_id: str | None, since: datetime | None, until: datetime | None
    ) -> SavingsReport:
        start, end = period(since, until, self.clock())
        frame = Frame(start.timestamp(), end.timestamp(), self._regret, self._prices)
        ledger = Savings()
        sandboxes = (
            self._facts.of_fleet(start, end)
            if project_id is None
            else self._facts.of_project(project_id, start, end)
        )
        async for facts in sandboxes:
            ledger.add(facts, frame)
        return _report(project_id, start, end, ledger, frame)


def _baseline(actual_running: float, actual_cost: float, figures: Figures) -> Baseline:
    return Baseline(
        running_seconds=round(figures.running_seconds, 1),
        pauses=figures.pauses,
        regrets=figures.regrets,
        cost=round(figures.cost, 6),
        running_seconds_avoided=round(figures.running_seconds - actual_running, 1),
        cost_avoided=round(figures.cost - actual_cost, 6),
    )


def _report(
    project_id: str | None, start: datetime, end: datetime, ledger: Savings, frame: Frame
) -> SavingsReport:
    happened = ledger.actual
    waits = happened.resume_waits
    returns = happened.prewarm_hits + len(waits)
    return SavingsReport(
        project_id=project_id,
        since=start,
        until=end,
        sandboxes=happened.sandboxes,
        running_seconds=round(happened.running_seconds, 1),
        paused_seconds=round(happened.paused_seconds, 1),
        pauses=happened.pauses,
        regrets=happened.regrets,
        regret_rate=round(happened.regrets / happened.pauses, 4) if happened.pauses else 0.0,
        resume_waits=ResumeWaits(
            len(waits),
            round(sum(waits) / len(waits), 3) if waits else None,
            round(max(waits), 3) if waits else None,
        ),
        prewarms=Prewarms(
            happened.prewarms,
            happened.prewarm_hits,
            round(happened.prewarm_hits / happened.prewarms, 4) if happened.prewarms else None,
            round(happened.prewarm_seconds, 1),
            round(happened.prewarm_hits / returns, 4) if returns else None,
        ),
        cost=round(happened.cost, 6),
        seed=_baseline(happened.running_seconds, happened.cost, ledger.seed),
        no_enforcement=_baseline(happened.running_seconds, happened.cost, ledger.unenforced),
        regret_window_seconds=frame.regret_seconds,
        price_vcpu_second=frame.prices.vcpu_second,
        price_gib_second=frame.prices.gib_second,
    )

"""Use case: one pre-warming run. The returns expected since the last run (at most
CATCH_UP back: after a longer outage the users are back already), each project's PAUSED
sandbox woken for it when the day's budget still holds the lead plus the project's idle timeout
(what the pre-warm runs if nobody comes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from enforcer.prewarm import metrics
from sandbox_common.envelope import Source
from sandbox_common.policies import PolicyBook
from sandbox_common.policies.prewarm import returns_between
from sandbox_common.readmodel import Status, StatusDoc
from sandbox_common.wake import PREWARM, Publisher, request_wake

log = logging.getLogger("prewarm")
CATCH_UP = timedelta(minutes=10)
FIRST_LOOK_BACK = timedelta(minutes=1)


class Policies(Protocol):
    async def whole(self) -> PolicyBook: ...


class Docs(Protocol):
    async def by_project(self, project_id: str) -> StatusDoc | None: ...


class Spending(Protocol):
    async def last_run(self) -> datetime | None: ...

    async def ran(self, at: datetime) -> None: ...

    async def spend(self, project_id: str, day: str, seconds: int, budget_seconds: int) -> bool: ...


@dataclass
class Outcome:
    resumed: list[str] = field(default_factory=list)
    over_budget: list[str] = field(default_factory=list)
    not_paused: list[str] = field(default_factory=list)


async def prewarm_once(
    policies: Policies,
    docs: Docs,
    book: Spending,
    publisher: Publisher,
    clock: Callable[[], datetime],
) -> Outcome:
    now = clock()
    last = await book.last_run()
    since = max(last, now - CATCH_UP) if last is not None else now - FIRST_LOOK_BACK
    outcome = Outcome()
    in_force = await policies.whole()
    for project, policy in sorted(in_force.projects.items()):
        prewarm = policy.prewarm
        if prewarm is None:
            continue
        expected = returns_between(prewarm, since, now)
        if not expected:
            continue
        doc = await docs.by_project(project)
        if doc is None or doc.status is not Status.PAUSED:
            outcome.not_paused.append(project)  # running already, waking, or none
            metrics.PREWARMS.labels(outcome="not_paused").inc()
            continue
        back = expected[-1]
        # The model makes idle_seconds() known wherever a pre-warm is set.
        charge = prewarm.lead_seconds + (policy.idle_seconds() or 0)
        day = back.astimezone(prewarm.zone).date().isoformat()
        if not await book.spend(project, day, charge, prewarm.budget_minutes_per_day * 60):
            outcome.over_budget.append(project)
            metrics.PREWARMS.labels(outcome="over_budget").inc()
            log.warning(
                "Not pre-warming sandbox %s of project %s: its %d minutes for %s are spent",
                doc.sandbox_id,
                project,
                prewarm.budget_minutes_per_day,
                day,
                extra={"sandbox_id": doc.sandbox_id, "project_id": project},
            )
            continue
        await request_wake(doc, Source.ENFORCER, publisher, reason=PREWARM)
        outcome.resumed.append(doc.sandbox_id)
        metrics.PREWARMS.labels(outcome="resumed").inc()
        log.info(
            "Pre-warming sandbox %s of project %s for the return expected at %s",
            doc.sandbox_id,
            project,
            back.isoformat(),
            extra={"sandbox_id": doc.sandbox_id, "project_id": project},
        )
    await book.ran(now)
    return outcome

"""Pre-warming (issue 18, item 2) without a broker: the expected returns in the policy's own
time zone, one run's decisions (resume, over budget, not paused, how far back it looks), and
what the ledger makes of a pre-warm (a hit, or the time it cost)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from enforcer.prewarm.run import CATCH_UP, prewarm_once
from sandbox_common.commands import Command
from sandbox_common.envelope import Envelope, FactType
from sandbox_common.facts import PREWARM
from sandbox_common.policies import Policy, PolicyBook, PolicyError, decode_policy
from sandbox_common.policies.prewarm import returns_between
from sandbox_common.readmodel import Status, StatusDoc
from sandbox_common.whatif.actual import Seen, actual
from sandbox_common.whatif.replay import Frame, Prices


def policy(**prewarm: object) -> Policy:
    body = {"idleTimeoutSeconds": 600, "prewarm": {"timezone": "Europe/Paris", **prewarm}}
    return decode_policy(json.dumps(body).encode())


def test_a_prewarm_needs_the_idle_timeout_its_budget_counts() -> None:
    with pytest.raises(PolicyError) as refused:
        decode_policy(b'{"prewarm": {"times": ["09:00"], "timezone": "UTC"}}')
    assert refused.value.field == "prewarm"
    with pytest.raises(PolicyError) as refused:
        policy(times=["09:00", "09:00"])
    assert refused.value.field == "prewarm.times"


def test_returns_are_local_times_on_their_days_less_the_lead() -> None:
    weekdays = policy(times=["09:00", "13:30"], days=["mon", "tue"], leadSeconds=600)
    assert weekdays.prewarm is not None
    # Monday 2026-03-23: Paris is UTC+1 (winter time until the 29th).
    monday = datetime(2026, 3, 23, tzinfo=UTC)
    found = returns_between(weekdays.prewarm, monday, monday + timedelta(days=8))
    assert found == [
        datetime(2026, 3, 23, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 23, 12, 30, tzinfo=UTC),
        datetime(2026, 3, 24, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 24, 12, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),  # summer time: UTC+2
        datetime(2026, 3, 30, 11, 30, tzinfo=UTC),
    ]
    # Due when the moment (return less the lead) is in (since, until].
    at = datetime(2026, 3, 23, 7, 50, tzinfo=UTC)
    assert returns_between(weekdays.prewarm, at - timedelta(seconds=1), at) == [found[0]]
    assert returns_between(weekdays.prewarm, at, at + timedelta(seconds=59)) == []


NOW = datetime(2026, 3, 23, 7, 50, tzinfo=UTC)  # Monday 08:50 in Paris


def doc(project: str, status: Status) -> StatusDoc:
    return StatusDoc(
        sandbox_id=f"sbx-{project}",
        project_id=project,
        status=status,
        last_active_at=NOW - timedelta(hours=10),
        status_changed_at=NOW - timedelta(hours=9),
    )


@dataclass
class Fakes:
    book: PolicyBook
    docs: dict[str, StatusDoc]
    last: datetime | None = None
    spent: dict[tuple[str, str], int] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
    facts: list[Envelope] = field(default_factory=list)

    async def whole(self) -> PolicyBook:
        return self.book

    async def by_project(self, project_id: str) -> StatusDoc | None:
        return self.docs.get(project_id)

    async def last_run(self) -> datetime | None:
        return self.last

    async def ran(self, at: datetime) -> None:
        self.last = at

    async def spend(self, project_id: str, day: str, seconds: int, budget_seconds: int) -> bool:
        held = self.spent.get((project_id, day), 0)
        if held + seconds > budget_seconds:
            return False
        self.spent[(project_id, day)] = held + seconds
        return True

    async def publish(self, envelope: Envelope) -> None:
        self.facts.append(envelope)

    async def publish_command(self, command: Command) -> None:
        self.commands.append(command)


def fakes() -> Fakes:
    nine = {"times": ["09:00"], "leadSeconds": 600}
    return Fakes(
        PolicyBook.of(
            [
                ("paused", policy(**nine, budgetMinutesPerDay=30)),
                ("running", policy(**nine)),
                ("poor", policy(**nine, budgetMinutesPerDay=15)),  # < the lead + idle: 20 min
                ("later", policy(times=["10:00"], leadSeconds=600)),
                ("plain", Policy(idle_timeout_seconds=600)),
            ]
        ),
        {
            "paused": doc("paused", Status.PAUSED),
            "running": doc("running", Status.RUNNING),
            "poor": doc("poor", Status.PAUSED),
            "later": doc("later", Status.PAUSED),
            "plain": doc("plain", Status.PAUSED),
        },
    )


async def test_a_run_wakes_the_paused_sandbox_of_each_project_due_within_its_budget() -> None:
    f = fakes()
    outcome = await prewarm_once(f, f, f, f, lambda: NOW)
    assert outcome.resumed == ["sbx-paused"]
    assert (outcome.over_budget, outcome.not_paused) == (["poor"], ["running"])
    (command,) = f.commands
    (fact,) = f.facts
    assert command.sandbox_id == "sbx-paused"
    assert (fact.type, fact.data["reason"]) == (FactType.WAKE_REQUESTED, PREWARM)
    assert f.spent == {("paused", "2026-03-23"): 600 + 600}  # the lead and the idle timeout
    assert f.last == NOW
    # The next run, a minute on: nothing due any more, nothing woken twice.
    again = await prewarm_once(f, f, f, f, lambda: NOW + timedelta(minutes=1))
    assert (again.resumed, len(f.commands)) == ([], 1)


async def test_a_run_after_an_outage_looks_back_a_while_not_for_ever() -> None:
    f = fakes()
    f.last = NOW - timedelta(hours=5)
    outcome = await prewarm_once(f, f, f, f, lambda: NOW + CATCH_UP - timedelta(seconds=1))
    assert outcome.resumed == ["sbx-paused"]
    f = fakes()
    f.last = NOW - timedelta(hours=5)
    outcome = await prewarm_once(f, f, f, f, lambda: NOW + CATCH_UP + timedelta(seconds=1))
    assert outcome.resumed == []


def seen(kind: FactType, at: float, **data: object) -> Seen:
    return Seen(kind.value, at, data)


def test_the_ledger_counts_a_prewarm_a_hit_when_used_before_its_next_pause() -> None:
    frame = Frame(0, 10_000, 300, Prices(0, 0))
    hit, _ = actual(
        [
            seen(FactType.CREATED, 0),
            seen(FactType.PAUSED, 100),
            seen(FactType.WAKE_REQUESTED, 1000, reason=PREWARM),
            seen(FactType.RESUMED, 1005),
            seen(FactType.ACTIVITY, 1300),  # the user came: a hit, 295 s after the resume
            seen(FactType.PAUSED, 2000),
            seen(FactType.WAKE_REQUESTED, 3000, reason=PREWARM),
            seen(FactType.RESUMED, 3002),
            seen(FactType.PAUSED, 3602),  # nobody came: 600 s spent
            seen(FactType.WAKE_REQUESTED, 5000),  # a user's wake: not a pre-warm
            seen(FactType.RESUMED, 5010),
        ],
        frame,
    )
    assert (hit.prewarms, hit.prewarm_hits, hit.prewarm_seconds) == (2, 1, 295 + 600)
    assert hit.resume_waits == [10]  # the user's wake; nobody waited for the pre-warms

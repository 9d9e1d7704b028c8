"""The actuator's use case with fakes: every E2B answer -> the right fact, retry or dead letter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from enforcer.actuator.carry_out import Actuator, Ports
from enforcer.actuator.retry import RetryPolicy
from enforcer.domain.outcomes import (
    KillOutcome,
    KillResult,
    PauseOutcome,
    PauseResult,
    ResumeOutcome,
    ResumeResult,
    TimeoutOutcome,
    TimeoutResult,
    classify_connect,
    classify_pause,
    classify_refresh,
)
from sandbox_common import commands
from sandbox_common.commands import Command, CommandType
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.policies import Policy, PolicyBook, QuietHours
from sandbox_common.readmodel import Status, StatusDoc, keys
from sandbox_common.readmodel.reader import ReadModelMissingError, ReadModelReader

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
CMD = Command(
    command_id="pause:sbx-1:judged",
    type=CommandType.PAUSE,
    sandbox_id="sbx-1",
    issued_at=T0 + timedelta(minutes=3),
    project_id="p1",
    judged_last_active_at=T0,
)
OK = PauseResult(PauseOutcome.PAUSED, 204)
BUSY = PauseResult(PauseOutcome.TRANSITIONAL, 409, "cannot be paused while in 'pausing' state")
LIMITED = PauseResult(PauseOutcome.RETRYABLE, 429, "HTTP 429: Rate limit exceeded")


def doc(status: Status = Status.PAUSING, active: datetime | None = T0) -> StatusDoc:
    return StatusDoc(
        sandbox_id="sbx-1",
        project_id="p1",
        status=status,
        last_active_at=active,
        status_changed_at=T0,
    )


@dataclass
class Fakes:
    docs: list[StatusDoc | None]  # one per read; the last one repeats
    answers: list[PauseResult]  # one per pause call; the last one repeats
    pauses: int = 0
    facts: list[Envelope] = field(default_factory=list)
    dead: list[tuple[Record, str]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    reads: int = 0
    resumes: list[ResumeResult] = field(
        default_factory=lambda: [ResumeResult(ResumeOutcome.RESUMED, 201)]
    )
    connects: list[int] = field(default_factory=list)
    timeouts: list[TimeoutResult] = field(
        default_factory=lambda: [TimeoutResult(TimeoutOutcome.SET, 204)]
    )
    timeout_calls: list[int] = field(default_factory=list)
    refresh_calls: list[int] = field(default_factory=list)
    kills: list[KillResult] = field(default_factory=lambda: [KillResult(KillOutcome.KILLED, 204)])
    kill_calls: int = 0

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        self.reads += 1
        return self.docs[min(self.reads, len(self.docs)) - 1]

    async def pause(self, sandbox_id: str) -> PauseResult:
        self.pauses += 1
        return self.answers[min(self.pauses, len(self.answers)) - 1]

    async def set_timeout(self, sandbox_id: str, timeout_seconds: int) -> TimeoutResult:
        self.timeout_calls.append(timeout_seconds)
        return self.timeouts[min(len(self.timeout_calls), len(self.timeouts)) - 1]

    async def refresh(self, sandbox_id: str, duration_seconds: int) -> TimeoutResult:
        self.refresh_calls.append(duration_seconds)
        return self.timeouts[min(len(self.refresh_calls), len(self.timeouts)) - 1]

    async def kill(self, sandbox_id: str) -> KillResult:
        self.kill_calls += 1
        return self.kills[min(self.kill_calls, len(self.kills)) - 1]

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> ResumeResult:
        self.connects.append(timeout_seconds)
        return self.resumes[min(len(self.connects), len(self.resumes)) - 1]

    async def publish(self, fact: Envelope) -> None:
        self.facts.append(fact)

    async def send(self, record: Record, reason: str) -> None:
        self.dead.append((record, reason))

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def actuator(self, ledger: Ledger | None = None) -> Actuator:
        return Actuator(
            Ports(self, self, self, self, ledger),
            retry=RetryPolicy(sleep=self.sleep, rand=lambda: 0.5),
            clock=lambda: NOW,
        )


def record(command: Command = CMD) -> Record:
    return Record("sandbox-commands", 3, 42, commands.encode(command))


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [(OK, "paused"), (PauseResult(PauseOutcome.ALREADY_PAUSED, 409, "already"), "already_paused")],
)
async def test_accepted_pause_publishes_a_paused_fact_from_the_enforcer(
    answer: PauseResult, outcome: str
) -> None:
    fakes = Fakes([doc()], [answer])
    handled = await fakes.actuator().handle(record())
    assert (handled.outcome, fakes.pauses, fakes.dead) == (outcome, 1, [])
    (fact,) = fakes.facts
    assert fact.type == FactType.PAUSED
    assert fact.source == Source.ENFORCER
    assert fact.event_id == f"{CMD.command_id}:paused"
    assert (fact.sandbox_id, fact.project_id, fact.occurred_at) == ("sbx-1", "p1", NOW)
    assert fact.data == {
        "reason": "idle",
        "command_id": CMD.command_id,
        "e2b_status": answer.status,
    }


async def test_gone_sandbox_is_a_killed_fact() -> None:
    fakes = Fakes([doc(Status.RUNNING)], [PauseResult(PauseOutcome.GONE, 404, "not found")])
    assert (await fakes.actuator().handle(record())).outcome == "gone"
    (fact,) = fakes.facts
    assert (fact.type, fact.event_id) == (FactType.KILLED, f"{CMD.command_id}:killed")
    assert fact.data["kill_reason"] == "not_found"


async def test_activity_after_judging_cancels_without_calling_e2b() -> None:
    fakes = Fakes([doc(active=T0 + timedelta(seconds=1))], [OK])
    assert (await fakes.actuator().handle(record())).outcome == "cancelled"
    assert fakes.pauses == 0
    (fact,) = fakes.facts
    assert (fact.type, fact.event_id) == (FactType.PAUSE_CANCELLED, f"{CMD.command_id}:cancelled")
    assert (fact.source, fact.data["reason"]) == (Source.ENFORCER, "activity")


@pytest.mark.parametrize(
    "current", [None, doc(Status.PAUSED), doc(Status.KILLED), doc(Status.STARTING)]
)
async def test_a_sandbox_that_moved_on_gets_no_call_and_no_fact(current: StatusDoc | None) -> None:
    fakes = Fakes([current], [OK])
    assert (await fakes.actuator().handle(record())).outcome == "skipped"
    assert (fakes.pauses, fakes.facts, fakes.dead) == (0, [], [])


@pytest.mark.parametrize(
    "busy", [BUSY, LIMITED, PauseResult(PauseOutcome.RETRYABLE, None, "timeout")]
)
async def test_retryable_answers_are_retried_with_backoff_then_paused(busy: PauseResult) -> None:
    fakes = Fakes([doc()], [busy, busy, OK])
    handled = await fakes.actuator().handle(record())
    assert (handled.outcome, handled.attempts, fakes.pauses) == ("paused", 3, 3)
    assert fakes.sleeps == [0.75, 1.5]  # base 1 s doubling, jitter at 75 %
    assert [f.type for f in fakes.facts] == [FactType.PAUSED]


async def test_a_429s_retry_after_is_waited_out_never_less() -> None:
    # E2B asked for 7 s; our own backoff would have tried again after 0.75 s.
    asked = PauseResult(PauseOutcome.RETRYABLE, 429, "HTTP 429: Rate limit", retry_after=7.0)
    brief = PauseResult(PauseOutcome.RETRYABLE, 429, "HTTP 429: Rate limit", retry_after=0.1)
    fakes = Fakes([doc()], [asked, brief, OK])
    handled = await fakes.actuator().handle(record())
    assert (handled.outcome, handled.attempts) == ("paused", 3)
    assert fakes.sleeps == [7.0, 1.5]  # a shorter Retry-After than our backoff changes nothing


async def test_activity_during_backoff_cancels_the_retry() -> None:
    fakes = Fakes([doc(), doc(active=T0 + timedelta(seconds=30))], [BUSY, OK])
    assert (await fakes.actuator().handle(record())).outcome == "cancelled"
    assert fakes.pauses == 1
    assert [f.type for f in fakes.facts] == [FactType.PAUSE_CANCELLED]


async def test_retries_are_bounded_then_dead_lettered_and_cancelled() -> None:
    fakes = Fakes([doc()], [LIMITED])
    handled = await fakes.actuator().handle(record())
    assert (handled.outcome, fakes.pauses) == ("gave_up", 5)
    assert len(fakes.sleeps) == 4
    assert sum(fakes.sleeps) <= 15
    ((dead, reason),) = fakes.dead
    assert (dead.partition, dead.offset) == (3, 42)
    assert "gave up after 5 attempts" in reason
    assert "429" in reason
    (fact,) = fakes.facts
    assert (fact.type, fact.data["reason"]) == (FactType.PAUSE_CANCELLED, "e2b_gave_up")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"{not json", "not a sandbox command"),
        (None, "not a sandbox command"),
        (
            commands.encode(CMD).replace(b'"type":"pause"', b'"type":"reboot"'),
            "not a sandbox command",
        ),
        (
            commands.encode(msgspec.structs.replace(CMD, judged_last_active_at=None)),
            "without judged_last_active_at",
        ),
    ],
)
async def test_unusable_commands_are_dead_lettered_with_the_reason(
    value: bytes | None, why: str
) -> None:
    fakes = Fakes([doc()], [OK])
    assert (await fakes.actuator().handle(Record("sandbox-commands", 0, 7, value))).outcome == (
        "invalid"
    )
    ((dead, reason),) = fakes.dead
    assert why in reason
    assert (dead.value, dead.offset) == (value, 7)
    assert (fakes.pauses, fakes.facts) == (0, [])


async def test_a_failing_sink_propagates_so_the_command_is_redelivered() -> None:
    class Down(Fakes):
        async def publish(self, fact: Envelope) -> None:
            raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await Down([doc()], [OK]).actuator().handle(record())


def test_retry_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(attempts=10, base_seconds=1.0, cap_seconds=10.0)
    assert [policy.delay(n, 0.999999) for n in (1, 2, 3, 4, 5, 6)] == pytest.approx(
        [1, 2, 4, 8, 10, 10], rel=1e-5
    )
    assert policy.delay(1, 0.0) == 0.5


@pytest.mark.parametrize(
    ("status", "message", "outcome"),
    [
        (204, "", PauseOutcome.PAUSED),
        (409, "Sandbox sbx-1 is already paused", PauseOutcome.ALREADY_PAUSED),
        (409, "Sandbox cannot be paused while in 'pausing' state", PauseOutcome.TRANSITIONAL),
        (404, "Sandbox not found", PauseOutcome.GONE),
        (429, "Rate limit exceeded", PauseOutcome.RETRYABLE),
        (500, "boom", PauseOutcome.RETRYABLE),
        (503, "", PauseOutcome.RETRYABLE),
        (401, "Invalid API key", PauseOutcome.RETRYABLE),
    ],
)
def test_e2b_pause_answers_are_classified(status: int, message: str, outcome: PauseOutcome) -> None:
    result = classify_pause(status, message)
    assert (result.outcome, result.status) == (outcome, status)


@dataclass
class Ledger:
    ids: set[str] = field(default_factory=set)

    async def done(self, command_id: str) -> bool:
        return command_id in self.ids

    async def remember(self, command_id: str) -> None:
        self.ids.add(command_id)


async def test_a_copy_of_a_carried_out_command_never_reaches_e2b_again() -> None:
    fakes, ledger = Fakes([doc()], [OK]), Ledger()
    actuator = fakes.actuator(ledger)
    first = await actuator.handle(record())
    second = await actuator.handle(record())
    assert (first.outcome, second.outcome) == ("paused", "duplicate")
    assert fakes.pauses == 1
    assert len(fakes.facts) == 1


async def test_a_command_that_gave_up_is_not_remembered_so_a_copy_is_tried_again() -> None:
    busy = PauseResult(PauseOutcome.RETRYABLE, 500, "boom")
    fakes, ledger = Fakes([doc()], [busy]), Ledger()
    actuator = fakes.actuator(ledger)
    assert (await actuator.handle(record())).outcome == "gave_up"
    assert ledger.ids == set()


WAKE = Command(
    command_id="resume:sbx-1:abc",
    type=CommandType.RESUME,
    sandbox_id="sbx-1",
    project_id="p1",
    issued_at=NOW,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, ResumeOutcome.RESUMED),
        (201, ResumeOutcome.RESUMED),
        (404, ResumeOutcome.GONE),
        (409, ResumeOutcome.GONE),
        (429, ResumeOutcome.RETRYABLE),
        (503, ResumeOutcome.RETRYABLE),
    ],
)
def test_connect_answers_are_classified_as_documented(status: int, outcome: ResumeOutcome) -> None:
    assert classify_connect(status, "x").outcome is outcome


async def test_wake_resumes_through_connect_and_publishes_a_resumed_fact() -> None:
    fakes = Fakes([doc(Status.PAUSED)], [OK])
    handled = await fakes.actuator().handle(record(WAKE))
    assert handled.outcome == "resumed"
    assert fakes.connects == [300]
    assert fakes.pauses == 0
    (fact,) = fakes.facts
    assert (fact.type, fact.source, fact.event_id) == (
        FactType.RESUMED,
        Source.ENFORCER,
        "resume:sbx-1:abc:resumed",
    )


async def test_wake_of_a_gone_sandbox_is_a_killed_fact() -> None:
    fakes = Fakes([None], [OK], resumes=[ResumeResult(ResumeOutcome.GONE, 404, "gone")])
    assert (await fakes.actuator().handle(record(WAKE))).outcome == "gone"
    assert [f.type for f in fakes.facts] == [FactType.KILLED]


async def test_wake_retries_then_gives_up_with_a_dead_letter_and_wake_failed() -> None:
    busy = ResumeResult(ResumeOutcome.RETRYABLE, 503, "busy")
    fakes = Fakes([None], [OK], resumes=[busy])
    handled = await fakes.actuator().handle(record(WAKE))
    assert handled.outcome == "gave_up"
    assert len(fakes.connects) == RetryPolicy().attempts
    assert [f.type for f in fakes.facts] == [FactType.WAKE_FAILED]
    assert "resume gave up" in fakes.dead[0][1]


EXTEND = Command(
    command_id="extend:sbx-1:1",
    type=CommandType.EXTEND_TIMEOUT,
    sandbox_id="sbx-1",
    project_id="p1",
    issued_at=NOW,
    data={"timeout_seconds": 600},
)


@pytest.mark.parametrize(
    ("answer", "outcome", "fact_types"),
    [
        (TimeoutResult(TimeoutOutcome.SET, 204), "set", [FactType.UPDATED]),
        (TimeoutResult(TimeoutOutcome.NOT_RUNNING, 409, "paused"), "skipped", []),
        (TimeoutResult(TimeoutOutcome.GONE, 404, "gone"), "gone", [FactType.KILLED]),
    ],
)
async def test_keep_alive_extends_e2bs_end_and_records_it(
    answer: TimeoutResult, outcome: str, fact_types: list[FactType]
) -> None:
    fakes = Fakes([doc()], [OK], timeouts=[answer])
    handled = await fakes.actuator().handle(record(EXTEND))
    assert handled.outcome == outcome
    assert fakes.refresh_calls == [600]
    assert [f.type for f in fakes.facts] == fact_types
    if fact_types == [FactType.UPDATED]:
        assert fakes.facts[0].data["set_timeout"] == (NOW + timedelta(seconds=600)).isoformat()


class FakeRedis:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def register_script(self, script: str) -> None:
        return None

    async def hget(self, key: str, field: str) -> Any:
        return (self.data.get(key) or {}).get(field)

    async def exists(self, key: str) -> int:
        return int(key in self.data)


async def test_a_missing_document_is_no_answer_while_redis_is_rebuilt() -> None:
    # Redis restarted empty: until the projector has put the read model back (its mark), a
    # missing document must not drop the command as "sandbox gone".
    redis: Any = FakeRedis({})
    reader = ReadModelReader(redis)
    with pytest.raises(ReadModelMissingError):
        await reader.by_sandbox("sbx-1")
    redis.data[keys.READ_MODEL_MARKER] = b'{"by": "projector"}'
    assert await reader.by_sandbox("sbx-1") is None  # complete: really unknown


def running_until(end: datetime) -> StatusDoc:
    return StatusDoc(
        sandbox_id="sbx-1",
        project_id="p1",
        status=Status.RUNNING,
        last_active_at=NOW,
        status_changed_at=T0,
        timeout_at=end,
    )


async def test_a_heartbeat_never_shortens_the_sandboxs_life() -> None:
    # The app gave its sandbox an hour; a heartbeat's keep-alive asks for 10 minutes. E2B's
    # `/timeout` would set the end to now + 10 min; the extend-only `/refreshes` keeps the hour.
    an_hour = NOW + timedelta(hours=1)
    fakes = Fakes([running_until(an_hour)], [OK])
    handled = await fakes.actuator().handle(record(EXTEND))
    assert handled.outcome == "set"
    assert fakes.timeout_calls == []  # never the call that can shorten
    assert fakes.refresh_calls == [600]
    (fact,) = fakes.facts
    assert fact.data["set_timeout"] == an_hour.isoformat()  # the end recorded is not earlier


async def test_a_heartbeat_past_e2bs_lifetime_limit_is_final_not_retried() -> None:
    at_limit = TimeoutResult(TimeoutOutcome.AT_LIMIT, 400, "Max instance length exceeded")
    fakes = Fakes([running_until(NOW)], [OK], timeouts=[at_limit])
    handled = await fakes.actuator().handle(record(EXTEND))
    assert (handled.outcome, handled.attempts) == ("at_limit", 1)
    assert fakes.dead == []
    assert fakes.facts == []
    assert fakes.sleeps == []


async def test_a_heartbeat_near_the_runs_hard_end_records_that_end_not_beyond() -> None:
    # E2B caps a refresh at the maximum instance length: the end we record is capped the same.
    hard_end = NOW + timedelta(minutes=4)
    near = msgspec.structs.replace(
        running_until(NOW + timedelta(minutes=1)), max_lifetime_at=hard_end
    )
    fakes = Fakes([near], [OK])
    handled = await fakes.actuator().handle(record(EXTEND))
    assert handled.outcome == "set"
    (fact,) = fakes.facts
    assert fact.data["set_timeout"] == hard_end.isoformat()


@pytest.mark.parametrize(
    ("status", "message", "outcome"),
    [
        (204, "", TimeoutOutcome.SET),
        (409, "Sandbox is paused", TimeoutOutcome.NOT_RUNNING),
        (404, "not found", TimeoutOutcome.GONE),
        (410, "Sandbox was killed", TimeoutOutcome.GONE),
        (400, "Max instance length exceeded", TimeoutOutcome.AT_LIMIT),
        (400, "bad body", TimeoutOutcome.RETRYABLE),
        (429, "Rate limit exceeded", TimeoutOutcome.RETRYABLE),
        (None, "timeout: ReadTimeout", TimeoutOutcome.RETRYABLE),
    ],
)
def test_refresh_answers_mean_what_e2b_documents(
    status: int | None, message: str, outcome: TimeoutOutcome
) -> None:
    assert classify_refresh(status, message).outcome is outcome


def test_a_killed_sandboxs_410_is_gone_for_every_command() -> None:
    assert classify_pause(410, "Sandbox was killed").outcome is PauseOutcome.GONE
    assert classify_connect(410, "Sandbox was killed").outcome is ResumeOutcome.GONE
    assert classify_connect(400, "Max instance length exceeded").outcome is (ResumeOutcome.AT_LIMIT)


@dataclass
class Books:
    """The policies in force as the actuator reads them (readmodel/policies.py)."""

    book: PolicyBook
    asked: list[str | None] = field(default_factory=list)

    async def book_for(self, project_id: str | None) -> PolicyBook:
        self.asked.append(project_id)
        return self.book


def with_policies(fakes: Fakes, book: PolicyBook) -> Actuator:
    return Actuator(
        Ports(fakes, fakes, fakes, fakes, None, Books(book)),
        retry=RetryPolicy(sleep=fakes.sleep, rand=lambda: 0.5),
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(
    "policy",
    [
        Policy(never_pause=True),
        # Idle since T0, NOW is T0 + 5 min: a 10-minute policy timeout is not over yet.
        Policy(idle_timeout_seconds=600),
    ],
)
@pytest.mark.parametrize("level", ["project", "default"])
async def test_a_pause_the_policy_in_force_no_longer_allows_is_cancelled_without_e2b(
    policy: Policy, level: str
) -> None:
    """The tick judged with an index written before the policy changed: the actuator re-judges
    against the policies in force and cancels (status back to RUNNING) instead of pausing."""
    fakes = Fakes([doc()], [OK])
    book = PolicyBook(policy) if level == "default" else PolicyBook(None, {"p1": policy})
    assert (await with_policies(fakes, book).handle(record())).outcome == "cancelled"
    assert fakes.pauses == 0
    (fact,) = fakes.facts
    assert (fact.type, fact.data["reason"]) == (FactType.PAUSE_CANCELLED, "policy")


@pytest.mark.parametrize(
    ("book", "metadata"),
    [
        (PolicyBook(), {}),  # no policy: the setting's deadline, as the tick judged it
        (PolicyBook(None, {"p1": Policy(idle_timeout_seconds=120)}), {}),  # over at T0 + 2 min
        (PolicyBook(None, {"other": Policy(never_pause=True)}), {}),  # another project's
        # The sandbox's own metadata (60 s) comes before its project's 10 minutes.
        (PolicyBook(None, {"p1": Policy(idle_timeout_seconds=600)}), {"idleTimeoutSeconds": "60"}),
    ],
)
async def test_a_pause_the_policy_in_force_allows_goes_ahead(
    book: PolicyBook, metadata: dict[str, str]
) -> None:
    current = msgspec.structs.replace(doc(), metadata=metadata)
    fakes = Fakes([current], [OK])
    assert (await with_policies(fakes, book).handle(record())).outcome == "paused"
    assert fakes.pauses == 1


def forced(reason: str) -> Command:
    return msgspec.structs.replace(CMD, data={"reason": reason, "idle_seconds": 300})


@pytest.mark.parametrize("reason", ["maxRunningTime", "quietHours"])
async def test_a_policys_forced_pause_is_not_cancelled_by_activity(reason: str) -> None:
    rule = (
        Policy(max_lifetime_seconds=3600)
        if reason == "maxRunningTime"
        else Policy(quiet_hours=QuietHours(start="12:00", end="13:00", timezone="UTC"))
    )
    fakes = Fakes([doc(active=T0 + timedelta(minutes=4))], [OK])
    actuator = with_policies(fakes, PolicyBook(None, {"p1": rule}))
    assert (await actuator.handle(record(forced(reason)))).outcome == "paused"
    assert fakes.pauses == 1
    # The same activity cancels an idle pause.
    fakes = Fakes([doc(active=T0 + timedelta(minutes=4))], [OK])
    actuator = with_policies(fakes, PolicyBook(None, {"p1": rule}))
    assert (await actuator.handle(record(forced("idle")))).outcome == "cancelled"


async def test_a_forced_pause_whose_rule_was_lifted_meanwhile_is_cancelled() -> None:
    fakes = Fakes([doc()], [OK])
    actuator = with_policies(fakes, PolicyBook(None, {"p1": Policy(idle_timeout_seconds=60)}))
    assert (await actuator.handle(record(forced("maxRunningTime")))).outcome == "cancelled"
    assert fakes.pauses == 0
    (fact,) = fakes.facts
    assert fact.data["reason"] == "policy"


@pytest.mark.parametrize(
    ("window", "held"), [(("12:00", "13:00"), False), (("13:00", "14:00"), True)]
)
async def test_no_keep_alive_holds_a_sandbox_inside_its_projects_quiet_hours(
    window: tuple[str, str], held: bool
) -> None:
    """NOW is 12:05 UTC: inside the first window, before the second."""
    quiet = QuietHours(start=window[0], end=window[1], timezone="UTC")
    fakes = Fakes([doc(Status.RUNNING)], [OK])
    actuator = with_policies(fakes, PolicyBook(None, {"p1": Policy(quiet_hours=quiet)}))
    handled = await actuator.handle(record(EXTEND))
    assert (handled.outcome, fakes.refresh_calls) == (
        ("set", [600]) if held else ("quiet_hours", [])
    )


PAUSED_SINCE = T0 - timedelta(days=2)
KILL = Command(
    command_id=f"delete:sbx-1:{PAUSED_SINCE.isoformat()}",
    type=CommandType.KILL,
    sandbox_id="sbx-1",
    project_id="p1",
    issued_at=NOW,
    data={"reason": "deleteAfterPaused", "paused_since": PAUSED_SINCE.isoformat()},
)
DELETES = PolicyBook(None, {"p1": Policy(delete_after_paused_seconds=86_400)})


def paused_doc(since: datetime = PAUSED_SINCE) -> StatusDoc:
    return msgspec.structs.replace(doc(Status.PAUSED), status_changed_at=since)


@pytest.mark.parametrize(
    ("answer", "kill_reason"),
    [
        (KillResult(KillOutcome.KILLED, 204), "deleteAfterPaused"),
        (KillResult(KillOutcome.GONE, 404), "not_found"),
    ],
)
async def test_a_policys_delete_kills_the_paused_sandbox_at_e2b_and_records_why(
    answer: KillResult, kill_reason: str
) -> None:
    fakes = Fakes([paused_doc()], [OK], kills=[answer])
    handled = await with_policies(fakes, DELETES).handle(record(KILL))
    assert (handled.outcome, fakes.kill_calls) == (answer.outcome, 1)
    (fact,) = fakes.facts
    assert (fact.type, fact.data["kill_reason"]) == (FactType.KILLED, kill_reason)


@pytest.mark.parametrize(
    ("current", "book"),
    [
        (doc(Status.RUNNING), DELETES),  # resumed meanwhile
        (paused_doc(NOW - timedelta(minutes=1)), DELETES),  # resumed and paused again since
        (paused_doc(), PolicyBook()),  # the policy no longer deletes
        (paused_doc(), PolicyBook(None, {"p1": Policy(delete_after_paused_seconds=7 * 86_400)})),
        (None, DELETES),
    ],
)
async def test_a_delete_the_sandbox_or_policy_no_longer_calls_for_never_reaches_e2b(
    current: StatusDoc | None, book: PolicyBook
) -> None:
    fakes = Fakes([current], [OK])
    assert (await with_policies(fakes, book).handle(record(KILL))).outcome == "skipped"
    assert (fakes.kill_calls, fakes.facts) == (0, [])


async def test_a_refused_delete_is_retried_then_dead_lettered() -> None:
    refused = KillResult(KillOutcome.RETRYABLE, 500, "HTTP 500: boom")
    fakes = Fakes([paused_doc()], [OK], kills=[refused])
    handled = await with_policies(fakes, DELETES).handle(record(KILL))
    assert (handled.outcome, fakes.kill_calls, fakes.facts) == ("gave_up", 5, [])
    ((_, reason),) = fakes.dead
    assert "gave up after 5 attempts" in reason

"""Use case: carry out one command from `sandbox-commands` (pause, resume, extend timeout)
against E2B.

No Kafka, Redis or HTTP here: the status reader, E2B client, fact sink and dead letters come in
as protocols (`Ports`), so every branch is tested with fakes. The caller acks the record only
after `handle` returns, i.e. after the resulting fact (or dead letter) is durable; an exception
from a sink propagates so the record is redelivered, never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from enforcer.actuator import facts
from enforcer.actuator.retry import (
    Handled,
    Operation,
    Retry,
    RetryPolicy,
    with_retries,
)
from enforcer.domain.deletes import still_deletable
from enforcer.domain.idle import (
    PauseCommand,
    extended_end,
    pause_reason,
    policy_allows,
    still_due,
)
from enforcer.domain.outcomes import (
    KillOutcome,
    KillResult,
    OutcomeT,
    PauseOutcome,
    PauseResult,
    Result,
    ResumeOutcome,
    ResumeResult,
    TimeoutOutcome,
    TimeoutResult,
)
from sandbox_common import commands
from sandbox_common.commands import Command, CommandType, extend_timeout_seconds
from sandbox_common.dead_letters import DeadLetterSink, Record
from sandbox_common.envelope import Envelope
from sandbox_common.facts import FactSink
from sandbox_common.policies import NO_GOVERNS, Governs, PolicyBook
from sandbox_common.policies.quiet_hours import open_window
from sandbox_common.readmodel import PauseReason, Status, StatusDoc

log = logging.getLogger("enforcer.actuator")


class StatusReader(Protocol):
    """The projector's status document: the freshest view of activity the actuator can get.
    Raises (ReadModelMissingError) rather than answer None while the read model is rebuilt."""

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None: ...


class SandboxControl(Protocol):
    """What the actuator asks of E2B: pause, resume (connect) and extend (refresh)."""

    async def pause(self, sandbox_id: str) -> PauseResult: ...

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> ResumeResult: ...

    async def refresh(self, sandbox_id: str, duration_seconds: int) -> TimeoutResult: ...

    async def kill(self, sandbox_id: str) -> KillResult: ...


class CommandLedger(Protocol):
    """Which commands were already carried out: a copy of one (two ticks judged the same
    idleness before the projector showed PAUSING) must not reach E2B a second time."""

    async def done(self, command_id: str) -> bool: ...

    async def remember(self, command_id: str) -> None: ...


class PolicyLookup(Protocol):
    """The policies in force for a project (its own and the default: readmodel/policies.py)."""

    async def book_for(self, project_id: str | None) -> PolicyBook: ...


@dataclass(frozen=True)
class Ports:
    reader: StatusReader
    e2b: SandboxControl
    facts: FactSink
    dead_letters: DeadLetterSink
    ledger: CommandLedger | None = None
    # None: pauses are judged by activity alone (tests of other branches).
    policies: PolicyLookup | None = None


# How an answer ends an attempt: the fact that says so, built from (command, now, E2B status).
FactOf = Callable[[Command, datetime, int | None], Envelope]
_PAUSE_ENDS: Mapping[PauseOutcome, FactOf] = {
    PauseOutcome.PAUSED: facts.paused,
    PauseOutcome.ALREADY_PAUSED: facts.paused,
    PauseOutcome.GONE: facts.killed,
}
_RESUME_ENDS: Mapping[ResumeOutcome, FactOf] = {
    ResumeOutcome.RESUMED: facts.resumed,
    ResumeOutcome.GONE: facts.killed,
}
# Answers to a keep-alive that end it with no fact: nothing to keep alive (paused), or E2B's
# lifetime limit reached (it ends the sandbox at that limit whatever is asked).
_EXTEND_FINAL: Mapping[TimeoutOutcome, str] = {
    TimeoutOutcome.NOT_RUNNING: "skipped",
    TimeoutOutcome.AT_LIMIT: "at_limit",
}
_KILL_ENDS: Mapping[KillOutcome, FactOf] = {
    KillOutcome.KILLED: facts.deleted,
    KillOutcome.GONE: facts.killed,
}
# Outcomes after which E2B must not be asked again for the same command.
_CARRIED_OUT = frozenset(
    {
        *_PAUSE_ENDS,
        *_RESUME_ENDS,
        ResumeOutcome.AT_LIMIT,
        TimeoutOutcome.SET,
        *_EXTEND_FINAL,
        *_KILL_ENDS,
    }
)
_SUPPORTED = frozenset(
    {CommandType.PAUSE, CommandType.RESUME, CommandType.EXTEND_TIMEOUT, CommandType.KILL}
)


class Actuator:
    def __init__(
        self,
        ports: Ports,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        resume_timeout_seconds: int = 300,
    ) -> None:
        self._ports = ports
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._resume_timeout = resume_timeout_seconds

    async def handle(self, record: Record) -> Handled:
        try:
            command = commands.decode(record.value or b"")
        except commands.CommandError as exc:
            return await self._reject(record, str(exc))
        if command.type not in _SUPPORTED:
            return await self._reject(record, f"unsupported command type {command.type}")
        if command.type is CommandType.PAUSE and command.judged_last_active_at is None:
            return await self._reject(record, "pause command without judged_last_active_at")
        ledger = self._ports.ledger
        if ledger is not None and await ledger.done(command.command_id):
            return _done(command, "duplicate", 0, None)
        operation = {
            CommandType.PAUSE: self._pause,
            CommandType.RESUME: self._resume,
            CommandType.EXTEND_TIMEOUT: self._extend,
            CommandType.KILL: self._kill,
        }[command.type](record, command)
        handled = await with_retries(
            operation, self._retry, self._ports.facts, self._ports.dead_letters
        )
        if ledger is not None and handled.outcome in _CARRIED_OUT:
            await ledger.remember(command.command_id)
        return handled

    def _pause(self, record: Record, command: Command) -> Operation:
        judged = command.judged_last_active_at
        assert judged is not None  # checked by handle
        # deadline/idle_seconds are the ticker's bookkeeping; still_due reads `judged` and why.
        reason = pause_reason(command.data.get("reason"))
        check = PauseCommand(
            command.command_id, command.sandbox_id, None, judged, judged, 0, reason
        )

        async def attempt(n: int) -> Handled | Retry:
            # Re-read before every attempt: activity during the backoff also cancels the pause.
            doc = await self._ports.reader.by_sandbox(command.sandbox_id)
            if not still_due(check, doc):
                return await self._not_due(command, doc, n - 1)
            if doc is not None and not await self._policy_allows(doc, reason):
                return await self._not_due(command, doc, n - 1, "policy")
            result = await self._ports.e2b.pause(command.sandbox_id)
            return await self._end(command, n, result, _PAUSE_ENDS)

        # On giving up: so the sandbox does not stay PAUSING; the next tick judges it again.
        return Operation(
            "pause",
            record,
            command,
            attempt,
            lambda reason: facts.cancelled(command, self._clock(), "e2b_gave_up"),
        )

    def _resume(self, record: Record, command: Command) -> Operation:
        """Wake: E2B's connect, retried like a pause; RESUMED flips the state to RUNNING at once."""

        async def attempt(n: int) -> Handled | Retry:
            result = await self._ports.e2b.connect(command.sandbox_id, self._resume_timeout)
            return await self._end(command, n, result, _RESUME_ENDS)

        # On giving up: so the sandbox does not stay STARTING; as far as we know it is paused.
        return Operation(
            "resume",
            record,
            command,
            attempt,
            lambda reason: facts.wake_failed(command, self._clock(), reason),
        )

    def _extend(self, record: Record, command: Command) -> Operation:
        """Keep-alive while a user is active: E2B's end moves to at least now + N, with the
        extend-only refresh. Never `/timeout`, which sets now + N and so would cut a longer end
        that the app itself chose (right after `created`, that end is not even known to us)."""
        seconds = extend_timeout_seconds(command, self._resume_timeout)

        async def attempt(n: int) -> Handled | Retry:
            doc = await self._ports.reader.by_sandbox(command.sandbox_id)
            if await self._quiet_now(command.project_id):
                return _done(command, "quiet_hours", n - 1, None)
            result = await self._ports.e2b.refresh(command.sandbox_id, seconds)
            final = _EXTEND_FINAL.get(result.outcome)
            if final is not None:
                return _done(command, final, n, result.status)

            def timeout_set(command: Command, now: datetime, status: int | None) -> Envelope:
                return facts.timeout_set(command, now, extended_end(now, seconds, doc))

            ends: Mapping[TimeoutOutcome, FactOf] = {
                TimeoutOutcome.SET: timeout_set,
                TimeoutOutcome.GONE: facts.killed,
            }
            return await self._end(command, n, result, ends)

        # On giving up: nothing to undo, E2B's old end still stands.
        return Operation("timeout", record, command, attempt)

    def _kill(self, record: Record, command: Command) -> Operation:
        """A policy's delete: only while the sandbox is still paused since the pause that was
        judged and the policy in force still deletes it (a resume meanwhile saves it)."""
        paused_since = _time(command.data.get("paused_since"))

        async def attempt(n: int) -> Handled | Retry:
            doc = await self._ports.reader.by_sandbox(command.sandbox_id)
            governs = await self._governs(command.project_id)
            if not still_deletable(doc, governs, paused_since, self._clock()):
                return _done(command, "skipped", n - 1, None)
            result = await self._ports.e2b.kill(command.sandbox_id)
            return await self._end(command, n, result, _KILL_ENDS)

        # On giving up: nothing to undo, the sandbox stays paused; the next tick asks again.
        return Operation("kill", record, command, attempt)

    async def _governs(self, project_id: str | None) -> Governs:
        if self._ports.policies is None:
            return NO_GOVERNS
        return (await self._ports.policies.book_for(project_id)).governs(project_id)

    async def _end(
        self, command: Command, n: int, result: Result[OutcomeT], ends: Mapping[OutcomeT, FactOf]
    ) -> Handled | Retry:
        """A final answer publishes its fact; any other is a reason to try again."""
        if result.outcome is ResumeOutcome.AT_LIMIT:  # running, and E2B will not extend it
            return _done(command, result.outcome, n, result.status)
        fact_of = ends.get(result.outcome)
        if fact_of is None:
            return Retry(result.reason, result.retry_after)
        await self._ports.facts.publish(fact_of(command, self._clock(), result.status))
        return _done(command, result.outcome, n, result.status)

    async def _quiet_now(self, project_id: str | None) -> bool:
        """Inside the project's quiet hours no keep-alive holds a sandbox: E2B's own timeout
        runs on."""
        quiet = (await self._governs(project_id)).quiet_hours
        return quiet is not None and open_window(quiet, self._clock()) is not None

    async def _policy_allows(self, doc: StatusDoc, reason: PauseReason) -> bool:
        if self._ports.policies is None:
            return True
        governs = await self._governs(doc.project_id)
        return policy_allows(doc, governs, self._clock(), reason)

    async def _not_due(
        self, command: Command, doc: StatusDoc | None, attempts: int, why: str = "activity"
    ) -> Handled:
        # Only a pending pause is cancelled: a PAUSED/KILLED/STARTING sandbox already moved on,
        # and a cancel (status RUNNING) would misstate it.
        if doc is None or doc.status not in (Status.RUNNING, Status.PAUSING):
            return _done(command, "skipped", attempts, None)
        # Running or pausing and not still due: activity after `judged`, or a policy change
        # (a longer idle timeout, never pause) since the tick judged it.
        await self._ports.facts.publish(facts.cancelled(command, self._clock(), why))
        return _done(command, "cancelled", attempts, None)

    async def _reject(self, record: Record, reason: str) -> Handled:
        await self._ports.dead_letters.send(record, reason)
        log.error("command dead-lettered: %s", reason, extra={"offset": record.offset})
        return Handled("invalid")


def _done(command: Command, outcome: str, attempts: int, status: int | None) -> Handled:
    log.info(
        "pause command for sandbox %s: %s",
        command.sandbox_id,
        outcome,
        extra={
            "command_id": command.command_id,
            "sandbox_id": command.sandbox_id,
            "e2b_status": status,
            "attempts": attempts,
        },
    )
    return Handled(outcome, attempts)


def _time(raw: object) -> datetime | None:
    """A command's ISO time field (None when absent or unreadable: the delete is skipped)."""
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None

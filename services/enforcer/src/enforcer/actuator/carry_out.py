"""Use case: carry out one command from `sandbox-commands` (pause, resume, extend timeout)
against E2B.

No Kafka, Redis or HTTP here: the status reader, E2B client, fact sink and dead letters come in
as protocols, so every branch is tested with fakes. The caller acks the record only after
`handle` returns, i.e. after the resulting fact (or dead letter) is durable; an exception from a
sink propagates so the record is redelivered, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from enforcer.actuator import facts
from enforcer.domain.idle import PauseCommand, still_due
from enforcer.domain.outcomes import (
    PauseOutcome,
    PauseResult,
    ResumeOutcome,
    ResumeResult,
    TimeoutOutcome,
    TimeoutResult,
)
from sandbox_common import commands
from sandbox_common.commands import Command, CommandType, extend_timeout_seconds
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import Status, StatusDoc

log = logging.getLogger("enforcer.actuator")


class StatusReader(Protocol):
    """The projector's status document: the freshest view of activity the actuator can get.
    Raises (ReadModelMissingError) rather than answer None while the read model is rebuilt."""

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None: ...


class SandboxControl(Protocol):
    """What the actuator asks of E2B: pause, resume (connect) and extend (timeout)."""

    async def pause(self, sandbox_id: str) -> PauseResult: ...

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> ResumeResult: ...

    async def set_timeout(self, sandbox_id: str, timeout_seconds: int) -> TimeoutResult: ...


class FactSink(Protocol):
    async def publish(self, fact: Envelope) -> None: ...


class DeadLetters(Protocol):
    async def send(self, record: Record, reason: str) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 10.0

    def delay(self, attempt: int, rand: float) -> float:
        """Exponential, capped, with jitter in [50%, 100%): at most 1+2+4+8 = 15 s by default."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1)) * (0.5 + rand / 2)


@dataclass(frozen=True)
class Handled:
    outcome: str  # paused, already_paused, gone, cancelled, skipped, gave_up, invalid, duplicate
    attempts: int = 0


# Outcomes after which E2B must not be asked again for the same command.
_CARRIED_OUT = frozenset(
    {
        PauseOutcome.PAUSED,
        PauseOutcome.ALREADY_PAUSED,
        PauseOutcome.GONE,
        ResumeOutcome.RESUMED,
        TimeoutOutcome.SET,
    }
)


_SUPPORTED = frozenset({CommandType.PAUSE, CommandType.RESUME, CommandType.EXTEND_TIMEOUT})


class CommandLedger(Protocol):
    """Which commands were already carried out: a copy of one (two ticks judged the same
    idleness before the projector showed PAUSING) must not reach E2B a second time."""

    async def done(self, command_id: str) -> bool: ...

    async def remember(self, command_id: str) -> None: ...


class Actuator:
    def __init__(
        self,
        reader: StatusReader,
        e2b: SandboxControl,
        facts_sink: FactSink,
        dead_letters: DeadLetters,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        ledger: CommandLedger | None = None,
        resume_timeout_seconds: int = 300,
    ) -> None:
        self._resume_timeout = resume_timeout_seconds
        self._reader, self._e2b, self._ledger = reader, e2b, ledger
        self._facts, self._dead = facts_sink, dead_letters
        self._retry = retry or RetryPolicy()
        self._clock, self._sleep, self._rand = clock, sleep, rand

    async def handle(self, record: Record) -> Handled:
        try:
            command = commands.decode(record.value or b"")
        except commands.CommandError as exc:
            return await self._reject(record, str(exc))
        if command.type not in _SUPPORTED:
            return await self._reject(record, f"unsupported command type {command.type}")
        if command.type is CommandType.PAUSE and command.judged_last_active_at is None:
            return await self._reject(record, "pause command without judged_last_active_at")
        if self._ledger is not None and await self._ledger.done(command.command_id):
            return self._done(command, "duplicate", 0, None)
        if command.type is CommandType.RESUME:
            handled = await self._resume(record, command)
        elif command.type is CommandType.EXTEND_TIMEOUT:
            handled = await self._extend(record, command)
        else:
            assert command.judged_last_active_at is not None
            handled = await self._pause(record, command, command.judged_last_active_at)
        if self._ledger is not None and handled.outcome in _CARRIED_OUT:
            await self._ledger.remember(command.command_id)
        return handled

    async def _pause(self, record: Record, command: Command, judged: datetime) -> Handled:
        # deadline/idle_seconds are the ticker's bookkeeping; still_due only reads `judged`.
        check = PauseCommand(command.command_id, command.sandbox_id, None, judged, judged, 0)

        async def attempt(n: int) -> Handled | str:
            # Re-read before every attempt: activity during the backoff also cancels the pause.
            doc = await self._reader.by_sandbox(command.sandbox_id)
            if not still_due(check, doc):
                return await self._not_due(command, doc, n - 1)
            result = await self._e2b.pause(command.sandbox_id)
            if result.outcome in (PauseOutcome.PAUSED, PauseOutcome.ALREADY_PAUSED):
                await self._facts.publish(facts.paused(command, self._clock(), result.status))
                return self._done(command, result.outcome, n, result.status)
            if result.outcome is PauseOutcome.GONE:
                await self._facts.publish(facts.killed(command, self._clock(), result.status))
                return self._done(command, "gone", n, result.status)
            return result.reason

        # On giving up: so the sandbox does not stay PAUSING; the next tick judges it again.
        return await self._with_retries(
            record,
            command,
            "pause",
            attempt,
            lambda reason: facts.cancelled(command, self._clock(), "e2b_gave_up"),
        )

    async def _resume(self, record: Record, command: Command) -> Handled:
        """Wake: E2B's connect, retried like a pause; RESUMED flips the state to RUNNING at once."""

        async def attempt(n: int) -> Handled | str:
            result = await self._e2b.connect(command.sandbox_id, self._resume_timeout)
            if result.outcome is ResumeOutcome.RESUMED:
                await self._facts.publish(facts.resumed(command, self._clock(), result.status))
                return self._done(command, result.outcome, n, result.status)
            if result.outcome is ResumeOutcome.GONE:
                await self._facts.publish(facts.killed(command, self._clock(), result.status))
                return self._done(command, "gone", n, result.status)
            return result.reason

        # On giving up: so the sandbox does not stay STARTING; as far as we know it is paused.
        return await self._with_retries(
            record,
            command,
            "resume",
            attempt,
            lambda reason: facts.wake_failed(command, self._clock(), reason),
        )

    async def _extend(self, record: Record, command: Command) -> Handled:
        """Keep-alive: E2B's timeout moves to now + N while a user is active."""
        seconds = extend_timeout_seconds(command, self._resume_timeout)

        async def attempt(n: int) -> Handled | str:
            result = await self._e2b.set_timeout(command.sandbox_id, seconds)
            now = self._clock()
            if result.outcome is TimeoutOutcome.SET:
                end = now + timedelta(seconds=seconds)
                await self._facts.publish(facts.timeout_set(command, now, end))
                return self._done(command, result.outcome, n, result.status)
            if result.outcome is TimeoutOutcome.GONE:
                await self._facts.publish(facts.killed(command, now, result.status))
                return self._done(command, "gone", n, result.status)
            if result.outcome is TimeoutOutcome.NOT_RUNNING:
                return self._done(command, "skipped", n, result.status)
            return result.reason

        # On giving up: nothing to undo, E2B's old end still stands.
        return await self._with_retries(record, command, "timeout", attempt, None)

    async def _with_retries(
        self,
        record: Record,
        command: Command,
        operation: str,
        attempt: Callable[[int], Awaitable[Handled | str]],
        give_up_fact: Callable[[str], Envelope] | None,
    ) -> Handled:
        """Runs `attempt` (finished: a Handled; to retry: the reason) with bounded backoff and
        jitter; past the last attempt the command is dead-lettered with the last reason."""
        last = ""
        for n in range(1, self._retry.attempts + 1):
            outcome = await attempt(n)
            if isinstance(outcome, Handled):
                return outcome
            last = outcome
            if n < self._retry.attempts:
                delay = self._retry.delay(n, self._rand())
                log.warning(
                    "%s of sandbox %s not accepted (%s), retrying in %.2fs",
                    operation,
                    command.sandbox_id,
                    last,
                    delay,
                    extra={
                        "command_id": command.command_id,
                        "sandbox_id": command.sandbox_id,
                        "attempt": n,
                    },
                )
                await self._sleep(delay)
        reason = f"{operation} gave up after {self._retry.attempts} attempts: {last}"
        await self._dead.send(record, reason)
        if give_up_fact is not None:
            await self._facts.publish(give_up_fact(reason))
        log.error(
            "%s",
            reason,
            extra={"command_id": command.command_id, "sandbox_id": command.sandbox_id},
        )
        return Handled("gave_up", self._retry.attempts)

    async def _not_due(self, command: Command, doc: StatusDoc | None, attempts: int) -> Handled:
        # Only a pending pause is cancelled: a PAUSED/KILLED/STARTING sandbox already moved on,
        # and a cancel (status RUNNING) would misstate it.
        if doc is None or doc.status not in (Status.RUNNING, Status.PAUSING):
            return self._done(command, "skipped", attempts, None)
        # Running or pausing and not still due: there was activity after `judged`.
        await self._facts.publish(facts.cancelled(command, self._clock(), "activity"))
        return self._done(command, "cancelled", attempts, None)

    async def _reject(self, record: Record, reason: str) -> Handled:
        await self._dead.send(record, reason)
        log.error("command dead-lettered: %s", reason, extra={"offset": record.offset})
        return Handled("invalid")

    def _done(self, command: Command, outcome: str, attempts: int, status: int | None) -> Handled:
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

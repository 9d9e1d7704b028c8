"""Bounded retries of one E2B call: exponential backoff with jitter; past the last attempt the
command is dead-lettered with the last reason, and a fact may undo what was shown meanwhile."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sandbox_common.commands import Command
from sandbox_common.dead_letters import DeadLetterSink, Record
from sandbox_common.envelope import Envelope
from sandbox_common.facts import FactSink

log = logging.getLogger("enforcer.actuator")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 10.0
    # Waiting, and its jitter (fakes in tests).
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int, rand: float) -> float:
        """Exponential, capped, with jitter in [50%, 100%): at most 1+2+4+8 = 15 s by default."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1)) * (0.5 + rand / 2)


@dataclass(frozen=True)
class Handled:
    outcome: str  # paused, already_paused, gone, cancelled, skipped, gave_up, invalid, duplicate
    attempts: int = 0


@dataclass(frozen=True)
class Retry:
    """Why to try again, and how long E2B asked us to wait first (its Retry-After), if it did."""

    reason: str
    after_seconds: float | None = None


@dataclass(frozen=True)
class Operation:
    """One E2B call for one command: `attempt(n)` is finished (a Handled) or says why to try
    again (a Retry); `give_up` is the fact published when every attempt failed, if any."""

    name: str
    record: Record
    command: Command
    attempt: Callable[[int], Awaitable[Handled | Retry]]
    give_up: Callable[[str], Envelope] | None = None


async def with_retries(
    operation: Operation, policy: RetryPolicy, facts: FactSink, dead_letters: DeadLetterSink
) -> Handled:
    command, last = operation.command, ""
    for n in range(1, policy.attempts + 1):
        outcome = await operation.attempt(n)
        if isinstance(outcome, Handled):
            return outcome
        last = outcome.reason
        if n < policy.attempts:
            # E2B's Retry-After (a 429) is honoured: never sooner than it asked.
            delay = max(policy.delay(n, policy.rand()), outcome.after_seconds or 0.0)
            log.warning(
                "%s of sandbox %s not accepted (%s), retrying in %.2fs",
                operation.name,
                command.sandbox_id,
                last,
                delay,
                extra={
                    "command_id": command.command_id,
                    "sandbox_id": command.sandbox_id,
                    "attempt": n,
                },
            )
            await policy.sleep(delay)
    reason = f"{operation.name} gave up after {policy.attempts} attempts: {last}"
    await dead_letters.send(operation.record, reason)
    if operation.give_up is not None:
        await facts.publish(operation.give_up(reason))
    log.error(
        "%s", reason, extra={"command_id": command.command_id, "sandbox_id": command.sandbox_id}
    )
    return Handled("gave_up", policy.attempts)

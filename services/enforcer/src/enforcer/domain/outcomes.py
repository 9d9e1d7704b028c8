"""What E2B's answer to each command means for us (its documented codes, shared/reference/
e2b.md), as typed outcomes the actuator acts on. Pure: the status code and E2B's message in,
an outcome out. No answer at all (status None: a timeout, a refused connection) is retryable,
and so is anything undocumented: retried, bounded, then dead-lettered with the reason, never
dropped silently."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar


class PauseOutcome(StrEnum):
    PAUSED = "paused"
    ALREADY_PAUSED = "already_paused"
    TRANSITIONAL = "transitional"  # pausing/resuming/killing in progress: ask again later
    GONE = "gone"
    RETRYABLE = "retryable"


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"  # 201 resumed, or 200 it was running already (timeout extended)
    GONE = "gone"  # 404, or 409 being killed
    RETRYABLE = "retryable"


class TimeoutOutcome(StrEnum):
    SET = "set"  # 204: the new end is now + timeout
    NOT_RUNNING = "not_running"  # 409: paused or pausing; nothing to keep alive
    GONE = "gone"  # 404
    RETRYABLE = "retryable"


OutcomeT = TypeVar("OutcomeT", PauseOutcome, ResumeOutcome, TimeoutOutcome)


@dataclass(frozen=True)
class Result(Generic[OutcomeT]):
    outcome: OutcomeT
    status: int | None  # None: no HTTP answer (timeout, connection error)
    reason: str = ""


PauseResult = Result[PauseOutcome]
ResumeResult = Result[ResumeOutcome]
TimeoutResult = Result[TimeoutOutcome]


def _retry_reason(status: int | None, message: str) -> str:
    return message if status is None else f"HTTP {status}: {message}"[:300]


def classify_pause(status: int | None, message: str) -> PauseResult:
    if status == 204:
        return PauseResult(PauseOutcome.PAUSED, status)
    if status == 404:
        return PauseResult(PauseOutcome.GONE, status, message)
    if status == 409 and "already paused" in message:
        return PauseResult(PauseOutcome.ALREADY_PAUSED, status, message)
    if status == 409 and "cannot be paused while in" in message:
        return PauseResult(PauseOutcome.TRANSITIONAL, status, message)
    # 429, 5xx, and anything undocumented (an unknown 409, 401 on a bad key).
    return PauseResult(PauseOutcome.RETRYABLE, status, _retry_reason(status, message))


def classify_connect(status: int | None, message: str) -> ResumeResult:
    if status in (200, 201):
        return ResumeResult(ResumeOutcome.RESUMED, status)
    if status in (404, 409):
        return ResumeResult(ResumeOutcome.GONE, status, message)
    return ResumeResult(ResumeOutcome.RETRYABLE, status, _retry_reason(status, message))


def classify_timeout(status: int | None, message: str) -> TimeoutResult:
    if status == 204:
        return TimeoutResult(TimeoutOutcome.SET, status)
    if status == 409:
        return TimeoutResult(TimeoutOutcome.NOT_RUNNING, status, message)
    if status == 404:
        return TimeoutResult(TimeoutOutcome.GONE, status, message)
    return TimeoutResult(TimeoutOutcome.RETRYABLE, status, _retry_reason(status, message))

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
    GONE = "gone"  # 404, 410 killed, or 409 being killed
    AT_LIMIT = "at_limit"  # 400: running past E2B's max instance length, cannot be extended
    RETRYABLE = "retryable"


class TimeoutOutcome(StrEnum):
    SET = "set"  # 204: the end is at least now + the duration asked for (extend only)
    NOT_RUNNING = "not_running"  # 409: paused or pausing; nothing to keep alive
    GONE = "gone"  # 404, or 410 killed
    # 400 "Max instance length exceeded": E2B ends a sandbox's run at a hard limit (24 h on Pro,
    # 1 h on Hobby) whatever is asked; a final answer, never retried.
    AT_LIMIT = "at_limit"
    RETRYABLE = "retryable"


class KillOutcome(StrEnum):
    KILLED = "killed"  # 204
    GONE = "gone"  # 404 (or 410): already gone, as good as killed
    RETRYABLE = "retryable"


OutcomeT = TypeVar("OutcomeT", PauseOutcome, ResumeOutcome, TimeoutOutcome, KillOutcome)


@dataclass(frozen=True)
class Result(Generic[OutcomeT]):
    outcome: OutcomeT
    status: int | None  # None: no HTTP answer (timeout, connection error)
    reason: str = ""
    # Seconds E2B asked us to wait before trying again (a 429's Retry-After), if it said.
    retry_after: float | None = None


PauseResult = Result[PauseOutcome]
ResumeResult = Result[ResumeOutcome]
TimeoutResult = Result[TimeoutOutcome]
KillResult = Result[KillOutcome]


# E2B answers a killed sandbox 410 Gone (e2b-dev/infra, orchestrator keep_alive.go and the
# sandbox handlers: `WasSandboxKilled`), one it never knew 404: both mean gone.
_GONE = (404, 410)


def _retry_reason(status: int | None, message: str) -> str:
    return message if status is None else f"HTTP {status}: {message}"[:300]


def _at_limit(status: int | None, message: str) -> bool:
    """E2B's answer past a sandbox's max instance length (e2b-dev/infra, orchestrator
    keep_alive.go: `errMaxInstanceLengthExceeded`, 400 "Max instance length exceeded")."""
    return status == 400 and "max instance length" in message.lower()


def classify_pause(status: int | None, message: str) -> PauseResult:
    if status == 204:
        return PauseResult(PauseOutcome.PAUSED, status)
    if status in _GONE:
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
    if status in (*_GONE, 409):
        return ResumeResult(ResumeOutcome.GONE, status, message)
    if _at_limit(status, message):
        return ResumeResult(ResumeOutcome.AT_LIMIT, status, message)
    return ResumeResult(ResumeOutcome.RETRYABLE, status, _retry_reason(status, message))


def classify_refresh(status: int | None, message: str) -> TimeoutResult:
    """`POST /sandboxes/{id}/refreshes`: extend only, never shorter than the app set."""
    if status == 204:
        return TimeoutResult(TimeoutOutcome.SET, status)
    if status == 409:
        return TimeoutResult(TimeoutOutcome.NOT_RUNNING, status, message)
    if status in _GONE:
        return TimeoutResult(TimeoutOutcome.GONE, status, message)
    if _at_limit(status, message):
        return TimeoutResult(TimeoutOutcome.AT_LIMIT, status, message)
    return TimeoutResult(TimeoutOutcome.RETRYABLE, status, _retry_reason(status, message))


def classify_kill(status: int | None, message: str) -> KillResult:
    """`DELETE /sandboxes/{id}`: 204 killed, 404 never existed or already gone."""
    if status == 204:
        return KillResult(KillOutcome.KILLED, status)
    if status in _GONE:
        return KillResult(KillOutcome.GONE, status, message)
    return KillResult(KillOutcome.RETRYABLE, status, _retry_reason(status, message))

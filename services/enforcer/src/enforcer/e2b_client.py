"""The E2B REST calls the actuator makes (shared/reference/e2b.md), as typed outcomes.

Every answer, including timeouts and connection errors, becomes a `PauseResult`: the use case
decides what to do with it, this module only says what E2B answered. A semaphore caps calls in
flight and a token bucket paces them, so a burst of due sandboxes never trips E2B's rate limit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

import httpx

from enforcer import actuator_metrics as metrics
from enforcer.rate_limit import TokenBucket


class PauseOutcome(StrEnum):
    PAUSED = "paused"
    ALREADY_PAUSED = "already_paused"
    TRANSITIONAL = "transitional"  # pausing/resuming/killing in progress: ask again later
    GONE = "gone"
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class PauseResult:
    outcome: PauseOutcome
    status: int | None  # None: no HTTP answer (timeout, connection error)
    reason: str = ""


def classify_pause(status: int, message: str) -> PauseResult:
    """Pure: E2B's documented pause answers -> what they mean for us."""
    if status == 204:
        return PauseResult(PauseOutcome.PAUSED, status)
    if status == 404:
        return PauseResult(PauseOutcome.GONE, status, message)
    if status == 409 and "already paused" in message:
        return PauseResult(PauseOutcome.ALREADY_PAUSED, status, message)
    if status == 409 and "cannot be paused while in" in message:
        return PauseResult(PauseOutcome.TRANSITIONAL, status, message)
    # 429, 5xx, and anything undocumented (an unknown 409, 401 on a bad key): retried, bounded,
    # then dead-lettered with this reason, never dropped silently.
    return PauseResult(PauseOutcome.RETRYABLE, status, f"HTTP {status}: {message}"[:300])


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"  # 201 resumed, or 200 it was running already (timeout extended)
    GONE = "gone"  # 404, or 409 being killed
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class ResumeResult:
    outcome: ResumeOutcome
    status: int | None
    reason: str = ""


def classify_connect(status: int, message: str) -> ResumeResult:
    """Pure: E2B's documented `connect` answers -> what they mean for a wake."""
    if status in (200, 201):
        return ResumeResult(ResumeOutcome.RESUMED, status)
    if status in (404, 409):
        return ResumeResult(ResumeOutcome.GONE, status, message)
    return ResumeResult(ResumeOutcome.RETRYABLE, status, f"HTTP {status}: {message}"[:300])


class TimeoutOutcome(StrEnum):
    SET = "set"  # 204: the new end is now + timeout
    NOT_RUNNING = "not_running"  # 409: paused or pausing; nothing to keep alive
    GONE = "gone"  # 404
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class TimeoutResult:
    outcome: TimeoutOutcome
    status: int | None
    reason: str = ""


def classify_timeout(status: int, message: str) -> TimeoutResult:
    """Pure: E2B's documented `POST /sandboxes/{id}/timeout` answers."""
    if status == 204:
        return TimeoutResult(TimeoutOutcome.SET, status)
    if status == 409:
        return TimeoutResult(TimeoutOutcome.NOT_RUNNING, status, message)
    if status == 404:
        return TimeoutResult(TimeoutOutcome.GONE, status, message)
    return TimeoutResult(TimeoutOutcome.RETRYABLE, status, f"HTTP {status}: {message}"[:300])


class E2BClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 10.0,
        max_concurrency: int = 32,
        limiter: TokenBucket | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            limits=httpx.Limits(max_connections=max_concurrency),
            transport=transport,
        )
        self._slots = asyncio.Semaphore(max_concurrency)
        # Default: 100/s, well below E2B's ~666/s team limit, which other clients share.
        self._limiter = limiter or TokenBucket(100.0, 100)

    async def pause(self, sandbox_id: str) -> PauseResult:
        answer = await self._post("pause", f"/sandboxes/{quote(sandbox_id, safe='')}/pause", None)
        if isinstance(answer, str):
            return PauseResult(PauseOutcome.RETRYABLE, None, answer)
        return classify_pause(answer.status_code, _message(answer))

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> ResumeResult:
        """Resume (or keep running) with a fresh E2B timeout: the documented way to wake."""
        path = f"/sandboxes/{quote(sandbox_id, safe='')}/connect"
        answer = await self._post("connect", path, {"timeout": timeout_seconds})
        if isinstance(answer, str):
            return ResumeResult(ResumeOutcome.RETRYABLE, None, answer)
        return classify_connect(answer.status_code, _message(answer))

    async def set_timeout(self, sandbox_id: str, timeout_seconds: int) -> TimeoutResult:
        """E2B's end becomes now + timeout: keeps E2B from killing a sandbox a user is in."""
        path = f"/sandboxes/{quote(sandbox_id, safe='')}/timeout"
        answer = await self._post("timeout", path, {"timeout": timeout_seconds})
        if isinstance(answer, str):
            return TimeoutResult(TimeoutOutcome.RETRYABLE, None, answer)
        return classify_timeout(answer.status_code, _message(answer))

    async def _post(
        self, operation: str, path: str, body: dict[str, int] | None
    ) -> httpx.Response | str:
        """The response, or why there was none (a timeout or transport error, to retry)."""
        async with self._slots:
            await self._limiter.acquire()
            started = time.perf_counter()
            try:
                response = await self._http.post(path, json=body)
            except httpx.TimeoutException as exc:
                _observe(operation, "timeout", started)
                return f"timeout: {type(exc).__name__}"
            except httpx.HTTPError as exc:
                _observe(operation, "error", started)
                return f"transport: {exc!r}"[:300]
            _observe(operation, str(response.status_code), started)
            return response

    async def aclose(self) -> None:
        await self._http.aclose()


def _observe(operation: str, status: str, started: float) -> None:
    metrics.E2B_SECONDS.labels(operation=operation, status=status).observe(
        time.perf_counter() - started
    )


def _message(response: httpx.Response) -> str:
    """E2B errors are `{"code", "message"}`; anything else is kept as (short) text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else response.text[:200]

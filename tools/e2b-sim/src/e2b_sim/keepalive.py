"""How E2B moves a running sandbox's end (`endAt`), as its orchestrator's KeepAliveFor does for
/timeout, /refreshes and a connect to a running sandbox, and the team limit on a requested
timeout. Pure: no I/O.

Read from e2b-dev/infra (packages/api/internal/orchestrator/keep_alive.go and the handlers): the
new end is now + min(requested, what is left of the maximum instance length), counted from the
start of the current run; once a run is older than that length, 400 "Max instance length
exceeded"; only /timeout may shorten (the others answer success and leave the end alone).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from e2b_sim.model import Emitted, Outcome, Sandbox, rfc3339
from sandbox_common.e2b import LifecycleType

MAX_LENGTH_EXCEEDED = "Max instance length exceeded"


def max_allowed_ttl(sb: Sandbox, duration: timedelta, now: datetime) -> timedelta:
    """E2B's getMaxAllowedTTL: the duration, cut to what is left of the run's maximum length."""
    left = sb.started_at + sb.max_length - now
    return max(timedelta(0), min(left, duration))


def keep_alive(
    sb: Sandbox, duration: timedelta, now: datetime, *, allow_shorter: bool, status: int
) -> Outcome:
    """The end becomes now + the allowed TTL; `status` is the success code of the calling route."""
    if now - sb.started_at > sb.max_length:
        return Outcome(400, message=MAX_LENGTH_EXCEEDED)
    end_at = now + max_allowed_ttl(sb, duration, now)
    if not allow_shorter and end_at < sb.end_at:
        return Outcome(status, sb)  # never shortened, and still a success
    return set_end(sb, end_at, status)


def timeout_refusal(timeout: int, max_length: timedelta) -> Outcome | None:
    """create, connect and resume refuse a timeout above the team's limit (E2B: 400 "Timeout
    cannot be greater than N hours"); /timeout and /refreshes are capped instead."""
    if timedelta(seconds=timeout) <= max_length:
        return None
    return Outcome(400, message=f"Timeout cannot be greater than {_span(max_length)}")


def set_end(sb: Sandbox, end_at: datetime, status: int) -> Outcome:
    if end_at == sb.end_at:
        return Outcome(status, sb)
    # Unconfirmed: E2B's orchestrator reports every end-time change as an updated event.
    moved = replace(sb, end_at=end_at)
    data = {"set_timeout": rfc3339(end_at)}
    return Outcome(status, moved, (Emitted(LifecycleType.UPDATED, moved, data),))


def _span(length: timedelta) -> str:
    # E2B's limit is a whole number of hours; a simulator limit in seconds is said in seconds.
    seconds = int(length.total_seconds())
    return f"{seconds // 3600} hours" if seconds % 3600 == 0 else f"{seconds} seconds"

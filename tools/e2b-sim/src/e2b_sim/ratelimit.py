"""E2B's rate limit on its REST API: 20,000 requests / 30 s per team (E2B's docs,
sandbox/rate-limits), as a token bucket per API key (a key names its team). Pure: the clock is
given, nothing is sent.

Unconfirmed: how E2B counts (window or bucket), whether a refused call costs a token, and
whether its 429 carries a Retry-After. Chosen here: a bucket, a refused call costs nothing (as
golang.org/x/time/rate's Allow), and the 429 says when the next token is back, in whole seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimit:
    """`rate_per_second` 0: no limit."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second < 0 or burst < 1:
            raise ValueError("a rate limit needs a rate of at least 0 and a burst of at least 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, team: str) -> float:
        """0.0 when the call may go (it spends a token); otherwise the seconds until the team's
        next token is back (and the refused call spends nothing)."""
        if self._rate == 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.setdefault(team, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate

    def reset(self) -> None:
        """Every team's bucket full again."""
        self._buckets.clear()


def retry_after(wait_seconds: float) -> int:
    """The Retry-After of a refused call: whole seconds (RFC 9110 delay-seconds), rounded up so
    a client that honours it finds a token, and at least 1."""
    return max(1, math.ceil(wait_seconds))

"""Token buckets by key (a token's identity, a client address), in process memory.

In process rather than in Redis: the limits protect this process and Redis from one noisy
client, and a Redis round trip per request would cost as much as the read it guards. With N
replicas behind a load balancer a key gets up to N times the rate, which is fine for a guard
(it is not a billing quota).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float],
        max_tracked: int = 100_000,
        burst: float | None = None,
    ) -> None:
        self._rate = per_second
        self._burst = 2.0 * per_second if burst is None else burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_tracked = max_tracked

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def retry_after(self, key: str) -> float:
        """0 when the request may go ahead (and is counted); else seconds until it may."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self._max_tracked:
                # The oldest entries: buckets that are full again long since (forgetting them
                # hands a full bucket back, which is what they would hold anyway).
                self._buckets.popitem(last=False)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self._rate

    def wait(self, key: str) -> float:
        """What retry_after would answer, without counting anything."""
        if self._rate <= 0 or key not in self._buckets:
            return 0.0
        tokens = self._tokens(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)

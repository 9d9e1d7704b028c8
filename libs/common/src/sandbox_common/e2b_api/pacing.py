"""Pacing of calls toward E2B (its limit: 20,000 requests / 30 s per team).

`Pace` is what the client needs: wait for a slot, and hold every caller back after E2B said
429 (for its Retry-After). `TokenBucket` paces one process; the Redis-backed budget
(readmodel.coordination.SharedBudget) paces every replica of the actuator and the reconciler
together. Callers wait in arrival order rather than fail, since a 429 from E2B would only cost
a retry later anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Pace(Protocol):
    async def acquire(self) -> None:
        """Returns when the next call may go."""
        ...

    async def defer(self, seconds: float) -> None:
        """No call goes for `seconds` (E2B answered 429 with this Retry-After)."""
        ...


class TokenBucket:
    def __init__(
        self,
        rate_per_second: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._not_before = 0.0
        # One waiter at a time: FIFO, and no thundering herd when a token frees up.
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._not_before:
                    await self._sleep(self._not_before - now)
                    continue
                self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self._rate)

    async def defer(self, seconds: float) -> None:
        self._not_before = max(self._not_before, self._clock() + seconds)
        # After the pause, calls resume at the rate, not in a burst: one token at its end.
        self._tokens, self._stamp = 1.0, self._not_before

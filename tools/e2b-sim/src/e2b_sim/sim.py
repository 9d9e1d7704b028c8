"""Composition root: one simulator's state, knobs, logs and background loops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from e2b_sim.calls import CallLog
from e2b_sim.delivery import Deliverer, RetryPolicy
from e2b_sim.faults import FaultBox, Faults
from e2b_sim.ratelimit import RateLimit
from e2b_sim.settings import SimSettings
from e2b_sim.store import Store
from e2b_sim.webhooks import Registrations

log = logging.getLogger("e2b_sim")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Sim:
    def __init__(
        self,
        settings: SimSettings,
        faults: Faults,
        clock: Callable[[], datetime] = utc_now,
        *,
        ticks: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: the sandboxes' time; `ticks`: the rate limit's (monotonic seconds)."""
        self.settings = settings
        self.faults = FaultBox(faults, settings.seed)
        self.registrations = Registrations()
        policy = RetryPolicy(
            retries=settings.webhook_retries,
            delay_seconds=settings.webhook_retry_delay_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
        )
        self.deliverer = Deliverer(self.registrations, self.faults, policy)
        self.store = Store(clock, self.deliverer.publish)
        self.calls = CallLog()
        self.rate_limit = RateLimit(
            settings.rate_limit_per_second, settings.rate_limit_burst, ticks
        )

    def provide(self) -> Sim:
        """For the E2B routes' `sim` parameter (Litestar's dependency injection)."""
        return self

    def reset(self) -> None:
        """Back to a fresh start: no sandboxes, events, registrations, logs; knobs as at start;
        the rate limit's buckets full."""
        self.store.reset()
        self.registrations.reset()
        self.deliverer.clear()
        self.calls.entries.clear()
        self.faults.reset()
        self.rate_limit.reset()

    async def run(self) -> None:
        """The clock (timeouts, transitions) and the webhook sender, until cancelled."""
        async with httpx.AsyncClient() as client:
            sender = asyncio.create_task(self.deliverer.run(client))
            try:
                while True:
                    await asyncio.sleep(self.settings.tick_seconds)
                    try:
                        self.store.tick()
                    except Exception:
                        # Keep the clock running: a stopped clock would hide every later expiry.
                        log.exception("tick failed")
            finally:
                sender.cancel()

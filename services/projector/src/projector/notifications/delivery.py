"""Delivering the outbox: claim what is due, POST each to its project's receiver, then delete it
(2xx), try it again later (backing off), or dead-letter it after the last attempt. A claim is a
lease: a replica that dies mid-delivery leaves its rows to the others once it runs out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from projector import metrics
from sandbox_common.notifications import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

# Claimed rows are someone's for this long: a POST takes at most NOTIFY_TIMEOUT_SECONDS.
LEASE_MARGIN_SECONDS = 30.0
BATCH = 100


@dataclass(frozen=True)
class Claimed:
    project_id: str
    delivery_id: str
    event: str
    body: bytes
    attempts: int  # before this one
    url: str | None  # None: the project no longer has a receiver
    secret: str


class Outbox(Protocol):
    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]: ...

    async def delivered(self, done: Sequence[Claimed]) -> None: ...

    async def retry(self, item: Claimed, error: str, after_seconds: float) -> None: ...


class Sender(Protocol):
    async def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """The receiver's status code; raises for a refused destination or a failed call."""
        ...


class DeadNotices(Protocol):
    async def send(self, item: Claimed, reason: str) -> None: ...


def backoff(attempt: int, cap_seconds: float) -> float:
    """Seconds before attempt `attempt + 1` (attempt counts from 1): 1, 2, 4 ... up to the cap."""
    return float(min(cap_seconds, 2 ** (attempt - 1)))


def headers(item: Claimed, now: float) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "sandbox-lifecycle-notifications/1",
        "Sandbox-Delivery-Id": item.delivery_id,
        "Sandbox-Event": item.event,
        SIGNATURE_HEADER: sign(item.secret, int(now), item.body),
    }


@dataclass(eq=False)
class Deliverer:
    outbox: Outbox
    sender: Sender
    dead: DeadNotices
    max_attempts: int
    backoff_cap_seconds: float
    timeout_seconds: float
    clock: Callable[[], float] = time.time
    interval_seconds: float = 0.5

    async def run(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except Exception as exc:  # PostgreSQL or Kafka away: the rows wait in the outbox
                log.warning("notifications not delivered this round: %s", exc)
                handled = 0
            if handled < BATCH:
                await asyncio.sleep(self.interval_seconds)

    async def run_once(self) -> int:
        claimed = await self.outbox.claim(BATCH, self.timeout_seconds + LEASE_MARGIN_SECONDS)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._deliver(c) for c in claimed))
        await self.outbox.delivered([c for c, ok in zip(claimed, outcomes, strict=True) if ok])
        return len(claimed)

    async def _deliver(self, item: Claimed) -> bool:
        """True: done with it (delivered, dead-lettered, or its receiver unregistered)."""
        if item.url is None:
            metrics.NOTIFICATIONS.labels(outcome="unregistered").inc()
            return True
        try:
            status = await self.sender.post(item.url, headers(item, self.clock()), item.body)
            error = None if 200 <= status < 300 else f"the receiver answered {status}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None:
            metrics.NOTIFICATIONS.labels(outcome="delivered").inc()
            return True
        attempt = item.attempts + 1
        if attempt >= self.max_attempts:
            reason = f"not delivered after {attempt} attempts; last: {error}"
            await self.dead.send(item, reason)
            metrics.NOTIFICATIONS.labels(outcome="dead_lettered").inc()
            log.warning(
                "notification %s for project %s dead-lettered: %s",
                item.delivery_id,
                item.project_id,
                reason,
                extra={"project_id": item.project_id, "delivery_id": item.delivery_id},
            )
            return True
        metrics.NOTIFICATIONS.labels(outcome="retried").inc()
        await self.outbox.retry(item, error, backoff(attempt, self.backoff_cap_seconds))
        return False

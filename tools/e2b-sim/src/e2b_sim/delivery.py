"""Signed webhook deliveries with retries, through the fault knobs.

First attempts go out one at a time in event order (unless the reorder knob shuffles them);
a failed attempt (non-2xx, error or timeout) is retried in the background, so one slow
receiver delays but never reorders the rest. Every attempt has a new `e2b-delivery-id`; the
body, and so its `id`, stays the same.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from e2b_sim.faults import FaultBox
from e2b_sim.store import RecordedEvent
from e2b_sim.views import event_body
from e2b_sim.webhooks import Registrations
from sandbox_common import e2b

log = logging.getLogger("e2b_sim.delivery")


@dataclass(frozen=True, slots=True)
class Delivery:
    webhook_id: str
    event: RecordedEvent
    due: float  # loop time before which it is not sent (the delay knob)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int
    delay_seconds: float
    timeout_seconds: float


class Deliverer:
    def __init__(self, registrations: Registrations, faults: FaultBox, policy: RetryPolicy) -> None:
        self._registrations = registrations
        self._faults = faults
        self._policy = policy
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self.log: deque[dict[str, Any]] = deque(maxlen=100_000)

    def publish(self, event: RecordedEvent) -> None:
        """Fan an event out to every enabled registration subscribed to its type."""
        due = asyncio.get_running_loop().time() + self._faults.current.delivery_delay_ms / 1000
        for reg in self._registrations.subscribed(event.emitted.type):
            delivery = Delivery(reg.id, event, due)
            if self._faults.roll(self._faults.current.drop_probability):
                self._record(delivery, 0, None, "dropped")
                continue
            copies = 2 if self._faults.roll(self._faults.current.duplicate_probability) else 1
            for _ in range(copies):
                self._queue.put_nowait(delivery)

    async def run(self, client: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                batch = await self._next_batch()
                for delivery in batch:
                    await asyncio.sleep(max(0.0, delivery.due - loop.time()))
                    try:
                        done = await self._attempt(client, delivery, 0)
                    except Exception:
                        # A simulator bug must not silently stop every later delivery.
                        log.exception("delivery crashed", extra={"event_id": delivery.event.id})
                        continue
                    if not done:
                        self._spawn(self._retry(client, delivery))
        finally:
            for task in self._tasks:
                task.cancel()

    def clear(self) -> None:
        for task in self._tasks:
            task.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()
        self.log.clear()

    async def _next_batch(self) -> list[Delivery]:
        batch = [await self._queue.get()]
        window, hold = self._faults.current.reorder_window, self._faults.current.reorder_hold_ms
        if window < 2:
            return batch
        deadline = asyncio.get_running_loop().time() + hold / 1000
        while len(batch) < window:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), max(remaining, 0)))
            except TimeoutError:
                break
        self._faults.rng.shuffle(batch)
        return batch

    async def _retry(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        for attempt in range(1, self._policy.retries + 1):
            await asyncio.sleep(self._policy.delay_seconds)
            if await self._attempt(client, delivery, attempt):
                return
        self._record(delivery, self._policy.retries, None, "abandoned")

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery, attempt: int) -> bool:
        """True when done (delivered, or the registration is gone or disabled)."""
        reg = self._registrations.get(delivery.webhook_id)
        if reg is None or not reg.enabled:
            return True
        # Signed at send time with the current secret, as a rotated secret would be used.
        body = msgspec.json.encode(event_body(delivery.event, reg.payload_version))
        delivery_id = str(uuid.uuid4())
        headers = {
            **e2b.signed_headers(reg.secret, body),
            e2b.HEADER_WEBHOOK_ID: reg.id,
            e2b.HEADER_DELIVERY_ID: delivery_id,
        }
        try:
            response = await client.post(
                reg.url, content=body, headers=headers, timeout=self._policy.timeout_seconds
            )
        except httpx.HTTPError as exc:
            log.info("delivery failed", extra={"error": repr(exc), "event_id": delivery.event.id})
            self._record(delivery, attempt, None, "failed", delivery_id)
            return False
        ok = response.is_success
        outcome = "delivered" if ok else "failed"
        self._record(delivery, attempt, response.status_code, outcome, delivery_id)
        return ok

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(
        self,
        delivery: Delivery,
        attempt: int,
        status: int | None,
        outcome: str,  # delivered, failed, dropped, abandoned
        delivery_id: str | None = None,
    ) -> None:
        event, at = delivery.event, datetime.now(UTC).isoformat()
        sandbox_id = event.emitted.sandbox.sandbox_id
        self.log.append(
            {"eventId": event.id, "type": str(event.emitted.type), "sandboxId": sandbox_id}
            | {"webhookId": delivery.webhook_id, "deliveryId": delivery_id, "attempt": attempt}
            | {"status": status, "outcome": outcome, "at": at.replace("+00:00", "Z")}
        )

"""Use case: accept one signed E2B webhook delivery and make it durable on the topic."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from ingest import metrics
from sandbox_common import e2b
from sandbox_common.envelope import Envelope, from_webhook
from sandbox_common.kafka_publisher import BrokerUnavailableError

log = logging.getLogger("ingest")


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED_SIGNATURE = "rejected_signature"
    REJECTED_PAYLOAD = "rejected_payload"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    event_id: str | None = None
    detail: str | None = None
    reason: str | None = None


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...

    async def settle(self, delivery: asyncio.Future[Any]) -> None: ...


class Dedupe(Protocol):
    async def seen(self, event_id: str) -> bool: ...

    async def mark(self, event_id: str) -> None: ...


@dataclass(frozen=True)
class WebhookIntake:
    # Every accepted secret, the current one first (E2B_WEBHOOK_SECRETS: rotation loses nothing).
    secrets: tuple[str, ...]
    project_metadata_key: str
    publisher: Publisher
    dedupe: Dedupe
    # Event id -> done, while a delivery of that event is between its dedupe lookup and its
    # marker: a concurrent delivery of the same event waits for it instead of publishing too.
    _in_flight: dict[str, asyncio.Future[None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # Publishes answered 503 whose record the producer still holds, by event id. Such a record
    # usually lands once the broker is back; E2B's retry then waits for it instead of publishing
    # a second copy (the fault suite found every 503 of a broker outage doubled on the topic).
    in_doubt: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    _marking: set[asyncio.Task[None]] = field(default_factory=set)

    async def accept(self, body: bytes, signature: str | None) -> Result:
        """Raises BrokerUnavailableError (from the publisher) when the event is not durable."""
        started = time.perf_counter()
        if not any(e2b.verify_signature(secret, body, signature) for secret in self.secrets):
            reason = "missing" if not signature else "mismatch"
            metrics.REJECTED.labels(reason=f"signature_{reason}").inc()
            # Logged by the caller, which knows the client (ingest.guard: not once per forgery).
            return Result(
                Outcome.REJECTED_SIGNATURE, detail="invalid or missing e2b-signature", reason=reason
            )
        try:
            event = e2b.parse_webhook(body)
        except e2b.WebhookError as exc:
            metrics.REJECTED.labels(reason="malformed").inc()
            log.warning("[E2B Webhook] Rejected payload: %s", exc, extra={"reason": str(exc)})
            return Result(Outcome.REJECTED_PAYLOAD, detail=str(exc))
        while (pending := self._in_flight.get(event.id)) is not None:
            await asyncio.shield(pending)  # then its marker answers "seen", or we publish
        done = asyncio.get_running_loop().create_future()
        self._in_flight[event.id] = done
        try:
            return await self._publish_new(event, started)
        finally:
            del self._in_flight[event.id]
            done.set_result(None)

    async def _publish_new(self, event: e2b.WebhookEvent, started: float) -> Result:
        # No Processed line for a duplicate: that event's line was written when it was published,
        # and one per event keeps the line a count of events (retries would inflate it).
        if await self.dedupe.seen(event.id):
            _log_received(event, None, Outcome.DUPLICATE, _elapsed_ms(started))
            return Result(Outcome.DUPLICATE, event_id=event.id)
        pending = self.in_doubt.get(event.id)
        if pending is not None:
            await self.publisher.settle(pending)  # BrokerUnavailableError: 503 again
            await self.dedupe.mark(event.id)
            # Its Processed line is the landing's (_hold), written whether a retry comes or not.
            _log_received(event, None, Outcome.ACCEPTED, _elapsed_ms(started))
            return Result(Outcome.ACCEPTED, event_id=event.id)
        envelope = from_webhook(
            event, received_at=datetime.now(UTC), project_metadata_key=self.project_metadata_key
        )
        publish_started = time.perf_counter()
        try:
            await self.publisher.publish(envelope)
        except BrokerUnavailableError as exc:
            if exc.in_flight is not None:
                self._hold(event, exc.in_flight, started)
            raise
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - publish_started)
        await self.dedupe.mark(event.id)
        duration_ms = _elapsed_ms(started)
        _log_received(event, envelope.project_id, Outcome.ACCEPTED, duration_ms)
        _log_processed(event, duration_ms)
        return Result(Outcome.ACCEPTED, event_id=event.id)

    def _hold(self, event: e2b.WebhookEvent, delivery: asyncio.Future[Any], started: float) -> None:
        event_id = event.id
        self.in_doubt[event_id] = delivery

        def settled(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                self.in_doubt.pop(event_id, None)  # lost for good: a retry publishes again
                return
            _log_processed(event, _elapsed_ms(started))  # durable now, though answered 503
            task = asyncio.get_running_loop().create_task(self._landed(event_id))
            self._marking.add(task)
            task.add_done_callback(self._marking.discard)

        delivery.add_done_callback(settled)

    async def _landed(self, event_id: str) -> None:
        # Held in `in_doubt` until the marker is written: no window for a second copy.
        try:
            await self.dedupe.mark(event_id)
        finally:
            self.in_doubt.pop(event_id, None)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _log_received(
    event: e2b.WebhookEvent, project_id: str | None, outcome: Outcome, duration_ms: float
) -> None:
    """The seed's line, once per delivery, written when the outcome is known (not also when
    the delivery arrives: at thousands of webhooks a second, log volume is a real share of
    ingest's CPU)."""
    log.info(
        "[E2B Webhook] Received event: %s for sandbox %s",
        event.type,
        event.sandbox_id,
        extra={
            "event_type": event.type,
            "sandbox_id": event.sandbox_id,
            "event_id": event.id,
            "project_id": project_id,
            "payload_version": event.version,
            "outcome": outcome.value,
            "duration_ms": duration_ms,
        },
    )


def _log_processed(event: e2b.WebhookEvent, duration_ms: float) -> None:
    """The seed's other line, once per event, when it is durably on the topic: the one extra
    line an accepted event costs."""
    log.info(
        "[E2B Webhook] Processed %s event in %dms",
        event.type,
        round(duration_ms),
        extra={
            "event_type": event.type,
            "sandbox_id": event.sandbox_id,
            "event_id": event.id,
            "duration_ms": duration_ms,
        },
    )

"""The webhook use case with fake publisher and dedupe: no broker needed."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.handlers import Outcome, WebhookIntake
from sandbox_common import e2b
from sandbox_common.envelope import Envelope
from sandbox_common.kafka_publisher import BrokerUnavailableError
from tests.unit.test_e2b_webhooks import SECRET, V2


@dataclass
class FakePublisher:
    published: list[Envelope] = field(default_factory=list)
    down: bool = False
    # Like a broker that went away with the record: taken, not acknowledged in time.
    stalled: list[asyncio.Future[Any]] = field(default_factory=list)
    stall: bool = False

    async def publish(self, envelope: Envelope) -> None:
        if self.down:
            raise BrokerUnavailableError("down")
        if self.stall:
            delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            delivery.add_done_callback(
                lambda done: None if done.exception() else self.published.append(envelope)
            )
            self.stalled.append(delivery)
            raise BrokerUnavailableError("not acknowledged in time", delivery)
        self.published.append(envelope)

    async def settle(self, delivery: asyncio.Future[Any]) -> None:
        if not delivery.done():
            raise BrokerUnavailableError("still not acknowledged", delivery)
        delivery.result()


@dataclass
class FakeDedupe:
    ids: set[str] = field(default_factory=set)

    async def seen(self, event_id: str) -> bool:
        return event_id in self.ids

    async def mark(self, event_id: str) -> None:
        self.ids.add(event_id)


def make() -> tuple[WebhookIntake, FakePublisher, FakeDedupe]:
    publisher, dedupe = FakePublisher(), FakeDedupe()
    return WebhookIntake(SECRET, "projectId", publisher, dedupe), publisher, dedupe


BODY = json.dumps(V2).encode()


async def test_signed_webhook_is_published_once() -> None:
    intake, publisher, _ = make()
    sig = e2b.compute_signature(SECRET, BODY)
    first = await intake.accept(BODY, sig)
    second = await intake.accept(BODY, sig)
    assert first.outcome is Outcome.ACCEPTED
    assert second.outcome is Outcome.DUPLICATE
    assert [e.event_id for e in publisher.published] == [V2["id"]]


async def test_bad_signature_publishes_nothing() -> None:
    intake, publisher, _ = make()
    result = await intake.accept(BODY, "nope")
    assert result.outcome is Outcome.REJECTED_SIGNATURE
    assert publisher.published == []


async def test_malformed_body_is_rejected_after_the_signature_check() -> None:
    intake, publisher, _ = make()
    body = b'{"id": "x"}'
    result = await intake.accept(body, e2b.compute_signature(SECRET, body))
    assert result.outcome is Outcome.REJECTED_PAYLOAD
    assert "sandbox_id" in (result.detail or "")
    assert publisher.published == []


async def test_failed_publish_is_not_remembered_so_the_retry_goes_through() -> None:
    intake, publisher, dedupe = make()
    sig = e2b.compute_signature(SECRET, BODY)
    publisher.down = True
    with pytest.raises(BrokerUnavailableError):
        await intake.accept(BODY, sig)
    assert dedupe.ids == set()
    publisher.down = False
    assert (await intake.accept(BODY, sig)).outcome is Outcome.ACCEPTED
    assert len(publisher.published) == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1024), st.booleans())
async def test_any_signed_body_gets_an_answer_never_an_exception(body: bytes, sign: bool) -> None:
    intake, publisher, _ = make()
    result = await intake.accept(body, e2b.compute_signature(SECRET, body) if sign else "x")
    expected = (
        {Outcome.REJECTED_PAYLOAD, Outcome.ACCEPTED} if sign else {Outcome.REJECTED_SIGNATURE}
    )
    assert result.outcome in expected
    assert len(publisher.published) == (result.outcome is Outcome.ACCEPTED)


async def test_a_retry_waits_for_the_record_a_timed_out_publish_left_in_flight() -> None:
    # A broker outage: the publish is answered 503, but the producer still holds the record and
    # delivers it once the broker is back. E2B's retry must not put a second copy on the topic.
    intake, publisher, dedupe = make()
    sig = e2b.compute_signature(SECRET, BODY)
    publisher.stall = True
    with pytest.raises(BrokerUnavailableError):
        await intake.accept(BODY, sig)
    with pytest.raises(BrokerUnavailableError):  # retried while still in flight: 503 again
        await intake.accept(BODY, sig)
    assert len(publisher.stalled) == 1
    publisher.stall = False
    publisher.stalled[0].set_result(None)  # the broker is back: the first copy lands
    await asyncio.sleep(0)
    retried = await intake.accept(BODY, sig)
    assert retried.outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE)
    assert [e.event_id for e in publisher.published] == [V2["id"]]
    assert V2["id"] in dedupe.ids
    await asyncio.sleep(0.01)  # the marker task of the landed delivery
    assert intake.in_doubt == {}


async def test_a_delivery_that_failed_for_good_is_published_again() -> None:
    intake, publisher, _ = make()
    sig = e2b.compute_signature(SECRET, BODY)
    publisher.stall = True
    with pytest.raises(BrokerUnavailableError):
        await intake.accept(BODY, sig)
    publisher.stall = False
    publisher.stalled[0].set_exception(TimeoutError("batch expired"))
    await asyncio.sleep(0)
    assert (await intake.accept(BODY, sig)).outcome is Outcome.ACCEPTED
    assert [e.event_id for e in publisher.published] == [V2["id"]]

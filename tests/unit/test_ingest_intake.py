"""The webhook use case with fake publisher and dedupe: no broker needed."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import fast_lane
from ingest.fast_lane import DrainAfterRefusal, WebhookLane
from ingest.guard import SignatureGuard
from ingest.handlers import Outcome, WebhookIntake
from sandbox_common import e2b
from sandbox_common.envelope import Envelope
from sandbox_common.kafka_publisher import BrokerUnavailableError
from sandbox_common.rate_limit import RateLimiter
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
    return WebhookIntake((SECRET,), "projectId", publisher, dedupe), publisher, dedupe


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


class Inner:
    """Stands for the Litestar app behind the lane: records what it was handed."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])


async def through_lane(
    lane: WebhookLane, body: bytes, headers: dict[str, str], path: str = "/api/webhooks/e2b"
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "path": path, "headers": raw}
    await lane(scope, receive, send)
    return sent


async def test_the_fast_lane_answers_deliveries_like_the_route_and_hands_on_the_rest() -> None:
    intake, publisher, _ = make()
    inner = Inner()
    guard = SignatureGuard(RateLimiter(0, time.monotonic), 10.0, time.monotonic)
    lane = WebhookLane(inner, intake, guard, max_body_bytes=4096)
    body = BODY
    signed = {**e2b.signed_headers(SECRET, body), "content-length": str(len(body))}
    start, reply = await through_lane(lane, body, signed)
    assert start["status"] == 200
    assert msgspec.json.decode(reply["body"])["status"] == "accepted"
    start, reply = await through_lane(lane, body, signed)
    assert msgspec.json.decode(reply["body"])["status"] == "duplicate"
    assert len(publisher.published) == 1
    bad = {**signed, e2b.HEADER_SIGNATURE: "nope"}
    start, reply = await through_lane(lane, body, bad)
    assert start["status"] == 401
    assert msgspec.json.decode(reply["body"])["extra"] == {"reason": "rejected_signature"}
    # Litestar's turn: no length (chunked), a length over the limit (413), another route.
    unsized = {k: v for k, v in signed.items() if k != "content-length"}
    assert await through_lane(lane, body, unsized) == []
    assert await through_lane(lane, body, {**signed, "content-length": "5000"}) == []
    assert await through_lane(lane, body, signed, path="/healthz") == []
    assert inner.paths == ["/api/webhooks/e2b", "/api/webhooks/e2b", "/healthz"]


@dataclass
class SlowPublisher(FakePublisher):
    """Publishes after a turn of the loop, as a broker round trip would."""

    fail_first: bool = False

    async def publish(self, envelope: Envelope) -> None:
        await asyncio.sleep(0.01)
        if self.fail_first:
            self.fail_first = False
            raise BrokerUnavailableError("down")
        self.published.append(envelope)


async def test_concurrent_deliveries_of_one_event_are_published_once() -> None:
    """Found by the hostile-input suite: four concurrent replays were all published."""
    publisher, dedupe = SlowPublisher(), FakeDedupe()
    intake = WebhookIntake((SECRET,), "projectId", publisher, dedupe)
    sig = e2b.compute_signature(SECRET, BODY)
    results = await asyncio.gather(*(intake.accept(BODY, sig) for _ in range(4)))
    assert sorted(r.outcome for r in results) == [Outcome.ACCEPTED] + [Outcome.DUPLICATE] * 3
    assert len(publisher.published) == 1


async def test_a_failed_concurrent_delivery_leaves_the_event_to_the_next() -> None:
    publisher, dedupe = SlowPublisher(fail_first=True), FakeDedupe()
    intake = WebhookIntake((SECRET,), "projectId", publisher, dedupe)
    sig = e2b.compute_signature(SECRET, BODY)
    first, second = await asyncio.gather(
        intake.accept(BODY, sig), intake.accept(BODY, sig), return_exceptions=True
    )
    assert isinstance(first, BrokerUnavailableError)  # that delivery gets a 503: E2B retries
    assert not isinstance(second, BaseException)
    assert second.outcome is Outcome.ACCEPTED  # it waited, saw no marker, and published
    assert len(publisher.published) == 1


class Client:
    """The server side of one request: the body still to come, and what was sent back."""

    def __init__(self, pieces: list[bytes | None]) -> None:
        self.pieces = pieces  # None: the client sends nothing more
        self.sent: list[dict[str, Any]] = []
        self.received = 0

    async def receive(self) -> dict[str, Any]:
        if not self.pieces:
            return {"type": "http.disconnect"}
        piece = self.pieces.pop(0)
        if piece is None:
            await asyncio.Event().wait()
        assert piece is not None
        self.received += len(piece)
        return {"type": "http.request", "body": piece, "more_body": bool(self.pieces)}

    async def send(self, message: Any) -> None:
        self.sent.append({**message, "at_received": self.received})


START_413 = {"type": "http.response.start", "status": 413, "headers": []}
REFUSAL = {"type": "http.response.body", "body": b'{"status_code":413}'}


async def test_a_413_is_written_at_once_then_the_body_is_drained_before_it_completes() -> None:
    client = Client([b"x" * 1000] * 5)
    refusal = DrainAfterRefusal(client.receive, client.send)
    await refusal.receive()  # what the app read before it refused
    await refusal.send(START_413)
    await refusal.send(REFUSAL)
    start, body, end = client.sent
    assert start["status"] == 413
    assert (body["body"], body["more_body"], body["at_received"]) == (REFUSAL["body"], True, 1000)
    assert (end["body"], end["more_body"], end["at_received"]) == (b"", False, 5000)
    assert client.pieces == []


async def test_a_body_read_to_its_end_before_the_413_is_not_waited_for() -> None:
    client = Client([b"x" * 1000])
    refusal = DrainAfterRefusal(client.receive, client.send)
    await refusal.receive()  # the last piece, and it crossed the limit
    client.pieces.append(None)  # another receive would wait for ever
    await refusal.send(START_413)
    await asyncio.wait_for(refusal.send(REFUSAL), 1)
    assert [m.get("more_body") for m in client.sent[1:]] == [True, False]


async def test_the_drain_stops_at_its_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_lane, "DRAIN_MAX_BYTES", 3000)
    client = Client([b"x" * 1000] * 10)
    refusal = DrainAfterRefusal(client.receive, client.send)
    await refusal.send(START_413)
    await refusal.send(REFUSAL)
    assert client.received == 3000
    assert client.sent[-1]["more_body"] is False


async def test_the_drain_stops_at_its_time_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_lane, "DRAIN_SECONDS", 0.05)
    client = Client([b"x" * 1000, None])  # then nothing more, and no disconnect
    refusal = DrainAfterRefusal(client.receive, client.send)
    await refusal.send(START_413)
    await asyncio.wait_for(refusal.send(REFUSAL), 1)
    assert client.sent[-1]["more_body"] is False


async def test_other_answers_pass_through_as_they_are() -> None:
    client = Client([b"x" * 1000] * 3)
    refusal = DrainAfterRefusal(client.receive, client.send)
    await refusal.send({**START_413, "status": 200})
    await refusal.send(REFUSAL)
    assert client.sent[-1] == {**REFUSAL, "at_received": 0}

"""Delivering notifications without PostgreSQL or a network: signed POSTs, backoff, the dead
letter after the last attempt, unregistered receivers; and registering a receiver (the
destination checked against what its name resolves to)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from projector.notifications.delivery import Claimed, Deliverer, backoff
from sandbox_common.notifications import SIGNATURE_HEADER, Reach, TargetError, verify
from status_api.adapters.notification_targets import StoredTarget
from status_api.receivers import Receivers
from tests.unit.test_api_keys import T0

SECRET = "receiver-secret-" + "s" * 32


def item(
    delivery: str = "d1", attempts: int = 0, url: str | None = "https://r.example/x"
) -> Claimed:
    return Claimed("p1", delivery, "paused", b'{"event":"paused"}', attempts, url, SECRET)


@dataclass
class Outbox:
    due: list[Claimed]
    done: list[str] = field(default_factory=list)
    retried: list[tuple[str, str, float]] = field(default_factory=list)

    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]:
        claimed, self.due = self.due[:limit], self.due[limit:]
        return claimed

    async def delivered(self, done: Sequence[Claimed]) -> None:
        self.done += [d.delivery_id for d in done]

    async def retry(self, c: Claimed, error: str, after_seconds: float) -> None:
        self.retried.append((c.delivery_id, error, after_seconds))


@dataclass
class Receiver:
    answers: list[int | Exception]
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        self.got.append((url, headers, body))
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Dead:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, c: Claimed, reason: str) -> None:
        self.sent.append((c.delivery_id, reason))


def deliverer(outbox: Outbox, receiver: Receiver, dead: Dead) -> Deliverer:
    return Deliverer(outbox, receiver, dead, 5, 60.0, 10.0, clock=lambda: T0.timestamp())


async def test_a_delivery_is_signed_and_done_on_2xx() -> None:
    outbox, receiver, dead = Outbox([item()]), Receiver([200]), Dead()
    assert await deliverer(outbox, receiver, dead).run_once() == 1
    assert outbox.done == ["d1"]
    url, headers, body = receiver.got[0]
    assert url == "https://r.example/x"
    assert headers["Sandbox-Delivery-Id"] == "d1"
    assert headers["Sandbox-Event"] == "paused"
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=T0.timestamp()) == int(
        T0.timestamp()
    )


async def test_a_failing_receiver_is_retried_with_backoff_then_dead_lettered() -> None:
    outbox = Outbox([item("a"), item("b", attempts=4)])
    receiver, dead = Receiver([503, ConnectionError("refused")]), Dead()
    await deliverer(outbox, receiver, dead).run_once()
    assert outbox.retried == [("a", "the receiver answered 503", 1.0)]
    # The fifth failure of five allowed: to the dead letters with the last error, and done.
    assert dead.sent == [("b", "not delivered after 5 attempts; last: ConnectionError: refused")]
    assert outbox.done == ["b"]
    assert [backoff(n, 60.0) for n in (1, 2, 3, 6, 7, 12)] == [1, 2, 4, 32, 60, 60]


async def test_a_receiver_removed_meanwhile_drops_its_deliveries_unsent() -> None:
    outbox, receiver, dead = Outbox([item(url=None)]), Receiver([]), Dead()
    await deliverer(outbox, receiver, dead).run_once()
    assert outbox.done == ["d1"]
    assert receiver.got == []


@dataclass
class Targets:
    stored: dict[str, Any] = field(default_factory=dict)

    async def get(self, project_id: str) -> StoredTarget | None:
        return None

    async def put(self, project_id: str, target: Any, actor: str | None) -> StoredTarget:
        self.stored[project_id] = target
        return StoredTarget(project_id, target.url, [e.value for e in target.events], T0, actor)

    async def delete(self, project_id: str) -> bool:
        return False


def resolving_to(address: str) -> Any:
    async def resolve(host: str, port: int) -> list[Any]:
        return [(2, 1, 6, "", (address, port))]

    return resolve


async def test_a_receiver_is_taken_only_where_notifications_may_go() -> None:
    body = b'{"url": "https://hooks.example.com/in", "secret": "%s"}' % SECRET.encode()
    public = Receivers(Targets(), Reach.PUBLIC, resolving_to("93.184.216.34"))
    stored = await public.register("p1", body, "dev")
    assert stored.events == [
        "pauseImminent",
        "paused",
        "resumed",
        "killed",
        "deleteImminent",
        "policyAction",
    ]
    # A public name that resolves to the private network (DNS pointed inward).
    inward = Receivers(Targets(), Reach.PUBLIC, resolving_to("10.0.0.7"))
    with pytest.raises(TargetError, match=r"may not go: 10\.0\.0\.7 is a private") as caught:
        await inward.register("p1", body, "dev")
    assert caught.value.field == "url"
    for bad, named in (
        (b'{"url": "https://h.example.com", "secret": "short"}', "secret"),
        (
            b'{"url": "https://h.example.com", "secret": "%s", "events": ["nope"]}'
            % SECRET.encode(),
            "events.0",
        ),
        (
            b'{"url": "https://h.example.com", "secret": "%s", "events": ["paused", "paused"]}'
            % SECRET.encode(),
            "events",
        ),
        (b'{"url": "gopher://h", "secret": "%s"}' % SECRET.encode(), "url"),
        (b'{"url": "https://h.example.com", "secret": "%s", "x": 1}' % SECRET.encode(), "x"),
        (b"[]", ""),
    ):
        with pytest.raises(TargetError) as refused:
            await public.register("p1", bad, "dev")
        assert refused.value.field == named, (bad, refused.value)

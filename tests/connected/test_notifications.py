"""Notifications out end to end (issue 17, item 5): a project registers a real HTTP receiver
through status-api; the projector enqueues notices in the transaction that stores the facts and
POSTs them signed; the receiver verifies each signature and sees every event once per delivery
id, through an outage of 30 s; a receiver that never answers gets its notification
dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

from sandbox_common import topics
from sandbox_common.notifications import SIGNATURE_HEADER, SignatureError, verify
from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import free_port
from tests.connected.helpers import (
    ago,
    end_offsets,
    eventually,
    post_webhook,
    records_since,
    token,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected

SECRET = "receiver-secret-" + "r" * 40


@dataclass
class Receiver:
    """An ASGI app that checks each delivery's signature, as docs/NOTIFICATIONS.md shows."""

    secret: str
    deliveries: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    forged: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            verify(self.secret, headers.get(SIGNATURE_HEADER.lower()), body, now=time.time())
            status = 204
            notice = msgspec.json.decode(body)
            assert notice["deliveryId"] == headers["sandbox-delivery-id"]
            self.deliveries[notice["deliveryId"]].append(notice)
        except SignatureError:
            self.forged += 1
            status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def events(self) -> dict[str, set[str]]:
        """Per event, the delivery ids received."""
        out: dict[str, set[str]] = defaultdict(set)
        for delivery_id, copies in self.deliveries.items():
            out[copies[0]["event"]].add(delivery_id)
        return out


@contextlib.asynccontextmanager
async def listening(app: Receiver, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await eventually(started, within=10)
        yield
    finally:
        server.should_exit = True
        await task


def receivers_url(stack: Stack, project: str) -> str:
    return f"{stack.status_api.url}/api/projects/{project}/notifications"


async def register(
    client: httpx.AsyncClient, stack: Stack, project: str, url: str, events: list[str]
) -> httpx.Response:
    return await client.put(
        receivers_url(stack, project),
        headers=token(stack, project),
        json={"url": url, "events": events, "secret": SECRET},
    )


async def test_a_receiver_gets_each_event_once_signed_through_a_30_s_outage(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("notified"), unique("sbx")
    receiver, port = Receiver(SECRET), free_port()
    hook = f"http://127.0.0.1:{port}/hooks/sandboxes"
    wanted = ["pauseImminent", "paused", "resumed", "killed"]
    # Inside our networks beyond loopback: refused, naming the field.
    refused = await register(client, stack, project, "http://10.0.0.5/hook", wanted)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "url"
    r = await register(client, stack, project, hook, wanted)
    assert r.status_code == 200, r.text
    shown = await client.get(receivers_url(stack, project), headers=token(stack, project))
    assert shown.json()["url"] == hook
    assert shown.json()["events"] == wanted
    assert SECRET not in shown.text
    other = await client.get(receivers_url(stack, project), headers=token(stack, "someone"))
    assert other.status_code == 403

    async with listening(receiver, port):
        # Idle 40 s: status-api warns 30 s ahead (STATUS_API_WARN_BEFORE_SECONDS).
        created = webhook(
            "created", sandbox, project, seconds=ago(0), metadata={"idleTimeoutSeconds": "40"}
        )
        assert (await post_webhook(client, stack, created)).status_code in (200, 202)

        async def warned() -> bool:
            return bool(receiver.events()["pauseImminent"])

        await eventually(warned, within=30, interval=0.5)
        paused = webhook("paused", sandbox, project, seconds=ago(0))
        assert (await post_webhook(client, stack, paused)).status_code in (200, 202)

        async def heard_paused() -> bool:
            return bool(receiver.events()["paused"])

        await eventually(heard_paused, within=15, interval=0.2)

    # The receiver is down for 30 s while the sandbox is resumed and killed.
    down_at = time.monotonic()
    for kind in ("resumed", "killed"):
        body = webhook(kind, sandbox, project, seconds=ago(0))
        assert (await post_webhook(client, stack, body)).status_code in (200, 202)
    await asyncio.sleep(30 - (time.monotonic() - down_at))
    async with listening(receiver, port):

        async def all_heard() -> bool:
            return all(receiver.events()[e] for e in wanted)

        await eventually(all_heard, within=20, interval=0.5)
        await asyncio.sleep(2)  # any duplicate on its way arrives too
    events = receiver.events()
    assert {e: len(ids) for e, ids in events.items()} == dict.fromkeys(wanted, 1), events
    assert receiver.forged == 0
    notice = receiver.deliveries[next(iter(events["killed"]))][0]
    assert (notice["projectId"], notice["sandboxId"]) == (project, sandbox)

    gone = await client.delete(receivers_url(stack, project), headers=token(stack, project))
    assert gone.status_code == 204
    missing = await client.get(receivers_url(stack, project), headers=token(stack, project))
    assert missing.status_code == 404


async def test_what_a_receiver_keeps_refusing_is_dead_lettered_with_the_reason(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("unheard"), unique("sbx")
    closed = f"http://127.0.0.1:{free_port()}/nobody-listens"
    r = await register(client, stack, project, closed, ["paused"])
    assert r.status_code == 200, r.text
    since = await end_offsets(stack.infra.kafka, topics.NOTIFICATIONS_DLQ)
    for kind in ("created", "paused"):
        body = webhook(kind, sandbox, project, seconds=ago(0))
        assert (await post_webhook(client, stack, body)).status_code in (200, 202)

    # 12 attempts, backing off 1, 2, 4 s, then every 4 s (the stack's cap): about 40 s.
    async def dead_lettered() -> Any:
        records = await records_since(stack.infra.kafka, since)
        return next((r for r in records if r.key == project.encode()), None)

    found = await eventually(dead_lettered, within=90, interval=2)
    headers = {k: v.decode() for k, v in found.headers}
    assert headers["event"] == "paused"
    assert "not delivered after 12 attempts" in headers["dlq-reason"]
    assert msgspec.json.decode(found.value)["sandboxId"] == sandbox

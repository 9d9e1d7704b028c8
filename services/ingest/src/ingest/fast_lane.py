"""The webhook route without Litestar's per-request machinery.

E2B's deliveries are the one hot path of ingest. This ASGI wrapper answers `POST
/api/webhooks/e2b` itself when the request declares a body length within the limit, with the
same `answers.answer` the Litestar route uses (so the two cannot disagree). Everything else
(no or oversized Content-Length, other routes, lifespan) goes to the Litestar app, which stays
the documented (OpenAPI) and complete implementation; a delivery it refuses with 413 is drained
on the way out (`DrainAfterRefusal`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ingest.answers import answer
from ingest.guard import SignatureGuard
from ingest.handlers import WebhookIntake
from sandbox_common.request_timing import ROUTE_KEY

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
# Loose on purpose: Litestar types its __call__ with its own scope and event unions.
ASGIApp = Callable[..., Awaitable[None]]

PATH = "/api/webhooks/e2b"
_JSON = (b"content-type", b"application/json")
# How much of a refused body is read and dropped before the connection closes (see
# DrainAfterRefusal): enough for the bodies a confused sender posts, short enough that a client
# sending for ever, or nothing, holds a connection only briefly.
DRAIN_MAX_BYTES = 8 * 1024 * 1024
DRAIN_SECONDS = 2.0


class WebhookLane:
    def __init__(
        self, app: ASGIApp, intake: WebhookIntake, guard: SignatureGuard, max_body_bytes: int
    ) -> None:
        self._app = app
        self._intake = intake
        self._guard = guard
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self._app(scope, receive, send)
            return
        length = signature = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"e2b-signature":
                signature = value.decode("latin-1")
        if length is None or not length.isdigit() or int(length) > self._max_body:
            # Litestar answers 413 / reads chunked bodies
            refusal = DrainAfterRefusal(receive, send)
            await self._app(scope, refusal.receive, refusal.send)
            return
        scope[ROUTE_KEY] = PATH  # the route's template, as Litestar names it (request_timing)
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        reply = await answer(self._intake, self._guard, body, signature, client_address(scope))
        headers = [_JSON, (b"content-length", str(len(reply.body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


def client_address(scope: Scope) -> str:
    """The client's address (the proxy's, unless uvicorn was told to trust it)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class DrainAfterRefusal:
    """One request's receive and send, for the app: when it answers 413, the answer is written
    at once, then the rest of the body is read and dropped (up to DRAIN_MAX_BYTES, for up to
    DRAIN_SECONDS), and only then is the response completed, which closes the connection.

    A refused client is usually still sending. Closed under it, the connection is reset by the
    kernel over the unread bytes, and the client often loses the 413 with it (then retries
    the same oversized body, where a 413 would tell it to stop).
    """

    __slots__ = ("_body_read", "_receive", "_refused", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._body_read = False
        self._refused = False

    async def receive(self) -> MutableMapping[str, Any]:
        message = await self._receive()
        # Litestar refuses a chunked body on the message that crosses the limit, maybe the last.
        self._body_read = not message.get("more_body", False)
        return message

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self._refused = message["status"] == 413
        elif self._refused and not message.get("more_body", False):
            await self._send({**message, "more_body": True})
            await self._drain()
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await self._send(message)

    async def _drain(self) -> None:
        left = DRAIN_MAX_BYTES
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while not self._body_read and left > 0:
                    left -= len((await self.receive()).get("body", b""))

"""The webhook route without Litestar's per-request machinery.

E2B's deliveries are the one hot path of ingest. This ASGI wrapper answers `POST
/api/webhooks/e2b` itself when the request declares a body length within the limit, with the
same `answers.answer` the Litestar route uses (so the two cannot disagree). Everything else
(no or oversized Content-Length, other routes, lifespan) goes to the Litestar app, which stays
the documented (OpenAPI) and complete implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ingest.answers import answer
from ingest.handlers import WebhookIntake

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
# Loose on purpose: Litestar types its __call__ with its own scope and event unions.
ASGIApp = Callable[..., Awaitable[None]]

PATH = "/api/webhooks/e2b"
_JSON = (b"content-type", b"application/json")


class WebhookLane:
    def __init__(self, app: ASGIApp, intake: WebhookIntake, max_body_bytes: int) -> None:
        self._app = app
        self._intake = intake
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
            await self._app(scope, receive, send)  # Litestar answers 413 / reads chunked bodies
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        reply = await answer(self._intake, body, signature)
        headers = [_JSON, (b"content-length", str(len(reply.body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)

"""Request latency of an HTTP service, measured at its outermost ASGI layer: in front of the fast
lane, so the hot requests it answers are timed the same way as those Litestar answers.

Labels are bounded: the route template (Litestar's, or the fast lane's for the requests it
serves, never the raw path), the method (the usual seven, else `other`) and the status class.
The cost per request is two perf_counter() calls, a dict lookup and one observe().
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Litestar and our fast lanes type their __call__ each their own way.
ASGIApp = Callable[..., Awaitable[None]]

LABELS = ("route", "method", "status")
# Litestar's router puts the matched route's template here; a fast lane that answers a request
# itself puts the same template, so both lanes of one route share one series.
ROUTE_KEY = "path_template"
UNMATCHED = "unmatched"  # no route: a 404 or 405 from the router, or a refusal before routing
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Fine below 50 ms, where status-api promises its reads and ingest its acknowledgements.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def request_histogram(name: str, service: str) -> Histogram:
    return Histogram(
        name,
        f"{service}: time from a request's arrival to its last response byte handed to the "
        "server, by route template, method and status class",
        LABELS,
        buckets=BUCKETS,
    )


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class RequestTimer:
    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self._app = app
        self._histogram = histogram
        # One child per label set: `labels()` takes a lock and builds a key on every call.
        self._children: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # no response started: the server answers 500 for the app

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            self._child(scope, status).observe(time.perf_counter() - started)

    def _child(self, scope: Scope, status: int) -> Any:
        method = scope["method"]
        key = (
            scope.get(ROUTE_KEY) or UNMATCHED,
            method if method in METHODS else "other",
            status_class(status),
        )
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._histogram.labels(*key)
        return child

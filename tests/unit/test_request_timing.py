"""Request-latency histograms of ingest and status-api: measured at the outermost ASGI layer (so
the fast lanes' answers count), labelled by route template, method and status class only."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from ingest import app as ingest_app
from ingest import fast_lane as ingest_lane
from ingest import metrics as ingest_metrics
from ingest.guard import SignatureGuard
from ingest.settings import IngestSettings
from sandbox_common import e2b
from sandbox_common.rate_limit import RateLimiter
from sandbox_common.request_timing import BUCKETS, LABELS, RequestTimer
from sandbox_common.settings import load
from status_api import app as status_app
from status_api import fast_lane as status_lane
from status_api import metrics as status_metrics
from status_api.settings import StatusApiSettings

SECRET = "s" * 40


def histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("t_request_seconds", "test", LABELS, buckets=BUCKETS, registry=registry), (
        registry
    )


def count(registry: CollectorRegistry, **labels: str) -> float:
    return registry.get_sample_value("t_request_seconds_count", labels) or 0.0


async def call(
    app: Any, method: str, path: str, body: bytes = b"", **scope: Any
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    full = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        **scope,
    }
    await app(full, receive, send)
    return sent


def answering(status: int, template: str | None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if template is not None:
            scope["path_template"] = template
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_labels_are_the_route_template_the_method_and_the_status_class() -> None:
    h, registry = histogram()
    timer = RequestTimer(answering(304, "/api/sandboxes/{sandbox_id}"), h)
    await call(timer, "GET", "/api/sandboxes/sbx-1")
    await call(timer, "GET", "/api/sandboxes/sbx-2")
    assert count(registry, route="/api/sandboxes/{sandbox_id}", method="GET", status="3xx") == 2.0
    # No route matched (a 404 from the router): one series for every unknown path, and a
    # method nobody defined is `other`, whatever the client sent.
    unrouted = RequestTimer(answering(404, None), h)
    for path in ("/a", "/b/c", "/wp-admin.php"):
        await call(unrouted, "BREW", path)
    assert count(registry, route="unmatched", method="other", status="4xx") == 3.0
    routes = {s.labels["route"] for m in registry.collect() for s in m.samples}
    assert routes == {"/api/sandboxes/{sandbox_id}", "unmatched"}


async def test_a_request_that_fails_is_timed_as_a_500_and_the_error_goes_on() -> None:
    h, registry = histogram()

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        scope["path_template"] = "/x"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await call(RequestTimer(broken, h), "POST", "/x")
    assert count(registry, route="/x", method="POST", status="5xx") == 1.0


async def test_lifespan_and_websocket_pass_through_untimed() -> None:
    h, registry = histogram()
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await RequestTimer(app, h)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
    assert not [s for m in registry.collect() for s in m.samples if s.value]


def test_the_fast_lanes_name_their_routes_as_litestar_does() -> None:
    """One series per route whichever lane answers: the fast lanes' templates are the Litestar
    app's own (a renamed route fails here, not silently in a dashboard)."""
    status = status_app.build_app(
        load(StatusApiSettings, {"STATUS_API_JWT_SECRET": SECRET, "DATABASE_URL": "postgresql://x"})
    )
    formats = {route.path_format for route in status.routes}
    assert {status_lane.PROJECT_ROUTE, status_lane.SANDBOX_ROUTE} <= formats
    ingest = ingest_app.build_app(load(IngestSettings, {"E2B_WEBHOOK_SECRET": SECRET}))
    assert ingest_lane.PATH in {route.path_format for route in ingest.routes}


async def test_the_servers_time_both_lanes_at_the_outermost_layer() -> None:
    server = status_app.build_server_app(
        load(StatusApiSettings, {"STATUS_API_JWT_SECRET": SECRET, "DATABASE_URL": "postgresql://x"})
    )
    assert isinstance(server, RequestTimer)
    assert isinstance(server._app, status_lane.FastLane)
    before = status_metrics.REQUEST_SECONDS.labels("/healthz", "GET", "2xx")._sum.get()
    start = (await call(server, "GET", "/healthz"))[0]
    assert start["status"] == 200
    after = status_metrics.REQUEST_SECONDS.labels("/healthz", "GET", "2xx")._sum.get()
    assert after > before
    ingest = ingest_app.build_server_app(load(IngestSettings, {"E2B_WEBHOOK_SECRET": SECRET}))
    assert isinstance(ingest, RequestTimer)
    assert isinstance(ingest._app, ingest_lane.WebhookLane)
    series = ingest_metrics.REQUEST_SECONDS.labels("unmatched", "GET", "4xx")
    before = series._sum.get()
    assert (await call(ingest, "GET", "/no-such-route"))[0]["status"] == 404
    assert series._sum.get() > before


async def test_a_delivery_the_fast_lane_answers_is_timed_under_the_routes_template() -> None:
    from tests.unit.test_e2b_webhooks import SECRET as WEBHOOK_SECRET
    from tests.unit.test_ingest_intake import BODY, Inner, make

    h, registry = histogram()
    intake, _, _ = make()
    inner = Inner()
    guard = SignatureGuard(RateLimiter(0, time.monotonic), 10.0, time.monotonic)
    timer = RequestTimer(ingest_lane.WebhookLane(inner, intake, guard, max_body_bytes=4096), h)
    signed = e2b.signed_headers(WEBHOOK_SECRET, BODY)
    headers = [(k.lower().encode(), v.encode()) for k, v in signed.items()]
    headers.append((b"content-length", str(len(BODY)).encode()))
    sent = await call(timer, "POST", ingest_lane.PATH, BODY, headers=headers)
    assert sent[0]["status"] == 200, sent
    assert inner.paths == []  # answered by the fast lane, not handed on
    assert count(registry, route=ingest_lane.PATH, method="POST", status="2xx") == 1.0

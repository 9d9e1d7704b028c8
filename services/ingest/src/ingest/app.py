"""Litestar app of ingest: the webhook route, health, readiness and metrics."""

from __future__ import annotations

import logging
from typing import Any, cast

from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ClientException, ServiceUnavailableException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest import metrics
from ingest.answers import WebhookAnswer, answer
from ingest.bootstrap import IngestParts
from ingest.fast_lane import WebhookLane
from ingest.handlers import WebhookIntake
from ingest.openapi import WebhookOperation
from ingest.settings import IngestSettings
from sandbox_common import e2b
from sandbox_common.request_timing import RequestTimer

log = logging.getLogger("ingest")


def build_app(settings: IngestSettings) -> Litestar:
    return create_app(IngestParts(settings), settings)


def build_server_app(settings: IngestSettings) -> RequestTimer:
    """What the server runs: the Litestar app behind the fast lane for webhook deliveries, both
    timed by the outermost layer."""
    parts = IngestParts(settings)
    lane = WebhookLane(
        create_app(parts, settings), parts.intake, parts.guard, settings.ingest_max_body_bytes
    )
    return RequestTimer(lane, metrics.REQUEST_SECONDS)


@post(
    "/api/webhooks/e2b",
    summary="Receive an E2B lifecycle webhook",
    status_code=HTTP_200_OK,
    raises=[ClientException, ServiceUnavailableException],
    operation_class=WebhookOperation,
)
async def receive_webhook(
    request: Request[Any, Any, State], intake: WebhookIntake, parts: IngestParts
) -> Response[WebhookAnswer]:
    """Verifies `e2b-signature` over the raw body, then publishes the event durably.

    200 once the event is on `sandbox-lifecycle` (or was already: `status: duplicate`),
    401 bad or missing signature, 400 malformed body, 413 body too large, 503 broker
    unavailable (with Retry-After, so E2B retries). Errors use Litestar's JSON shape
    `{status_code, detail, extra: {reason}}`.
    """
    try:
        body = await request.body()
    except RequestEntityTooLarge as exc:
        metrics.REJECTED.labels(reason="too_large").inc()
        # The rest of the body is read only within a bound, and dropped (by the fast lane in
        # front: fast_lane.DrainAfterRefusal, so the client can read this answer), so the
        # connection cannot carry another request: say so, or the client reuses it and loses
        # its next delivery.
        raise RequestEntityTooLarge(
            detail=exc.detail, headers={"Connection": "close"}, extra={"reason": "too_large"}
        ) from exc
    signature = request.headers.get(e2b.HEADER_SIGNATURE)
    reply = await answer(
        intake, parts.guard, body, signature, request.client.host if request.client else ""
    )
    # Already encoded (answers.answer): Litestar sends the bytes as they are.
    response = Response(
        reply.body,
        status_code=reply.status_code,
        media_type=MediaType.JSON,
        headers=reply.headers,
    )
    return cast("Response[WebhookAnswer]", response)


@get("/healthz", media_type=MediaType.JSON)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", media_type=MediaType.JSON)
async def readyz(parts: IngestParts) -> Response[dict[str, object]]:
    connected = parts.publisher.connected
    # The cause when known: a refused password reads differently from a broker that is down.
    problems = (
        [] if connected else [f"kafka: {parts.publisher.problem or 'producer not connected'}"]
    )
    if not await parts.dedupe.ping():
        problems.append("redis: unreachable (dedupe degraded)")
    # Redis is optional for correctness: PostgreSQL's unique event id dedupes for ever.
    return Response(
        {"status": "ready" if connected else "unready", "problems": problems},
        status_code=HTTP_200_OK if connected else HTTP_503_SERVICE_UNAVAILABLE,
    )


@get("/metrics", include_in_schema=False)
async def metrics_route() -> Response[bytes]:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(parts: IngestParts, settings: IngestSettings) -> Litestar:
    return Litestar(
        route_handlers=[receive_webhook, healthz, readyz, metrics_route],
        dependencies={
            "intake": Provide(parts.provide_intake, sync_to_thread=False, use_cache=True),
            "parts": Provide(parts.provide_parts, sync_to_thread=False, use_cache=True),
        },
        lifespan=[parts.running],
        request_max_body_size=settings.ingest_max_body_bytes,
        openapi_config=OpenAPIConfig(title="sandbox ingest", version="1.0.0"),
        logging_config=None,  # sandbox_common.logging owns the handlers (JSON lines)
    )

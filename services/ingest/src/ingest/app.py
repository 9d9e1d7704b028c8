"""Litestar app of ingest: the webhook route, health, readiness and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import ClientException, ServiceUnavailableException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest import metrics
from ingest.adapters.dedupe import SeenEvents
from ingest.answers import WebhookAnswer, answer
from ingest.fast_lane import WebhookLane
from ingest.handlers import WebhookIntake
from ingest.openapi import WebhookOperation
from sandbox_common import e2b, redis_pool
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.settings import Settings

log = logging.getLogger("ingest")


def build_app(settings: Settings) -> Litestar:
    return _build(settings)[0]


def build_server_app(settings: Settings) -> WebhookLane:
    """What the server runs: the Litestar app behind the fast lane for webhook deliveries."""
    app, intake = _build(settings)
    return WebhookLane(app, intake, settings.ingest_max_body_bytes)


def _build(settings: Settings) -> tuple[Litestar, WebhookIntake]:
    settings.require("e2b_webhook_secret")
    redis_client = redis_pool.redis_client(settings.redis_url, settings.redis_max_connections)
    publisher = KafkaPublisher(
        settings.kafka_bootstrap_servers,
        settings.ingest_publish_timeout_seconds,
        settings.ingest_kafka_linger_ms,
    )
    dedupe = SeenEvents(redis_client, settings.ingest_dedupe_ttl_seconds)
    intake = WebhookIntake(
        settings.e2b_webhook_secret, settings.project_metadata_key, publisher, dedupe
    )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await dedupe.drain()
            await publisher.stop()
            await redis_client.aclose()

    @post(
        "/api/webhooks/e2b",
        summary="Receive an E2B lifecycle webhook",
        status_code=HTTP_200_OK,
        raises=[ClientException, ServiceUnavailableException],
        operation_class=WebhookOperation,
    )
    async def receive_webhook(request: Request[Any, Any, State]) -> Response[WebhookAnswer]:
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
            # The rest of the body is never read, so the connection cannot carry another
            # request: say so, or the client reuses it and loses its next delivery.
            raise RequestEntityTooLarge(
                detail=exc.detail, headers={"Connection": "close"}, extra={"reason": "too_large"}
            ) from exc
        reply = await answer(intake, body, request.headers.get(e2b.HEADER_SIGNATURE))
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
    async def readyz() -> Response[dict[str, object]]:
        problems = [] if publisher.connected else ["kafka: producer not connected"]
        if not await dedupe.ping():
            problems.append("redis: unreachable (dedupe degraded)")
        ready = publisher.connected  # Redis is optional for correctness
        return Response(
            {"status": "ready" if ready else "unready", "problems": problems},
            status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
        )

    @get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response[bytes]:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app = Litestar(
        route_handlers=[receive_webhook, healthz, readyz, metrics_route],
        lifespan=[lifespan],
        request_max_body_size=settings.ingest_max_body_bytes,
        openapi_config=OpenAPIConfig(title="sandbox ingest", version="1.0.0"),
        logging_config=None,  # sandbox_common.logging owns the handlers (JSON lines)
    )
    return app, intake

"""Litestar app of status-api: sandbox state for frontends, straight from Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from sandbox_common.envelope import Source
from sandbox_common.kafka_publisher import BrokerUnavailableError, KafkaPublisher
from sandbox_common.readmodel import POLL_AFTER_MS, Status, StatusDoc
from sandbox_common.settings import Settings
from status_api import metrics
from status_api.activity import record_activity
from status_api.adapters.redis import ReadModelMissingError, RedisThrottle, StatusReader
from status_api.auth import AuthError, Principal, TokenVerifier
from status_api.views import (
    ActivityAnswer,
    Caller,
    SandboxStatus,
    WakeAnswer,
    sandbox_status,
)
from status_api.wake import request_wake

_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# Documented in OpenAPI: 401 no valid token, 403 another project's sandbox, 404 none or killed.
_RAISES = [NotAuthorizedException, PermissionDeniedException, NotFoundException]


def _broker_unavailable(
    request: Request[Any, Any, State], exc: BrokerUnavailableError
) -> Response[dict[str, object]]:
    """A write (activity, wake) the broker did not take: 503 so the caller retries."""
    return Response(
        {"status_code": 503, "detail": "not recorded: the broker is unavailable; retry"},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


def _read_model_missing(
    request: Request[Any, Any, State], exc: ReadModelMissingError
) -> Response[dict[str, object]]:
    """Redis lost the read model and the projector is rebuilding it: retry, don't conclude 404."""
    return Response(
        {"status_code": 503, "detail": str(exc)},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


def build_app(settings: Settings) -> Litestar:
    settings.require("status_api_jwt_secret")
    client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=5
        )
    )
    reader = StatusReader(client)
    verifier = TokenVerifier(settings.status_api_jwt_secret)
    throttle = RedisThrottle(client, settings.activity_throttle_seconds)
    keep_alive = timedelta(seconds=settings.e2b_keep_alive_seconds)
    # Writes (activity) go to Kafka like every other fact; reads stay on Redis alone. The
    # producer connects lazily, so reads work even while the broker is down.
    publisher = KafkaPublisher(
        settings.kafka_bootstrap_servers,
        settings.status_api_publish_timeout_seconds,
        client_id="sandbox-status-api",
    )

    def principal_of(request: Request[Any, Any, State]) -> Principal:
        try:
            return verifier.principal(request.headers.get("authorization"))
        except AuthError as exc:
            raise NotAuthorizedException(detail=str(exc)) from exc

    def visible(doc: StatusDoc | None, route: str, what: str) -> StatusDoc:
        if doc is None or doc.status is Status.KILLED:
            metrics.READS.labels(route=route, outcome="not_found").inc()
            raise NotFoundException(detail=f"no sandbox for {what}")
        return doc

    async def project_doc_to_act_on(
        request: Request[Any, Any, State], project_id: str, route: str
    ) -> StatusDoc:
        """The live sandbox of a project the token may act on (401, 403 or 404 otherwise)."""
        if not principal_of(request).may_read(project_id):
            raise PermissionDeniedException(detail=f"token has no access to project {project_id}")
        return visible(await reader.by_project(project_id), route, f"project {project_id}")

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()
            await client.aclose()

    @get(
        "/api/projects/{project_id:str}/sandbox",
        security=_SECURITY,
        summary="Current sandbox of a project",
        raises=_RAISES,
    )
    async def project_sandbox(request: Request[Any, Any, State], project_id: str) -> SandboxStatus:
        """404 when the project has no live sandbox (never created, or killed)."""
        principal = principal_of(request)
        if not principal.may_read(project_id):
            metrics.READS.labels(route="project", outcome="forbidden").inc()
            raise PermissionDeniedException(detail=f"token has no access to project {project_id}")
        doc = visible(await reader.by_project(project_id), "project", f"project {project_id}")
        metrics.READS.labels(route="project", outcome="ok").inc()
        return sandbox_status(doc)

    @get(
        "/api/sandboxes/{sandbox_id:str}",
        security=_SECURITY,
        summary="One sandbox by id",
        raises=_RAISES,
    )
    async def sandbox(request: Request[Any, Any, State], sandbox_id: str) -> SandboxStatus:
        """403 when the sandbox belongs to a project the token does not name."""
        principal = principal_of(request)
        doc = visible(await reader.by_sandbox(sandbox_id), "sandbox", f"id {sandbox_id}")
        if not principal.may_read(doc.project_id):
            metrics.READS.labels(route="sandbox", outcome="forbidden").inc()
            raise PermissionDeniedException(detail=f"token has no access to sandbox {sandbox_id}")
        metrics.READS.labels(route="sandbox", outcome="ok").inc()
        return sandbox_status(doc)

    @post(
        "/api/projects/{project_id:str}/sandbox/activity",
        security=_SECURITY,
        summary="Report user activity (a heartbeat) for a project's sandbox",
        status_code=HTTP_202_ACCEPTED,
        raises=[*_RAISES, ServiceUnavailableException],
    )
    async def activity(
        request: Request[Any, Any, State], project_id: str, data: Caller | None = None
    ) -> ActivityAnswer:
        """Moves the sandbox's last activity (and so its idle deadline). Heartbeats are
        throttled per sandbox: `recorded: false` means one of this window was already taken."""
        doc = await project_doc_to_act_on(request, project_id, "activity")
        source = Source(data.source) if data else Source.UI
        result = await record_activity(doc, source, throttle, publisher, keep_alive)
        metrics.ACTIVITY.labels(recorded=str(result.recorded).lower()).inc()
        return ActivityAnswer(sandbox_id=doc.sandbox_id, recorded=result.recorded)

    @post(
        "/api/projects/{project_id:str}/sandbox/wake",
        security=_SECURITY,
        summary="Wake (resume) a project's paused sandbox",
        status_code=HTTP_202_ACCEPTED,
        raises=[*_RAISES, ServiceUnavailableException],
    )
    async def wake(
        request: Request[Any, Any, State], project_id: str, data: Caller | None = None
    ) -> WakeAnswer:
        """202 with `status: STARTING` (poll or listen until RUNNING); a sandbox already
        RUNNING or STARTING is left as it is and its status returned."""
        doc = await project_doc_to_act_on(request, project_id, "wake")
        source = Source(data.source) if data else Source.UI
        status = await request_wake(doc, source, publisher)
        return WakeAnswer(
            sandbox_id=doc.sandbox_id, status=status, poll_after_ms=POLL_AFTER_MS[status]
        )

    @get("/healthz", media_type=MediaType.JSON)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", media_type=MediaType.JSON)
    async def readyz() -> Response[dict[str, object]]:
        try:
            await reader.ping()
        except (RedisError, OSError) as exc:
            return Response(
                {"status": "unready", "problems": [f"redis: {exc}"]},
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response({"status": "ready", "problems": []}, status_code=HTTP_200_OK)

    @get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response[bytes]:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Litestar(
        route_handlers=[
            project_sandbox,
            sandbox,
            activity,
            wake,
            healthz,
            readyz,
            metrics_route,
        ],
        lifespan=[lifespan],
        logging_config=None,  # sandbox_common.logging owns the handlers (JSON lines)
        exception_handlers={
            BrokerUnavailableError: _broker_unavailable,
            ReadModelMissingError: _read_model_missing,
        },
        openapi_config=OpenAPIConfig(
            title="sandbox status-api",
            version="1.0.0",
            description="Sandbox state for frontends, served from the Redis read model.",
            components=Components(
                security_schemes={
                    "bearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                }
            ),
        ),
    )

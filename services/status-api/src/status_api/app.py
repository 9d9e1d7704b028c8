"""Litestar app of status-api: sandbox state for frontends, straight from Redis; pushed over
server-sent events; history and fleet for operators from PostgreSQL; the dashboard."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_503_SERVICE_UNAVAILABLE
from redis.exceptions import RedisError

from sandbox_common.api_keys import HEADER as API_KEY_HEADER
from sandbox_common.kafka_publisher import BrokerUnavailableError
from sandbox_common.notifications import TargetError
from sandbox_common.policies import PolicyError
from sandbox_common.readmodel.reader import ReadModelMissingError
from sandbox_common.request_timing import RequestTimer
from status_api import metrics
from status_api.access import authenticate_first
from status_api.bootstrap import StatusApiParts
from status_api.fast_lane import FastLane
from status_api.policy_views import PolicyRefused
from status_api.routes import (
    dashboard,
    notifications,
    operators,
    policies,
    probes,
    sandboxes,
    savings,
    streams,
    tickets,
)
from status_api.settings import StatusApiSettings

log = logging.getLogger(__name__)


def _broker_unavailable(
    request: Request[Any, Any, State], exc: BrokerUnavailableError
) -> Response[dict[str, object]]:
    """A write (activity, wake) the broker did not take: 503 so the caller retries."""
    return Response(
        {"status_code": 503, "detail": "not recorded: the broker is unavailable; retry"},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


def _policy_refused(
    request: Request[Any, Any, State], exc: PolicyError | TargetError
) -> Response[PolicyRefused]:
    """A policy or a notification receiver that cannot be taken (routes/policies.py,
    routes/notifications.py): 422 naming the field at fault."""
    return Response(
        PolicyRefused(
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            detail=str(exc),
            field=exc.field,
            reason=exc.reason,
        ),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
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


def _store_unavailable(
    request: Request[Any, Any, State], exc: Exception
) -> Response[dict[str, object]]:
    """Redis or PostgreSQL did not answer: 503 (the client retries), never a bare 500."""
    log.warning("store unavailable for %s: %s", request.url.path, exc)
    return Response(
        {"status_code": 503, "detail": "state store unavailable; retry"},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


def _cors(origins: str) -> CORSConfig | None:
    allowed = [o.strip() for o in origins.split(",") if o.strip()]
    if not allowed:
        return None
    return CORSConfig(
        allow_origins=allowed,
        allow_methods=["GET", "POST", "PUT", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "If-None-Match", "Last-Event-ID"],
        expose_headers=["ETag", "Retry-After"],
        max_age=600,
    )


def build_app(settings: StatusApiSettings) -> Litestar:
    return create_app(StatusApiParts(settings), settings)


def build_server_app(settings: StatusApiSettings) -> RequestTimer:
    """What the server runs: the Litestar app behind the fast lane for hot status reads, both
    timed by the outermost layer."""
    parts = StatusApiParts(settings)
    return RequestTimer(FastLane(create_app(parts, settings), parts.deps), metrics.REQUEST_SECONDS)


def create_app(parts: StatusApiParts, settings: StatusApiSettings) -> Litestar:
    return Litestar(
        route_handlers=[
            *sandboxes.HANDLERS,
            *streams.HANDLERS,
            *tickets.HANDLERS,
            *operators.HANDLERS,
            *policies.HANDLERS,
            *notifications.HANDLERS,
            *savings.HANDLERS,
            *probes.HANDLERS,
            dashboard.router(),
        ],
        dependencies={"deps": Provide(parts.provide_deps, sync_to_thread=False, use_cache=True)},
        lifespan=[parts.running],
        guards=[authenticate_first(parts.deps.gate)],
        # Bodies here are a few fields of JSON: anything larger is refused (413) unread.
        request_max_body_size=settings.status_api_max_body_bytes,
        cors_config=_cors(settings.status_api_cors_origins),
        logging_config=None,  # sandbox_common.logging owns the handlers (JSON lines)
        exception_handlers={
            BrokerUnavailableError: _broker_unavailable,
            PolicyError: _policy_refused,
            TargetError: _policy_refused,
            ReadModelMissingError: _read_model_missing,
            RedisError: _store_unavailable,
            asyncpg.PostgresError: _store_unavailable,
            OSError: _store_unavailable,
        },
        openapi_config=OpenAPIConfig(
            title="sandbox status-api",
            version="1.1.0",
            description=(
                "Sandbox state for frontends, served from the Redis read model and pushed over "
                "server-sent events; history and fleet for operators. Bearer JWT (HS256) with "
                "a `projects` claim, or `admin: true`; servers may send a project API key "
                "(`X-API-Key`) instead, except on streams."
            ),
            components=Components(
                security_schemes={
                    "bearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                    "apiKeyAuth": SecurityScheme(
                        type="apiKey",
                        name=API_KEY_HEADER,
                        security_scheme_in="header",
                        description="a project API key (sandboxctl api-key create), for servers",
                    ),
                }
            ),
        ),
    )

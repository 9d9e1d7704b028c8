"""Litestar app of status-api: sandbox state for frontends, straight from Redis; pushed over
server-sent events; history and fleet for operators from PostgreSQL; the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from redis.exceptions import RedisError

from sandbox_common import redis_pool
from sandbox_common.kafka_publisher import BrokerUnavailableError, KafkaPublisher
from sandbox_common.settings import Settings
from status_api.access import Gate
from status_api.adapters.postgres import HistoryStore
from status_api.adapters.redis import (
    ReadModelMissingError,
    RedisThrottle,
    StatusReader,
    WarningFeed,
)
from status_api.auth import TokenVerifier
from status_api.change_hub import ChangeHub
from status_api.deps import Deps
from status_api.fast_lane import FastLane
from status_api.pause_warnings import PauseWarner
from status_api.rate_limit import RateLimiter
from status_api.routes import dashboard, operators, probes, sandboxes, streams

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


def _now() -> datetime:
    return datetime.now(UTC)


def _cors(origins: str) -> CORSConfig | None:
    allowed = [o.strip() for o in origins.split(",") if o.strip()]
    if not allowed:
        return None
    return CORSConfig(
        allow_origins=allowed,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "If-None-Match", "Last-Event-ID"],
        expose_headers=["ETag", "Retry-After"],
        max_age=600,
    )


def build_app(settings: Settings) -> Litestar:
    return _build(settings)[0]


def build_server_app(settings: Settings) -> FastLane:
    """What the server runs: the Litestar app behind the fast lane for hot status reads."""
    app, deps = _build(settings)
    return FastLane(app, deps)


def _build(settings: Settings) -> tuple[Litestar, Deps]:
    settings.require("status_api_jwt_secret")
    # Handing out a connection is on every read's path: see sandbox_common.redis_pool for why
    # not redis-py's blocking pool (slow) nor its plain one (fails a burst of SSE openings).
    client = redis_pool.redis_client(settings.redis_url, settings.redis_max_connections)
    # The feed follower blocks on XREAD: its own connection, so it never holds up reads.
    feed_client = redis_pool.redis_client(
        settings.redis_url, settings.redis_max_connections, blocking=False
    )
    reader = StatusReader(client)
    hub = ChangeHub(feed_client)
    warn_before = timedelta(seconds=settings.status_api_warn_before_seconds)
    warner = PauseWarner(
        reader, WarningFeed(client, settings.change_feed_max_length), warn_before, _now
    )
    # Writes (activity, wake, pause) go to Kafka like every other fact; reads stay on Redis.
    # The producer connects lazily, so reads work even while the broker is down.
    publisher = KafkaPublisher(
        settings.kafka_bootstrap_servers,
        settings.status_api_publish_timeout_seconds,
        client_id="sandbox-status-api",
    )
    pg: list[asyncpg.Pool[asyncpg.Record]] = []

    class _LazyPool:
        """History and fleet need PostgreSQL; status reads must not wait for it at start."""

        async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
            return await (await self._pool()).fetch(query, *args)

        async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
            return await (await self._pool()).fetchrow(query, *args)

        async def fetchval(self, query: str, *args: object) -> object:
            return await (await self._pool()).fetchval(query, *args)

        async def _pool(self) -> asyncpg.Pool[asyncpg.Record]:
            if not pg:
                pg.append(
                    await asyncpg.create_pool(
                        settings.database_url, min_size=0, max_size=4, timeout=5
                    )
                )
            return pg[0]

    deps = Deps(
        gate=Gate(
            TokenVerifier(settings.status_api_jwt_secret),
            RateLimiter(settings.status_api_rate_limit_per_second, time.monotonic),
        ),
        reader=reader,
        history=HistoryStore(_LazyPool()),
        hub=hub,
        throttle=RedisThrottle(client, settings.activity_throttle_seconds),
        publisher=publisher,
        clock=_now,
        warn_before=warn_before,
        keep_alive=timedelta(seconds=settings.e2b_keep_alive_seconds),
        sse_keepalive_seconds=settings.status_api_sse_keepalive_seconds,
        default_idle_seconds=settings.idle_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await publisher.start()
        await hub.start()
        warnings = asyncio.create_task(warner.run(), name="pause-warner")
        try:
            yield
        finally:
            warnings.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warnings
            await hub.stop()
            await publisher.stop()
            if pg:
                await pg[0].close()
            await feed_client.aclose()
            await client.aclose()

    app = Litestar(
        route_handlers=[
            *sandboxes.handlers(deps),
            *streams.handlers(deps),
            *operators.handlers(deps),
            *probes.handlers(deps),
            dashboard.router(),
        ],
        lifespan=[lifespan],
        cors_config=_cors(settings.status_api_cors_origins),
        logging_config=None,  # sandbox_common.logging owns the handlers (JSON lines)
        exception_handlers={
            BrokerUnavailableError: _broker_unavailable,
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
                "a `projects` claim, or `admin: true`."
            ),
            components=Components(
                security_schemes={
                    "bearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                }
            ),
        ),
    )
    return app, deps

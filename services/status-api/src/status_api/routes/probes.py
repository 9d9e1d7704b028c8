"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncpg
from litestar import MediaType, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from status_api.deps import Deps


@get("/healthz", media_type=MediaType.JSON)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", media_type=MediaType.JSON)
async def readyz(deps: Deps) -> Response[dict[str, object]]:
    """Ready while Redis answers: every status read needs it. PostgreSQL serves only the
    history and fleet routes, Kafka only the writes (activity, wake, pause: 503 meanwhile), so
    their absence is reported without taking reads away."""
    problems: list[str] = []
    try:
        await deps.reader.ping()
    except (RedisError, OSError) as exc:
        problems.append(f"redis: {exc}")
    try:
        await deps.history.ping()
    except (asyncpg.PostgresError, OSError) as exc:
        degraded = [f"postgresql (history and fleet only): {exc}"]
    else:
        degraded = []
    if deps.publisher.problem is not None:
        degraded.append(f"kafka (activity, wake and pause only): {deps.publisher.problem}")
    ready = not problems
    return Response(
        {
            "status": "ready" if ready else "unready",
            "problems": problems,
            "degraded": degraded,
        },
        status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
    )


@get("/metrics", include_in_schema=False)
async def metrics_route() -> Response[bytes]:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


HANDLERS = [healthz, readyz, metrics_route]

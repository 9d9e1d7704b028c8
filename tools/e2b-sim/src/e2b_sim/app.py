"""Assembles the simulator: routes, the X-API-Key guard and E2B's rate limit (E2B's API only,
never /_sim), E2B's error shape, the background loops (clock and webhook sender) and the call
log around everything."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp

from e2b_sim import admin, api_events, api_lifecycle, api_sandboxes
from e2b_sim.calls import recording
from e2b_sim.errors import RATE_LIMITED, E2BError, http_error, server_error
from e2b_sim.ratelimit import retry_after
from e2b_sim.sim import Sim


def build_litestar(sim: Sim) -> Litestar:
    def require_api_key(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        given = connection.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), sim.settings.api_key.encode()):
            raise E2BError(401, "Invalid API key")

    def within_rate_limit(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        """After the key check: the key names the team whose budget the call spends."""
        wait = sim.rate_limit.take(connection.headers.get("x-api-key", ""))
        if wait > 0:
            raise E2BError(429, RATE_LIMITED, retry_after_seconds=retry_after(wait))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        loops = asyncio.create_task(sim.run())
        try:
            yield
        finally:
            loops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loops

    e2b_api = Router(
        "/",
        route_handlers=[*api_sandboxes.ROUTES, *api_lifecycle.ROUTES, *api_events.ROUTES],
        guards=[require_api_key, within_rate_limit],
    )
    return Litestar(
        route_handlers=[e2b_api, *admin.routes(sim)],
        # On the app: a registered Router is deep-copied, its dependencies (and the Sim) with it.
        dependencies={"sim": Provide(sim.provide, sync_to_thread=False, use_cache=True)},
        lifespan=[lifespan],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        openapi_config=None,
    )


def build_app(sim: Sim) -> ASGIApp:
    """The ASGI app a server runs: Litestar wrapped by the call log."""
    return recording(build_litestar(sim), sim.calls)

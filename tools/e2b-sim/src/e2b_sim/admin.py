"""The simulator's own API under /_sim (no API key): fault knobs, call and delivery logs,
reset and a manual clock tick. Never part of E2B's API."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter

from e2b_sim.errors import E2BError
from e2b_sim.sim import Sim

SandboxId = Annotated[str | None, QueryParameter(name="sandboxId")]
EventId = Annotated[str | None, QueryParameter(name="eventId")]


def routes(sim: Sim) -> list[HTTPRouteHandler]:
    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/_sim/faults")
    async def faults() -> Response[Any]:
        return Response(msgspec.to_builtins(sim.faults.current))

    @patch("/_sim/faults")
    async def set_faults(request: Request[Any, Any, Any]) -> Response[Any]:
        """Partial update, camelCase knob names; 400 on an unknown knob or a bad value."""
        try:
            patch_body = msgspec.json.decode(await request.body(), type=dict[str, Any])
            return Response(msgspec.to_builtins(sim.faults.update(patch_body)))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise E2BError(400, f"invalid faults: {exc}") from exc

    @get("/_sim/calls")
    async def calls(sandbox_id: SandboxId = None, op: str | None = None) -> Response[Any]:
        return Response(sim.calls.query(sandbox_id, op))

    @get("/_sim/deliveries")
    async def deliveries(sandbox_id: SandboxId = None, event_id: EventId = None) -> Response[Any]:
        rows = [
            d
            for d in sim.deliverer.log
            if sandbox_id in (None, d["sandboxId"]) and event_id in (None, d["eventId"])
        ]
        return Response(rows)

    @post("/_sim/reset", status_code=200)
    async def reset() -> dict[str, bool]:
        sim.reset()
        return {"reset": True}

    @post("/_sim/tick", status_code=200)
    async def tick() -> dict[str, int]:
        """Runs the clock once now (tests need not wait for the background tick)."""
        return {"changed": sim.store.tick()}

    return [healthz, faults, set_faults, calls, deliveries, reset, tick]

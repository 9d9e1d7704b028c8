"""The simulator's own API under /_sim (no API key): fault knobs, call and delivery logs,
reset, a manual clock tick, and traffic reaching a sandbox. Never part of E2B's API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter

from e2b_sim import domain, views
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

    @post("/_sim/sandboxes/{sandbox_id:str}/traffic", status_code=200)
    async def traffic(sandbox_id: str) -> Response[Any]:
        """A request reaches the sandbox through E2B's proxy (E2B's SDKs and apps talk to the
        sandbox itself, never through the API): 200 it runs; 201 it was paused with
        auto-resume and was resumed (new execution, `resumed` webhook); 409 paused without
        auto-resume, nothing changes; 404 unknown or killed. 2xx bodies: the sandbox's details."""
        now = sim.store.now()
        decided = domain.traffic(sim.store.get(sandbox_id), str(uuid.uuid4()), now)
        outcome = sim.store.apply(decided)
        if outcome.status >= 400 or outcome.sandbox is None:
            raise E2BError(outcome.status, outcome.message)
        return Response(views.detail(outcome.sandbox), status_code=outcome.status)

    return [healthz, faults, set_faults, calls, deliveries, reset, tick, traffic]

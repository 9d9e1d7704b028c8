"""Webhook registration (/events/webhooks) and the events API (/events/sandboxes)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.params import Parameter, QueryParameter

from e2b_sim import views
from e2b_sim.errors import E2BError, decode
from e2b_sim.sim import Sim
from e2b_sim.webhooks import InvalidRegistrationError, NewRegistration, RegistrationPatch, public

Limit = Annotated[int, Parameter(ge=1, le=100)]
Offset = Annotated[int, Parameter(ge=0)]
OrderAsc = Annotated[bool, QueryParameter(name="orderAsc")]


@post("/events/webhooks")
async def register(sim: Sim, request: Request[Any, Any, Any]) -> Response[Any]:
    new = decode(await request.body(), NewRegistration)
    try:
        reg = sim.registrations.create(new, sim.store.now())
    except InvalidRegistrationError as exc:
        raise E2BError(400, str(exc)) from exc
    return Response(public(reg), status_code=201)


@get("/events/webhooks")
async def list_webhooks(sim: Sim) -> Response[Any]:
    return Response([public(r) for r in sim.registrations.all()])


@get("/events/webhooks/{webhook_id:str}")
async def read_webhook(sim: Sim, webhook_id: str) -> Response[Any]:
    reg = sim.registrations.get(webhook_id)
    if reg is None:
        raise _missing(webhook_id)
    return Response(public(reg))


@patch("/events/webhooks/{webhook_id:str}")
async def update_webhook(
    sim: Sim, webhook_id: str, request: Request[Any, Any, Any]
) -> Response[Any]:
    changes = decode(await request.body(), RegistrationPatch)
    try:
        reg = sim.registrations.update(webhook_id, changes)
    except InvalidRegistrationError as exc:
        raise E2BError(400, str(exc)) from exc
    if reg is None:
        raise _missing(webhook_id)
    return Response(public(reg))


@delete("/events/webhooks/{webhook_id:str}", status_code=200)
async def delete_webhook(sim: Sim, webhook_id: str) -> Response[Any]:
    if not sim.registrations.delete(webhook_id):
        raise _missing(webhook_id)
    return Response(content=b"", status_code=200)  # E2B answers 200, not 204


@get(["/events/sandboxes", "/events/sandboxes/{sandbox_id:str}"])
async def events(
    sim: Sim,
    sandbox_id: str | None = None,
    offset: Offset = 0,
    limit: Limit = 10,
    order_asc: OrderAsc = False,
) -> Response[Any]:
    """Newest first unless orderAsc; each event in the camelCase (v1) shape."""
    rows = sim.store.events(sandbox_id, offset, limit, order_asc)
    return Response([views.event_body(e, "v1") for e in rows])


ROUTES = [register, list_webhooks, read_webhook, update_webhook, delete_webhook, events]


def _missing(webhook_id: str) -> E2BError:
    return E2BError(404, f"Webhook {webhook_id} not found")

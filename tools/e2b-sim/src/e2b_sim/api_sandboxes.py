"""E2B's sandbox REST subset, reads and creation (reference/e2b.md): create (v2 and the older
route), get, list (v2). Decisions come from `domain`; this module only speaks HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import unquote_plus

from litestar import Request, Response, get, post
from litestar.datastructures import MultiDict
from litestar.params import Parameter, QueryParameter

from e2b_sim import domain, views
from e2b_sim.bodies import NewSandbox, NewSandboxV2
from e2b_sim.errors import E2BError, decode, reply
from e2b_sim.sim import Sim
from e2b_sim.store import BadTokenError, ListQuery


@post("/sandboxes")
async def create(sim: Sim, request: Request[Any, Any, Any]) -> Response[Any]:
    old = decode(await request.body(), NewSandbox)
    on_timeout = old.lifecycle.on_timeout if old.lifecycle is not None else "kill"
    # One shape from here on: built, not decoded, so the v2 bounds do not apply to it.
    new = NewSandboxV2(
        template_id=old.template_id,
        timeout=old.timeout,
        metadata=old.metadata,
        auto_pause=old.auto_pause or on_timeout == "pause",
        auto_resume=old.auto_resume,
    )
    return _start(sim, new)


@post("/v2/sandboxes")
async def create_v2(sim: Sim, request: Request[Any, Any, Any]) -> Response[Any]:
    return _start(sim, decode(await request.body(), NewSandboxV2))


@get("/sandboxes/{sandbox_id:str}")
async def read(sim: Sim, sandbox_id: str) -> Response[Any]:
    sandbox = sim.store.get(sandbox_id)
    if sandbox is None or domain.visible_state(sandbox) is None:
        raise E2BError(404, f"Sandbox {sandbox_id} not found")
    return Response(views.detail(sandbox))


@get("/v2/sandboxes")
async def list_sandboxes(
    sim: Sim,
    request: Request[Any, Any, Any],
    limit: Annotated[int, Parameter(ge=1, le=100)] = 100,
    next_token: Annotated[str | None, QueryParameter(name="nextToken")] = None,
) -> Response[Any]:
    try:
        rows, token = sim.store.page(_list_query(request.query_params), limit, next_token)
    except BadTokenError as exc:
        raise E2BError(400, str(exc)) from exc
    headers = {"X-Next-Token": token} if token else {}
    return Response([views.listed(sb) for sb in rows], headers=headers)


ROUTES = [create, create_v2, read, list_sandboxes]


def _start(sim: Sim, new: NewSandboxV2) -> Response[Any]:
    max_length = timedelta(seconds=sim.settings.max_instance_seconds)
    refused = domain.timeout_refusal(new.timeout, max_length)
    if refused is not None:
        return reply(refused)
    now = sim.store.now()
    sandbox = domain.Sandbox(
        sandbox_id="i" + uuid.uuid4().hex[:19],  # E2B ids: 20 lower-case characters
        template_id=new.template_id,
        execution_id=str(uuid.uuid4()),
        started_at=now,
        end_at=now + timedelta(seconds=new.timeout),
        metadata=new.metadata,
        auto_pause=new.auto_pause,
        auto_resume=new.auto_resume is not None and new.auto_resume.enabled,
        auto_resume_timeout=new.timeout,
        max_length=max_length,
    )
    sim.store.apply(domain.create(sandbox))
    return Response(views.created(sandbox), status_code=201)


def _list_query(params: MultiDict[Any]) -> ListQuery:
    """state (`running,paused` or repeated), metadata, order (asc|desc, by start time; newest
    first by default), startedAfter (RFC 3339) and template; 400 on a bad value."""
    states = {s for value in params.getall("state", ["running,paused"]) for s in value.split(",")}
    states.discard("")
    if not states <= {"running", "paused"}:
        raise E2BError(400, f"invalid state filter: {sorted(states)}")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise E2BError(400, f"invalid order: {order!r} (asc or desc)")
    return ListQuery(
        states=frozenset(states),
        metadata=_metadata_filter(params.get("metadata")),
        template=params.get("template"),
        started_after=_time_param(params.get("startedAfter")),
        ascending=order == "asc",
    )


def _time_param(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise E2BError(400, f"invalid startedAfter: {raw!r} (RFC 3339)") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _metadata_filter(raw: str | None) -> dict[str, str]:
    """As E2B reads `metadata`: the whole value unescaped, split into key=value pairs, each key
    and value unescaped again (E2B's SDKs escape them before encoding the query)."""
    wanted: dict[str, str] = {}
    for pair in unquote_plus(raw).split("&") if raw else ():
        parts = pair.split("=")
        if len(parts) != 2:
            raise E2BError(400, f"invalid key value pair in metadata query: {pair!r}")
        wanted[unquote_plus(parts[0])] = unquote_plus(parts[1])
    return wanted

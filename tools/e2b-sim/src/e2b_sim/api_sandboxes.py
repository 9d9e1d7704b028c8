"""E2B's sandbox REST subset (reference/e2b.md): create, get, list, pause, connect, resume,
timeout, refreshes, kill. Decisions come from `domain`; this module only speaks HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

from litestar import Request, Response, delete, get, post
from litestar.params import Parameter, QueryParameter

from e2b_sim import domain, views
from e2b_sim.bodies import NewSandbox, OptionalTimeout, Pause, Refresh, Timeout
from e2b_sim.errors import E2BError, decode, reply
from e2b_sim.sim import Sim
from e2b_sim.store import BadTokenError

# connect and resume: a sandbox (maybe none), the timeout asked for, a new execution id, now.
BringUp = Callable[[domain.Sandbox | None, int, str, datetime], domain.Outcome]


@post("/sandboxes")
async def create(sim: Sim, request: Request[Any, Any, Any]) -> Response[Any]:
    new = decode(await request.body(), NewSandbox)
    now = sim.store.now()
    sandbox = domain.Sandbox(
        sandbox_id="i" + uuid.uuid4().hex[:19],  # E2B ids: 20 lower-case characters
        template_id=new.template_id,
        execution_id=str(uuid.uuid4()),
        started_at=now,
        end_at=now + timedelta(seconds=new.timeout),
        metadata=new.metadata,
        auto_pause=new.auto_pause
        or (new.lifecycle is not None and new.lifecycle.on_timeout == "pause"),
    )
    sim.store.apply(domain.create(sandbox))
    return Response(views.created(sandbox), status_code=201)


@get("/sandboxes/{sandbox_id:str}")
async def read(sim: Sim, sandbox_id: str) -> Response[Any]:
    sandbox = sim.store.get(sandbox_id)
    if sandbox is None or domain.visible_state(sandbox) is None:
        raise E2BError(404, f"Sandbox {sandbox_id} not found")
    return Response(views.detail(sandbox))


@get("/v2/sandboxes")
async def list_sandboxes(
    sim: Sim,
    state_filter: Annotated[list[str] | None, QueryParameter(name="state")] = None,
    metadata: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=100)] = 100,
    next_token: Annotated[str | None, QueryParameter(name="nextToken")] = None,
) -> Response[Any]:
    # Both `state=running,paused` and `state=running&state=paused` are accepted.
    states = {s for value in state_filter or ["running,paused"] for s in value.split(",") if s}
    if not states <= {"running", "paused"}:
        raise E2BError(400, f"invalid state filter: {sorted(states)}")
    wanted = dict(parse_qsl(metadata or ""))
    try:
        rows, token = sim.store.page(states, wanted, limit, next_token)
    except BadTokenError as exc:
        raise E2BError(400, str(exc)) from exc
    headers = {"X-Next-Token": token} if token else {}
    return Response([views.detail(sb) for sb in rows], headers=headers)


@post("/sandboxes/{sandbox_id:str}/pause")
async def pause(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    decode(await request.body(), Pause)
    await asyncio.sleep(sim.faults.current.pause_latency_ms / 1000)
    injected = sim.faults.pause_injection()
    if injected is not None:
        raise E2BError(injected, _injected_message(injected))
    now = sim.store.now()
    return reply(sim.store.apply(domain.pause(sim.store.get(sandbox_id), now, _transition(sim))))


@post("/sandboxes/{sandbox_id:str}/connect")
async def connect(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), Timeout)
    return _bring_up(sim, sandbox_id, body.timeout, domain.connect)


@post("/sandboxes/{sandbox_id:str}/resume")
async def resume(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), OptionalTimeout)
    return _bring_up(sim, sandbox_id, body.timeout, domain.resume)


@post("/sandboxes/{sandbox_id:str}/timeout")
async def set_timeout(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), Timeout)
    now = sim.store.now()
    outcome = domain.set_timeout(sim.store.get(sandbox_id), body.timeout, now)
    return reply(sim.store.apply(outcome))


@post("/sandboxes/{sandbox_id:str}/refreshes")
async def refresh(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), Refresh)
    now = sim.store.now()
    return reply(sim.store.apply(domain.refresh(sim.store.get(sandbox_id), body.duration, now)))


@delete("/sandboxes/{sandbox_id:str}", status_code=200)
async def kill(sim: Sim, sandbox_id: str) -> Response[Any]:
    now = sim.store.now()
    return reply(sim.store.apply(domain.kill(sim.store.get(sandbox_id), now, _transition(sim))))


ROUTES = [create, read, list_sandboxes, pause, connect, resume, set_timeout, refresh, kill]


def _transition(sim: Sim) -> timedelta:
    return timedelta(milliseconds=sim.faults.current.transition_ms)


def _bring_up(sim: Sim, sandbox_id: str, timeout: int, action: BringUp) -> Response[Any]:
    sandbox, now = sim.store.get(sandbox_id), sim.store.now()
    outcome = sim.store.apply(action(sandbox, timeout, str(uuid.uuid4()), now))
    if outcome.status < 300 and outcome.sandbox is not None:
        return Response(views.created(outcome.sandbox), status_code=outcome.status)
    return reply(outcome)


def _injected_message(status: int) -> str:
    if status == 409:
        return "Sandbox cannot be paused while in 'pausing' state"  # the transitional 409
    if status == 429:
        return "Rate limit exceeded, please try again later"
    return "Failed to pause sandbox (injected fault)"
